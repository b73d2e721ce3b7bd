"""ops/install-gpu's configuration reaches the engines as they take it; ops/check-gpu reports every engine."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FAKES = os.path.join(os.path.dirname(__file__), "fakes")
sys.path.insert(0, os.path.join(ROOT, "ops", "gpu"))

from check_gpu import engine_options  # noqa: E402

from timbre.engines import create  # noqa: E402


def _install_plan(tmp_path, *extra):
    result = subprocess.run(
        [os.path.join(ROOT, "ops", "install-gpu"), "--dry-run", "--python", "/usr/bin/python3",
         "--models-dir", str(tmp_path / "models"), "--venv", str(tmp_path / "venv"), *extra],
        capture_output=True, text=True, check=True)
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("Timbre__"))
    return result.stdout, env


def test_install_gpu_configures_both_engines_with_the_licence_accepted(tmp_path):
    plan, env = _install_plan(tmp_path, "--accept-xtts-license", "--flash-attn")
    assert "download.pytorch.org/whl/cu128" in plan and "coqui-tts>=0.27.3" in plan and "flash-attn" in plan
    assert env["Timbre__Python__Executable"] == str(tmp_path / "venv" / "bin" / "python")
    assert env["Timbre__Engine__Default"] == "qwen3"
    qwen3 = engine_options("qwen3", env)
    xtts = engine_options("xtts", env)
    assert qwen3 == {"model": str(tmp_path / "models" / "Qwen3-TTS-12Hz-1.7B-Base"), "dtype": "bfloat16", "device": "cuda:0"}
    assert xtts == {"model_dir": str(tmp_path / "models" / "XTTS-v2"), "accept_license": True, "device": "cuda"}
    # Every setting is one the engines take.
    create("qwen3", qwen3)
    create("xtts", xtts)


def test_install_gpu_leaves_xtts_out_unless_its_licence_is_accepted(tmp_path):
    plan, env = _install_plan(tmp_path)
    assert "Coqui Public Model License" in plan and "coqui-tts" not in plan
    assert not any(k.startswith("Timbre__Engine__Xtts") for k in env)


def test_install_gpu_refuses_an_unknown_engine(tmp_path):
    result = subprocess.run([os.path.join(ROOT, "ops", "install-gpu"), "--dry-run", "--engines", "bark"], capture_output=True, text=True)
    assert result.returncode != 0 and "qwen3 and/or xtts" in result.stderr


def test_check_gpu_reports_time_to_first_audio_for_every_available_engine(tmp_path):
    model = tmp_path / "xtts"
    model.mkdir()
    for name in ("model.pth", "vocab.json"):
        (model / name).write_text("weights")
    (model / "config.json").write_text(json.dumps({}))
    env = {**os.environ, "PYTHONPATH": FAKES, "Timbre__Engine__Xtts__ModelDir": str(model),
           "Timbre__Engine__Xtts__AcceptLicense": "true", "Timbre__Python__Executable": "/usr/bin/python3"}
    env.pop("TIMBRE_FAKE_CUDA", None)
    result = subprocess.run([os.path.join(ROOT, "ops", "check-gpu")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {"classic", "qwen3", "xtts"}
    assert all("first audio" in line and "RTF" in line for line in lines.values())


def test_check_gpu_says_why_an_engine_cannot_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": FAKES, "TIMBRE_FAKE_CUDA": "0", "Timbre__Python__Executable": "/usr/bin/python3"}
    result = subprocess.run([os.path.join(ROOT, "ops", "check-gpu"), "--engines", "qwen3"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "unavailable: no CUDA GPU visible to torch" in result.stdout
