"""Joining speech generated piece by piece, and generating the next piece while this one plays.

Neural engines generate each sentence (or clause) on its own. Butted together, the pieces click
(a jump in the waveform), carry their own leading and trailing silence, and leave no natural pause.
`Joiner` trims each piece's silent edges, crossfades pieces of one sentence into each other, and
puts a pause between sentences with short fades so no edge starts or stops abruptly.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np

from ..text import Fragment

T = TypeVar("T")

#: A pause at or below this joins two pieces by crossfade rather than by silence.
CROSSFADE_BELOW_S = 0.08


def frame_energy(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS of each 10 ms frame."""
    frame = max(1, sample_rate // 100)
    n = len(x) // frame
    return np.sqrt(np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1))


def speech_bounds(
    x: np.ndarray, sample_rate: int, threshold_db: float = -40.0, keep_s: float = 0.03, peak: float | None = None
) -> tuple[int, int]:
    """[start, end) of the audio louder than threshold_db below the peak, with a margin. The peak is
    the piece's own unless given (a chunk judged against its whole sentence)."""
    frame = max(1, sample_rate // 100)
    energy = frame_energy(x, sample_rate)
    if len(energy) == 0:
        return 0, len(x)
    peak = max(float(energy.max()), peak or 0.0)
    if peak <= 0:
        return 0, 0
    loud = np.nonzero(energy >= peak * 10 ** (threshold_db / 20))[0]
    if len(loud) == 0:
        return 0, 0
    keep = int(keep_s * sample_rate)
    return max(0, int(loud[0]) * frame - keep), min(len(x), (int(loud[-1]) + 1) * frame + keep)


def trim_silence(x: np.ndarray, sample_rate: int, threshold_db: float = -40.0, keep_s: float = 0.03) -> np.ndarray:
    """Drop leading and trailing audio quieter than threshold_db below the piece's peak."""
    start, end = speech_bounds(x, sample_rate, threshold_db, keep_s)
    return x[start:end]


def _ramp(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-in and fade-out curves: the pieces are uncorrelated, so their power adds."""
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.sin(0.5 * np.pi * t).astype(np.float32), np.cos(0.5 * np.pi * t).astype(np.float32)


class Joiner:
    """Feeds pieces in order; returns what may be played now, holding back only a crossfade's worth."""

    def __init__(self, sample_rate: int, crossfade_s: float = 0.025, edge_fade_s: float = 0.005) -> None:
        self.sample_rate = sample_rate
        self._crossfade = max(1, int(crossfade_s * sample_rate))
        self._edge = max(1, int(edge_fade_s * sample_rate))
        self._held: np.ndarray | None = None  # the end of the last piece, waiting for the next one
        self._started = False

    def add(self, piece: np.ndarray, pause_after: float, last: bool = False) -> np.ndarray:
        """The audio that may be played now. The last piece comes out whole, faded out, with no pause after it."""
        piece = trim_silence(np.asarray(piece, dtype=np.float32), self.sample_rate)
        if len(piece) == 0:
            return np.zeros(0, dtype=np.float32)
        piece = piece.copy()
        if not self._started:
            fade_in, _ = _ramp(min(self._edge, len(piece)))
            piece[: len(fade_in)] *= fade_in
            self._started = True
        if self._held is not None:
            n = min(len(self._held), len(piece))
            fade_in, fade_out = _ramp(n)
            mixed = self._held[-n:] * fade_out + piece[:n] * fade_in
            piece = np.concatenate([self._held[:-n], mixed, piece[n:]])
            self._held = None
        if last:
            return self._fade_out(piece)
        if pause_after <= CROSSFADE_BELOW_S:
            keep = min(self._crossfade, len(piece))
            self._held = piece[-keep:]
            return piece[:-keep]
        return np.concatenate([self._fade_out(piece), np.zeros(int(pause_after * self.sample_rate), dtype=np.float32)])

    def finish(self) -> np.ndarray:
        """What is still held, faded out; the stream's last audio."""
        held, self._held = self._held, None
        return self._fade_out(held) if held is not None else np.zeros(0, dtype=np.float32)

    def _fade_out(self, piece: np.ndarray) -> np.ndarray:
        piece = piece.copy()
        _, fade_out = _ramp(min(self._edge, len(piece)))
        piece[len(piece) - len(fade_out) :] *= fade_out
        return piece


def pipelined(
    parts: Sequence[Fragment], generate: Callable[[Fragment], T], worker: ThreadPoolExecutor
) -> Iterator[tuple[Fragment, T]]:
    """generate(part) for each part in order on the worker; the next part starts as soon as the
    current one is handed to the caller, so it is generated while the current one is sent and played.
    Leaving early cancels the part not yet started."""
    if not parts:
        return
    pending: Future[T] = worker.submit(generate, parts[0])
    try:
        for i, part in enumerate(parts):
            result = pending.result()
            if i + 1 < len(parts):
                pending = worker.submit(generate, parts[i + 1])
            yield part, result
    finally:
        pending.cancel()
