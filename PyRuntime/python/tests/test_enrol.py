"""Voice enrolment on real speech made here: flite's voice, then damaged with noise, clipping and silence."""
import os

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from timbre import asr, enrol
from timbre.engines.classic.flite import Flite

TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)
RATE = 24000


@pytest.fixture(scope="module")
def speech():
    x = signal.resample_poly(Flite("rms").synthesize(TEXT), 3, 2).astype(np.float32)
    return x / np.max(np.abs(x)) * 0.5


def silence(seconds):
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def run(tmp_path, audio, transcript=None, name="take.wav", raw=None):
    folder = tmp_path / "voice"
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    path = folder / "samples" / f"sample-{len(os.listdir(folder / 'samples')) + 1}.wav"
    sf.write(path, np.clip(audio, -1, 1), RATE, subtype="PCM_16")
    raw_path = tmp_path / f"raw-{path.name}"
    sf.write(raw_path, audio if raw is None else raw, RATE, subtype="FLOAT")
    report = enrol.enrol(str(folder), [{"path": str(path), "raw": str(raw_path), "name": name, "transcript": transcript}], "en")
    return report, folder


def kinds(report):
    return sorted({w.split(":")[0] for w in report["warnings"]})


def speech_share(path):
    x, _ = sf.read(path, dtype="float32")
    active, _, _ = enrol.voice_activity(x)
    return active.mean(), len(x) / RATE


def test_a_clean_sample_with_its_transcript_has_no_warnings_and_becomes_the_prompt(tmp_path, speech):
    report, folder = run(tmp_path, np.concatenate([silence(1.5), speech, silence(1.5)]), transcript=TEXT)
    assert report["warnings"] == []
    sample = report["samples"][0]
    assert sample["transcript_source"] == "user" and sample["snr_db"] > 40 and sample["clipping_percent"] == 0
    # The silences are trimmed to a natural margin around the speech.
    assert abs(sample["seconds"] - len(speech) / RATE) < 0.5 and sample["original_seconds"] > sample["seconds"] + 2.5
    assert report["prompt"]["transcript"] == TEXT and report["prompt"]["transcript_source"] == "user"
    share, seconds = speech_share(folder / "samples" / "prompt.wav")
    assert 3 <= seconds <= 15.5 and share > 0.85
    assert report["reference"]["seconds"] <= 30


def test_long_silences_are_trimmed_and_reported(tmp_path, speech):
    half = len(speech) // 2
    damaged = np.concatenate([silence(4), speech[:half], silence(6), speech[half:], silence(5)])
    report, folder = run(tmp_path, damaged, transcript=TEXT)
    assert "mostly silence" in kinds(report)
    sample = report["samples"][0]
    assert sample["original_seconds"] > 24 and sample["seconds"] < len(speech) / RATE + 1.5
    share, _ = speech_share(folder / "samples" / "sample-1.wav")
    assert share > 0.8


def test_noise_is_reported(tmp_path, speech):
    rng = np.random.default_rng(0)
    report, _ = run(tmp_path, speech + 0.05 * rng.standard_normal(len(speech)).astype(np.float32), transcript=TEXT)
    assert "noisy" in kinds(report) and report["samples"][0]["snr_db"] < 20


def test_clipping_is_measured_before_normalisation(tmp_path, speech):
    clipped = np.clip(speech * 6, -1, 1)
    # What is stored is normalised (quieter); the flat tops are found in the unnormalised decode.
    report, _ = run(tmp_path, clipped * 0.3, transcript=TEXT, raw=clipped)
    assert "clipped" in kinds(report) and report["samples"][0]["clipping_percent"] > 1


def test_a_too_short_sample_is_reported(tmp_path, speech):
    report, _ = run(tmp_path, speech[: int(1.8 * RATE)], transcript="The birch canoe slid")
    assert "too short" in kinds(report)


def test_a_missing_transcript_is_recognised_marked_as_a_guess_and_close_to_the_words(tmp_path, speech):
    report, _ = run(tmp_path, speech)
    sample = report["samples"][0]
    assert sample["transcript_source"] == "pocketsphinx" and report["recogniser"] == "pocketsphinx"
    assert "transcript is a guess" in kinds(report)
    errors, words = asr.word_errors(TEXT, sample["transcript"])
    print(f"\nenrolment transcript WER {errors / words:.1%}: {sample['transcript']!r}")
    assert errors / words <= 0.45
    assert report["prompt"]["transcript"] == sample["transcript"]


def test_a_long_sample_gives_a_prompt_of_three_to_fifteen_seconds_cut_at_pauses(tmp_path, speech):
    long = np.concatenate([speech, silence(0.6), speech, silence(0.6), speech])
    report, folder = run(tmp_path, long, transcript=None)
    prompt = report["prompt"]
    assert 3 <= prompt["seconds"] <= 15.5
    share, _ = speech_share(folder / "samples" / "prompt.wav")
    assert share > 0.8
    # Cut from part of the sample, its words were recognised on their own.
    assert prompt["transcript_source"] == "pocketsphinx" and prompt["transcript"]
    assert 20 < report["reference"]["seconds"] <= 30


def test_the_cleanest_sample_is_chosen_for_the_prompt(tmp_path, speech):
    folder = tmp_path / "voice"
    (folder / "samples").mkdir(parents=True)
    rng = np.random.default_rng(1)
    takes = [("noisy.wav", speech + 0.05 * rng.standard_normal(len(speech)).astype(np.float32)), ("clean.wav", speech)]
    entries = []
    for i, (name, audio) in enumerate(takes, 1):
        path = folder / "samples" / f"sample-{i}.wav"
        sf.write(path, audio, RATE, subtype="PCM_16")
        entries.append({"path": str(path), "raw": str(path), "name": name, "transcript": TEXT})
    report = enrol.enrol(str(folder), entries, "en")
    assert report["prompt"]["sample"] == "sample-2.wav"
    assert [s["name"] for s in report["samples"]] == ["noisy.wav", "clean.wav"]


def test_whisper_is_used_when_installed_in_any_language(fakes):
    fakelog = fakes
    recogniser = asr.for_language("de-DE")
    assert recogniser.name == "whisper"
    assert recogniser.transcribe(np.zeros(24000, dtype=np.float32), 24000) == "Hallo zusammen, wie geht es?"
    call = [c for c in fakelog.CALLS if c["call"] == "whisper.transcribe"][0]
    assert call == {"call": "whisper.transcribe", "samples": 16000, "dtype": "float32", "language": "de"}


def test_without_whisper_other_languages_get_no_guess(tmp_path, speech):
    assert asr.for_language("de") is None
    folder = tmp_path / "voice"
    (folder / "samples").mkdir(parents=True)
    path = folder / "samples" / "sample-1.wav"
    sf.write(path, speech, RATE, subtype="PCM_16")
    report = enrol.enrol(str(folder), [{"path": str(path), "raw": str(path), "name": "de.wav", "transcript": None}], "de")
    assert report["samples"][0]["transcript"] is None and report["recogniser"] is None
    assert any(w.startswith("no transcript for the prompt") for w in report["warnings"])


def test_a_long_transcribed_sample_gives_a_prompt_with_exactly_its_own_words(tmp_path, speech):
    long = np.concatenate([speech, silence(0.6), speech, silence(0.6), speech])
    report, folder = run(tmp_path, long, transcript=" ".join([TEXT] * 3))
    prompt = report["prompt"]
    assert 3 <= prompt["seconds"] <= 15.5
    assert prompt["transcript_source"] == "user" and "transcript is a guess" not in kinds(report)
    # The prompt's words are a stretch of the user's transcript, and they are what the audio says.
    assert prompt["transcript"] in " ".join([TEXT] * 3)
    audio, _ = sf.read(folder / "samples" / "prompt.wav", dtype="float32")
    heard = asr.for_language("en").transcribe(audio, RATE)
    errors, words = asr.word_errors(prompt["transcript"], heard)
    print(f"\nprompt transcript {prompt['transcript']!r}; heard {heard!r}; WER {errors / words:.1%}")
    assert errors / words <= 0.45
