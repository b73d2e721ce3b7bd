"""Fake TTS.tts.layers.xtts.trainer.gpt_trainer: the GPT fine-tuning recipe's classes and their checks."""
import os
from dataclasses import dataclass, field

import fakelog


@dataclass
class GPTArgs:
    min_conditioning_length: int = 66150
    max_conditioning_length: int = 132300
    debug_loading_failures: bool = False
    max_wav_length: int = 255995
    max_text_length: int = 200
    mel_norm_file: str = ""
    dvae_checkpoint: str = ""
    xtts_checkpoint: str = ""
    tokenizer_file: str = ""
    gpt_num_audio_tokens: int = 8194
    gpt_start_audio_token: int = 8192
    gpt_stop_audio_token: int = 8193
    gpt_use_masking_gt_prompt_approach: bool = True
    gpt_use_perceiver_resampler: bool = True


@dataclass
class XttsAudioConfig:
    sample_rate: int = 22050
    output_sample_rate: int = 24000
    dvae_sample_rate: int = 22050


@dataclass
class GPTTrainerConfig:
    output_path: str = ""
    model_args: GPTArgs = field(default_factory=GPTArgs)
    run_name: str = "run"
    project_name: str = ""
    run_description: str = ""
    dashboard_logger: str = "tensorboard"
    logger_uri: str = None
    audio: XttsAudioConfig = field(default_factory=XttsAudioConfig)
    batch_size: int = 32
    batch_group_size: int = 0
    eval_batch_size: int = 16
    num_loader_workers: int = 0
    eval_split_max_size: int = 256
    eval_split_size: float = 0.01
    print_step: int = 25
    plot_step: int = 100
    log_model_step: int = None
    save_step: int = 10000
    save_n_checkpoints: int = 5
    save_checkpoints: bool = True
    print_eval: bool = False
    optimizer: str = "AdamW"
    optimizer_wd_only_on_weights: bool = True
    optimizer_params: dict = field(default_factory=dict)
    lr: float = 0.001
    lr_scheduler: str = None
    lr_scheduler_params: dict = field(default_factory=dict)
    test_sentences: list = field(default_factory=list)
    epochs: int = 1000


class GPTTrainer:
    def __init__(self, config):
        self.config = config
        self.args = config.model_args

    @classmethod
    def init_from_config(cls, config, samples=None):
        args = config.model_args
        # The real one torch.loads each of these: a missing file fails here, before any training.
        for path in (args.dvae_checkpoint, args.mel_norm_file, args.xtts_checkpoint, args.tokenizer_file):
            if not path or not os.path.isfile(path):
                raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
        if (args.gpt_num_audio_tokens, args.gpt_start_audio_token, args.gpt_stop_audio_token) != (1026, 1024, 1025):
            raise RuntimeError("Error(s) in loading state_dict for GPT: size mismatch for gpt.mel_embedding.weight")
        fakelog.record("GPTTrainer.init_from_config", lr=config.lr, batch_size=config.batch_size, epochs=config.epochs,
                       sample_rate=config.audio.sample_rate, output_sample_rate=config.audio.output_sample_rate)
        return cls(config)
