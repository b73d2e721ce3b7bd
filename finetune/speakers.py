"""Speakers made by other synthesisers than the classic base voice, reading generated sentences.

The fine-tuning tests and ops/eval-finetune need hours-long-looking data without recordings of
real people (none can be shipped or downloaded here): espeak-ng voices and flite voices other than
the base one, each reading sentences from a small grammar that covers English's phones.
"""
from __future__ import annotations

import os
import random
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from timbre.audio import read_mono, resample

SPEAKERS: dict[str, list[str]] = {
    "espeak-female": ["espeak-ng", "-v", "en-us+f3", "-s", "160"],
    "espeak-male-gb": ["espeak-ng", "-v", "en-gb", "-p", "35", "-s", "140"],
    "flite-awb": ["flite", "-voice", "awb"],
    "flite-slt": ["flite", "-voice", "slt"],
}

_SUBJECTS = ("the old farmer", "a young girl", "my brother", "the tired doctor", "our teacher", "the quiet child",
             "a clever fox", "the ship's captain", "her uncle", "the busy baker", "a small dog", "the judge",
             "the new neighbour", "a gentle nurse", "the French chef", "his cousin", "the village priest")
_VERBS = ("painted", "carried", "found", "washed", "sold", "dropped", "watched", "fixed", "buried", "chased",
          "opened", "counted", "borrowed", "measured", "pushed", "tasted", "hid", "bought", "threw", "described")
_OBJECTS = ("a heavy box", "the yellow kite", "three green apples", "the broken chair", "an ugly vase",
            "the bright lantern", "a leather boot", "six wooden spoons", "the thick rope", "a purple scarf",
            "the shiny coin", "two fresh loaves", "the cracked mirror", "a jar of honey", "the empty bucket")
_PLACES = ("near the river", "behind the church", "under the bridge", "in the garden", "at the market",
           "beside the fire", "on the hill", "through the window", "across the valley", "inside the barn",
           "along the beach", "before dawn", "after the storm", "during the match", "without a word")
_CLAUSES = ("because it was cold", "while the kettle boiled", "although nobody asked", "when the bell rang",
            "so that everyone could see", "until the rain stopped", "as the crowd cheered")


def sentences(count: int, seed: int = 0) -> list[str]:
    """count sentences from the grammar, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_PLACES)}"
        if rng.random() < 0.35:
            s += f", {rng.choice(_CLAUSES)}"
        out.append(s[0].upper() + s[1:] + rng.choice(".....?!"))
    return out


def say(speaker: str, text: str, rate: int = 24000) -> np.ndarray:
    """One utterance by a speaker, mono float32 at rate."""
    cmd = SPEAKERS[speaker]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.wav")
        if cmd[0] == "flite":
            subprocess.run([*cmd, "-o", path, "-t", text], check=True, capture_output=True)
        else:
            subprocess.run([*cmd, "-w", path, text], check=True, capture_output=True)
        x, sr = read_mono(path)
    return resample(x, sr, rate).astype(np.float32)


def recording(speaker: str, texts: list[str], path: str, rate: int = 24000, seed: int = 0,
              transcript: bool = True) -> list[tuple[float, float, str]]:
    """A long recording of the texts read one after another with natural pauses, its transcript
    written beside it (same name, .txt) unless told not to; returns where each text was said
    (start and end in seconds), for tests of alignment."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.4 * rate), dtype=np.float32)]
    spans: list[tuple[float, float, str]] = []
    position = len(parts[0])
    for text in texts:
        spoken = say(speaker, text, rate)
        pause = np.zeros(int(rng.uniform(0.45, 0.9) * rate), dtype=np.float32)
        spans.append((position / rate, (position + len(spoken)) / rate, text))
        parts += [spoken, pause]
        position += len(spoken) + len(pause)
    audio = np.concatenate(parts)
    # A little room noise, so the activity detector meets a floor as in a real recording.
    audio += (rng.standard_normal(len(audio)) * 3e-4).astype(np.float32)
    sf.write(path, audio, rate, subtype="PCM_16")
    if transcript:
        with open(os.path.splitext(path)[0] + ".txt", "w", encoding="utf-8") as f:
            f.write(" ".join(texts) + "\n")
    return spans
