"""Fake of upstream finetuning/sft_12hz.py: its arguments, asserts, log lines and checkpoint layout."""
import argparse
import importlib.util
import json
import math
import os
import shutil

import fakelog
from dataset import TTSDataset
from qwen_tts import Qwen3TTSModel


def train():
    parser = argparse.ArgumentParser()
    parser.add_argument("--init_model_path", type=str, default="Qwen/Qwen3-TTS-12Hz-1.7B-Base")
    parser.add_argument("--output_model_path", type=str, default="output")
    parser.add_argument("--train_jsonl", type=str, required=True)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--num_epochs", type=int, default=3)
    parser.add_argument("--speaker_name", type=str, default="speaker_test")
    args = parser.parse_args()
    if importlib.util.find_spec("flash_attn") is None:
        # transformers, for the hard-coded attn_implementation="flash_attention_2"
        raise ImportError("FlashAttention2 has been toggled on, but it cannot be used due to the following error: "
                          "the package flash_attn seems to be not installed.")
    MODEL_PATH = args.init_model_path
    Qwen3TTSModel.from_pretrained(MODEL_PATH, attn_implementation="flash_attention_2")
    train_data = [json.loads(line) for line in open(args.train_jsonl).readlines()]
    dataset = TTSDataset(train_data)
    steps = math.ceil(len(dataset) / args.batch_size)
    fakelog.record("sft_12hz", args=vars(args), lines=len(dataset))
    for epoch in range(args.num_epochs):
        for step in range(steps):
            if step % 10 == 0:
                loss = 8.0 / (1 + epoch + step / steps) + args.lr * 0
                print(f"Epoch {epoch} | Step {step} | Loss: {loss:.4f}", flush=True)
        output_dir = os.path.join(args.output_model_path, f"checkpoint-epoch-{epoch}")
        shutil.copytree(MODEL_PATH, output_dir, dirs_exist_ok=True)
        with open(os.path.join(MODEL_PATH, "config.json"), "r", encoding="utf-8") as f:
            config_dict = json.load(f)
        config_dict["tts_model_type"] = "custom_voice"
        talker_config = config_dict.get("talker_config", {})
        talker_config["spk_id"] = {args.speaker_name: 3000}
        talker_config["spk_is_dialect"] = {args.speaker_name: False}
        config_dict["talker_config"] = talker_config
        with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config_dict, f, indent=2, ensure_ascii=False)
        with open(os.path.join(output_dir, "model.safetensors"), "wb") as f:
            f.write(b"fake weights of epoch %d" % epoch)


if __name__ == "__main__":
    train()
