"""Voice enrolment: score each uploaded sample, trim its silences, choose what the engines clone from.

Most failed clones come from what goes in: noise, clipping, long silences, too little speech or a
transcript that does not match. Each sample (already decoded and loudness-normalised by ffmpeg) is
checked here:

- voice activity by frame energy against the recording's own noise floor, with short gaps bridged;
- duration, speech ratio, estimated SNR (speech frames against pause frames) and clipping (measured
  on the decode before normalisation, where a clipped peak is still a run of full-scale samples);
- silences trimmed to a natural margin;
- a missing transcript produced by speech recognition (Whisper when installed, else pocketsphinx for
  English), marked as a guess;
- the best 3–15 s stretch, cut at pauses, written as the prompt Qwen3 clones from (with its
  transcript), and up to 30 s of the best speech written as the reference XTTS conditions on.

The report says all of this in plain language for the person who uploaded the recordings.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import soundfile as sf

from . import asr, audio

SAMPLE_RATE = 24000
FRAME_S = 0.02
HOP_S = 0.01
PROMPT_MIN_S, PROMPT_MAX_S, PROMPT_BEST_S = 3.0, 15.0, 9.0
REFERENCE_MAX_S = 30.0
MIN_SPEECH_S = 3.0
NOISY_BELOW_DB = 20.0
CLIPPED_ABOVE = 0.001
MOSTLY_SILENCE_BELOW = 0.5
MARGIN_S = 0.15
LONG_PAUSE_S = 1.0
KEPT_PAUSE_S = 0.5


@dataclass
class Region:
    start: int  # samples
    end: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def frame_db(x: np.ndarray) -> np.ndarray:
    """Energy of each 20 ms frame (10 ms hop) in dB full scale."""
    frame, hop = int(FRAME_S * SAMPLE_RATE), int(HOP_S * SAMPLE_RATE)
    if len(x) < frame:
        return np.array([10 * math.log10(float(np.mean(x**2)) + 1e-12)])
    n = 1 + (len(x) - frame) // hop
    # Running sums rather than a frames × samples matrix: a two-hour recording for fine-tuning has
    # 720,000 frames, and the matrix would take gigabytes.
    total = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    starts = hop * np.arange(n)
    energy = np.maximum(total[starts + frame] - total[starts], 0.0) / frame
    return 10 * np.log10(energy + 1e-12)


def voice_activity(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-frame speech decisions, the noise floor and the speech level (dB)."""
    db = frame_db(x)
    floor = float(np.percentile(db, 10))
    loud = float(np.percentile(db, 95))
    # Speech is well above the floor and not far below the loud frames.
    threshold = max(floor + 9.0, loud - 35.0)
    speech = db > threshold
    hop = HOP_S
    # Bridge gaps shorter than 300 ms (stops, short pauses); drop blips shorter than 80 ms.
    speech = _fill_runs(speech, False, int(0.3 / hop))
    speech = ~_fill_runs(~speech, False, int(0.08 / hop))
    level = float(np.mean(db[speech])) if speech.any() else loud
    return speech, floor, level


def _fill_runs(mask: np.ndarray, value: bool, max_len: int) -> np.ndarray:
    """Runs of `value` no longer than max_len, bounded on both sides, flipped to the other value."""
    out = mask.copy()
    n = len(mask)
    i = 0
    while i < n:
        if mask[i] == value:
            j = i
            while j < n and mask[j] == value:
                j += 1
            if i > 0 and j < n and j - i <= max_len:
                out[i:j] = not value
            i = j
        else:
            i += 1
    return out


def regions(speech: np.ndarray) -> list[Region]:
    """Speech frames as sample ranges."""
    hop, frame = int(HOP_S * SAMPLE_RATE), int(FRAME_S * SAMPLE_RATE)
    out: list[Region] = []
    i = 0
    while i < len(speech):
        if speech[i]:
            j = i
            while j < len(speech) and speech[j]:
                j += 1
            out.append(Region(i * hop, (j - 1) * hop + frame))
            i = j
        else:
            i += 1
    return out


def clipping_ratio(raw: np.ndarray) -> float:
    """Share of samples in runs of three or more at the recording's full-scale peak."""
    peak = float(np.max(np.abs(raw))) if len(raw) else 0.0
    if peak < 0.5:  # a quiet recording cannot have clipped
        return 0.0
    at_peak = np.abs(raw) >= peak * 0.995
    # A sample is clipped when it and its neighbours sit on the ceiling: a flat top, not a crest.
    run = at_peak[1:-1] & at_peak[:-2] & at_peak[2:]
    return float(np.count_nonzero(run)) / len(raw)


def analyse(x: np.ndarray, raw: np.ndarray | None) -> dict[str, Any]:
    speech, floor, level = voice_activity(x)
    found = regions(speech)
    speech_s = sum(r.seconds for r in found)
    pauses = ~speech
    # SNR: speech against the pauses; a recording without pauses falls back to its quietest frames.
    db = frame_db(x)
    noise = float(np.mean(db[pauses])) if pauses.sum() >= 10 else floor
    return {
        "regions": found,
        "seconds": len(x) / SAMPLE_RATE,
        "speech_seconds": speech_s,
        "speech_ratio": speech_s / max(len(x) / SAMPLE_RATE, 1e-9),
        "snr_db": level - noise,
        "clipping": clipping_ratio(raw if raw is not None else x),
    }


def _read(path: str) -> np.ndarray:
    x, sr = audio.read_mono(path)
    return audio.resample(x, sr, SAMPLE_RATE).astype(np.float32)


def _best_window(found: Sequence[Region]) -> Region | None:
    """The stretch of consecutive speech regions, 3–15 s, nearest the ideal length, cut at pauses."""
    best: tuple[float, Region] | None = None
    for i in range(len(found)):
        for j in range(i, len(found)):
            window = Region(found[i].start, found[j].end)
            if window.seconds > PROMPT_MAX_S:
                break
            if window.seconds < PROMPT_MIN_S:
                continue
            speech = sum(r.seconds for r in found[i : j + 1])
            # Dense speech near the ideal length wins.
            score = speech / window.seconds - abs(window.seconds - PROMPT_BEST_S) / PROMPT_BEST_S
            if best is None or score > best[0]:
                best = (score, window)
    if best is None and found:
        # Too little speech for 3 s: the whole speech is the best there is.
        return Region(found[0].start, found[-1].end)
    return best[1] if best else None


def _pad(region: Region, length: int) -> Region:
    margin = int(MARGIN_S * SAMPLE_RATE)
    return Region(max(0, region.start - margin), min(length, region.end + margin))


def _trim(x: np.ndarray, found: list[Region]) -> tuple[np.ndarray, list[Region]]:
    """The speech with margins at both ends and pauses longer than LONG_PAUSE_S cut to KEPT_PAUSE_S."""
    margin = int(MARGIN_S * SAMPLE_RATE)
    long_pause, kept_pause = int(LONG_PAUSE_S * SAMPLE_RATE), int(KEPT_PAUSE_S * SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    out: list[Region] = []
    cursor = max(0, found[0].start - margin)
    position = 0
    for i, region in enumerate(found):
        if i > 0 and region.start - found[i - 1].end > long_pause:
            # Close the previous stretch after half the kept pause, resume half of it before this one.
            end = found[i - 1].end + kept_pause // 2
            pieces.append(_fade(x[cursor:end], 0.005))
            position += end - cursor
            cursor = region.start - kept_pause // 2
        out.append(Region(position + region.start - cursor, position + region.end - cursor))
    end = min(len(x), found[-1].end + margin)
    pieces.append(_fade(x[cursor:end], 0.005))
    return _fade(np.concatenate(pieces)), out


def _write(path: str, x: np.ndarray) -> None:
    sf.write(path, np.clip(x, -1, 1), SAMPLE_RATE, subtype="PCM_16")


def _fade(x: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    return audio.fade(x, SAMPLE_RATE, seconds)


def enrol(voice_dir: str, samples: Sequence[dict[str, Any]], language: str | None, recogniser: Any = None) -> dict[str, Any]:
    """Checks and trims the samples in place, writes samples/prompt.wav and samples/reference.wav,
    and returns the quality report. samples: [{"path", "raw", "name", "transcript"}]."""
    report_samples: list[dict[str, Any]] = []
    # Each sample's (trimmed) audio, speech regions and report entry.
    kept: list[tuple[np.ndarray, list[Region], dict[str, Any]]] = []
    voice_warnings: list[str] = []
    recogniser = recogniser if recogniser is not None else asr.for_language(language)
    for sample in samples:
        x = _read(sample["path"])
        raw = _read(sample["raw"]) if sample.get("raw") else None
        figures = analyse(x, raw)
        name = sample.get("name") or os.path.basename(sample["path"])
        warnings: list[str] = []
        found: list[Region] = figures["regions"]
        if found and figures["snr_db"] >= NOISY_BELOW_DB:
            # (In noise the activity detector misses quiet words, so a noisy sample is kept whole.)
            # Trim the silences around the speech and shorten long pauses inside it, keeping natural
            # margins; the stored sample is what every engine reads.
            x, found = _trim(x, found)
            _write(sample["path"], x)
        if figures["speech_seconds"] < MIN_SPEECH_S:
            warnings.append(f"too short: {name} has {figures['speech_seconds']:.1f} s of speech; record at least {MIN_SPEECH_S:.0f} s (10–30 s in all clones best)")
        if figures["snr_db"] < NOISY_BELOW_DB:
            warnings.append(f"noisy: the speech in {name} is only {figures['snr_db']:.0f} dB above the background; record somewhere quieter, closer to the microphone")
        if figures["clipping"] > CLIPPED_ABOVE:
            warnings.append(f"clipped: {figures['clipping'] * 100:.1f} % of {name} hit the ceiling and is distorted; record with the input level lower")
        if figures["speech_ratio"] < MOSTLY_SILENCE_BELOW and figures["snr_db"] >= NOISY_BELOW_DB:
            warnings.append(f"mostly silence: only {figures['speech_ratio'] * 100:.0f} % of {name} is speech; the silences were trimmed")
        transcript = (sample.get("transcript") or "").strip() or None
        source = "user" if transcript else None
        if transcript is None and recogniser is not None and found:
            transcript = recogniser.transcribe(x, SAMPLE_RATE).strip() or None
            if transcript:
                source = recogniser.name
                warnings.append(f"transcript is a guess: {name} was transcribed by {recogniser.name}; send the exact words for the best clone")
        entry = {
            "file": os.path.basename(sample["path"]),
            "name": name,
            "seconds": round(len(x) / SAMPLE_RATE, 3),
            "original_seconds": round(figures["seconds"], 3),
            "speech_seconds": round(figures["speech_seconds"], 2),
            "speech_ratio": round(figures["speech_ratio"], 3),
            "snr_db": round(figures["snr_db"], 1),
            "clipping_percent": round(figures["clipping"] * 100, 3),
            "transcript": transcript,
            "transcript_source": source,
            "warnings": warnings,
        }
        report_samples.append(entry)
        kept.append((x, found, entry))

    total_speech = sum(e["speech_seconds"] for e in report_samples)
    if total_speech < MIN_SPEECH_S and len(report_samples) > 1:
        voice_warnings.append(f"too short: {total_speech:.1f} s of speech in all; record at least {MIN_SPEECH_S:.0f} s, ideally 10–30 s")

    folder = os.path.join(voice_dir, "samples")
    prompt = _choose_prompt(kept, recogniser)
    if prompt is not None:
        audio, info = prompt
        _write(os.path.join(folder, "prompt.wav"), _fade(audio))
        info["file"] = "samples/prompt.wav"
        if info.pop("recognised_separately", False):
            voice_warnings.append(f"transcript is a guess: the prompt's words were recognised by {info['transcript_source']}; an exact transcript clones better")
        if info["transcript"] is None:
            voice_warnings.append("no transcript for the prompt: Qwen3 clones from the voice's timbre alone (x-vector mode); add a transcript for a closer clone")
    reference = _reference(kept)
    reference_info = None
    if reference is not None:
        _write(os.path.join(folder, "reference.wav"), reference)
        reference_info = {"file": "samples/reference.wav", "seconds": round(len(reference) / SAMPLE_RATE, 2)}
    return {
        "samples": report_samples,
        "speech_seconds": round(total_speech, 2),
        "prompt": prompt[1] if prompt is not None else None,
        "reference": reference_info,
        "recogniser": recogniser.name if recogniser is not None else None,
        "warnings": voice_warnings + [w for e in report_samples for w in e["warnings"]],
    }


def _quality(entry: dict[str, Any]) -> float:
    return min(entry["snr_db"], 40.0) - 1000.0 * entry["clipping_percent"] / 100.0


def _choose_prompt(kept, recogniser) -> tuple[np.ndarray, dict[str, Any]] | None:
    """A whole sample of 3–15 s with the user's transcript is best (its words are exact); otherwise the
    best 3–15 s stretch of the cleanest sample, its words recognised."""
    whole = [k for k in kept if k[2]["transcript_source"] == "user" and PROMPT_MIN_S <= k[2]["seconds"] <= PROMPT_MAX_S + 2 * MARGIN_S]
    if whole:
        x, _, entry = max(whole, key=lambda k: _quality(k[2]))
        return x, _prompt_info(entry, Region(0, len(x)), entry["transcript"], "user", False)
    candidates = [k for k in kept if k[1]]
    if not candidates:
        return None
    # A longer sample with the user's words: cut a stretch and carry over exactly the words said in
    # it, found by aligning the recogniser's timed words with the transcript.
    if hasattr(recogniser, "words"):
        transcribed = [k for k in candidates if k[2]["transcript_source"] == "user"]
        for x, found, entry in sorted(transcribed, key=lambda k: -_quality(k[2])):
            cut = _aligned_window(x, found, entry["transcript"], recogniser)
            if cut is not None:
                window, transcript = cut
                return x[window.start : window.end], _prompt_info(entry, window, transcript, "user", False)
    x, found, entry = max(candidates, key=lambda k: (_quality(k[2]), k[2]["speech_seconds"]))
    window = _best_window(found)
    if window is None:
        return None
    window = _pad(window, len(x))
    audio = x[window.start : window.end]
    covers_all = window.start <= found[0].start and window.end >= found[-1].end
    if covers_all and entry["transcript"]:
        transcript, source = entry["transcript"], entry["transcript_source"]
        separately = False
    elif recogniser is not None:
        transcript, source = recogniser.transcribe(audio, SAMPLE_RATE).strip() or None, recogniser.name
        separately = transcript is not None
    else:
        transcript, source, separately = None, None, False
    return audio, _prompt_info(entry, window, transcript, source, separately)


def _prompt_info(entry: dict[str, Any], window: Region, transcript: str | None, source: str | None, separately: bool) -> dict[str, Any]:
    return {"sample": entry["file"], "start": round(window.start / SAMPLE_RATE, 3), "end": round(window.end / SAMPLE_RATE, 3),
            "seconds": round(window.seconds, 3), "transcript": transcript,
            "transcript_source": source if transcript else None, "recognised_separately": separately}


#: Below this share of the transcript's words recognised exactly, the alignment is not trusted.
ALIGNMENT_MIN_MATCH = 0.5


def _aligned_window(x: np.ndarray, found: list[Region], transcript: str, recogniser: Any) -> tuple[Region, str] | None:
    """The best 3–15 s stretch of a transcribed sample and the transcript's words inside it."""
    window = _best_window(found)
    if window is None or window.seconds < PROMPT_MIN_S:
        return None
    tokens = transcript.split()
    times, agreement = asr.align_times(tokens, recogniser.words(x, SAMPLE_RATE))
    if agreement < ALIGNMENT_MIN_MATCH:
        return None
    start_s, end_s = window.start / SAMPLE_RATE, window.end / SAMPLE_RATE
    # Windows end at pauses, so a word belongs to the window when it starts inside it.
    inside = [k for k, t in enumerate(times) if start_s - 0.1 <= t < end_s - 0.05]
    if not inside:
        return None
    words = tokens[inside[0] : inside[-1] + 1]
    return _pad(window, len(x)), " ".join(words)


def _reference(kept) -> np.ndarray | None:
    """Up to 30 s of speech, the cleanest samples first, pauses shortened; what XTTS conditions on."""
    pieces: list[np.ndarray] = []
    total = 0
    limit = int(REFERENCE_MAX_S * SAMPLE_RATE)
    gap = np.zeros(int(0.2 * SAMPLE_RATE), dtype=np.float32)
    for x, found, _ in sorted(kept, key=lambda k: -_quality(k[2])):
        for region in found:
            piece = _fade(x[region.start : region.end], 0.005)
            if total + len(piece) > limit:
                piece = piece[: limit - total]
            if len(piece) < int(0.3 * SAMPLE_RATE):
                continue
            pieces.extend([piece, gap])
            total += len(piece) + len(gap)
            if total >= limit:
                break
        if total >= limit:
            break
    return np.concatenate(pieces[:-1]) if pieces else None
