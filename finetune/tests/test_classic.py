"""The classic trainer, the engine speaking its versions, and the evaluation against zero-shot."""
import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from finetune.evaluate import evaluate, table
from finetune.progress import Progress
from finetune.speakers import say, sentences
from finetune.trainers import classic
from timbre.engines import SpeechRequest, VoiceSample, create
from timbre.engines.classic import mapping

from .conftest import SPEAKER


def test_training_reports_progress_and_writes_a_version(version):
    out, manifest, events = version
    assert set(os.listdir(out)) >= {"version.json", "model.npz", "work"}
    with open(os.path.join(out, "version.json"), encoding="utf-8") as f:
        assert json.load(f) == manifest
    assert manifest["engine"] == "classic" and manifest["mapping_strength"] == 0.75
    stages = [e["stage"] for e in events]
    assert stages.index("align") < stages.index("train") < stages.index("finish")
    epochs = [e for e in events if e["stage"] == "train" and "epoch" in e]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert all({"loss", "eval_loss", "eta_s", "epochs", "step"} <= set(e) for e in epochs)
    # The mapping brings flite's held-out frames much nearer the speaker's than they were.
    training = manifest["training"]
    assert training["eval_distortion_db"] < 0.85 * training["untrained_eval_distortion_db"]
    assert events[-1]["type"] == "result" and events[-1]["version"] == os.path.abspath(out)


def test_a_stopped_run_resumes_from_its_last_checkpoint(dataset, tmp_path):
    out = str(tmp_path / "run")
    first = io.StringIO()
    classic.train(dataset[0], out, {"max_iterations": 2, "strength": 0.5}, Progress("train", first))
    with open(os.path.join(out, "work", "state.json"), encoding="utf-8") as f:
        assert json.load(f)["iteration"] == 2
    second = io.StringIO()
    manifest = classic.train(dataset[0], out, {"max_iterations": 4, "strength": 0.5}, Progress("train", second))
    events = [json.loads(line) for line in second.getvalue().splitlines()]
    assert not any(e["stage"] == "align" for e in events)  # the aligned pairs were kept
    assert any(e.get("message") == "resumed after iteration 2" for e in events)
    assert [e["epoch"] for e in events if e["stage"] == "train" and "loss" in e] == [3, 4]
    assert manifest["training"]["iterations"] == 4


def test_the_engine_speaks_the_version_closer_to_the_speaker(version, tmp_path):
    out, manifest, _ = version
    engine = create("classic")
    engine.load()
    voice = tmp_path / "voice"
    voice.mkdir()
    sample = voice / "sample.wav"
    sf.write(sample, say(SPEAKER, " ".join(sentences(4, seed=99))), 24000)
    zero_shot = [VoiceSample(str(sample))]
    tuned = [*zero_shot, VoiceSample(out, None, "model")]
    text = "The tired doctor carried three green apples across the valley."
    _, target = mapping.speech_cepstra(say(SPEAKER, text), 24000)
    distances = {}
    for name, samples in (("zero_shot", zero_shot), ("tuned", tuned)):
        chunks = list(engine.stream(str(voice), samples, SpeechRequest(text)))
        audio = np.concatenate(chunks)
        assert len(audio) / engine.sample_rate > 1.5
        distances[name] = mapping.aligned_distortion(mapping.speech_cepstra(audio, engine.sample_rate)[1], target)
    assert distances["tuned"] < distances["zero_shot"] - 0.3, distances
    # A version for another engine is ignored: the zero-shot voice speaks.
    other = tmp_path / "qwen-version"
    other.mkdir()
    (other / "version.json").write_text(json.dumps({"engine": "qwen3"}))
    assert engine.prepare_voice(str(voice), [*zero_shot, VoiceSample(str(other), None, "model")]).get("kind") != "fine-tuned"


def test_a_missing_version_folder_is_a_clear_input_error(tmp_path):
    from timbre.engines.protocol import EngineInputError

    engine = create("classic")
    engine.load()
    sample = tmp_path / "s.wav"
    sf.write(sample, say(SPEAKER, "A short sentence to clone from, said twice over."), 24000)
    with pytest.raises(EngineInputError, match="active version is missing"):
        engine.prepare_voice(str(tmp_path), [VoiceSample(str(sample)), VoiceSample(str(tmp_path / "gone"), None, "model")])


def test_the_strength_is_the_strongest_that_keeps_the_words(dataset, version):
    from timbre.engines.classic.flite import Flite

    out, manifest, _ = version
    profile = {k: v for k, v in manifest.items()}
    profile["mapping"] = mapping.SpectralMap.load(os.path.join(out, "model.npz"))
    chosen, tried = classic._strength(Flite("rms"), dataset[0], profile, {"strength": None}, Progress("train", io.StringIO()))
    assert [t["strength"] for t in tried] == [0.0, *classic.STRENGTHS]
    floor = tried[0]["wer_pct"]
    keeping = [t["strength"] for t in tried[1:] if t["wer_pct"] <= floor + classic.MAX_WER_RISE]
    assert chosen == (max(keeping) if keeping else min(tried[1:], key=lambda t: (t["wer_pct"], -t["strength"]))["strength"])


def test_too_little_speech_and_unknown_options_are_refused(dataset, tmp_path):
    small = tmp_path / "small"
    shutil.copytree(dataset[0], small)
    rows = (small / "metadata_train.csv").read_text().splitlines()
    (small / "metadata_train.csv").write_text("\n".join(rows[:8]) + "\n")
    with pytest.raises(classic.TrainingError, match="needs at least 2 min"):
        classic.train(str(small), str(tmp_path / "out"), {}, Progress("train", io.StringIO()))
    with pytest.raises(classic.TrainingError, match="unknown classic option"):
        classic.train(dataset[0], str(tmp_path / "out2"), {"learning_rate": 1e-5}, Progress("train", io.StringIO()))


def test_evaluation_compares_the_version_with_zero_shot(dataset, version, tmp_path):
    out, _, _ = version
    voice = tmp_path / "voice"
    voice.mkdir()
    sf.write(voice / "sample.wav", say(SPEAKER, " ".join(sentences(4, seed=99))), 24000)
    events = io.StringIO()
    report = evaluate(dataset[0], str(voice), [{"path": str(voice / "sample.wav")}], out, max_clips=3, progress=Progress("evaluate", events))
    assert report["clips"] == 3
    for side in ("zero_shot", "candidate"):
        assert set(report[side]) == {"distance_db", "similarity", "wer_pct", "f0_distance_cents", "pace_distance"}
        assert 0 < report[side]["distance_db"] < 20 and 0 <= report[side]["wer_pct"] <= 200
    assert report["candidate"]["distance_db"] < report["zero_shot"]["distance_db"]
    better = report["candidate"]["wer_pct"] <= report["zero_shot"]["wer_pct"] + 5
    assert report["better"] == better
    assert "zero-shot" in table(report) and "fine-tuned" in table(report)
    assert [json.loads(line)["step"] for line in events.getvalue().splitlines()] == [1, 2, 3]


def test_the_command_line_trains_and_names_bad_input(dataset, tmp_path):
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    env = {**os.environ, "PYTHONPATH": f"{root}/PyRuntime/python:{root}"}
    done = subprocess.run(["/usr/bin/python3", "-m", "finetune", "train", "--engine", "classic", "--dataset", str(tmp_path / "nothing"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 2, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["type"] == "error" and "not a prepared dataset" in last["message"]
