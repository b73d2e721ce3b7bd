"""Speech recognition with Debian's pocketsphinx, for intelligibility checks and transcripts."""
from __future__ import annotations

import re

import numpy as np
from scipy import signal

MODEL_DIR = "/usr/share/pocketsphinx/model/en-us"


class Recognizer:
    def __init__(self, model_dir: str = MODEL_DIR) -> None:
        from pocketsphinx import Decoder  # Debian: python3-pocketsphinx, pocketsphinx-en-us

        config = Decoder.default_config()
        config.set_string("-hmm", f"{model_dir}/en-us")
        config.set_string("-lm", f"{model_dir}/en-us.lm.bin")
        config.set_string("-dict", f"{model_dir}/cmudict-en-us.dict")
        config.set_string("-logfn", "/dev/null")
        self._decoder = Decoder(config)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        x = np.asarray(audio, dtype=np.float64)
        if sample_rate != 16000:
            g = np.gcd(16000, sample_rate)
            x = signal.resample_poly(x, 16000 // g, sample_rate // g)
        pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, False, True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference word count)."""
    r, h = words(reference), words(hypothesis)
    prev = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        cur = [i] + [0] * len(h)
        for j in range(1, len(h) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
        prev = cur
    return prev[-1], len(r)
