"""ops/eval-finetune: the fine-tuning gates, measured on speakers made by other synthesisers.

For each speaker: ten minutes of their speech as two long recordings with transcripts, prepared
(timed), a classic version trained on one core (timed), and the result evaluated against the
zero-shot classic clone enrolled from 15 s of the same speaker, on held-out sentences.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time

import soundfile as sf

from finetune.evaluate import evaluate, table
from finetune.prepare import prepare
from finetune.progress import Progress
from finetune.speakers import SPEAKERS, recording, say, sentences
from finetune.trainers import classic

GATES = {"prepare_s": 60.0, "train_s": 300.0, "wer_slack_points": 5.0, "wer_abs_pct": 30.0}


def run(speaker: str, minutes: float, root: str, clips: int) -> dict:
    folder = os.path.join(root, speaker)
    os.makedirs(os.path.join(folder, "recordings"))
    # About 3.3 s a sentence with its pause: minutes of speech in two takes.
    texts = sentences(int(minutes * 60 / 3.3), seed=7)
    half = len(texts) // 2
    files = []
    for k, part in enumerate((texts[:half], texts[half:])):
        path = os.path.join(folder, "recordings", f"take-{k + 1}.wav")
        recording(speaker, part, path, seed=k)
        files.append(path)
    quiet = Progress("prepare", io.StringIO())
    t = time.perf_counter()
    report = prepare(files, os.path.join(folder, "dataset"), speaker=speaker, progress=quiet)
    prepare_s = time.perf_counter() - t
    # One core, as the job runner gives a classic run.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    t = time.perf_counter()
    manifest = classic.train(os.path.join(folder, "dataset"), os.path.join(folder, "version"), progress=Progress("train", io.StringIO()))
    train_s = time.perf_counter() - t
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    voice = os.path.join(folder, "voice")
    os.makedirs(voice)
    # The zero-shot clone: 15 s of the same speaker, other sentences.
    sf.write(os.path.join(voice, "sample.wav"), say(speaker, " ".join(sentences(5, seed=1234))), 24000)
    result = evaluate(os.path.join(folder, "dataset"), voice, [{"path": os.path.join(voice, "sample.wav")}],
                      os.path.join(folder, "version"), max_clips=clips, progress=Progress("evaluate", io.StringIO()))
    return {"speaker": speaker, "minutes_kept": report["minutes_kept"], "prepare_s": prepare_s, "train_s": train_s,
            "components": manifest["training"]["components"], "iterations": manifest["training"]["iterations"], "eval": result}


def first_audio_ms(engine, voice_dir: str, samples, n: int = 15) -> float:
    """Median time to the first chunk of a one-sentence request, one request at a time (c=1)."""
    from timbre.engines import SpeechRequest, VoiceSample

    voice = [VoiceSample(p) for p in samples]
    times = []
    for i in range(n):
        t = time.perf_counter()
        stream = engine.stream(voice_dir, voice, SpeechRequest(f"Request number {i} is a short sentence, spoken now."))
        next(stream)
        times.append(1000 * (time.perf_counter() - t))
        stream.close()
    return float(sorted(times)[len(times) // 2])


def serving_during_training(root: str) -> tuple[float, float]:
    """c=1 first audio of the classic engine idle, then while a classic training run (a child process
    on one core at lower priority, as the job runner starts it) aligns and trains beside it."""
    import subprocess

    from timbre.engines import create

    dataset = os.path.join(root, "espeak-female", "dataset")
    voice = os.path.join(root, "espeak-female", "voice")
    engine = create("classic")
    engine.load()
    samples = [os.path.join(voice, "sample.wav")]
    first_audio_ms(engine, voice, samples, 3)  # warm: the voice's profile is cached
    idle = first_audio_ms(engine, voice, samples)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "finetune", "train", "--engine", "classic", "--dataset", dataset,
                              "--out", os.path.join(root, "busy"), "--cores", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(3)
        busy = first_audio_ms(engine, voice, samples)
    finally:
        child.kill()
        child.wait()
    return idle, busy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clips", type=int, default=15, help="held-out sentences evaluated per speaker")
    parser.add_argument("--speakers", nargs="*", default=["espeak-female", "espeak-male-gb", "flite-awb"], choices=sorted(SPEAKERS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for speaker in args.speakers:
            print(f"eval-finetune: {speaker}: {args.minutes:.0f} min of speech …", file=sys.stderr, flush=True)
            row = run(speaker, args.minutes, root, args.clips)
            print(table(row["eval"]), file=sys.stderr, flush=True)
            rows.append(row)
        idle_ms = busy_ms = None
        if "espeak-female" in args.speakers:
            idle_ms, busy_ms = serving_during_training(root)
    print()
    header = f"{'speaker':16} {'kept':>6} {'prepare':>8} {'train':>7} {'MCD zs':>7} {'MCD ft':>7} {'WER zs':>7} {'WER ft':>7} {'F0 zs':>6} {'F0 ft':>6} {'floor':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        e = r["eval"]
        print(f"{r['speaker']:16} {r['minutes_kept']:5.1f}m {r['prepare_s']:7.1f}s {r['train_s']:6.1f}s "
              f"{e['zero_shot']['distance_db']:7.2f} {e['candidate']['distance_db']:7.2f} "
              f"{e['zero_shot']['wer_pct']:6.1f}% {e['candidate']['wer_pct']:6.1f}% "
              f"{e['zero_shot']['f0_distance_cents']:6.0f} {e['candidate']['f0_distance_cents']:6.0f} {e['speaker_wer_pct']:5.1f}%")
    checks = []
    for r in rows:
        e = r["eval"]
        checks += [
            (f"{r['speaker']}: fine-tuned closer to the speaker (MCD)", e["candidate"]["distance_db"] < e["zero_shot"]["distance_db"]),
            (f"{r['speaker']}: WER no more than 5 points worse", e["candidate"]["wer_pct"] <= e["zero_shot"]["wer_pct"] + GATES["wer_slack_points"]),
            (f"{r['speaker']}: WER <= 30 %", e["candidate"]["wer_pct"] <= GATES["wer_abs_pct"]),
            (f"{r['speaker']}: prepared in < 60 s ({r['prepare_s']:.0f} s)", r["prepare_s"] < GATES["prepare_s"]),
            (f"{r['speaker']}: trained in < 5 min on one core ({r['train_s']:.0f} s)", r["train_s"] < GATES["train_s"]),
        ]
    if idle_ms is not None and busy_ms is not None:
        print(f"\nspeech while a classic job trains (c=1 first audio, engine in-process): idle {idle_ms:.0f} ms, during training {busy_ms:.0f} ms ({busy_ms / idle_ms:.2f}x)")
        checks.append((f"first audio during training within 2x idle ({busy_ms / idle_ms:.2f}x)", busy_ms <= 2 * idle_ms))
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    print(json.dumps(rows, default=lambda o: None), file=open(os.environ.get("TIMBRE_EVAL_JSON", os.devnull), "w"))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
