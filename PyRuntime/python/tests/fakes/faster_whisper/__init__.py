"""Fake faster-whisper: WhisperModel(...).transcribe(audio) → (segments, info), as the package returns."""
from collections import namedtuple

import numpy as np

import fakelog

Segment = namedtuple("Segment", "start end text")
Info = namedtuple("Info", "language language_probability duration")


class WhisperModel:
    def __init__(self, model_size_or_path, device="auto", compute_type="default", **kwargs):
        fakelog.record("WhisperModel", model=model_size_or_path, device=device, compute_type=compute_type)

    def transcribe(self, audio, language=None, beam_size=5, **kwargs):
        if not isinstance(audio, (str, np.ndarray)):
            raise TypeError("audio must be a path or a float32 array at 16 kHz")
        seconds = len(audio) / 16000
        fakelog.record("whisper.transcribe", samples=len(audio), dtype=str(audio.dtype), language=language)
        segments = iter([Segment(0.0, seconds / 2, " Hallo zusammen,"), Segment(seconds / 2, seconds, " wie geht es?")])
        return segments, Info(language or "de", 0.99, seconds)
