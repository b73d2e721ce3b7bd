"""evaluate: a candidate voice version against the zero-shot clone, on the dataset's held-out clips.

Each held-out clip's text is spoken by both voices and compared with the speaker's own recording of
it. The measures (documented in the README; the GPU environment's WavLM/ECAPA similarity and
Whisper WER replace the stand-ins where they are installed):

- distance to the speaker: mel-cepstral distortion (dB) between the synthesis and the speaker's
  recording of the same sentence, frames aligned by DTW — the standard objective measure of voice
  conversion; lower is closer. Reported with a similarity in 0–1, 1 / (1 + MCD / 10), for tables
  that want "higher is better".
- WER: the recogniser's word error rate on the synthesis (pocketsphinx here, Whisper when
  installed), and on the speaker's own clips as the floor the recogniser allows.
- F0 distance: |median F0 of the synthesis − the speaker's| in cents, over all clips.
- pace distance: |log2| of the ratio of speech time, synthesis to speaker, averaged over clips.

A candidate is "better" when it is closer to the speaker and its WER is no more than 5 points worse.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import numpy as np

from timbre import asr
from timbre.audio import read_mono
from timbre.engines import SpeechRequest, VoiceSample, create
from timbre.engines.classic import analysis, mapping

from .progress import Progress
from .trainers.classic import read_metadata

WER_SLACK_POINTS = 5.0


def _measure(synth: np.ndarray, rate: int, real_cep: np.ndarray, text: str, recogniser: Any) -> dict[str, float]:
    x16, cep = mapping.speech_cepstra(synth, rate)
    mcd = mapping.aligned_distortion(cep, real_cep)
    f0 = analysis.yin_pitch(x16, mapping.RATE)
    errors, words = asr.word_errors(text, recogniser.transcribe(synth, rate)) if recogniser else (0, 0)
    return {"mcd_db": float("nan") if mcd is None else mcd, "errors": errors, "words": words,
            "seconds": len(cep) * mapping.HOP / mapping.RATE, "f0": f0[f0 > 0]}


def _summary(rows: list[dict[str, Any]], real: list[dict[str, Any]]) -> dict[str, Any]:
    mcd = float(np.nanmean([r["mcd_db"] for r in rows]))
    words = sum(r["words"] for r in rows)
    f0 = np.concatenate([r["f0"] for r in rows]) if rows else np.zeros(0)
    real_f0 = np.concatenate([r["f0"] for r in real]) if real else np.zeros(0)
    cents = abs(1200 * math.log2(np.median(f0) / np.median(real_f0))) if len(f0) and len(real_f0) else float("nan")
    pace = float(np.mean([abs(math.log2(r["seconds"] / q["seconds"])) for r, q in zip(rows, real)]))
    return {
        "distance_db": round(mcd, 3),
        "similarity": round(1.0 / (1.0 + mcd / 10.0), 4),
        "wer_pct": round(100.0 * sum(r["errors"] for r in rows) / max(words, 1), 1),
        "f0_distance_cents": round(cents, 1),
        "pace_distance": round(pace, 3),
    }


def evaluate(dataset: str, voice_dir: str, samples: list[dict[str, Any]], candidate: str, engine_name: str = "classic",
             engine_options: dict[str, Any] | None = None, max_clips: int = 12, progress: Progress | None = None,
             recogniser: Any = None) -> dict[str, Any]:
    """Compares the voice's zero-shot clone (its samples) with the candidate version folder."""
    progress = progress or Progress(stage="evaluate")
    rows = read_metadata(os.path.join(dataset, "metadata_eval.csv"))[:max_clips]
    if not rows:
        raise ValueError("the dataset has no held-out clips to evaluate on; give it more speech")
    engine = create(engine_name, engine_options or {})
    engine.load()
    base = [VoiceSample(s["path"], s.get("transcript"), s.get("role") or "sample") for s in samples]
    voices = {"zero_shot": base, "candidate": [*base, VoiceSample(os.path.abspath(candidate), None, "model")]}
    recogniser = recogniser if recogniser is not None else asr.for_language("en")
    results: dict[str, list[dict[str, Any]]] = {"zero_shot": [], "candidate": [], "speaker": []}
    for i, (clip, text) in enumerate(rows):
        real, rate = read_mono(os.path.join(dataset, "wavs", clip + ".wav"))
        real16, real_cep = mapping.speech_cepstra(real, rate)
        f0 = analysis.yin_pitch(real16, mapping.RATE)
        errors, words = asr.word_errors(text, recogniser.transcribe(real, rate)) if recogniser else (0, 0)
        results["speaker"].append({"mcd_db": 0.0, "errors": errors, "words": words,
                                   "seconds": len(real_cep) * mapping.HOP / mapping.RATE, "f0": f0[f0 > 0]})
        for name, voice in voices.items():
            audio = np.concatenate(list(engine.stream(voice_dir, voice, SpeechRequest(text, language="en"))))
            results[name].append(_measure(audio, engine.sample_rate, real_cep, text, recogniser))
        progress.emit(step=i + 1, steps=len(rows), fraction=(i + 1) / len(rows), message=f"evaluated {clip}")
    summary = {name: _summary(results[name], results["speaker"]) for name in ("zero_shot", "candidate")}
    speaker_words = sum(r["words"] for r in results["speaker"])
    floor = round(100.0 * sum(r["errors"] for r in results["speaker"]) / max(speaker_words, 1), 1)
    better = summary["candidate"]["distance_db"] < summary["zero_shot"]["distance_db"] and \
        summary["candidate"]["wer_pct"] <= summary["zero_shot"]["wer_pct"] + WER_SLACK_POINTS
    report = {
        "engine": engine_name,
        "clips": len(rows),
        "recogniser": getattr(recogniser, "name", None),
        "speaker_wer_pct": floor,
        "zero_shot": summary["zero_shot"],
        "candidate": summary["candidate"],
        "better": bool(better),
        "measures": {
            "distance_db": "mel-cepstral distortion to the speaker's recording of the same text, DTW-aligned (dB, lower is closer)",
            "similarity": "1 / (1 + distance_db / 10), higher is closer",
            "wer_pct": "word error rate of the recogniser on the synthesis",
            "f0_distance_cents": "|median F0 of the synthesis - the speaker's| in cents",
            "pace_distance": "mean |log2(speech time of the synthesis / the speaker's)|",
        },
    }
    return report


def table(report: dict[str, Any]) -> str:
    """The report as a plain table, for people."""
    lines = [f"{'':22} {'zero-shot':>10} {'fine-tuned':>11}"]
    for key, label in (("distance_db", "distance (MCD, dB)"), ("similarity", "similarity"), ("wer_pct", "WER %"),
                       ("f0_distance_cents", "F0 distance (cents)"), ("pace_distance", "pace distance")):
        lines.append(f"{label:22} {report['zero_shot'][key]:>10} {report['candidate'][key]:>11}")
    lines.append(f"speaker's own clips: WER {report['speaker_wer_pct']} % ({report['recogniser']}); "
                 f"{'fine-tuned is better' if report['better'] else 'zero-shot is better'}")
    return "\n".join(lines)


def main_evaluate(args: Any) -> int:
    with open(args.samples, encoding="utf-8") as f:
        samples = json.load(f)
    progress = Progress(stage="evaluate")
    report = evaluate(args.dataset, args.voice_dir, samples, args.candidate, args.engine,
                      json.loads(args.engine_options or "{}"), args.max_clips, progress)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    print(table(report), file=sys.stderr)
    progress.result(**report)
    return 0
