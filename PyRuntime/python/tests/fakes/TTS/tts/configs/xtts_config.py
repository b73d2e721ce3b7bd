"""Fake XttsConfig: load_json reads the model's config.json."""
import json


class XttsConfig:
    def __init__(self) -> None:
        self.languages = ["en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "hu", "ko", "ja", "hi"]
        self.model_args = {}

    def load_json(self, file_name: str) -> None:
        with open(file_name, encoding="utf-8") as f:
            data = json.load(f)
        for key, value in data.items():
            setattr(self, key, value)
