"""The xtts trainer against fakes of coqui's GPT recipe classes and Trainer that assert its contracts."""
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from finetune.progress import Progress
from finetune.trainers import xtts
from finetune.trainers.classic import TrainingError

from .conftest import calls as _calls

@pytest.fixture
def gpu(fake_gpu, tmp_path):
    """The fake GPU environment and an XTTS-v2 base folder; yields (base folder, call log path)."""
    base = tmp_path / "XTTS-v2"
    base.mkdir()
    for name in xtts.BASE_FILES:
        (base / name).write_text(json.dumps({"model": "xtts"}) if name == "config.json" else "weights")
    return str(base), fake_gpu


def test_the_recipe_trains_on_the_coqui_csvs_with_an_explicit_eval_list(dataset, gpu, tmp_path):
    base, log = gpu
    out = str(tmp_path / "version")
    events = io.StringIO()
    manifest = xtts.train(dataset[0], out, {"epochs": 2}, Progress("train", events), {"model_dir": base})
    calls = _calls(log)
    loaded = next(c for c in calls if c["call"] == "load_tts_samples")
    assert loaded["formatters"] == ["coqui"] and loaded["eval"] == dataset[1]["eval_clips"]
    init = next(c for c in calls if c["call"] == "GPTTrainer.init_from_config")
    assert init["lr"] == 5e-6 and init["epochs"] == 2 and (init["sample_rate"], init["output_sample_rate"]) == (22050, 24000)
    trainer = next(c for c in calls if c["call"] == "Trainer")
    assert trainer["grad_accum_steps"] == 84 and trainer["continue_path"] == "" and trainer["eval"] > 0
    assert sorted(os.listdir(os.path.join(out, "model"))) == ["best_model.pth", "config.json", "vocab.json"]
    assert manifest["engine"] == "xtts" and [e["epoch"] for e in manifest["training"]["eval"]] == [1, 2]
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    assert any(e["stage"] == "train" and "loss" in e and "eta_s" in e for e in lines)
    assert lines[-1]["type"] == "result"


def test_an_interrupted_run_continues_from_its_last_checkpoint(dataset, gpu, tmp_path):
    base, log = gpu
    out = str(tmp_path / "version")
    xtts.train(dataset[0], out, {"epochs": 1}, Progress("train", io.StringIO()), {"model_dir": base})
    os.remove(os.path.join(out, "version.json"))  # as if stopped before the end
    events = io.StringIO()
    xtts.train(dataset[0], out, {"epochs": 3}, Progress("train", events), {"model_dir": base})
    trainers = [c for c in _calls(log) if c["call"] == "Trainer"]
    assert trainers[0]["continue_path"] == "" and trainers[1]["continue_path"] == trainers[0]["output_path"]
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    assert any(e.get("message") == "resumed after epoch 1" for e in lines)
    assert [e["epoch"] for e in lines if e["stage"] == "train" and "eval_loss" in e] == [2, 3]


def test_the_engine_speaks_a_version_with_its_own_conditioning(dataset, gpu, tmp_path):
    from timbre.engines import SpeechRequest, VoiceSample, create

    base, log = gpu
    out = str(tmp_path / "version")
    xtts.train(dataset[0], out, {"epochs": 1}, Progress("train", io.StringIO()), {"model_dir": base})
    voice = tmp_path / "voice"
    voice.mkdir()
    shutil.copy(os.path.join(dataset[0], "ref.wav"), voice / "reference.wav")
    engine = create("xtts", {"model_dir": base, "accept_license": True})
    engine.load()
    reference = VoiceSample(str(voice / "reference.wav"), None, "reference")
    zero = engine.prepare_voice(str(voice), [reference])
    tuned = engine.prepare_voice(str(voice), [reference, VoiceSample(out, None, "model")])
    assert zero["cache_key"] != tuned["cache_key"] and tuned["version"] == out
    audio = np.concatenate(list(engine.stream(str(voice), [reference, VoiceSample(out, None, "model")], SpeechRequest("Hello there.", language="en"))))
    assert len(audio) > 2400
    checkpoints = [c for c in _calls(log) if c["call"] == "load_checkpoint"]
    assert checkpoints[-1]["checkpoint_path"] == os.path.join(out, "model", "best_model.pth")
    assert checkpoints[-1]["vocab_path"] == os.path.join(out, "model", "vocab.json")


def test_missing_base_files_and_an_unusable_eval_list_are_refused_before_training(dataset, gpu, tmp_path):
    base, log = gpu
    os.remove(os.path.join(base, "dvae.pth"))
    with pytest.raises(TrainingError, match="lacks dvae.pth"):
        xtts.train(dataset[0], str(tmp_path / "a"), {}, Progress("train", io.StringIO()), {"model_dir": base})
    with open(os.path.join(base, "dvae.pth"), "w") as f:
        f.write("weights")
    long_eval = tmp_path / "long"
    shutil.copytree(dataset[0], long_eval)
    rows = (long_eval / "xtts_eval.csv").read_text().splitlines()
    for row in rows[1:]:
        wav = long_eval / row.split("|")[0]
        x, sr = sf.read(wav, dtype="float32")
        sf.write(wav, np.tile(x, 6), sr)  # every held-out clip (2 s at least) now over 11.6 s
    with pytest.raises(TrainingError, match="none of the .* held-out clips is usable"):
        xtts.train(str(long_eval), str(tmp_path / "b"), {}, Progress("train", io.StringIO()), {"model_dir": base})
    with pytest.raises(TrainingError, match="unknown xtts option"):
        xtts.train(dataset[0], str(tmp_path / "c"), {"steps": 3}, Progress("train", io.StringIO()), {"model_dir": base})
    assert not any(c["call"] == "Trainer" for c in _calls(log))


def test_the_fake_trainer_fails_as_coqui_does_when_it_parses_the_command_line(dataset, gpu):
    from trainer import Trainer, TrainerArgs

    with pytest.raises(SystemExit):
        sys.argv = ["recipe", "--dataset", "x"]
        Trainer(TrainerArgs(), None, "out", parse_command_line_args=True)
