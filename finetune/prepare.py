"""prepare: long recordings → a fine-tuning dataset of 2–12 s clips with their words.

Each recording is decoded by ffmpeg (any format it reads) to 24 kHz mono, loudness-normalised,
and split at pauses found by the same activity detector enrolment uses. With a transcript, the
sentences are matched to stretches of speech by dynamic programming on durations (a sentence
takes time in proportion to its letters; clips end at pauses): drift-free over hours, fast, and
exact at sentence ends where readers pause. Without one, each clip's words come from speech
recognition and are marked so. Clips are rejected with a reason a person can act on.

Written into the dataset folder:
    wavs/<clip>.wav              24 kHz mono 16-bit
    metadata.csv                 clip|text (every kept clip)
    clips.jsonl                  each clip's recording, start and end (s), text, its source, its split
    metadata_train.csv / _eval   the 90/10 split, the last tenth of each recording held out
    qwen3_train.jsonl / _eval    {"audio", "text", "ref_audio"}: Qwen3-TTS's raw JSONL
    xtts_train.csv / _eval       audio_file|text|speaker_name with a header: coqui's formatter
    ref.wav                      one 5–12 s clip, 24 kHz: the shared Qwen3 ref_audio
    report.json                  minutes kept, clips, rejections by reason, rate, pitch
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import soundfile as sf

from timbre import asr, enrol
from timbre import audio as audio_tools
from timbre.engines.classic import analysis

from .progress import Progress
from .segment import MAX_CLIP_S, MIN_CLIP_S, align_sentences, letters, split_at_pauses

RATE = 24000
MAX_RECORDING_S = 2 * 3600.0
TARGET_DBFS = -20.0
EVAL_SHARE = 0.1
EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".m4a")
# Clips whose speech takes more than this factor longer or shorter than their words predict do
# not hold those words: the alignment slipped or the reader skipped.
DURATION_MISMATCH = 1.7


class DatasetError(ValueError):
    """The dataset as a whole cannot be used; the message says what to change."""


@dataclass
class Clip:
    recording: str
    index: int
    start: int  # samples in the decoded recording
    end: int
    text: str | None
    source: str  # "transcript" | "asr"
    rejected: str | None = None
    detail: str = ""
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / RATE


def decode(path: str) -> np.ndarray:
    """Any file ffmpeg reads, as 24 kHz mono float32 (not yet normalised)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-ac", "1", "-ar", str(RATE), "-f", "f32le", "-"]
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(reason[-1] if reason else "ffmpeg could not decode it")
    x = np.frombuffer(done.stdout, dtype="<f4").copy()
    if len(x) == 0:
        raise ValueError("it holds no audio")
    return x


def normalise(x: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Speech at -20 dBFS RMS, peaks kept below full scale."""
    hop = int(enrol.HOP_S * RATE)
    mask = np.repeat(speech, hop)[: len(x)]
    active = x[: len(mask)][mask] if mask.any() else x
    rms = float(np.sqrt(np.mean(np.square(active, dtype=np.float64)))) + 1e-12
    gain = 10 ** (TARGET_DBFS / 20) / rms
    peak = float(np.max(np.abs(x))) * gain
    if peak > 0.98:
        gain *= 0.98 / peak
    return (x * gain).astype(np.float32)


# -- the whole preparation -------------------------------------------------------------------


def _find_transcript(path: str, transcripts: dict[str, str]) -> str | None:
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem in transcripts:
        return transcripts[stem]
    beside = os.path.splitext(path)[0] + ".txt"
    if os.path.exists(beside):
        with open(beside, encoding="utf-8", errors="replace") as f:
            return f.read().strip() or None
    return None


def _clips_of(name: str, x: np.ndarray, transcript: str | None, recogniser: Any) -> tuple[list[Clip], dict[str, Any]]:
    speech, floor, level = enrol.voice_activity(x)
    found = enrol.regions(speech)
    info: dict[str, Any] = {"seconds": round(len(x) / RATE, 2), "speech_seconds": round(sum(r.seconds for r in found), 2)}
    if not found or info["speech_seconds"] < 1.0:
        raise ValueError("no speech found in it (silent, or only noise)")
    margin = int(0.12 * RATE)
    clips: list[Clip] = []
    if transcript:
        spans = align_sentences(found, transcript)
        source = "transcript"
    else:
        spans = [(a, b, None) for a, b in split_at_pauses(found)]
        source = "asr"
    for k, (a, b, text) in enumerate(spans):
        start = max(0, found[a].start - margin)
        end = min(len(x), found[b - 1].end + margin)
        if a > 0:
            start = max(start, (found[a - 1].end + found[a].start) // 2)
        if b < len(found):
            end = min(end, (found[b - 1].end + found[b].start) // 2)
        clip = Clip(name, k, start, end, text, source)
        if transcript and text is None:
            clip.rejected, clip.detail = "unaligned", "speech that matches no sentence of the transcript"
        elif not transcript and recogniser is None:
            clip.rejected, clip.detail = "no_text", "no transcript and no speech recogniser for this language"
        clips.append(clip)
    noise = floor
    info["snr_db"] = round(level - noise, 1)
    info["_speech"] = speech
    return clips, info


def _judge(clip: Clip, raw: np.ndarray, x: np.ndarray, rate: float | None) -> None:
    """Marks the clip rejected, with the reason, when it should not be trained on."""
    if clip.rejected:
        return
    seconds = clip.seconds
    if seconds < MIN_CLIP_S:
        clip.rejected, clip.detail = "too_short", f"{seconds:.1f} s; clips need {MIN_CLIP_S:.0f}–{MAX_CLIP_S:.0f} s"
        return
    if seconds > MAX_CLIP_S + 0.5:
        clip.rejected, clip.detail = "too_long", f"{seconds:.1f} s without a pause to cut at; clips need {MIN_CLIP_S:.0f}–{MAX_CLIP_S:.0f} s"
        return
    if enrol.clipping_ratio(raw[clip.start : clip.end]) > enrol.CLIPPED_ABOVE:
        clip.rejected, clip.detail = "clipped", "the recording hit full scale here; record with the input level lower"
        return
    figures = enrol.analyse(x[clip.start : clip.end], None)
    clip.extra["snr_db"] = figures["snr_db"]
    if figures["speech_ratio"] < 0.4:
        clip.rejected, clip.detail = "silence", f"only {figures['speech_ratio'] * 100:.0f} % of it is speech"
        return
    if figures["snr_db"] < enrol.NOISY_BELOW_DB and figures["speech_ratio"] < 0.95:
        clip.rejected, clip.detail = "noisy", f"speech only {figures['snr_db']:.0f} dB above the background"
        return
    if clip.text and rate:
        expected = letters(clip.text) * rate
        ratio = figures["speech_seconds"] / max(expected, 1e-3)
        if not 1 / DURATION_MISMATCH <= ratio <= DURATION_MISMATCH:
            clip.rejected, clip.detail = "text_mismatch", f"its speech lasts {ratio:.1f}× what its words take at this reader's pace"


def _asr_check(clips: Sequence[Clip], x_of: Callable[[Clip], np.ndarray], recogniser: Any, every: int) -> int:
    """Recognises every `every`-th kept clip and rejects it when its words match a neighbour's text
    better than its own (the alignment slipped) or none of them at all. Returns clips checked."""
    kept = [c for c in clips if not c.rejected and c.source == "transcript"]
    checked = 0
    for i in range(0, len(kept), every):
        clip = kept[i]
        heard = recogniser.transcribe(x_of(clip), RATE)
        own = _wer(clip.text or "", heard)
        neighbours = [kept[j].text or "" for j in (i - 1, i + 1) if 0 <= j < len(kept)]
        checked += 1
        clip.extra["asr_wer"] = round(own, 3)
        if own >= 0.95 or any(_wer(t, heard) + 0.2 < own for t in neighbours):
            clip.rejected, clip.detail = "asr_disagrees", f"speech recognition heard \"{heard}\""
    return checked


def _wer(reference: str, hypothesis: str) -> float:
    errors, words = asr.word_errors(reference, hypothesis)
    return errors / max(words, 1)


def prepare(
    files: Sequence[str],
    out: str,
    *,
    transcripts: dict[str, str] | None = None,
    speaker: str = "speaker",
    asr_check: str = "sample",
    recogniser: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prepares the recordings into the dataset folder `out`; returns the report (also written)."""
    progress = progress or Progress(stage="prepare")
    transcripts = transcripts or {}
    os.makedirs(os.path.join(out, "wavs"), exist_ok=True)
    report_files: list[dict[str, Any]] = []
    all_clips: list[Clip] = []
    audio: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    total_bytes = sum(os.path.getsize(f) for f in files if os.path.exists(f)) or 1
    done_bytes = 0
    need_asr = any(_find_transcript(f, transcripts) is None for f in files) or asr_check != "none"
    if recogniser is None and need_asr:
        recogniser = asr.for_language("en")
    for n, path in enumerate(files):
        name = os.path.basename(path)
        entry: dict[str, Any] = {"file": name}
        report_files.append(entry)
        try:
            if os.path.splitext(name)[1].lower() not in EXTENSIONS:
                raise ValueError(f"unsupported type; use {', '.join(EXTENSIONS)}")
            raw = decode(path)
            if len(raw) / RATE > MAX_RECORDING_S:
                raise ValueError(f"{len(raw) / 3600 / RATE:.1f} h long; split recordings longer than 2 h")
            transcript = _find_transcript(path, transcripts)
            key = f"r{n + 1:02d}"
            clips, info = _clips_of(key, raw, transcript, recogniser)
            x = normalise(raw, info.pop("_speech"))
            entry.update(info)
            entry["transcript"] = "given" if transcript else ("asr" if recogniser else "none")
            audio[key] = (raw, x)
            all_clips.extend(clips)
        except (ValueError, RuntimeError, OSError) as e:
            entry["error"] = f"{name}: {e}"
            progress.warn(entry["error"])
        done_bytes += os.path.getsize(path) if os.path.exists(path) else 0
        progress.emit(step=n + 1, steps=len(files), fraction=0.5 * done_bytes / total_bytes, message=f"decoded {name}")

    def x_of(c: Clip) -> np.ndarray:
        return audio[c.recording][1][c.start : c.end]

    # Each recording's rate, seconds of speech per letter, from its aligned clips.
    rates: dict[str, float] = {}
    for key in audio:
        aligned = [c for c in all_clips if c.recording == key and c.text and not c.rejected]
        count = sum(letters(c.text or "") for c in aligned)
        if count:
            rates[key] = sum(c.seconds for c in aligned) / count * 0.85
    for i, clip in enumerate(all_clips):
        raw, x = audio[clip.recording]
        if clip.source == "asr" and not clip.rejected and recogniser is not None:
            clip.text = " ".join(recogniser.transcribe(x_of(clip), RATE).split()) or None
            if not clip.text:
                clip.rejected, clip.detail = "no_text", "speech recognition heard no words"
        _judge(clip, raw, x, rates.get(clip.recording))
        if i % 20 == 0:
            progress.emit(step=i + 1, steps=len(all_clips), fraction=0.5 + 0.35 * (i + 1) / max(len(all_clips), 1), message="checking clips")
    checked = 0
    if recogniser is not None and asr_check != "none":
        checked = _asr_check(all_clips, x_of, recogniser, 1 if asr_check == "all" else 20)
    return _write(out, all_clips, audio, report_files, speaker, checked, recogniser, progress)


def _write(out: str, clips: list[Clip], audio: dict[str, tuple[np.ndarray, np.ndarray]], files: list[dict[str, Any]],
           speaker: str, checked: int, recogniser: Any, progress: Progress) -> dict[str, Any]:
    kept = [c for c in clips if not c.rejected]
    for c in kept:
        c.name = f"{c.recording}-{c.index:04d}"
        sf.write(os.path.join(out, "wavs", c.name + ".wav"), audio[c.recording][1][c.start : c.end], RATE, subtype="PCM_16")
    # Held out by position: the last tenth of each recording, so no eval sentence sits between
    # training sentences of the same take.
    train: list[Clip] = []
    held: list[Clip] = []
    for key in audio:
        mine = [c for c in kept if c.recording == key]
        n_eval = int(round(len(mine) * EVAL_SHARE)) if len(mine) >= 10 else (1 if len(mine) >= 3 else 0)
        train += mine[: len(mine) - n_eval]
        held += mine[len(mine) - n_eval :]
    ref = _reference(kept)
    ref_path = os.path.join(out, "ref.wav")
    if ref is not None:
        sf.write(ref_path, audio[ref.recording][1][ref.start : ref.end], RATE, subtype="PCM_16")

    def clean(text: str | None) -> str:
        return re.sub(r"\s+", " ", (text or "").replace("|", " ")).strip()

    def csv(path: str, rows: list[Clip]) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(f"{c.name}|{clean(c.text)}\n" for c in rows)

    csv(os.path.join(out, "metadata.csv"), kept)
    # Where each clip came from: a person checking a clip, or a test checking the alignment.
    files_by_key = {f"r{n + 1:02d}": f["file"] for n, f in enumerate(files)}
    held_names = {c.name for c in held}
    with open(os.path.join(out, "clips.jsonl"), "w", encoding="utf-8") as f:
        for c in kept:
            f.write(json.dumps({"clip": c.name, "recording": files_by_key.get(c.recording), "start": round(c.start / RATE, 3),
                                "end": round(c.end / RATE, 3), "text": clean(c.text), "source": c.source,
                                "split": "eval" if c.name in held_names else "train"}, ensure_ascii=False) + "\n")
    csv(os.path.join(out, "metadata_train.csv"), train)
    csv(os.path.join(out, "metadata_eval.csv"), held)
    for split, rows in (("train", train), ("eval", held)):
        with open(os.path.join(out, f"qwen3_{split}.jsonl"), "w", encoding="utf-8") as f:
            for c in rows:
                f.write(json.dumps({"audio": os.path.abspath(os.path.join(out, "wavs", c.name + ".wav")), "text": clean(c.text),
                                    "ref_audio": os.path.abspath(ref_path)}, ensure_ascii=False) + "\n")
        with open(os.path.join(out, f"xtts_{split}.csv"), "w", encoding="utf-8") as f:
            f.write("audio_file|text|speaker_name\n")
            f.writelines(f"wavs/{c.name}.wav|{clean(c.text)}|{speaker}\n" for c in rows)

    rejected: dict[str, int] = {}
    for c in clips:
        if c.rejected:
            rejected[c.rejected] = rejected.get(c.rejected, 0) + 1
    kept_s = sum(c.seconds for c in kept)
    words = sum(len((c.text or "").split()) for c in kept)
    report = {
        "minutes_kept": round(kept_s / 60, 2),
        "minutes_train": round(sum(c.seconds for c in train) / 60, 2),
        "minutes_eval": round(sum(c.seconds for c in held) / 60, 2),
        "clips": len(kept),
        "train_clips": len(train),
        "eval_clips": len(held),
        "rejected": rejected,
        "rejections": [{"recording": c.recording, "start": round(c.start / RATE, 2), "end": round(c.end / RATE, 2),
                        "reason": c.rejected, "detail": c.detail, "text": c.text} for c in clips if c.rejected][:500],
        "transcripts": {"transcript": sum(c.source == "transcript" for c in kept), "asr": sum(c.source == "asr" for c in kept)},
        "asr": {"recogniser": getattr(recogniser, "name", None), "clips_checked": checked},
        "words_per_minute": round(words / max(kept_s / 60, 1e-9), 1) if kept else None,
        "pitch": _pitch(kept, audio),
        "ref_audio": "ref.wav" if ref is not None else None,
        "speaker": speaker,
        "sample_rate": RATE,
        "files": files,
    }
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    progress.emit(fraction=1.0, message=f"{report['minutes_kept']} min kept in {len(kept)} clips")
    return report


def _reference(kept: list[Clip]) -> Clip | None:
    """The cleanest clip of 5–12 s (the longest when none is that long): one ref_audio for every line."""
    good = [c for c in kept if 5.0 <= c.seconds <= MAX_CLIP_S] or kept
    return max(good, key=lambda c: (min(c.extra.get("snr_db", 0.0), 40.0), c.seconds)) if good else None


def _pitch(kept: list[Clip], audio: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float] | None:
    """Median F0 and the 5–95 % range over up to 40 s of the kept speech, spread over the dataset."""
    pieces, total = [], 0
    step = max(1, len(kept) // 8)
    for c in kept[::step]:
        pieces.append(audio[c.recording][1][c.start : c.end])
        total += c.end - c.start
        if total > 40 * RATE:
            break
    if not pieces:
        return None
    f0 = analysis.yin_pitch(audio_tools.resample(np.concatenate(pieces), RATE, 16000), 16000)
    voiced = f0[f0 > 0]
    if len(voiced) < 10:
        return None
    lo, mid, hi = np.percentile(voiced, [5, 50, 95])
    return {"median_hz": round(float(mid), 1), "p5_hz": round(float(lo), 1), "p95_hz": round(float(hi), 1),
            "range_semitones": round(float(12 * np.log2(hi / lo)), 1)}
