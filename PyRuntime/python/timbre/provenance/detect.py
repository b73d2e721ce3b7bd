"""Finding the provenance mark in audio that may have been cut, re-encoded, filtered or mixed.

The detector does not know where the clip began, so it searches: eight sub-frame offsets (an eighth
of a hop apart) times the pattern's `PERIOD` frame shifts. For each offset it takes the
log-magnitudes of the marked band, normalises every frame (a gain change or a filter's tilt cancels),
and folds the frames onto one period, so a clip of any length becomes one (PERIOD, BINS) table.
Removing each row's and column's mean cancels steady tones and hum, and subtracting from every cell
the mean of its four neighbours removes most of the voice (which changes smoothly from cell to cell)
and little of the mark (whose neighbours have independent signs).

The sync cells' correlation with that table, divided by its own spread, is a z-score: about N(0, 1)
on unmarked audio at every hypothesis, growing with the square root of the marked duration.
Windows of `WINDOW_S` seconds are scored the same way, so a marked stretch spliced into other audio
is found and located. The payload is read at the best hypothesis (over the whole clip, or the best
window when that scores higher) and decoded with its error correction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import resample_poly

from . import code
from .mark import BINS, FIRST_BIN, PERIOD, REFERENCE_HOP, REFERENCE_RATE, Key, Pattern, window

#: The decision threshold on the z-score. Unmarked audio stays far below it (README, Provenance mark).
THRESHOLD = 6.0
OFFSETS = 8
WINDOW_S = 4.0
WINDOW_STEP_S = 1.0
#: Frames quieter than this far below the loudest frame carry no usable mark.
FLOOR_DB = 50.0
#: Frames analysed at once: small blocks keep the arrays in memory the allocator already has.
BLOCK = 256


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Detection:
    detected: bool
    score: float
    tag: int | None
    payload_valid: bool
    seconds: float
    windows: list[Window] = field(default_factory=list)


def to_reference_rate(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float64 at the mark's 24 kHz."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate == REFERENCE_RATE:
        return x
    g = np.gcd(sample_rate, REFERENCE_RATE)
    return resample_poly(x, REFERENCE_RATE // g, sample_rate // g)


def _features(x: np.ndarray, offset: int) -> np.ndarray:
    """Per frame, the band's normalised log-power; rows too quiet to carry a mark are zero."""
    hop, n = REFERENCE_HOP, 2 * REFERENCE_HOP
    count = (len(x) - offset - n) // hop + 1
    if count <= 0:
        return np.zeros((0, BINS))
    frames = np.lib.stride_tricks.sliding_window_view(x[offset:], n)[::hop][:count]
    w = window(n)
    log = np.empty((count, BINS))
    level = np.empty(count)
    for start in range(0, count, BLOCK):
        block = np.fft.rfft(frames[start : start + BLOCK] * w, axis=1)[:, FIRST_BIN : FIRST_BIN + BINS]
        power = np.square(block.real) + np.square(block.imag)
        level[start : start + BLOCK] = 10.0 * np.log10(np.maximum(power.mean(axis=1), 1e-30))
        log[start : start + BLOCK] = 10.0 * np.log10(power + 1e-20)
    log -= log.mean(axis=1, keepdims=True)
    log /= np.maximum(log.std(axis=1, keepdims=True), 1e-9)
    np.clip(log, -3.0, 3.0, out=log)
    log[(level < level.max() - FLOOR_DB) | (level < -150.0)] = 0.0
    return log


def _fold(features: np.ndarray) -> np.ndarray:
    """Frames summed by their place in the period, centred and whitened (see the module's note)."""
    rows = len(features)
    padded = np.zeros((-(-rows // PERIOD) * PERIOD, BINS))
    padded[:rows] = features
    c = padded.reshape(-1, PERIOD, BINS).sum(axis=0)
    c -= c.mean(axis=0, keepdims=True)
    c -= c.mean(axis=1, keepdims=True)
    # The period wraps in time (row 0 follows the last row); the band's edges do not wrap.
    lower = np.concatenate([c[:, :1], c[:, :-1]], axis=1)
    upper = np.concatenate([c[:, 1:], c[:, -1:]], axis=1)
    return c - (np.roll(c, 1, axis=0) + np.roll(c, -1, axis=0) + lower + upper) / 4.0


def _circular(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For every shift d: sum over r, k of a[(r + d) % PERIOD, k] * b[r, k]."""
    m = a @ b.T  # m[i, j] = sum_k a[i, k] b[j, k]
    r = np.arange(PERIOD)
    return np.array([m[(r + d) % PERIOD, r].sum() for d in range(PERIOD)])


def _scores(folded: np.ndarray, sync: np.ndarray) -> np.ndarray:
    """The z-score of every frame shift d, for audio frame t being pattern row (t + d) % PERIOD."""
    spread = np.sqrt(_circular(np.abs(sync), np.square(folded)))
    return _circular(sync, folded) / np.maximum(spread, 1e-12)


def _payload(folded: np.ndarray, pattern: Pattern, shift: int) -> tuple[int, bool]:
    aligned = np.roll(folded, shift, axis=0)  # aligned[j] is pattern row j
    carriers = pattern.role >= 0
    role = pattern.role[carriers]
    soft = np.bincount(role, weights=(pattern.sign * aligned)[carriers], minlength=code.CODED_BITS)
    scale = np.sqrt(np.bincount(role, weights=np.square(aligned[carriers]), minlength=code.CODED_BITS))
    return code.decode(soft / np.maximum(scale, 1e-12))


def detect(x: np.ndarray, sample_rate: int, key: Key | Pattern) -> Detection:
    """Whether x carries this key's mark, how strongly, where, and the payload it carries."""
    pattern = key if isinstance(key, Pattern) else key.pattern()
    audio = to_reference_rate(x, sample_rate)
    seconds = len(audio) / REFERENCE_RATE
    sync = np.where(pattern.role < 0, pattern.sign, 0.0)
    span = int(WINDOW_S * REFERENCE_RATE / REFERENCE_HOP)
    step = int(WINDOW_STEP_S * REFERENCE_RATE / REFERENCE_HOP)
    best = (-np.inf, 0, 0, 0, 0)  # score, offset, shift, first frame, last frame
    per_window: dict[int, float] = {}
    for o in range(OFFSETS):
        offset = o * REFERENCE_HOP // OFFSETS
        features = _features(audio, offset)
        count = len(features)
        if count == 0:
            continue
        parts = [(0, count)]
        if count > span:
            parts += [(s, s + span) for s in range(0, count - span + step, step)]
        for first, last in parts:
            scores = _scores(_fold(features[first:last]), sync)
            d = int(np.argmax(scores))
            if (first, last) != (0, count):
                per_window[first] = max(per_window.get(first, -np.inf), float(scores[d]))
            if scores[d] > best[0]:
                best = (float(scores[d]), offset, d, first, last)
    score, offset, shift, first, last = best
    if not np.isfinite(score):
        return Detection(False, 0.0, None, False, seconds)
    tag, valid = _payload(_fold(_features(audio, offset)[first:last]), pattern, shift)
    hop_s = REFERENCE_HOP / REFERENCE_RATE
    windows = [
        Window(round(s * hop_s, 3), round(min(seconds, (s + span + 1) * hop_s), 3), round(z, 2))
        for s, z in sorted(per_window.items())
    ]
    detected = score >= THRESHOLD
    return Detection(detected, round(score, 2), tag if detected and valid else None, detected and valid, seconds, windows)
