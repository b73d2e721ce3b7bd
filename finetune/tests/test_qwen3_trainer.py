"""The qwen3 trainer against fakes of Qwen3-TTS's scripts and package that assert the upstream contracts."""
import io
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from finetune.progress import Progress
from finetune.trainers import qwen3
from finetune.trainers.classic import TrainingError

from .conftest import FAKES
from .conftest import calls as _calls

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPTS = os.path.join(FAKES, "qwen3_finetuning")


@pytest.fixture
def gpu(fake_gpu, tmp_path, monkeypatch):
    """The fake GPU environment with the upstream scripts' folder and a local Base model folder;
    yields (model folder, call log path)."""
    monkeypatch.setenv("TIMBRE_QWEN3_SCRIPTS", SCRIPTS)
    base = tmp_path / "Qwen3-TTS-12Hz-1.7B-Base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"tts_model_type": "base", "talker_config": {}}))
    (base / "model.safetensors").write_bytes(b"base weights")
    return str(base), fake_gpu


def test_the_official_flow_runs_with_a_low_learning_rate_and_keeps_the_closest_checkpoint(dataset, gpu, tmp_path):
    base, log = gpu
    out = str(tmp_path / "version")
    events = io.StringIO()
    manifest = qwen3.train(dataset[0], out, {"num_epochs": 2, "select_clips": 2}, Progress("train", events), {"model": base, "device": "cuda:0"})
    calls = _calls(log)
    prepare = next(c for c in calls if c["call"] == "prepare_data")
    assert prepare["args"]["tokenizer_model_path"] == "Qwen/Qwen3-TTS-Tokenizer-12Hz"
    assert prepare["args"]["input_jsonl"].endswith("qwen3_train.jsonl")
    sft = next(c for c in calls if c["call"] == "sft_12hz")
    assert sft["args"] == {"init_model_path": base, "output_model_path": os.path.join(out, "work", "checkpoints"),
                           "train_jsonl": os.path.join(out, "work", "codes.jsonl"), "batch_size": 2, "lr": 2e-06,
                           "num_epochs": 2, "speaker_name": "gb"}
    # The kept checkpoint is a CustomVoice model with the speaker registered; the other is gone.
    with open(os.path.join(out, "model", "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["tts_model_type"] == "custom_voice" and config["talker_config"]["spk_id"] == {"gb": 3000}
    assert not os.path.exists(os.path.join(out, "work", "checkpoints"))
    assert manifest["engine"] == "qwen3" and manifest["speaker"] == "gb" and manifest["language"] == "Auto"
    assert [c["epoch"] for c in manifest["training"]["checkpoints"]] == [1, 2]
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    train = [e for e in lines if e["stage"] == "train" and "loss" in e]
    assert train and {e["epoch"] for e in train} == {1, 2} and all("eta_s" in e or e["fraction"] == 0 for e in train)
    assert [e["epoch"] for e in lines if e["stage"] == "select"] == [1, 2]
    # Each checkpoint spoke the held-out sentences with its speaker, language Auto.
    spoken = [c for c in calls if c["call"] == "generate_custom_voice"]
    assert len(spoken) == 4 and all(c["speaker"] == "gb" and c["language"] == "Auto" for c in spoken)


def test_the_engine_speaks_the_version_and_the_evaluation_compares_it_with_zero_shot(dataset, gpu, tmp_path):
    from finetune.evaluate import evaluate
    from timbre.engines import SpeechRequest, VoiceSample, create

    base, log = gpu
    out = str(tmp_path / "version")
    qwen3.train(dataset[0], out, {"num_epochs": 1, "select_clips": 1}, Progress("train", io.StringIO()), {"model": base})
    voice = tmp_path / "voice"
    voice.mkdir()
    shutil.copy(os.path.join(dataset[0], "ref.wav"), voice / "prompt.wav")
    samples = [{"path": str(voice / "prompt.wav"), "transcript": "A reference.", "role": "prompt"}]
    engine = create("qwen3", {"model": base})
    engine.load()
    audio = np.concatenate(list(engine.stream(str(voice), [VoiceSample(**samples[0]), VoiceSample(out, None, "model")], SpeechRequest("Hello there. How are you?"))))
    assert len(audio) > 24000 * 0.5
    assert any(c["call"] == "generate_custom_voice" and c["speaker"] == "gb" for c in _calls(log))
    report = evaluate(dataset[0], str(voice), samples, out, "qwen3", {"model": base}, max_clips=2, progress=Progress("evaluate", io.StringIO()))
    assert report["engine"] == "qwen3" and report["clips"] == 2
    assert {"distance_db", "wer_pct"} <= set(report["candidate"]) and {"distance_db", "wer_pct"} <= set(report["zero_shot"])


def test_upstream_traps_are_refused_before_anything_runs(dataset, gpu, tmp_path, monkeypatch):
    base, log = gpu
    run = lambda options, engine: qwen3.train(dataset[0], str(tmp_path / "out"), options, Progress("train", io.StringIO()), engine)  # noqa: E731
    with pytest.raises(TrainingError, match="not a local model folder"):
        run({}, {"model": "Qwen/Qwen3-TTS-12Hz-1.7B-Base"})
    with pytest.raises(TrainingError, match="unknown qwen3 option"):
        run({"learning_rate": 1e-4}, {"model": base})
    odd = tmp_path / "odd-dataset"
    shutil.copytree(dataset[0], odd)
    x, _ = sf.read(odd / "ref.wav", dtype="float32")
    sf.write(odd / "ref.wav", x[::2], 12000)
    lines = [json.loads(line) for line in open(odd / "qwen3_train.jsonl", encoding="utf-8")]
    with open(odd / "qwen3_train.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({**line, "ref_audio": str(odd / "ref.wav")}) + "\n" for line in lines)
    with pytest.raises(TrainingError, match="asserts 24 kHz"):
        qwen3.train(str(odd), str(tmp_path / "out2"), {}, Progress("train", io.StringIO()), {"model": base})
    monkeypatch.setenv("TIMBRE_QWEN3_SCRIPTS", str(tmp_path / "nowhere"))
    with pytest.raises(TrainingError, match="prepare_data.py is not in"):
        run({}, {"model": base})
    assert not any(c["call"] in ("prepare_data", "sft_12hz") for c in _calls(log))


def test_the_fake_script_fails_as_upstream_does_without_flash_attention(dataset, gpu, tmp_path, monkeypatch):
    base, _ = gpu
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([FAKES, os.path.join(ROOT, "PyRuntime", "python"), ROOT]))
    monkeypatch.setattr(qwen3, "_check", lambda *a: None)  # the trainer's own check would refuse first
    with pytest.raises(RuntimeError, match="flash_attn seems to be not installed"):
        qwen3.train(dataset[0], str(tmp_path / "out"), {"num_epochs": 1}, Progress("train", io.StringIO()), {"model": base})
