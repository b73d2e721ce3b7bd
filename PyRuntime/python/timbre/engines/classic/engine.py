"""The classic engine: flite speech reshaped towards the reference speaker. CPU only.

This is signal processing, not neural cloning: it matches the reference's median pitch and
pitch range (PSOLA on a YIN track), speaking rate (flite's duration model), an estimated vocal
tract scale (resampling) and the long-term spectral envelope (a linear-phase EQ).

A fine-tuned version (finetune/trainers/classic.py; a sample with role "model" naming its folder)
replaces the vocal tract scale and most of the EQ with a frame-level spectral mapping learnt from
the speaker's parallel speech (mapping.py), and its prosody figures come from an hour of speech
rather than a few seconds.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Future
from fractions import Fraction
from typing import Iterator, Sequence

import numpy as np
from scipy import signal

from ... import cache
from ...audio import read_mono
from ...text import fragments
from .. import versions
from ..protocol import EngineInputError, EngineUnavailableError, SpeechRequest, VoiceSample, by_role
from ..seams import Joiner
from . import analysis, mapping
from .deadline import DeadlineWorker
from .flite import SAMPLE_RATE as FLITE_RATE
from .flite import Flite, FliteUnavailableError
from .psola import shift_pitch

VERSION = "1"
OUTPUT_RATE = 24000
# Harvard sentences (list 2) used to measure how the base voice comes out of the pipeline;
# the evaluation uses other lists, so calibration never sees the test text.
CALIBRATION = (
    "The boy was there when the sun rose. A rod is used to catch pink salmon. "
    "The source of the huge river is the clear spring. Kick the ball straight and follow through."
)
PAUSE_S = 0.22
TARGET_RMS = 0.08
EQ_LIMIT_DB = 12.0
EQ_TAPS = 255


def _resample(x: np.ndarray, ratio: float) -> np.ndarray:
    """Resample so that len(out) ≈ len(x) * ratio (a rational approximation of ratio)."""
    frac = Fraction(ratio).limit_denominator(60)
    if frac == 1:
        return x
    return signal.resample_poly(x, frac.numerator, frac.denominator).astype(np.float32)


class ClassicEngine:
    name = "classic"
    sample_rate = OUTPUT_RATE

    def __init__(self, voice: str = "rms") -> None:
        self._voice_name = voice
        self._flite: Flite | None = None
        # flite runs in C with the GIL released, so the next fragment's synthesis overlaps this
        # fragment's signal processing (and other streams' work) on another core. One worker: flite
        # keeps settings on its shared voice, so its calls are serialised anyway; the most urgent
        # fragment of all streams goes first (deadline.py).
        self._synth: DeadlineWorker | None = None
        self._base: dict[str, float] | None = None
        self._base_envelope: np.ndarray | None = None
        # Fine-tuned versions by folder, with the modification time of their manifest.
        self._versions: dict[str, tuple[float, dict[str, object]]] = {}
        # Zero-shot profiles and their EQ filters by the identity of the sample files (path, size,
        # modification time): a request stats its samples instead of hashing them and parsing the
        # cached profile again, which cost most of a millisecond before every first chunk.
        self._profiles: dict[tuple[object, ...], tuple[dict[str, object], np.ndarray]] = {}

    # -- registry -----------------------------------------------------------------------
    @classmethod
    def describe(cls, options: dict[str, object]) -> dict[str, object]:
        try:
            Flite.check()
            status: dict[str, object] = {"available": True, "reason": None}
        except FliteUnavailableError as e:
            status = {"available": False, "reason": str(e)}
        return {
            "name": "classic",
            "title": "Classic (flite reshaped towards the voice; CPU)",
            "gpu": False,
            "model": f"flite cmu_us_{options.get('voice') or 'rms'}",
            "mode": "base",
            "languages": ["en"],
            "capabilities": ["clone"],
            "speakers": [],
            "license": "flite: BSD-style (CMU)",
            **status,
        }

    # -- protocol -----------------------------------------------------------------------
    def load(self) -> None:
        if self._flite is not None:
            return
        try:
            self._flite = Flite(self._voice_name)
        except FliteUnavailableError as e:
            raise EngineUnavailableError(str(e)) from e
        self._synth = DeadlineWorker("flite")
        x = self._flite.synthesize(CALIBRATION)
        stats = analysis.pitch_stats(analysis.yin_pitch(x, FLITE_RATE))
        self._base = {
            "median_hz": stats.median_hz,
            "log2_std": stats.log2_std,
            "rate": analysis.speaking_rate(x, FLITE_RATE),
        }
        self._base_envelope = analysis.spectral_envelope(x, FLITE_RATE)

    def languages(self) -> list[str]:
        return ["en"]

    def prepare_voice(self, voice_dir: str, samples: Sequence[VoiceSample]) -> dict[str, object]:
        return self._voice(voice_dir, samples)[0]

    def _voice(self, voice_dir: str, samples: Sequence[VoiceSample]) -> tuple[dict[str, object], np.ndarray]:
        """What a request speaks with, and its EQ taps: the voice's fine-tuned version, else its zero-shot profile."""
        self.load()
        version = self._version(samples)
        if version is not None:
            return version, np.asarray(version["eq_taps"], dtype=np.float64)
        return self._profile(voice_dir, samples)

    def _profile(self, voice_dir: str, samples: Sequence[VoiceSample]) -> tuple[dict[str, object], np.ndarray]:
        """The zero-shot profile and its EQ taps: from memory, else from the disk cache, else analysed."""
        samples = by_role(samples, "sample")
        if not samples:
            raise EngineInputError("a voice needs at least one sample", field="voice")
        try:
            identity: tuple[object, ...] | None = (voice_dir, *((s.path, s.transcript, st.st_size, st.st_mtime_ns) for s in samples for st in [os.stat(s.path)]))
        except OSError:
            identity = None  # samples_key below reports the missing file
        known = self._profiles.get(identity) if identity is not None else None
        if known is not None:
            return known
        key = cache.samples_key(self.name, VERSION, samples)
        path = cache.cache_path(voice_dir, self.name, key, ".json")
        profile = cache.read_json(path)
        if profile is None:
            profile = self._analyse(samples)
            profile["cache_key"] = key
            cache.write_json_atomic(path, profile)
            profile["cached"] = False
        else:
            profile["cached"] = True
        eq = np.asarray(profile["eq_taps"], dtype=np.float64)
        if identity is not None:
            if len(self._profiles) >= 256:
                self._profiles.clear()
            self._profiles[identity] = ({**profile, "cached": True}, eq)
        return profile, eq

    def stream(
        self, voice_dir: str, samples: Sequence[VoiceSample], request: SpeechRequest
    ) -> Iterator[np.ndarray]:
        language = (request.language or "en").lower()
        if language not in ("en", "en-us", "en-gb", "english", "auto"):
            raise EngineInputError(f"the classic engine speaks English only; language '{request.language}' is not supported", field="language")
        if not 0.25 <= request.speed <= 4.0:
            raise EngineInputError(f"speed must be between 0.25 and 4.0, got {request.speed}", field="speed")
        parts = fragments(request.text, sentence_pause=PAUSE_S)
        # Punctuation alone ("... ?!") is no words: flite would answer it with silence.
        if not parts or not any(c.isalnum() for c in request.text):
            raise EngineInputError("text has nothing to say: give at least one word", field="text")
        profile, eq = self._voice(voice_dir, samples)
        # flite begins and ends every fragment with about 150 ms of its own silence; the joiner trims it,
        # crossfades the opening phrase into the rest of its sentence and puts the pause between sentences.
        joiner = Joiner(OUTPUT_RATE)
        # Deadlines for flite's queue (deadline.py): the first fragment is due when the request came,
        # each later one when the listener will have heard everything before it. A fragment is queued
        # while the one before it is still being finished, so that one's length (with its pause) is
        # estimated from this stream's seconds of audio per character so far.
        runs_out = time.monotonic()
        heard_s, heard_chars = 0.0, 0
        pending: Future[np.ndarray] = self._start(parts[0].text, profile, request.speed, runs_out)
        try:
            for i, part in enumerate(parts):
                current = pending
                last = i == len(parts) - 1
                # The first fragment is finished alone: it sets the time to first audio, and
                # synthesis running beside it would contend with it for the GIL.
                if 0 < i and not last:
                    due = runs_out + len(part.text) * heard_s / heard_chars
                    pending = self._start(parts[i + 1].text, profile, request.speed, due)
                audio = joiner.add(self._finish(current.result(), profile, eq), part.pause_after / request.speed, last)
                heard_s += len(audio) / OUTPUT_RATE
                heard_chars += max(1, len(part.text))
                # A listener who ran dry starts again from now.
                runs_out = max(runs_out, time.monotonic()) + len(audio) / OUTPUT_RATE
                if i == 0 and not last:
                    pending = self._start(parts[1].text, profile, request.speed, runs_out)
                if len(audio):
                    yield audio
            tail = joiner.finish()
            if len(tail):
                yield tail
        finally:
            # A closed stream leaves no synthesis queued behind other streams.
            pending.cancel()

    # -- internals ------------------------------------------------------------------------
    def _version(self, samples: Sequence[VoiceSample]) -> dict[str, object] | None:
        """The voice's fine-tuned classic version, its model loaded once per change of its manifest;
        None when it has none or its version is another engine's (the zero-shot voice serves then)."""
        found = versions.active(samples, self.name)
        if found is None:
            return None
        folder, manifest = found
        stamp = os.stat(os.path.join(folder, versions.VERSION_FILE)).st_mtime
        cached = self._versions.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        profile: dict[str, object] = dict(manifest)
        profile["mapping"] = mapping.SpectralMap.load(os.path.join(folder, str(profile["model_file"])))
        profile["cached"] = cached is not None
        self._versions[folder] = (stamp, profile)
        return profile

    def _start(self, text: str, profile: dict[str, object], speed: float, deadline: float) -> Future[np.ndarray]:
        assert self._flite is not None and self._synth is not None
        return self._synth.submit(deadline, self._flite.synthesize, text, duration_stretch=_stretch(profile, speed))

    def _render(self, text: str, profile: dict[str, object], eq: np.ndarray | None, speed: float) -> np.ndarray:
        assert self._flite is not None
        return self._finish(self._flite.synthesize(text, duration_stretch=_stretch(profile, speed)), profile, eq)

    def _finish(self, x: np.ndarray, profile: dict[str, object], eq: np.ndarray | None) -> np.ndarray:
        return reshape(x, profile, eq)

    def _analyse(self, samples: Sequence[VoiceSample]) -> dict[str, object]:
        assert self._base is not None
        audio = []
        for s in samples:
            x, sr = read_mono(s.path)
            if sr != FLITE_RATE:
                x = _resample(x, FLITE_RATE / sr)
            audio.append(x)
        joined = np.concatenate(audio)
        try:
            stats = analysis.pitch_stats(analysis.yin_pitch(joined, FLITE_RATE))
            rate = analysis.speaking_rate(joined, FLITE_RATE)
        except ValueError as e:
            raise EngineInputError(f"the voice's samples cannot be analysed: {e}", field="voice") from e
        ref_env = analysis.spectral_envelope(joined, FLITE_RATE)
        base = self._base
        # Vocal tract length follows F0 only loosely (male/female formants differ by ~15–20 %
        # where F0 differs by ~1.8x); a cube-root-ish law within bounds keeps shifts natural.
        formant = float(np.clip((stats.median_hz / base["median_hz"]) ** 0.25, 0.9, 1.18))
        profile: dict[str, object] = {
            "engine": self.name,
            "version": VERSION,
            "reference_median_hz": stats.median_hz,
            "target_median_hz": stats.median_hz,
            "range_factor": float(np.clip(stats.log2_std / max(base["log2_std"], 1e-3), 0.5, 2.0)),
            "reference_rate": rate,
            "duration_stretch": float(np.clip(base["rate"] / max(rate, 0.5), 0.7, 1.45)),
            "formant_scale": formant,
            "eq_taps": [],
        }
        # Measure the pipeline without EQ on calibration text, then design the EQ that moves
        # its long-term envelope onto the reference's.
        processed = self._render(CALIBRATION, profile, None, 1.0)
        # PSOLA lands a little off target at large shifts; one measured correction fixes it.
        achieved = analysis.pitch_stats(analysis.yin_pitch(processed, OUTPUT_RATE)).median_hz
        profile["target_median_hz"] = stats.median_hz * float(np.clip(stats.median_hz / achieved, 0.85, 1.15))
        processed = self._render(CALIBRATION, profile, None, 1.0)
        out_env = analysis.spectral_envelope(_resample(processed, FLITE_RATE / OUTPUT_RATE), FLITE_RATE)
        profile["eq_taps"] = design_eq(ref_env, out_env).tolist()
        assert self._base_envelope is not None
        profile["envelope_distance_before_db"] = analysis.envelope_distance(ref_env, self._base_envelope)
        return profile


def reshape(x: np.ndarray, profile: dict[str, object], eq: np.ndarray | None) -> np.ndarray:
    """flite's 16 kHz output reshaped towards the voice's profile and brought to the output rate."""
    spectral = profile.get("mapping")
    if isinstance(spectral, mapping.SpectralMap):
        x = mapping.apply(x, spectral, float(profile.get("mapping_strength", 1.0)))  # type: ignore[arg-type]
    formant = float(profile["formant_scale"])  # type: ignore[arg-type]
    # Resampling by 1/formant scales every frequency by `formant` and shortens the audio by
    # the same factor; _stretch already paid that back.
    x = _resample(x, 1.0 / formant)
    x = shift_pitch(x, FLITE_RATE, float(profile["target_median_hz"]), float(profile["range_factor"]))  # type: ignore[arg-type]
    y = _resample(x, OUTPUT_RATE / FLITE_RATE)
    if eq is not None and len(eq):
        # Overlap-add: for 255 taps over seconds of audio, short transforms cost half of one over the
        # whole fragment (here 0.6 against 1.3 ms for 3.3 s of flite, 0.4 against 0.8 ms for 2.2 s).
        y = signal.oaconvolve(y, eq)[len(eq) // 2 : len(eq) // 2 + len(y)]
    return _normalise(y)


def _stretch(profile: dict[str, object], speed: float) -> float:
    # Resampling by 1/formant later shortens the audio by the formant factor; stretch pays it back.
    return float(profile["duration_stretch"]) * float(profile["formant_scale"]) / speed  # type: ignore[arg-type]


def design_eq(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Linear-phase FIR at the output rate whose gain is reference − current (dB), level-free."""
    grid = np.linspace(0, analysis.ENVELOPE_MAX_HZ, analysis.ENVELOPE_BINS)
    band = (grid >= 100) & (grid <= 7500)
    gain_db = reference - current
    gain_db -= gain_db[band].mean()
    gain_db = np.clip(gain_db, -EQ_LIMIT_DB, EQ_LIMIT_DB)
    # Outside the band hold the edge values; above 8 kHz flite has no energy to shape.
    gain_db[grid < 100] = gain_db[band][0]
    gain_db[grid > 7500] = gain_db[band][-1]
    nyq = OUTPUT_RATE / 2
    freqs = np.concatenate([grid, [nyq]]) / nyq
    gains = 10 ** (np.concatenate([gain_db, [gain_db[-1]]]) / 20)
    return signal.firwin2(EQ_TAPS, freqs, gains)


def _normalise(y: np.ndarray) -> np.ndarray:
    """Same loudness for every sentence and every voice; never clip."""
    active = np.abs(y) > 0.02 * (np.max(np.abs(y)) + 1e-9)
    rms = float(np.sqrt(np.mean(y[active] ** 2))) if active.any() else 0.0
    if rms > 0:
        y = y * (TARGET_RMS / rms)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.97:
        y = y * (0.97 / peak)
    return y.astype(np.float32)

