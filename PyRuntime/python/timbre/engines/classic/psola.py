"""Pitch modification by TD-PSOLA with pitch marks placed from a YIN track."""
from __future__ import annotations

import numpy as np

from .analysis import FRAME_HOP_S, frame_offset_samples, yin_pitch


def _fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    voiced = np.flatnonzero(f0 > 0)
    if len(voiced) == 0:
        return f0
    return np.interp(np.arange(len(f0)), voiced, f0[voiced])


class _Track:
    """Frame F0 looked up at a sample position with plain arithmetic: called once per pitch mark."""

    def __init__(self, f0: np.ndarray, sr: int) -> None:
        self._values = f0.tolist()
        self._last = len(self._values) - 1
        self._offset = frame_offset_samples(sr)
        self._hop = FRAME_HOP_S * sr

    def at(self, t: float) -> float:
        if self._last < 0:
            return 0.0
        i = int(round((t - self._offset) / self._hop))
        return self._values[0 if i < 0 else self._last if i > self._last else i]


_WINDOWS: dict[int, np.ndarray] = {}


def _half_windows(left: int, right: int) -> np.ndarray:
    """Rising half-Hann of length left joined to a falling one of length right (cached: few sizes recur)."""
    key = left * 100_000 + right
    w = _WINDOWS.get(key)
    if w is None:
        w = np.concatenate([np.hanning(2 * left + 1)[:left], np.hanning(2 * right + 1)[right:-1]])
        if len(_WINDOWS) < 20_000:
            _WINDOWS[key] = w
    return w


def analysis_marks(x: np.ndarray, sr: int, f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pitch marks (sample positions) and whether each lies in voiced speech.

    Voiced marks sit one local period apart, each snapped to the nearest waveform peak so that
    successive segments are in phase; unvoiced stretches get marks every 5 ms.
    """
    marks: list[int] = []
    voiced: list[bool] = []
    t = 0
    n = len(x)
    unvoiced_step = int(0.005 * sr)
    track = _Track(f0, sr)
    while t < n:
        f = track.at(t)
        if f > 0:
            period = int(sr / f)
            lo, hi = max(0, t - period // 4), min(n, t + period // 4 + 1)
            if marks and voiced[-1]:
                t = lo + int(np.argmax(x[lo:hi])) if hi > lo else t
            marks.append(t)
            voiced.append(True)
            t += period
        else:
            marks.append(t)
            voiced.append(False)
            t += unvoiced_step
    return np.asarray(marks), np.asarray(voiced)


def shift_pitch(x: np.ndarray, sr: int, target_median_hz: float, range_factor: float) -> np.ndarray:
    """Return x with its F0 contour mapped to target * (f0 / median) ** range_factor.

    Duration is kept. The target contour follows the source's intonation, scaled in log F0.
    """
    f0 = yin_pitch(x, sr)
    voiced = f0[f0 > 0]
    if len(voiced) < 3:
        return x.astype(np.float32)
    median = float(np.median(voiced))
    smooth = _fill_unvoiced(f0)
    target = target_median_hz * (smooth / median) ** range_factor

    marks, is_voiced = analysis_marks(x, sr, f0)
    if len(marks) < 2:
        return x.astype(np.float32)
    spacing = np.diff(marks, append=marks[-1] + (marks[-1] - marks[-2]))
    spacing = np.maximum(spacing, 1)
    prev_spacing = np.diff(marks, prepend=marks[0] - spacing[0])
    prev_spacing = np.maximum(prev_spacing, 1)

    out = np.zeros(len(x) + 2 * sr // 50 + 1, dtype=np.float64)
    wsum = np.zeros_like(out)
    xp = np.pad(np.asarray(x, dtype=np.float64), (sr // 25, sr // 25))
    pad = sr // 25
    target_track = _Track(target, sr)
    mark_list, voiced_list = marks.tolist(), is_voiced.tolist()
    spacing_list, prev_list = spacing.tolist(), prev_spacing.tolist()
    n_marks, length, n_out = len(mark_list), len(x), len(out)
    tau = float(mark_list[0])
    j = 0
    while tau < length:
        # Nearest analysis mark to this synthesis instant (time scale is 1:1).
        while j + 1 < n_marks and abs(mark_list[j + 1] - tau) <= abs(mark_list[j] - tau):
            j += 1
        m = mark_list[j]
        left, right = min(int(prev_list[j]), pad), min(int(spacing_list[j]), pad)
        start = int(round(tau)) - left
        if start >= 0 and start + left + right <= n_out:
            win = _half_windows(left, right)
            out[start : start + left + right] += xp[pad + m - left : pad + m + right] * win
            wsum[start : start + left + right] += win
        step = sr / max(target_track.at(tau), 40.0) if voiced_list[j] else float(spacing_list[j])
        tau += max(step, 1.0)
    # Overlap grows when pitch rises; dividing by the summed windows keeps the level, and
    # never amplifies the gaps that appear when pitch falls.
    out = out / np.maximum(wsum, 1.0)
    return out[: len(x)].astype(np.float32)
