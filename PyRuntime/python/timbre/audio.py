"""Small audio helpers shared by the engines, enrolment and speech recognition."""
from __future__ import annotations

import math
import subprocess

import numpy as np
import soundfile as sf
from scipy import signal


def read_mono(path: str) -> tuple[np.ndarray, int]:
    """A sound file as float32 mono (channels averaged) and its sample rate."""
    data, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), sample_rate


def resample(x: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Exact rational resampling between two integer rates; the input is returned when they agree."""
    if source_rate == target_rate:
        return x
    g = math.gcd(target_rate, source_rate)
    return signal.resample_poly(x, target_rate // g, source_rate // g)


def fade(x: np.ndarray, sample_rate: int, seconds: float, head: bool = True, tail: bool = True) -> np.ndarray:
    """A copy with linear fades of `seconds` at the chosen ends, so no edge starts or stops with a click."""
    n = min(len(x) // 2 if head and tail else len(x), int(seconds * sample_rate))
    x = x.copy()
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        if head:
            x[:n] *= ramp
        if tail:
            x[-n:] *= ramp[::-1]
    return x


def synthesise_reference(command: list[str], text: str, path: str, sample_rate: int = 24000) -> str:
    """A voice made by another synthesiser, to clone in tests and evaluations: `command` is espeak-ng
    or flite with its options; the result is mono WAV at sample_rate in `path` (returned).

    sox resamples without dither (-D): with dither it adds fresh noise on every run, and figures
    measured on the voice moved from run to run (WER by 2.5 points on a speaker) with the same code.
    """
    raw = path + ".raw.wav"
    if command[0] == "flite":
        subprocess.run([*command, "-o", raw, "-t", text], check=True)
    else:
        subprocess.run([*command, "-w", raw, text], check=True)
    subprocess.run(["sox", raw, "-D", "-r", str(sample_rate), "-c", "1", path], check=True)
    return path
