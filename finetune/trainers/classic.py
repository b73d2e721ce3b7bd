"""The classic trainer: a frame-level spectral mapping from flite to the speaker, and their prosody.

Runs here, on one CPU core. From the dataset's training clips:

1. align — each clip's text is synthesised by the base flite voice and aligned frame by frame to
   the speaker's clip by DTW on cepstra (timbre.engines.classic.mapping); the speech frames on the
   path are the parallel data. Cached in the run folder, so a resumed run skips it.
2. prosody — the speaker's median F0 and F0 spread and their pace against flite's (the ratio of
   speech time on the same text), from all the clips rather than enrolment's few seconds.
3. train — a joint-density Gaussian mixture on [flite; speaker] cepstra by EM (scikit-learn), one
   EM iteration an "epoch"; a checkpoint after each, so a run resumes where it stopped. The eval
   loss is the mel-cepstral distortion of converted eval frames to the speaker's; the best
   iteration is kept.
4. finish — a residual EQ (what the mixture's smoothing leaves of the long-term envelope) and the
   pitch target corrected as the zero-shot voice does, then version.json + model.npz.

The output folder is a voice version: the classic engine reads it as a sample with role "model".
"""
from __future__ import annotations

import json
import os
import pickle
import time
import warnings
from typing import Any

import numpy as np

from timbre.audio import read_mono, resample
from timbre.engines.classic import analysis, mapping
from timbre.engines.classic.engine import CALIBRATION, OUTPUT_RATE, VERSION, design_eq, reshape
from timbre.engines.classic.flite import SAMPLE_RATE as FLITE_RATE
from timbre.engines.classic.flite import Flite

from ..progress import Progress
from .common import TrainingError, finish, read_metadata, settings

MODEL_FILE = "model.npz"
DEFAULTS: dict[str, Any] = {"components": 0, "max_iterations": 40, "tolerance": 1e-3, "base_voice": "rms", "seed": 0, "strength": None}
MIN_MINUTES = 2.0
#: Mapping strengths tried, strongest first, and how many WER points above the unmapped voice are allowed.
STRENGTHS = (1.0, 0.75, 0.5, 0.3, 0.15)
MAX_WER_RISE = 3.0
STRENGTH_SENTENCES = 10


def _clip_features(flite: Flite, dataset: str, clip: str, text: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Paired cepstra (flite, speaker) of one clip's speech frames and the speaker's pace against flite's."""
    y, sr = read_mono(os.path.join(dataset, "wavs", clip + ".wav"))
    _, fx = mapping.speech_cepstra(flite.synthesize(text), FLITE_RATE)
    _, fy = mapping.speech_cepstra(y, sr)
    path = mapping.dtw(fx[:, 1:], fy[:, 1:])
    if path is None:
        return None
    ia, ib, _ = path
    keep = mapping.speech_mask(fx)[ia] & mapping.speech_mask(fy)[ib]
    return fx[ia][keep], fy[ib][keep], len(fy) / len(fx)


def _align(flite: Flite, dataset: str, work: str, progress: Progress) -> dict[str, np.ndarray]:
    cached = os.path.join(work, "pairs.npz")
    if os.path.exists(cached):
        with np.load(cached) as z:
            return dict(z)
    train = read_metadata(os.path.join(dataset, "metadata_train.csv"))
    held = read_metadata(os.path.join(dataset, "metadata_eval.csv"))
    minutes = sum(len(read_mono(os.path.join(dataset, "wavs", c + ".wav"))[0]) for c, _ in train) / 24000 / 60
    if minutes < MIN_MINUTES:
        raise TrainingError(f"the dataset has {minutes:.1f} min of training speech; the classic trainer needs at least {MIN_MINUTES:.0f} min")
    out: dict[str, list[np.ndarray]] = {"train_x": [], "train_y": [], "eval_x": [], "eval_y": []}
    ratios: list[float] = []
    skipped = 0
    rows = [("train", c, t) for c, t in train] + [("eval", c, t) for c, t in held]
    started = time.monotonic()
    for i, (split, clip, text) in enumerate(rows):
        pair = _clip_features(flite, dataset, clip, text)
        if pair is None:
            skipped += 1
        else:
            out[f"{split}_x"].append(pair[0])
            out[f"{split}_y"].append(pair[1])
            if split == "train":
                ratios.append(pair[2])
        if i % 10 == 0 or i == len(rows) - 1:
            done = (i + 1) / len(rows)
            progress.emit(stage="align", step=i + 1, steps=len(rows), fraction=done,
                          eta_s=round((time.monotonic() - started) * (1 - done) / done, 1))
    if skipped:
        progress.warn(f"{skipped} clips could not be aligned with flite's reading of their text (pace more than 2x apart) and were left out")
    if not out["train_x"]:
        raise TrainingError("no clip could be aligned with its text; check that the transcripts match the recordings")
    empty = np.zeros((0, mapping.N_CEPS + 1))
    arrays = {k: np.concatenate(v) if v else empty for k, v in out.items()}
    arrays["pace"] = np.array(ratios)
    tmp = cached + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, cached)
    return arrays


def _prosody(flite: Flite, dataset: str, pace: np.ndarray) -> dict[str, float]:
    """The speaker's pitch figures and pace, from up to a minute of the training clips."""
    rows = read_metadata(os.path.join(dataset, "metadata_train.csv"))
    step = max(1, len(rows) // 20)
    speaker, base = [], []
    for clip, text in rows[::step][:20]:
        y, sr = read_mono(os.path.join(dataset, "wavs", clip + ".wav"))
        speaker.append(resample(y, sr, FLITE_RATE))
        base.append(flite.synthesize(text))
    target = analysis.pitch_stats(analysis.yin_pitch(np.concatenate(speaker), FLITE_RATE))
    source = analysis.pitch_stats(analysis.yin_pitch(np.concatenate(base), FLITE_RATE))
    return {
        "reference_median_hz": target.median_hz,
        "target_median_hz": target.median_hz,
        "range_factor": float(np.clip(target.log2_std / max(source.log2_std, 1e-3), 0.5, 2.0)),
        "duration_stretch": float(np.clip(np.median(pace), 0.6, 1.6)),
        "formant_scale": 1.0,
    }


def _mixture(components: int, seed: int) -> Any:
    from sklearn.mixture import GaussianMixture  # Debian: python3-sklearn

    # One EM iteration a fit() call, continuing from the last (warm_start): progress, checkpoints and
    # a resume point after each.
    return GaussianMixture(components, covariance_type="full", reg_covar=1e-3, max_iter=1, warm_start=True, random_state=seed)


def _spectral_map(gmm: Any) -> mapping.SpectralMap:
    return mapping.SpectralMap(np.asarray(gmm.weights_), np.asarray(gmm.means_), np.asarray(gmm.covariances_))


def _eval_loss(gmm: Any, pairs: dict[str, np.ndarray]) -> float:
    x, y = (pairs["eval_x"], pairs["eval_y"]) if len(pairs["eval_x"]) else (pairs["train_x"][-2000:], pairs["train_y"][-2000:])
    converted = x.copy()
    converted[:, 1:] = _spectral_map(gmm).convert(x[:, 1:])
    return mapping.distortion_db(converted, y)


def _fit(pairs: dict[str, np.ndarray], work: str, options: dict[str, Any], progress: Progress) -> tuple[Any, dict[str, Any]]:
    joint = np.hstack([pairs["train_x"][:, 1:], pairs["train_y"][:, 1:]])
    components = int(options["components"]) or int(np.clip(len(joint) // 1500, 4, 32))
    state_path, model_path = os.path.join(work, "state.json"), os.path.join(work, "gmm.pkl")
    state: dict[str, Any] = {"iteration": 0, "history": [], "best": None, "components": components}
    gmm = _mixture(components, int(options["seed"]))
    if os.path.exists(state_path) and os.path.exists(model_path):
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        with open(model_path, "rb") as f:
            gmm = pickle.load(f)
        progress.emit(stage="train", message=f"resumed after iteration {state['iteration']}", epoch=state["iteration"])
    baseline = mapping.distortion_db(pairs["eval_x"], pairs["eval_y"]) if len(pairs["eval_x"]) else None
    state.setdefault("untrained_eval_loss", baseline)
    limit = int(options["max_iterations"])
    started, first = time.monotonic(), state["iteration"]
    while state["iteration"] < limit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one iteration per call always "did not converge"
            gmm.fit(joint)
        state["iteration"] += 1
        loss = -float(gmm.lower_bound_)
        eval_loss = _eval_loss(gmm, pairs)
        state["history"].append({"iteration": state["iteration"], "loss": loss, "eval_loss": eval_loss})
        if state["best"] is None or eval_loss < state["best"]["eval_loss"]:
            state["best"] = {"iteration": state["iteration"], "eval_loss": eval_loss}
            _spectral_map(gmm).save(os.path.join(work, "best.npz"))
        # Checkpoint: the mixture, then the state naming it, each replaced whole.
        with open(model_path + ".tmp", "wb") as f:
            pickle.dump(gmm, f)
        os.replace(model_path + ".tmp", model_path)
        with open(state_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(state_path + ".tmp", state_path)
        per = (time.monotonic() - started) / (state["iteration"] - first)
        progress.emit(stage="train", epoch=state["iteration"], epochs=limit, step=state["iteration"], steps=limit,
                      loss=round(loss, 4), eval_loss=round(eval_loss, 3), fraction=state["iteration"] / limit,
                      eta_s=round(per * (limit - state["iteration"]), 1))
        history = state["history"]
        if len(history) >= 3 and abs(history[-2]["loss"] - history[-1]["loss"]) < float(options["tolerance"]) \
                and abs(history[-3]["loss"] - history[-2]["loss"]) < float(options["tolerance"]):
            break
    return gmm, state


def _strength(flite: Flite, dataset: str, profile: dict[str, Any], options: dict[str, Any],
              progress: Progress) -> tuple[float, list[dict[str, float]]]:
    """How far to move flite's envelope: the strongest mapping whose words a recogniser still gets.

    A mapping all the way to the speaker copies whatever makes them hard to recognise along with
    their timbre (measured on an espeak-ng voice: full strength took the WER of flite's words from
    20 % to 40–50 %). Each strength is tried on held-out sentences; the strongest whose WER stays
    within MAX_WER_RISE points of the unmapped voice wins, else the one that loses the fewest words.
    Each try recognises every sentence (about 15 s of CPU for ten), so the search has five points.
    Without a recogniser: STRENGTHS' middle.
    """
    from timbre import asr

    fixed = options.get("strength")
    if fixed is not None:
        return float(fixed), []
    recogniser = asr.for_language("en")
    rows = read_metadata(os.path.join(dataset, "metadata_eval.csv"))[:STRENGTH_SENTENCES] or \
        read_metadata(os.path.join(dataset, "metadata_train.csv"))[-STRENGTH_SENTENCES:]
    if recogniser is None or not rows:
        return STRENGTHS[len(STRENGTHS) // 2], []
    base = [flite.synthesize(text, duration_stretch=profile["duration_stretch"]) for _, text in rows]
    eq = np.asarray(profile["eq_taps"])
    tried: list[dict[str, float]] = []
    for k, strength in enumerate((0.0, *STRENGTHS)):
        errors = words = 0
        for x, (_, text) in zip(base, rows):
            y = reshape(x, {**profile, "mapping_strength": strength}, eq)
            e, n = asr.word_errors(text, recogniser.transcribe(y, OUTPUT_RATE))
            errors, words = errors + e, words + n
        tried.append({"strength": strength, "wer_pct": round(100.0 * errors / max(words, 1), 1)})
        progress.emit(stage="strength", step=k + 1, steps=len(STRENGTHS) + 1, fraction=(k + 1) / (len(STRENGTHS) + 1),
                      message=f"mapping strength {strength}: WER {tried[-1]['wer_pct']} %")
    floor = tried[0]["wer_pct"]
    fine = [t["strength"] for t in tried[1:] if t["wer_pct"] <= floor + MAX_WER_RISE]
    if fine:
        return max(fine), tried
    # None keeps the words: the least harmful mapping, the pitch and pace still the speaker's.
    return min(tried[1:], key=lambda t: (t["wer_pct"], -t["strength"]))["strength"], tried


def train(dataset: str, out: str, options: dict[str, Any] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Trains a classic version of the speaker in `dataset` into the folder `out` (resuming a run
    that stopped there); returns the manifest written as out/version.json."""
    progress = progress or Progress(stage="train")
    options = settings("classic", options, DEFAULTS)
    if not os.path.exists(os.path.join(dataset, "metadata_train.csv")):
        raise TrainingError(f"{dataset} is not a prepared dataset (no metadata_train.csv): run prepare first")
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    flite = Flite(str(options["base_voice"]))
    pairs = _align(flite, dataset, work, progress)
    progress.emit(stage="prosody", message="measuring pitch and pace")
    profile: dict[str, Any] = _prosody(flite, dataset, pairs["pace"])
    _, state = _fit(pairs, work, options, progress)
    spectral = mapping.SpectralMap.load(os.path.join(work, "best.npz"))
    progress.emit(stage="finish", message="fitting the residual EQ and pitch target")
    profile["mapping"] = spectral
    # Measure the pipeline on calibration text, as the zero-shot voice does: pitch lands a little off
    # at large shifts, and the mixture's smoothing leaves part of the long-term envelope.
    x = flite.synthesize(CALIBRATION, duration_stretch=profile["duration_stretch"])
    achieved = analysis.pitch_stats(analysis.yin_pitch(reshape(x, profile, None), OUTPUT_RATE)).median_hz
    profile["target_median_hz"] = profile["reference_median_hz"] * float(np.clip(profile["reference_median_hz"] / achieved, 0.85, 1.15))
    processed = reshape(x, profile, None)
    out_env = analysis.spectral_envelope(resample(processed, OUTPUT_RATE, FLITE_RATE), FLITE_RATE)
    rows = read_metadata(os.path.join(dataset, "metadata_train.csv"))
    speech = np.concatenate([resample(read_mono(os.path.join(dataset, "wavs", c + ".wav"))[0], 24000, FLITE_RATE) for c, _ in rows[:: max(1, len(rows) // 30)][:30]])
    profile["eq_taps"] = design_eq(analysis.spectral_envelope(speech, FLITE_RATE), out_env).tolist()
    profile["mapping_strength"], strengths = _strength(flite, dataset, profile, options, progress)
    del profile["mapping"]
    spectral.save(os.path.join(out, MODEL_FILE))
    manifest = {
        "engine": "classic",
        "engine_version": VERSION,
        "kind": "fine-tuned",
        "model_file": MODEL_FILE,
        "base_voice": options["base_voice"],
        **profile,
        "training": {
            "frames": int(len(pairs["train_x"])),
            "eval_frames": int(len(pairs["eval_x"])),
            "components": state["components"],
            "iterations": state["iteration"],
            "best_iteration": state["best"]["iteration"],
            "eval_distortion_db": round(state["best"]["eval_loss"], 3),
            "untrained_eval_distortion_db": round(state["untrained_eval_loss"], 3) if state.get("untrained_eval_loss") else None,
            "strengths": strengths,
        },
    }
    return finish(out, manifest, progress, {k: v for k, v in manifest.items() if k != "eq_taps"})
