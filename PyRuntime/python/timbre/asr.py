"""Speech recognition for transcripts and intelligibility checks: Debian's pocketsphinx (English) as the
embedded default, Whisper (faster-whisper) whenever it is installed."""
from __future__ import annotations

import importlib.util
import os
import re
import threading

import numpy as np

from .audio import resample

MODEL_DIR = "/usr/share/pocketsphinx/model/en-us"


class Recognizer:
    """pocketsphinx with its US English model; one utterance at a time."""

    name = "pocketsphinx"

    def __init__(self, model_dir: str = MODEL_DIR) -> None:
        from pocketsphinx import Decoder  # Debian: python3-pocketsphinx, pocketsphinx-en-us

        config = Decoder.default_config()
        config.set_string("-hmm", f"{model_dir}/en-us")
        config.set_string("-lm", f"{model_dir}/en-us.lm.bin")
        config.set_string("-dict", f"{model_dir}/cmudict-en-us.dict")
        config.set_string("-logfn", "/dev/null")
        self._decoder = Decoder(config)

    def words(self, audio: np.ndarray, sample_rate: int) -> list[tuple[str, float, float]]:
        """The recognised words with their start and end times (seconds)."""
        self.transcribe(audio, sample_rate)
        out = []
        for seg in self._decoder.seg():
            word = re.sub(r"\(\d+\)$", "", seg.word)
            if word.startswith(("<", "[")):
                continue
            out.append((word, seg.start_frame / 100.0, (seg.end_frame + 1) / 100.0))
        return out

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        x = resample(np.asarray(audio, dtype=np.float64), sample_rate, 16000)
        pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, False, True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def align_times(reference: list[str], recognised: list[tuple[str, float, float]]) -> tuple[list[float], float]:
    """A start time for each reference word, from an edit-distance alignment with the recognised
    words (words the recogniser missed get times interpolated from their neighbours), and the share
    of reference words the recogniser got exactly."""
    ref = [" ".join(words(w)) for w in reference]
    hyp = [w for w, _, _ in recognised]
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    times: list[float | None] = [None] * n
    matched = 0
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            times[i - 1] = recognised[j - 1][1]
            matched += ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    known = [k for k, t in enumerate(times) if t is not None]
    if not known:
        return [0.0] * n, 0.0
    filled = np.interp(np.arange(n), known, [times[k] for k in known])
    return [float(t) for t in filled], matched / max(n, 1)


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


class WhisperRecognizer:
    """faster-whisper, in any language it knows; the model is a size ("small") or a local folder."""

    name = "whisper"

    def __init__(self, model: str = "small", language: str | None = None) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(model, device="auto", compute_type="default")
        code = (language or "").split("-")[0].lower()
        self._language = code if code and code != "auto" else None

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        segments, _ = self._model.transcribe(resample(np.asarray(audio, dtype=np.float32), sample_rate, 16000).astype(np.float32), language=self._language, beam_size=5)
        return " ".join(s.text.strip() for s in segments).strip()


_lock = threading.Lock()
_pocketsphinx: Recognizer | None = None


def for_language(language: str | None):
    """The best recogniser installed for the language, or None: Whisper when importable, else
    pocketsphinx for English (TIMBRE_WHISPER_MODEL picks Whisper's model, default small)."""
    global _pocketsphinx
    if importlib.util.find_spec("faster_whisper") is not None:
        return WhisperRecognizer(os.environ.get("TIMBRE_WHISPER_MODEL", "small"), language)
    if (language or "en").split("-")[0].lower() not in ("en", "english", "auto"):
        return None
    with _lock:
        if _pocketsphinx is None:
            try:
                _pocketsphinx = Recognizer()
            except (ImportError, RuntimeError):
                return None
        return _pocketsphinx
