"""The xtts trainer: coqui's GPT fine-tuning recipe for XTTS-v2 (xtts_recipe.py) as a child process.

Runs in the GPU environment. Checks first what the recipe needs and fails on late: the base model's
dvae.pth, mel_stats.pth, model.pth, vocab.json and config.json (ops/install-gpu downloads them), and
a non-empty eval list once clips over 11.6 s (max_wav_length at 22.05 kHz) are dropped. The run
continues an interrupted one from its last checkpoint (coqui's continue_path). The version keeps
best_model.pth with the base vocab and config, which is how ENGINES.md says to load it; the voice's
reference recording still conditions it at synthesis.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
from typing import Any

import soundfile as sf

from ..progress import Progress
from .child import EpochClock, run
from .common import TrainingError, finish
from .common import settings as _settings

DEFAULTS: dict[str, Any] = {"epochs": 10, "batch_size": 3, "grad_accum_steps": 84, "lr": 5e-6, "base_dir": None}
BASE_FILES = ("dvae.pth", "mel_stats.pth", "model.pth", "vocab.json", "config.json")
MAX_WAV_S = 255995 / 22050


def _rows(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("|") for line in f][1:]


def _usable(dataset: str, name: str) -> tuple[int, int]:
    """(clips in the coqui CSV, clips the recipe keeps: at most 11.6 s and 200 characters of text)."""
    rows = _rows(os.path.join(dataset, name))
    kept = [r for r in rows if sf.info(os.path.join(dataset, r[0])).duration <= MAX_WAV_S and 0 < len(r[1]) <= 200]
    return len(rows), len(kept)


def train(dataset: str, out: str, options: dict[str, Any] | None = None, progress: Progress | None = None,
          engine_options: dict[str, Any] | None = None) -> dict[str, Any]:
    progress = progress or Progress(stage="train")
    settings = _settings("xtts", options, DEFAULTS)
    base = settings["base_dir"] or (engine_options or {}).get("model_dir") or ""
    missing = [f for f in BASE_FILES if not os.path.isfile(os.path.join(base, f))]
    if not base or missing:
        raise TrainingError(f"the XTTS-v2 base model folder '{base}' lacks {', '.join(missing or BASE_FILES)}: the GPT recipe needs the "
                            "base DVAE, mel statistics, checkpoint and vocabulary; download coqui/XTTS-v2 with ops/install-gpu "
                            "and set Timbre:Engine:Xtts:ModelDir to it")
    import importlib.util

    if importlib.util.find_spec("trainer") is None or importlib.util.find_spec("TTS") is None:
        raise TrainingError("coqui-tts and its trainer are not installed in this environment: run ops/install-gpu --engines xtts")
    total, kept = _usable(dataset, "xtts_eval.csv")
    if kept == 0:
        raise TrainingError(f"none of the {total} held-out clips is usable by the XTTS recipe (at most {MAX_WAV_S:.1f} s and 200 characters): "
                            "prepare the dataset with shorter clips or more speech")
    train_total, train_kept = _usable(dataset, "xtts_train.csv")
    if train_kept < train_total:
        progress.warn(f"{train_total - train_kept} of {train_total} training clips are longer than {MAX_WAV_S:.1f} s or 200 characters; the recipe drops them")

    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    epochs = int(settings["epochs"])
    steps_total = max(1, -(-train_kept // int(settings["batch_size"]))) * epochs
    clock = EpochClock(steps_total)
    state: dict[str, Any] = {"run": None, "eval": []}

    def on_line(line: str) -> None:
        if not line.startswith("TIMBRE_EVENT "):
            return
        e = json.loads(line[len("TIMBRE_EVENT "):])
        if e["kind"] == "step":
            progress.emit(stage="train", epoch=e["epoch"], epochs=epochs, step=e["step"], steps=steps_total, loss=e.get("loss"),
                          fraction=min(e["step"] / steps_total, 0.999), eta_s=clock.eta(e["step"]))
        elif e["kind"] == "epoch":
            state["eval"].append({"epoch": e["epoch"], "eval_loss": e.get("eval_loss")})
            progress.emit(stage="train", epoch=e["epoch"], epochs=epochs, eval_loss=e.get("eval_loss"), fraction=e["epoch"] / epochs)
        elif e["kind"] == "resumed":
            progress.emit(stage="train", message=f"resumed after epoch {e['epoch']}", epoch=e["epoch"])
        elif e["kind"] == "done":
            state["run"] = e["run"]

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run(["-m", "finetune.trainers.xtts_recipe", "--dataset", os.path.abspath(dataset), "--base", base, "--out", os.path.join(work, "runs"),
         "--epochs", str(epochs), "--batch-size", str(settings["batch_size"]), "--grad-accum", str(settings["grad_accum_steps"]),
         "--lr", str(settings["lr"])], here, progress, on_line, os.path.join(work, "recipe.log"))
    best = os.path.join(state["run"] or "", "best_model.pth")
    if not state["run"] or not os.path.isfile(best):
        found = sorted(glob.glob(os.path.join(work, "runs", "*", "best_model.pth")), key=os.path.getmtime)
        if not found:
            raise TrainingError(f"the recipe wrote no best_model.pth; see {os.path.join(work, 'recipe.log')}")
        best = found[-1]
    model = os.path.join(out, "model")
    os.makedirs(model, exist_ok=True)
    shutil.copy(best, os.path.join(model, "best_model.pth"))
    for name in ("vocab.json", "config.json"):
        shutil.copy(os.path.join(base, name), os.path.join(model, name))
    manifest = {"engine": "xtts", "kind": "fine-tuned", "model_dir": "model", "checkpoint": "best_model.pth", "vocab": "vocab.json",
                "config": "config.json", "base_model": base,
                "training": {"epochs": epochs, "lr": settings["lr"], "batch_size": settings["batch_size"],
                             "grad_accum_steps": settings["grad_accum_steps"], "clips": train_kept, "eval": state["eval"]}}
    return finish(out, manifest, progress)
