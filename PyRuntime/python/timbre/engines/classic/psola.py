"""Pitch modification by TD-PSOLA with pitch marks placed from a YIN track."""
from __future__ import annotations

import numpy as np

from .analysis import FRAME_HOP_S, frame_offset_samples, yin_pitch


def _fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    voiced = np.flatnonzero(f0 > 0)
    if len(voiced) == 0:
        return f0
    return np.interp(np.arange(len(f0)), voiced, f0[voiced])


def _f0_at(times: np.ndarray, f0: np.ndarray, sr: int) -> np.ndarray:
    """Frame F0 sampled at sample positions (nearest frame)."""
    frames = np.round((times - frame_offset_samples(sr)) / (FRAME_HOP_S * sr)).astype(int)
    return f0[np.clip(frames, 0, len(f0) - 1)]


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
    while t < n:
        f = _f0_at(np.array([t]), f0, sr)[0] if len(f0) else 0.0
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
    tau = float(marks[0])
    j = 0
    while tau < len(x):
        # Nearest analysis mark to this synthesis instant (time scale is 1:1).
        while j + 1 < len(marks) and abs(marks[j + 1] - tau) <= abs(marks[j] - tau):
            j += 1
        m = marks[j]
        left, right = int(prev_spacing[j]), int(spacing[j])
        left, right = min(left, pad), min(right, pad)
        seg = xp[pad + m - left : pad + m + right]
        win = np.concatenate([np.hanning(2 * left + 1)[:left], np.hanning(2 * right + 1)[right:-1]])
        start = int(round(tau)) - left
        if start >= 0 and start + len(seg) <= len(out):
            out[start : start + len(seg)] += seg * win
            wsum[start : start + len(seg)] += win
        if is_voiced[j]:
            step = sr / max(_f0_at(np.array([tau]), target, sr)[0], 40.0)
        else:
            step = float(spacing[j])
        tau += max(step, 1.0)
    # Overlap grows when pitch rises; dividing by the summed windows keeps the level, and
    # never amplifies the gaps that appear when pitch falls.
    out = out / np.maximum(wsum, 1.0)
    return out[: len(x)].astype(np.float32)
