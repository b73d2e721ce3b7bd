"""Fake TTS.config.shared_configs: BaseDatasetConfig with coqui's fields."""
from dataclasses import dataclass, field


@dataclass
class BaseDatasetConfig:
    formatter: str = ""
    dataset_name: str = ""
    path: str = ""
    meta_file_train: str = ""
    ignored_speakers: list = field(default_factory=list)
    language: str = ""
    phonemizer: str = ""
    meta_file_val: str = ""
    meta_file_attn_mask: str = ""
