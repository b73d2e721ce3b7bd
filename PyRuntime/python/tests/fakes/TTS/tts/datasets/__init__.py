"""Fake TTS.tts.datasets.load_tts_samples: the ljspeech and coqui formatters and the eval split."""
import os

import fakelog


def _coqui(root, meta_file, language):
    with open(os.path.join(root, meta_file), encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = lines[0].split("|")
    if header[:2] != ["audio_file", "text"]:
        raise ValueError(f"coqui formatter: the first line of {meta_file} must be the header audio_file|text|speaker_name, got {lines[0]!r}")
    rows = []
    for line in lines[1:]:
        cols = dict(zip(header, line.split("|")))
        rows.append({"text": cols["text"], "audio_file": os.path.join(root, cols["audio_file"]),
                     "speaker_name": cols.get("speaker_name", "coqui"), "root_path": root, "language": language})
    return rows


def _ljspeech(root, meta_file, language):
    rows = []
    with open(os.path.join(root, meta_file), encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("|")
            rows.append({"text": cols[2] if len(cols) > 2 else cols[1], "audio_file": os.path.join(root, "wavs", cols[0] + ".wav"),
                         "speaker_name": "ljspeech", "root_path": root, "language": language})
    return rows


FORMATTERS = {"coqui": _coqui, "ljspeech": _ljspeech}


def load_tts_samples(datasets, eval_split=True, formatter=None, eval_split_max_size=None, eval_split_size=0.01):
    if not isinstance(datasets, list):
        datasets = [datasets]
    train, evals = [], []
    for d in datasets:
        if d.formatter not in FORMATTERS:
            raise ValueError(f" [!] Formatter '{d.formatter}' is not found.")
        rows = FORMATTERS[d.formatter](d.path, d.meta_file_train, d.language)
        assert len(rows) > 0, f" [!] No training samples found in {d.path}/{d.meta_file_train}"
        if eval_split:
            if d.meta_file_val:
                evals += FORMATTERS[d.formatter](d.path, d.meta_file_val, d.language)
            else:
                n = int(len(rows) * eval_split_size) if eval_split_size < 1 else int(eval_split_size)
                n = min(n, eval_split_max_size or n)
                evals += rows[:n]
                rows = rows[n:]
        train += rows
    fakelog.record("load_tts_samples", train=len(train), eval=len(evals), formatters=[d.formatter for d in datasets])
    return train, evals
