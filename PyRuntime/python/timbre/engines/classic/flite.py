"""In-process flite through ctypes: the base synthesiser of the classic engine.

flite's clustergen voices (Debian's libflite1) are far more intelligible to a recogniser than
espeak-ng (measured with pocketsphinx on Harvard sentences: rms 20 % WER, slt 35 %, espeak-ng
en-us 85 %), so the classic engine speaks with flite and reshapes the result.
"""
from __future__ import annotations

import ctypes
import threading
import zlib
from ctypes import POINTER, Structure, c_char_p, c_float, c_int, c_short, c_void_p

import numpy as np

SAMPLE_RATE = 16000
VOICES = ("rms", "slt", "awb", "kal16")


class _Wave(Structure):
    _fields_ = [
        ("type", c_char_p),
        ("sample_rate", c_int),
        ("num_samples", c_int),
        ("num_channels", c_int),
        ("samples", POINTER(c_short)),
    ]


class _Voice(Structure):
    # Only the leading members of cst_voice are needed: the name and the feature set.
    _fields_ = [("name", c_char_p), ("features", c_void_p), ("ffunctions", c_void_p)]


class FliteUnavailableError(RuntimeError):
    pass


def _load(name: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise FliteUnavailableError(
            f"{name} is missing: install Debian's libflite1 (ops/run does this)"
        ) from e


class Flite:
    """One loaded flite voice. flite keeps settings on the shared voice object, so calls are serialised."""

    @staticmethod
    def check(voice: str = "rms") -> None:
        """Raises FliteUnavailableError when the libraries are missing; loads no voice."""
        for name in ("libflite.so.1", "libflite_usenglish.so.1", "libflite_cmulex.so.1", f"libflite_cmu_us_{voice}.so.1"):
            _load(name)

    def __init__(self, voice: str = "rms") -> None:
        if voice not in VOICES:
            raise ValueError(f"unknown flite voice '{voice}': use one of {', '.join(VOICES)}")
        self._lib = _load("libflite.so.1")
        _load("libflite_usenglish.so.1")
        _load("libflite_cmulex.so.1")
        vlib = _load(f"libflite_cmu_us_{voice}.so.1")
        self._lib.flite_init()
        register = getattr(vlib, f"register_cmu_us_{voice}")
        register.restype = POINTER(_Voice)
        register.argtypes = [c_char_p]
        self._voice = register(None)
        self._lib.flite_text_to_wave.restype = POINTER(_Wave)
        self._lib.flite_text_to_wave.argtypes = [c_char_p, POINTER(_Voice)]
        self._lib.delete_wave.argtypes = [POINTER(_Wave)]
        self._lib.feat_set_float.argtypes = [c_void_p, c_char_p, c_float]
        # flite's clustergen excitation draws from libc's rand(); seeding it per utterance makes the
        # same text come out as the same audio, whatever was synthesised before.
        self._libc = ctypes.CDLL(None)
        self._libc.srand.argtypes = [ctypes.c_uint]
        self._lock = threading.Lock()
        self.name = voice

    def synthesize(self, text: str, duration_stretch: float = 1.0) -> np.ndarray:
        """float32 mono samples at 16 kHz."""
        data = text.encode("utf-8", errors="replace")
        with self._lock:
            self._libc.srand(zlib.crc32(data))
            self._lib.feat_set_float(self._voice.contents.features, b"duration_stretch", duration_stretch)
            wave = self._lib.flite_text_to_wave(data, self._voice)
            if not wave:
                raise RuntimeError("flite produced no audio")
            try:
                w = wave.contents
                if w.sample_rate != SAMPLE_RATE:
                    raise RuntimeError(f"flite voice {self.name} runs at {w.sample_rate} Hz, expected {SAMPLE_RATE}")
                pcm = np.ctypeslib.as_array(w.samples, shape=(w.num_samples * w.num_channels,)).copy()
            finally:
                self._lib.delete_wave(wave)
        return pcm.astype(np.float32) / 32768.0
