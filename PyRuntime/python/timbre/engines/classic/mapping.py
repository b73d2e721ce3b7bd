"""Frame-level spectral mapping: what a fine-tuned classic voice adds to flite.

The classic pre-neural voice conversion (Stylianou et al. 1998; Kain & Macon 1998; Toda et al.
2007, here without delta features and MLPG): parallel speech — the same sentences spoken by flite
and by the speaker — is aligned frame by frame with DTW, a Gaussian mixture is fitted on the
joint cepstral vectors [flite; speaker], and at synthesis each flite frame's cepstrum is replaced
by its minimum-mean-square-error estimate of the speaker's. The difference between the two
cepstral envelopes becomes a time-varying filter on flite's STFT, so flite's excitation and
timing stay and only the envelope moves: what a speaker's vocal tract shapes (formants, tilt,
nasality) changes frame by frame and phone by phone, which one long-term EQ cannot do.

Cepstra here are the DCT of 40 log mel band energies (MFCC-like), c0 (energy) left alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from ...audio import resample

RATE = 16000
N_FFT = 512  # 32 ms: resolves formants, smooths a low voice's harmonics in the mel bands
HOP = 160  # 10 ms for analysis and alignment
SYNTH_HOP = 128  # 75 % overlap for the filter, so gains change smoothly
N_MELS = 40
N_CEPS = 24  # c1..c24 are mapped
MAX_GAIN_DB = 18.0


@lru_cache(maxsize=1)
def _mel_bank() -> tuple[np.ndarray, np.ndarray]:
    """Triangular mel filters (N_MELS × bins) and each band's centre as a fractional FFT bin."""
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(60.0), mel(7800.0), N_MELS + 2))
    bins = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    bank = np.zeros((N_MELS, len(bins)))
    for k in range(N_MELS):
        lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
        rise = (bins - lo) / (mid - lo)
        fall = (hi - bins) / (hi - mid)
        bank[k] = np.maximum(0.0, np.minimum(rise, fall))
    return bank, edges[1:-1] * N_FFT / RATE


@lru_cache(maxsize=1)
def _dct() -> np.ndarray:
    """Orthonormal DCT-II (N_MELS × N_MELS): log mel energies → cepstra, and its transpose back."""
    n = np.arange(N_MELS)
    d = np.cos(np.pi / N_MELS * (n[None, :] + 0.5) * n[:, None]) * np.sqrt(2.0 / N_MELS)
    d[0] /= np.sqrt(2.0)
    return d


def _stft(x: np.ndarray, hop: int) -> np.ndarray:
    """Frames × bins, Hann window, frames centred on multiples of hop."""
    _, _, z = signal.stft(np.asarray(x, dtype=np.float64), RATE, window="hann", nperseg=N_FFT, noverlap=N_FFT - hop)
    return z.T


def _cepstra(power: np.ndarray) -> np.ndarray:
    bank, _ = _mel_bank()
    return np.log(power @ bank.T + 1e-10) @ _dct().T[:, : N_CEPS + 1]


def features(x: np.ndarray, hop: int = HOP) -> np.ndarray:
    """Cepstra c0..c24 of each frame of 16 kHz audio (frames × 25)."""
    return _cepstra(np.abs(_stft(x, hop)) ** 2)


def speech_mask(cep: np.ndarray) -> np.ndarray:
    """Frames loud enough to be speech: within 35 dB of the loud frames and clear of the floor."""
    level = cep[:, 0]
    loud, floor = np.percentile(level, 95), np.percentile(level, 10)
    # c0 is a scaled natural-log energy: sqrt(N_MELS) · mean log power; 1 dB = ln(10)/10 per band.
    per_db = np.sqrt(N_MELS) * np.log(10) / 10
    return (level > loud - 35 * per_db) & (level > floor + 6 * per_db)


def trimmed(cep: np.ndarray) -> slice:
    """The frames from the first speech frame to the last."""
    found = np.flatnonzero(speech_mask(cep))
    return slice(int(found[0]), int(found[-1]) + 1) if len(found) else slice(0, len(cep))


def dtw(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Align two feature sequences; the pairs of frame indices on the path and its mean frame cost.

    Steps (1,1), (1,2) and (2,1) only, so the local tempo ratio stays within 1/2–2 and each row
    depends on the two before it: the recursion runs a row at a time in numpy. None when the
    lengths differ by more than that.
    """
    n, m = len(a), len(b)
    if n < 2 or m < 2 or m > 2 * n or n > 2 * m:
        return None
    # Cepstral mean normalisation: two speakers' channels and tilts differ; their phones align.
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    cost = np.sqrt(np.maximum(np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T, 0.0))
    inf = np.inf
    acc = np.full((n, m), inf)
    step = np.zeros((n, m), dtype=np.int8)
    acc[0, 0] = cost[0, 0]
    for i in range(1, n):
        diag = np.full(m, inf)
        diag[1:] = acc[i - 1, :-1]
        wide = np.full(m, inf)  # from (i-1, j-2)
        wide[2:] = acc[i - 1, :-2]
        tall = np.full(m, inf)  # from (i-2, j-1)
        if i >= 2:
            tall[1:] = acc[i - 2, :-1]
        options = np.stack([diag, wide, tall])
        choice = np.argmin(options, axis=0)
        acc[i] = cost[i] + options[choice, np.arange(m)]
        step[i] = choice
    if not np.isfinite(acc[-1, -1]):
        return None
    ia, ib = [n - 1], [m - 1]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:
        s = step[i, j]
        i, j = (i - 1, j - 1) if s == 0 else (i - 1, j - 2) if s == 1 else (i - 2, j - 1)
        ia.append(i)
        ib.append(j)
    ia_arr, ib_arr = np.array(ia[::-1]), np.array(ib[::-1])
    return ia_arr, ib_arr, float(cost[ia_arr, ib_arr].mean())


# The orthonormal DCT of log *power* over N_MELS bands is 2·sqrt(2·N_MELS) times the cepstrum of
# log amplitude that mel-cepstral distortion is defined on.
_TO_CEPSTRUM = 1.0 / (2.0 * np.sqrt(2.0 * N_MELS))


def distortion_db(a: np.ndarray, b: np.ndarray) -> float:
    """Mel-cepstral distortion (dB) of paired frames, c1..c24: the usual voice-conversion measure
    (10/ln10 · sqrt(2 Σ Δc²)), so figures compare with the literature's 4–8 dB."""
    diff = (a[:, 1 : N_CEPS + 1] - b[:, 1 : N_CEPS + 1]) * _TO_CEPSTRUM
    return float(np.mean(10.0 / np.log(10) * np.sqrt(2.0 * np.sum(diff * diff, axis=1))))


def speech_cepstra(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Audio at any rate as 16 kHz audio and the cepstra of its speech, silences at the ends trimmed."""
    x16 = resample(np.asarray(x, dtype=np.float64), rate, RATE)
    cep = features(x16)
    return x16, cep[trimmed(cep)]


def aligned_distortion(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mel-cepstral distortion (dB) of two utterances' cepstra after DTW; None when their lengths are
    more than 2x apart and cannot be aligned."""
    path = dtw(a[:, 1:], b[:, 1:])
    return None if path is None else distortion_db(a[path[0]], b[path[1]])


@dataclass
class SpectralMap:
    """A joint-density GMM over [source; target] cepstra (c1..c24), used for MMSE conversion."""

    weights: np.ndarray  # (M,)
    means: np.ndarray  # (M, 2D)
    covariances: np.ndarray  # (M, 2D, 2D)

    def __post_init__(self) -> None:
        d = N_CEPS
        self._mu_x = self.means[:, :d]
        self._mu_y = self.means[:, d:]
        cov_xx = self.covariances[:, :d, :d]
        cov_yx = self.covariances[:, d:, :d]
        # The regression of target on source within each component, and the source marginal.
        self._gain = np.einsum("myx,mxz->myz", cov_yx, np.linalg.inv(cov_xx))
        chol = np.linalg.cholesky(cov_xx)
        self._chol_inv = np.linalg.inv(chol)
        self._log_norm = np.log(self.weights) - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1) - 0.5 * d * np.log(2 * np.pi)

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """p(component | source frame), frames × M."""
        centred = x[:, None, :] - self._mu_x[None, :, :]
        z = np.einsum("mij,tmj->tmi", self._chol_inv, centred)
        log_p = self._log_norm[None, :] - 0.5 * np.sum(z * z, axis=2)
        log_p -= log_p.max(axis=1, keepdims=True)
        p = np.exp(log_p)
        return p / p.sum(axis=1, keepdims=True)

    def convert(self, x: np.ndarray) -> np.ndarray:
        """E[target | source] for each frame of c1..c24."""
        post = self.posteriors(x)
        centred = x[:, None, :] - self._mu_x[None, :, :]
        predicted = self._mu_y[None, :, :] + np.einsum("myx,tmx->tmy", self._gain, centred)
        return np.einsum("tm,tmy->ty", post, predicted)

    def save(self, path: str) -> None:
        tmp = path + ".tmp.npz"
        np.savez(tmp, weights=self.weights, means=self.means, covariances=self.covariances)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "SpectralMap":
        with np.load(path) as z:
            return cls(z["weights"], z["means"], z["covariances"])


def apply(x: np.ndarray, mapping: SpectralMap, strength: float = 1.0) -> np.ndarray:
    """16 kHz audio with each frame's envelope moved from its own towards the mapped one; strength
    scales the move (in dB), 0 leaving the audio as it was."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < N_FFT:
        return x.astype(np.float32)
    z = _stft(x, SYNTH_HOP)
    cep = _cepstra(np.abs(z) ** 2)
    delta = mapping.convert(cep[:, 1:]) - cep[:, 1:]
    # Frame-by-frame estimates jitter: the change (not the frames) is averaged over three frames
    # (~24 ms), so the filter moves smoothly and flite's own fast transitions — bursts, onsets — stay.
    delta = signal.lfilter(np.ones(3) / 3, [1.0], np.pad(delta, ((1, 1), (0, 0)), mode="edge"), axis=0)[2:]
    # The mixture knows speech frames only: closures and pauses keep their own spectrum, with a
    # 10 dB ramp so the filter fades in and out with the speech.
    per_db = np.sqrt(N_MELS) * np.log(10) / 10
    level = cep[:, 0]
    weight = np.clip((level - (np.percentile(level, 95) - 40 * per_db)) / (10 * per_db), 0.0, 1.0)
    log_gain = (delta * (weight * strength)[:, None]) @ _dct()[1 : N_CEPS + 1]  # natural-log power gain per mel band
    _, centres = _mel_bank()
    bins = np.arange(z.shape[1])
    gain = np.stack([np.interp(bins, centres, row) for row in log_gain])
    limit = MAX_GAIN_DB * np.log(10) / 10
    z = z * np.exp(0.5 * np.clip(gain, -limit, limit))
    _, y = signal.istft(z.T, RATE, window="hann", nperseg=N_FFT, noverlap=N_FFT - SYNTH_HOP)
    return y[: len(x)].astype(np.float32)
