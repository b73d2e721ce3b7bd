"""Fake of upstream finetuning/prepare_data.py: adds audio_codes (12.5 frames/s x 16) to each line."""
import argparse
import json
import os
import re

import soundfile as sf

import fakelog

BATCH_INFER_NUM = 32


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", type=str, default="cuda:0")
    parser.add_argument("--tokenizer_model_path", type=str, default="Qwen/Qwen3-TTS-Tokenizer-12Hz")
    parser.add_argument("--input_jsonl", type=str, required=True)
    parser.add_argument("--output_jsonl", type=str, required=True)
    args = parser.parse_args()
    path = args.tokenizer_model_path
    if not os.path.isdir(path) and not re.fullmatch(r"Qwen/Qwen3-TTS-Tokenizer-12Hz", path):
        raise OSError(f"{path} is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'")
    lines = [json.loads(line.strip()) for line in open(args.input_jsonl).readlines()]
    for line in lines:
        seconds = sf.info(line["audio"]).duration
        line["audio_codes"] = [[(t * 16 + q) % 2048 for q in range(16)] for t in range(max(1, int(seconds * 12.5)))]
    with open(args.output_jsonl, "w") as f:
        for line in lines:
            f.writelines(json.dumps(line, ensure_ascii=False) + "\n")
    fakelog.record("prepare_data", args=vars(args), lines=len(lines))


if __name__ == "__main__":
    main()
