"""The qwen3 trainer: Qwen3-TTS's official fine-tuning scripts, with the traps ENGINES.md records defused.

Runs in the GPU environment (ops/install-gpu puts the upstream `finetuning/` folder beside the venv
and downloads the 12 Hz tokenizer). The flow:

1. check — the init model must be a local folder (sft_12hz.py copies it into every checkpoint); the
   shared ref_audio must be 24 kHz (the dataset code asserts it); the disk must hold a full model
   copy per epoch; the speaker name is lower-cased (generation looks names up in lower case).
2. codes — prepare_data.py adds `audio_codes` to the training JSONL (kept: a rerun skips it).
3. train — sft_12hz.py with its seven arguments; the learning rate defaults to 2e-6, not the
   script's 2e-5 (noise and no end of speech, upstream reports); its "Epoch e | Step s | Loss: x"
   lines become progress events. The script cannot resume (it drops the speaker encoder), so an
   interrupted run trains again from the init model, its codes kept.
4. select — every checkpoint-epoch-N speaks the held-out sentences (generate_custom_voice, language
   Auto: the script trains with the auto-language prefix) and is scored by its distance to the
   speaker's recordings; the closest is kept as the version's model/, the others deleted (each is
   a full copy of the model). The job's evaluation then compares it with the zero-shot clone.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any

import numpy as np
import soundfile as sf

from timbre.audio import read_mono
from timbre.engines.classic import mapping

from ..progress import Progress
from .child import LOSS_LINE, EpochClock, run
from .common import TrainingError, finish, read_metadata
from .common import settings as _settings

DEFAULTS: dict[str, Any] = {"lr": 2e-6, "num_epochs": 3, "batch_size": 2, "speaker_name": None, "init_model_path": None,
                            "tokenizer_model_path": None, "select_clips": 8}


def _size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def _check(dataset: str, init: str, scripts: str, out: str, epochs: int) -> None:
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise TrainingError("Qwen3's sft_12hz.py hard-codes flash-attention 2, which is not installed in this environment: "
                            "run ops/install-gpu --flash-attn")
    if not init or not os.path.isdir(init) or not os.path.isfile(os.path.join(init, "config.json")):
        raise TrainingError(f"init_model_path '{init}' is not a local model folder: the upstream script copies it into every "
                            "checkpoint, so download the Base model with ops/install-gpu and point Timbre:Engine:Qwen3:Model at its folder")
    for script in ("prepare_data.py", "sft_12hz.py", "dataset.py"):
        if not os.path.isfile(os.path.join(scripts, script)):
            raise TrainingError(f"{script} is not in {scripts or '(unset)'}: ops/install-gpu fetches Qwen3-TTS's finetuning/ "
                                "folder; set TIMBRE_QWEN3_SCRIPTS (Timbre:FineTuning:Qwen3Scripts) to it")
    with open(os.path.join(dataset, "qwen3_train.jsonl"), encoding="utf-8") as f:
        first = json.loads(f.readline())
    rate = sf.info(first["ref_audio"]).samplerate
    if rate != 24000:
        raise TrainingError(f"the dataset's ref_audio is {rate} Hz; Qwen3's fine-tuning asserts 24 kHz: prepare the dataset again")
    need = (epochs + 1) * _size(init)
    free = shutil.disk_usage(out).free
    if free < need:
        raise TrainingError(f"training writes a full model copy per epoch: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free "
                            "in the data directory; free space or train fewer epochs (num_epochs)")


def _speak(model: Any, text: str, speaker: str) -> tuple[np.ndarray, int]:
    wavs, rate = model.generate_custom_voice(text=text, speaker=speaker, language="Auto")
    audio = wavs[0]
    audio = audio.detach().float().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio, dtype=np.float32)
    return audio.reshape(-1), int(rate)


def _score(checkpoint: str, speaker: str, rows: list[tuple[str, str]], dataset: str, device: str) -> float:
    """Mean mel-cepstral distortion of the checkpoint's speech to the speaker's held-out recordings."""
    import torch
    from qwen_tts import Qwen3TTSModel

    model = Qwen3TTSModel.from_pretrained(checkpoint, device_map=device, dtype=torch.bfloat16)
    try:
        distances = []
        for clip, text in rows:
            audio, rate = _speak(model, text, speaker)
            real, real_rate = read_mono(os.path.join(dataset, "wavs", clip + ".wav"))
            distance = mapping.aligned_distortion(mapping.speech_cepstra(audio, rate)[1], mapping.speech_cepstra(real, real_rate)[1])
            # Speech at more than twice or half the speaker's length cannot be aligned: the worst score.
            distances.append(99.0 if distance is None else distance)
        return float(np.mean(distances))
    finally:
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def train(dataset: str, out: str, options: dict[str, Any] | None = None, progress: Progress | None = None,
          engine_options: dict[str, Any] | None = None) -> dict[str, Any]:
    progress = progress or Progress(stage="train")
    settings = _settings("qwen3", options, DEFAULTS)
    engine = engine_options or {}
    init = settings["init_model_path"] or engine.get("model") or ""
    device = str(engine.get("device") or "cuda:0")
    scripts = os.environ.get("TIMBRE_QWEN3_SCRIPTS", "")
    tokenizer = settings["tokenizer_model_path"] or os.environ.get("TIMBRE_QWEN3_TOKENIZER") or "Qwen/Qwen3-TTS-Tokenizer-12Hz"
    with open(os.path.join(dataset, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    speaker = str(settings["speaker_name"] or report.get("speaker") or "speaker").lower().replace(" ", "_")
    epochs = int(settings["num_epochs"])
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    _check(dataset, init, scripts, out, epochs)
    log = os.path.join(work, "upstream.log")

    codes = os.path.join(work, "codes.jsonl")
    if not os.path.exists(codes):
        progress.emit(stage="codes", message="encoding the clips with the 12 Hz tokenizer")
        run([os.path.join(scripts, "prepare_data.py"), "--device", device, "--tokenizer_model_path", tokenizer,
             "--input_jsonl", os.path.abspath(os.path.join(dataset, "qwen3_train.jsonl")), "--output_jsonl", codes + ".tmp"],
            scripts, progress, lambda line: None, log)
        os.replace(codes + ".tmp", codes)

    checkpoints = os.path.join(work, "checkpoints")
    done = [os.path.join(checkpoints, f"checkpoint-epoch-{e}") for e in range(epochs)]
    if not all(os.path.isdir(c) for c in done):
        if os.path.isdir(checkpoints):
            progress.warn("the upstream script cannot resume a run; training again from the init model (the codes are kept)")
            shutil.rmtree(checkpoints)
        with open(codes, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        per_epoch = math.ceil(lines / int(settings["batch_size"]))
        clock = EpochClock(per_epoch * epochs)

        def on_line(line: str) -> None:
            m = LOSS_LINE.search(line)
            if m:
                epoch, step, loss = int(m.group(1)), int(m.group(2)), float(m.group(3))
                done_steps = epoch * per_epoch + step + 1
                progress.emit(stage="train", epoch=epoch + 1, epochs=epochs, step=step, steps=per_epoch, loss=loss,
                              fraction=min(done_steps / clock.total, 0.999), eta_s=clock.eta(done_steps))

        run([os.path.join(scripts, "sft_12hz.py"), "--init_model_path", init, "--output_model_path", checkpoints,
             "--train_jsonl", codes, "--batch_size", str(settings["batch_size"]), "--lr", str(settings["lr"]),
             "--num_epochs", str(epochs), "--speaker_name", speaker], scripts, progress, on_line, log)

    rows = read_metadata(os.path.join(dataset, "metadata_eval.csv"))[: int(settings["select_clips"])]
    scores: list[dict[str, float]] = []
    for e, checkpoint in enumerate(done):
        if not os.path.isdir(checkpoint):
            raise TrainingError(f"the upstream script did not write {os.path.basename(checkpoint)}; see {log}")
        score = _score(checkpoint, speaker, rows, dataset, device) if rows else float(e)
        scores.append({"epoch": e + 1, "eval_distance_db": round(score, 3)})
        progress.emit(stage="select", epoch=e + 1, epochs=epochs, eval_loss=round(score, 3), fraction=(e + 1) / epochs,
                      message=f"checkpoint-epoch-{e}: {score:.2f} dB from the speaker")
    best = min(range(epochs), key=lambda e: scores[e]["eval_distance_db"])
    model_dir = os.path.join(out, "model")
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    os.replace(done[best], model_dir)
    shutil.rmtree(checkpoints)
    manifest = {
        "engine": "qwen3",
        "kind": "fine-tuned",
        "model_dir": "model",
        "speaker": speaker,
        "language": "Auto",
        "init_model": init,
        "training": {"lr": settings["lr"], "num_epochs": epochs, "batch_size": settings["batch_size"], "best_epoch": best + 1,
                     "checkpoints": scores, "clips": report.get("train_clips"), "minutes": report.get("minutes_train")},
    }
    return finish(out, manifest, progress)
