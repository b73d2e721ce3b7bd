"""The provenance mark: a keyed pattern of ±α dB on short-time spectral magnitudes, embedded chunk by chunk.

Each 1024-sample frame (at 24 kHz; 42.7 ms, hop 21.3 ms) is windowed with a square-root Hann window,
its magnitudes between 305 and 3469 Hz are raised or lowered in keyed cells (0.3 dB for the frame's
loudest bins, up to 2.5 dB for bins far below them), and the frames are overlap-added with the same
window, which rebuilds an untouched frame exactly. Which cells go up and which go down repeats every `PERIOD` frames:

- half the cells (the *sync* cells) carry a fixed keyed sign: they answer "made by this Timbre";
- the rest carry the payload's coded bits, each bit spread over a dozen keyed cells per period.

Phase is kept and the change is proportional to the signal, so silence stays silent and the mark
sits under the voice. Frames below -70 dBFS are left alone and those up to -50 dBFS get less.

A `Marker` keeps the overlap-add tail and the absolute frame number between chunks, so a stream
marked chunk by chunk equals the whole clip marked at once; it holds back at most one frame.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import code

#: The grid is defined at 24 kHz; other rates scale the hop so bins keep their frequencies.
REFERENCE_RATE = 24000
REFERENCE_HOP = 512
#: Bins 13..148 of a 1024-point frame at 24 kHz: 305 to 3469 Hz, inside telephone bandwidth.
FIRST_BIN = 13
BINS = 136
#: Frames per repetition of the pattern (0.68 s at 24 kHz); a detector searches these shifts.
PERIOD = 32
#: How far a cell moves, in dB: the frame's loudest bins least (they are most of the energy, so of
#: the mark's audibility and SNR), bins well below them most (masked by them, and they count as much
#: for detection).
LOUD_DB = 0.3
SOFT_DB = 2.5
#: Bins within LOUD_BELOW dB of the frame's loudest move by LOUD_DB, those SOFT_BELOW dB or more below by SOFT_DB.
LOUD_BELOW = 10.0
SOFT_BELOW = 30.0
#: Frame levels (dBFS, RMS) below which the mark fades out, and above which it is at full strength.
QUIET_DBFS = -70.0
FULL_DBFS = -50.0

KEY_BYTES = 32


class KeyError_(ValueError):
    """The key file is missing, unreadable or not a key."""


@dataclass(frozen=True)
class Key:
    """An install's secret: whoever holds it can detect, attribute, and remove the mark."""

    secret: bytes = field(repr=False)  # never in a log line or a traceback's locals

    @staticmethod
    def load(path: str | os.PathLike[str]) -> "Key":
        try:
            text = Path(path).read_text(encoding="ascii").strip()
            secret = bytes.fromhex(text)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise KeyError_(f"cannot read the provenance key {path}: {e}") from e
        if len(secret) != KEY_BYTES:
            raise KeyError_(f"the provenance key {path} holds {len(secret)} bytes, not {KEY_BYTES}")
        return Key(secret)

    @staticmethod
    def load_or_create(path: str | os.PathLike[str]) -> "Key":
        """The key at path, created (mode 0600, never overwritten) when there is none."""
        p = Path(path)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return Key.load(p)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(os.urandom(KEY_BYTES).hex() + "\n")
        return Key.load(p)

    def derive(self, purpose: str) -> bytes:
        """A keyed hash for one purpose (the server derives each clip's payload tag the same way, in C#)."""
        return hmac.new(self.secret, purpose.encode("utf-8"), hashlib.sha256).digest()

    def pattern(self) -> "Pattern":
        return Pattern.from_key(self)


@dataclass(frozen=True)
class Pattern:
    """Which cells of a period go up or down, and which carry sync or which payload bit."""

    sign: np.ndarray  # (PERIOD, BINS) of ±1
    role: np.ndarray  # (PERIOD, BINS): -1 for sync, else the coded bit's index

    @staticmethod
    def from_key(key: Key) -> "Pattern":
        seed = int.from_bytes(key.derive("timbre provenance pattern v1"), "big")
        rng = np.random.Generator(np.random.PCG64(seed))
        sign = rng.choice(np.array([-1.0, 1.0]), size=(PERIOD, BINS))
        cells = rng.permutation(PERIOD * BINS)
        role = np.full(PERIOD * BINS, -1, dtype=np.int64)
        payload = cells[PERIOD * BINS // 2 :]
        role[payload] = np.arange(len(payload)) % code.CODED_BITS
        return Pattern(sign, role.reshape(PERIOD, BINS))

    @property
    def sync(self) -> np.ndarray:
        """The sync cells' signs, zero where a cell carries payload."""
        return np.where(self.role < 0, self.sign, 0.0)

    def directions(self, coded: np.ndarray) -> np.ndarray:
        """Up (+1) or down (-1) for every (frame of the period, bin), for a payload's coded bits (0/1)."""
        bit = np.where(self.role < 0, 1.0, 2.0 * coded[np.maximum(self.role, 0)] - 1.0)
        return self.sign * bit


def hop_for(sample_rate: int) -> int:
    hop = round(REFERENCE_HOP * sample_rate / REFERENCE_RATE)
    if hop < 64 or BINS + FIRST_BIN >= hop:
        raise ValueError(f"the provenance mark needs at least 8 kHz audio, got {sample_rate} Hz")
    return hop


def window(n: int) -> np.ndarray:
    """Periodic square-root Hann: analysis times synthesis sums to one at half overlap."""
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n))


def strength_db(power: np.ndarray) -> np.ndarray:
    """Per (frame, bin) of the band, how many dB the mark moves it, from the bin's level against the frame's loudest."""
    below = 10.0 * np.log10(power.max(axis=1, keepdims=True) + 1e-30) - 10.0 * np.log10(power + 1e-30)
    t = np.clip((below - LOUD_BELOW) / (SOFT_BELOW - LOUD_BELOW), 0.0, 1.0)
    return LOUD_DB + (SOFT_DB - LOUD_DB) * t


def level_weight(frames: np.ndarray) -> np.ndarray:
    """Per frame, how much of the mark's strength it gets, from its RMS level."""
    rms = np.sqrt(np.mean(np.square(frames), axis=1))
    dbfs = 20.0 * np.log10(np.maximum(rms, 1e-12))
    return np.clip((dbfs - QUIET_DBFS) / (FULL_DBFS - QUIET_DBFS), 0.0, 1.0)


class Marker:
    """Marks one stream, chunk by chunk. `push` returns what is final; `finish` returns the rest."""

    def __init__(self, key: Key | Pattern, tag: int, sample_rate: int) -> None:
        self._pattern = key if isinstance(key, Pattern) else key.pattern()
        self._directions = self._pattern.directions(code.encode(tag))
        self._hop = hop_for(sample_rate)
        self._n = 2 * self._hop
        self._window = window(self._n)
        # Frame f starts at input sample (f - 1) * hop: frame 0 is half zeros, so sample 0 has two frames.
        self._pending = np.zeros(self._hop, dtype=np.float64)
        self._tail = np.zeros(self._hop, dtype=np.float64)
        self._frame = 0
        self._skip = self._hop  # the output's first hop belongs to the zeros before sample 0
        self._received = 0
        self._sent = 0
        self._finished = False

    @property
    def delay(self) -> int:
        """Samples received but not yet returned."""
        return self._received - self._sent

    def push(self, chunk: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("this stream's mark is finished")
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        self._received += len(x)
        self._pending = np.concatenate([self._pending, x])
        return self._emit(self._run())

    def finish(self) -> np.ndarray:
        """The held-back end: pads with silence to complete the last frames, returns exactly what is owed."""
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        self._finished = True
        owed = self._received - self._sent
        self._pending = np.concatenate([self._pending, np.zeros(self._n, dtype=np.float64)])
        out = self._run()
        return self._emit(out)[:owed]

    def _run(self) -> np.ndarray:
        hop, n = self._hop, self._n
        count = (len(self._pending) - n) // hop + 1 if len(self._pending) >= n else 0
        if count <= 0:
            return np.zeros(0, dtype=np.float64)
        idx = np.arange(count)[:, None] * hop + np.arange(n)[None, :]
        frames = self._pending[idx] * self._window
        spectrum = np.fft.rfft(frames, axis=1)
        rows = (self._frame + np.arange(count)) % PERIOD
        band = spectrum[:, FIRST_BIN : FIRST_BIN + BINS]
        db = self._directions[rows] * strength_db(np.square(np.abs(band))) * level_weight(frames)[:, None]
        band *= np.power(10.0, db / 20.0)
        y = np.fft.irfft(spectrum, n=n, axis=1) * self._window
        out = np.empty(count * hop, dtype=np.float64)
        tail = self._tail
        for i in range(count):
            out[i * hop : (i + 1) * hop] = tail + y[i, :hop]
            tail = y[i, hop:]
        self._tail = tail.copy()
        self._frame += count
        self._pending = self._pending[count * hop :]
        return out

    def _emit(self, out: np.ndarray) -> np.ndarray:
        if self._skip:
            cut = min(self._skip, len(out))
            out = out[cut:]
            self._skip -= cut
        owed = self._received - self._sent
        out = out[:owed]
        self._sent += len(out)
        return out.astype(np.float32)


def embed(x: np.ndarray, sample_rate: int, key: Key | Pattern, tag: int) -> np.ndarray:
    """A whole clip, marked: what a stream of it would carry (pushed a second at a time, which keeps
    the working arrays small: fresh large arrays cost more in page faults than the marking itself)."""
    m = Marker(key, tag, sample_rate)
    parts = [m.push(x[i : i + sample_rate]) for i in range(0, len(x), sample_rate)]
    return np.concatenate([*parts, m.finish()])
