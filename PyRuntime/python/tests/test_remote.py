"""What a front node sends a remote engine: an openai-speech server (vLLM-Omni with Qwen3-TTS) for each
kind of checkpoint, and a Timbre worker node."""
from __future__ import annotations

import base64
import hashlib
import json
import wave

import numpy as np
import pytest

from timbre import remote
from timbre.engines.protocol import EngineInputError, VoiceSample
from timbre.remote import describe_openai_speech, openai_speech_body


def _wav(path, seconds=2.0):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes((np.sin(np.arange(int(24000 * seconds)) / 10) * 8000).astype(np.int16).tobytes())
    return str(path)


def test_a_base_model_clones_from_the_prompt_with_its_transcript_or_from_the_embedding_without_one(tmp_path):
    sample = _wav(tmp_path / "sample.wav", 4)
    prompt = _wav(tmp_path / "prompt.wav", 2)
    samples = [VoiceSample(sample, None, "sample"), VoiceSample(prompt, "the words of the prompt", "prompt")]
    body = openai_speech_body("Qwen/Qwen3-TTS-12Hz-1.7B-Base", {"text": "It costs $5.", "language": "en-GB"}, samples)
    assert body["task_type"] == "Base" and body["language"] == "English" and body["model"] == "Qwen/Qwen3-TTS-12Hz-1.7B-Base"
    assert body["response_format"] == "pcm" and body["stream_format"] == "audio"
    assert body["ref_text"] == "the words of the prompt" and "x_vector_only_mode" not in body
    with open(prompt, "rb") as f:
        assert base64.b64decode(body["ref_audio"].split(",", 1)[1]) == f.read()
    # The text is prepared as for every Timbre engine (numbers and symbols spelled out).
    assert body["input"] == "It costs five dollars."

    untranscribed = openai_speech_body("", {"text": "Hello."}, [VoiceSample(sample, None, "sample")])
    assert untranscribed["x_vector_only_mode"] is True and "ref_text" not in untranscribed and "model" not in untranscribed
    assert untranscribed["language"] == "Auto"


def test_custom_voice_and_voice_design_models_get_their_own_fields_and_refusals_name_the_field():
    custom = openai_speech_body("Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", {"text": "Hi.", "instructions": "cheerful", "options": {"speaker": "Vivian"}}, [])
    assert custom["task_type"] == "CustomVoice" and custom["voice"] == "vivian" and custom["instructions"] == "cheerful"
    design = openai_speech_body("Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign", {"text": "Hi.", "instructions": "a calm low voice"}, [])
    assert design["task_type"] == "VoiceDesign" and "ref_audio" not in design

    for model, request, field in [
        ("Qwen/Qwen3-TTS-12Hz-1.7B-Base", {"text": "Hi.", "speed": 1.5}, "speed"),
        ("Qwen/Qwen3-TTS-12Hz-1.7B-Base", {"text": "Hi.", "instructions": "whisper"}, "instructions"),
        ("Qwen/Qwen3-TTS-12Hz-1.7B-Base", {"text": "Hi.", "language": "fi"}, "language"),
        ("Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", {"text": "Hi."}, "voice"),
        ("Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign", {"text": "Hi."}, "instructions"),
    ]:
        with pytest.raises(EngineInputError) as refused:
            openai_speech_body(model, request, [])
        assert refused.value.field == field


def test_the_description_follows_the_checkpoint():
    assert describe_openai_speech("gpu", "Qwen/Qwen3-TTS-12Hz-1.7B-Base")["capabilities"] == ["clone"]
    custom = describe_openai_speech("gpu", "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")
    assert custom["mode"] == "custom_voice" and "instructions" not in custom["capabilities"] and "Vivian" in custom["speakers"]


def _version(folder, engine, files):
    folder.mkdir(parents=True)
    (folder / "version.json").write_text(json.dumps({"engine": engine, "kind": "fine-tuned"}))
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_a_timbre_worker_is_sent_the_samples_by_content_hash(tmp_path):
    sample = tmp_path / "sample-1.wav"
    prompt = tmp_path / "prompt.wav"
    sample.write_bytes(b"RIFF sample bytes")
    prompt.write_bytes(b"RIFF prompt bytes")
    samples = [
        VoiceSample(str(sample), "The birch canoe.", "sample"),
        VoiceSample(str(prompt), None, "prompt"),
    ]
    request = {"text": "Hello there.", "language": "en", "speed": 1.25, "instructions": None, "options": {"speaker": None}}
    body, files = remote.timbre_body("classic", request, samples)

    digest = hashlib.sha256(b"RIFF sample bytes").hexdigest()
    assert body["engine"] == "classic" and body["text"] == "Hello there." and body["speed"] == 1.25
    assert body["samples"] == [
        {"sha256": digest, "transcript": "The birch canoe.", "role": "sample"},
        {"sha256": hashlib.sha256(b"RIFF prompt bytes").hexdigest(), "transcript": None, "role": "prompt"},
    ]
    assert files[digest] == str(sample) and len(files) == 2
    # A changed file is hashed again, not served from the cache.
    sample.write_bytes(b"RIFF other bytes, longer")
    assert remote.timbre_body("classic", request, samples)[0]["samples"][0]["sha256"] == hashlib.sha256(b"RIFF other bytes, longer").hexdigest()


def test_the_active_version_goes_as_a_folder_digest_only_to_a_worker_whose_engine_trained_it(tmp_path):
    version = _version(tmp_path / "versions" / "1", "classic", {"model.npz": b"weights", "sub/b.bin": b"bee"})
    sample = tmp_path / "sample-1.wav"
    sample.write_bytes(b"RIFF sample bytes")
    samples = [VoiceSample(str(sample), None, "sample"), VoiceSample(str(version), None, "model")]
    request = {"text": "Hello.", "options": {}}

    body, files = remote.timbre_body("classic", request, samples)
    model = body["samples"][1]
    assert model["role"] == "model" and model["transcript"] is None and files[model["sha256"]] == str(version)
    # The documented digest: one line per file, "<sha256> <size> <relative path>", sorted by path.
    lines = sorted([(name, data) for name, data in [("version.json", (version / "version.json").read_bytes()),
                                                   ("model.npz", b"weights"), ("sub/b.bin", b"bee")]], key=lambda x: x[0].encode())
    listing = "".join(f"{hashlib.sha256(d).hexdigest()} {len(d)} {n}\n" for n, d in lines)
    assert model["sha256"] == hashlib.sha256(listing.encode()).hexdigest()

    # Where it lies does not count, only what it holds; any change to a file does.
    copy = _version(tmp_path / "elsewhere", "classic", {"model.npz": b"weights", "sub/b.bin": b"bee"})
    (copy / "version.json").write_bytes((version / "version.json").read_bytes())
    assert remote.folder_digest(str(copy)) == model["sha256"]
    (copy / "sub" / "b.bin").write_bytes(b"bed")
    assert remote.folder_digest(str(copy)) != model["sha256"]

    # A qwen3 worker would ignore a classic version (its zero-shot clone speaks): it is not sent.
    body, files = remote.timbre_body("qwen3", request, samples)
    assert [s["role"] for s in body["samples"]] == ["sample"] and len(files) == 1
    # A version that cannot be read is the caller's to fix, as on the front's own engines.
    with pytest.raises(EngineInputError, match="activate another version"):
        remote.timbre_body("classic", request, [VoiceSample(str(tmp_path / "gone"), None, "model")])


def test_a_timbre_workers_engine_is_described_as_this_release_describes_it():
    described = remote.describe_timbre("workers", "classic")
    assert described["name"] == "workers" and described["available"] is True
    assert described["languages"] == ["en"] and "clone" in described["capabilities"]
    assert "remote Timbre nodes" in described["title"]
    with pytest.raises(ValueError, match="classic, qwen3, xtts"):
        remote.describe_timbre("workers", "tortoise")
