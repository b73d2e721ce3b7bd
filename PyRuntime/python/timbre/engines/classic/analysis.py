"""Speaker analysis for the classic engine: pitch (YIN), long-term spectral envelope, speaking rate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, signal

FRAME_HOP_S = 0.01


def yin_pitch(
    x: np.ndarray,
    sr: int,
    fmin: float = 60.0,
    fmax: float = 500.0,
    frame_s: float = 0.03,
    threshold: float = 0.15,
) -> np.ndarray:
    """F0 per 10 ms hop by YIN (de Cheveigné & Kawahara 2002); 0 where unvoiced or silent.

    Frame i is centred on sample i*hop + frame/2 + tau_max/2.
    """
    x = np.asarray(x, dtype=np.float64)
    w = int(frame_s * sr)
    hop = int(FRAME_HOP_S * sr)
    tmin, tmax = int(sr / fmax), int(np.ceil(sr / fmin))
    span = w + tmax
    if len(x) < span:
        return np.zeros(0)
    nf = 1 + (len(x) - span) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, span)[::hop][:nf]
    # Cross-correlation of the first window with every lag, by FFT. The window is w samples and the
    # lags reach tmax, so no product wraps round a circular correlation of span samples or more: the
    # transform need not be twice as long, only of a length that factors well.
    nfft = fft.next_fast_len(span, real=True)
    acf = np.fft.irfft(
        np.fft.rfft(frames, nfft) * np.conj(np.fft.rfft(frames[:, :w], nfft)), nfft
    )[:, : tmax + 1]
    # Energy of the w samples from every position, from one running sum over the signal, read for
    # each frame's lags through a strided view instead of summed again per frame.
    running = np.concatenate([[0.0], np.cumsum(x * x)])
    windowed = np.lib.stride_tricks.sliding_window_view(running[w:] - running[:-w], tmax + 1)[::hop][:nf]
    e0 = windowed[:, 0]
    lags = np.arange(tmax + 1)
    diff = e0[:, None] + windowed - 2.0 * acf
    diff[:, 0] = 0.0
    # Cumulative mean normalised difference.
    cm = np.ones_like(diff)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cm[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)

    region = cm[:, tmin:]
    below = region < threshold
    has = below.any(axis=1)
    first = np.argmax(below, axis=1) + tmin
    # Walk each first dip down to its local minimum: the first lag from there whose next lag is not
    # lower (or the last lag).
    stop = np.ones_like(cm, dtype=bool)
    stop[:, :-1] = ~(cm[:, 1:] < cm[:, :-1])
    stop &= lags >= first[:, None]
    tau = np.argmax(stop, axis=1)
    # Parabolic interpolation around the minimum.
    idx = np.arange(nf)
    left = cm[idx, np.maximum(tau - 1, 0)]
    mid = cm[idx, tau]
    right = cm[idx, np.minimum(tau + 1, tmax)]
    den = left - 2 * mid + right
    frac = np.where(np.abs(den) > 1e-12, 0.5 * (left - right) / np.where(den == 0, 1, den), 0.0)
    period = tau + np.clip(frac, -1, 1)
    silent = e0 / w < 1e-7 * max(1.0, float(np.max(x**2)) if len(x) else 1.0)
    f0 = np.where(has & ~silent & (period > 0), sr / np.maximum(period, 1e-9), 0.0)
    return _remove_octave_spikes(f0)


def _remove_octave_spikes(f0: np.ndarray) -> np.ndarray:
    """Drop isolated voiced frames and octave jumps that a median of neighbours contradicts."""
    out = f0.copy()
    voiced = out > 0
    if voiced.sum() < 3:
        return out
    med = signal.medfilt(np.where(voiced, out, 0.0), 5)
    bad = voiced & (med > 0) & ((out > 1.7 * med) | (out < 0.6 * med))
    out[bad] = 0.0
    # Isolated single voiced frames are usually errors.
    iso = voiced & ~np.roll(voiced, 1) & ~np.roll(voiced, -1)
    out[iso] = 0.0
    return out


def frame_offset_samples(sr: int, fmin: float = 60.0, frame_s: float = 0.03) -> float:
    """Where frame 0 of yin_pitch is centred, in samples."""
    return (int(frame_s * sr) + int(np.ceil(sr / fmin))) / 2.0


@dataclass(frozen=True)
class PitchStats:
    median_hz: float
    log2_std: float
    voiced_ratio: float


def pitch_stats(f0: np.ndarray) -> PitchStats:
    voiced = f0[f0 > 0]
    if len(voiced) < 5:
        raise ValueError("no voiced speech found: the sample needs at least a second of clear speech")
    logs = np.log2(voiced)
    lo, hi = np.percentile(logs, [5, 95])
    core = logs[(logs >= lo) & (logs <= hi)]
    return PitchStats(float(2 ** np.median(logs)), float(np.std(core)), float(len(voiced) / len(f0)))


ENVELOPE_BINS = 256
ENVELOPE_MAX_HZ = 8000.0


def spectral_envelope(x: np.ndarray, sr: int, f0: np.ndarray | None = None) -> np.ndarray:
    """Long-term average spectrum in dB on a fixed 0–8 kHz grid, cepstrally smoothed.

    Only frames with speech energy count, so pauses do not pull the envelope towards noise.
    """
    x = np.asarray(x, dtype=np.float64)
    n = int(0.032 * sr)
    hop = n // 2
    if len(x) < n:
        raise ValueError("audio too short to analyse")
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    e = power.sum(axis=1)
    active = e > 0.05 * np.percentile(e, 95)
    ltas = power[active].mean(axis=0) + 1e-12
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    grid = np.linspace(0, ENVELOPE_MAX_HZ, ENVELOPE_BINS)
    db = 10 * np.log10(np.interp(grid, freqs, ltas, right=ltas[-1]))
    # Cepstral smoothing: keep the slow variation (formant regions and tilt), drop harmonics.
    cep = np.fft.irfft(np.concatenate([db, db[-2:0:-1]]))
    keep = 24
    cep[keep:-keep] = 0
    return np.fft.rfft(cep).real[:ENVELOPE_BINS]


def envelope_distance(a: np.ndarray, b: np.ndarray, lo_hz: float = 100.0, hi_hz: float = 7500.0) -> float:
    """RMS dB difference of two envelopes over the speech band, ignoring overall level."""
    grid = np.linspace(0, ENVELOPE_MAX_HZ, ENVELOPE_BINS)
    band = (grid >= lo_hz) & (grid <= hi_hz)
    d = a[band] - b[band]
    d = d - d.mean()
    return float(np.sqrt(np.mean(d**2)))


def warp_envelope(env: np.ndarray, factor: float) -> np.ndarray:
    """The envelope of the same voice with every frequency multiplied by factor."""
    grid = np.linspace(0, ENVELOPE_MAX_HZ, ENVELOPE_BINS)
    return np.interp(grid / factor, grid, env)


def _detilt(env: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    grid = np.linspace(0, ENVELOPE_MAX_HZ, ENVELOPE_BINS)
    band = (grid >= lo_hz) & (grid <= hi_hz)
    fit = np.polyfit(np.log(grid[band]), env[band], 1)
    return env - np.polyval(fit, np.log(np.maximum(grid, 1.0)))


def formant_scale(reference: np.ndarray, base: np.ndarray) -> float:
    """The frequency scale that best maps the base voice's formant pattern onto the reference's.

    Spectral tilt is removed first: it differs between recordings far more than vocal tract
    length does, and would otherwise decide the match.
    """
    lo, hi = 250.0, 4500.0
    ref = _detilt(reference, lo, hi)
    candidates = np.exp(np.linspace(np.log(0.85), np.log(1.22), 40))
    costs = [envelope_distance(ref, _detilt(warp_envelope(base, c), lo, hi), lo, hi) for c in candidates]
    return float(candidates[int(np.argmin(costs))])


def speaking_rate(x: np.ndarray, sr: int) -> float:
    """Syllable nuclei a second of active speech, from peaks of the band-limited energy envelope."""
    x = np.asarray(x, dtype=np.float64)
    sos = signal.butter(4, [300, 2500], btype="band", fs=sr, output="sos")
    band = signal.sosfiltfilt(sos, x)
    hop = int(0.01 * sr)
    n = len(band) // hop
    if n < 20:
        raise ValueError("audio too short to estimate a speaking rate")
    env = np.sqrt((band[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    env = signal.savgol_filter(env, 9, 2)
    env_db = 20 * np.log10(np.maximum(env, 1e-9))
    top = np.percentile(env_db, 95)
    active = env_db > top - 30
    peaks, _ = signal.find_peaks(env_db, prominence=4.0, distance=8, height=top - 22)
    active_s = max(active.sum() * 0.01, 0.3)
    return float(len(peaks) / active_s)
