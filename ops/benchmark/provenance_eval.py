"""ops/eval-provenance: the provenance mark against the attacks the field uses, on this machine.

Makes marked clips with the classic engine (at least 10 s each, from espeak-ng reference voices) and
unmarked clips of every kind at hand (the same engine unmarked, espeak-ng and flite voices, the
speech recordings in alsa-utils, noise, tones and sox-synthesised music-like signals), attacks them
with ffmpeg and sox, and prints per attack the true-positive rate, the false-positive rate, the
payload's accuracy and the scores, then the mark's quality (SNR, clipping, pocketsphinx WER) and
cost, against the targets of issue 15. Prints figures; it is not a test and never fails on them.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "PyRuntime" / "python"))

from timbre.provenance import THRESHOLD, Key, Marker, detect, embed  # noqa: E402

RATE = 24000
KEY = Key(bytes.fromhex("5f" * 32))
WRONG_KEYS = [Key(os.urandom(32)) for _ in range(5)]

SENTENCES = [
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
]
ESPEAK = ["en-us+f3", "en-us+m3", "en-gb+f4", "en-us+m7", "en-gb-scotland+f2", "en-us+f5", "en+m2", "en-gb+m4", "en-us+klatt", "en-029+f1"]
FLITE = ["kal", "awb", "rms", "slt", "kal16"]


def text(i: int, sentences: int) -> str:
    return " ".join(SENTENCES[(i * 7 + k) % len(SENTENCES)] for k in range(sentences))


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read(path: Path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate != RATE:
        from scipy.signal import resample_poly

        g = np.gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g).astype(np.float32)
    return x


# -- the clips ------------------------------------------------------------------------------------


def classic_clips(work: Path, count: int, sentences: int) -> list[np.ndarray]:
    from timbre.engines import SpeechRequest, VoiceSample, create

    engine = create("classic")
    engine.load()
    out = []
    for i in range(count):
        voice = ESPEAK[i % len(ESPEAK)]
        ref = work / f"ref-{i % len(ESPEAK)}.wav"
        if not ref.exists():
            run(["espeak-ng", "-v", voice, "-w", str(ref), SENTENCES[20] + " " + SENTENCES[25]])
        folder = work / f"voice-{i % len(ESPEAK)}"
        folder.mkdir(exist_ok=True)
        out.append(np.concatenate(list(engine.stream(str(folder), [VoiceSample(str(ref))], SpeechRequest(text(i, sentences))))))
    return out


def unmarked_clips(work: Path, count: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(15)
    clips: list[tuple[str, np.ndarray]] = [(f"classic unmarked {i}", x) for i, x in enumerate(classic_clips(work, count // 5, 3))]
    i = 0
    while len(clips) < count * 2 // 5:
        path = work / "espeak.wav"
        run(["espeak-ng", "-v", ESPEAK[i % len(ESPEAK)], "-s", str(140 + (i * 13) % 60), "-w", str(path), text(i, 2 + i % 3)])
        clips.append((f"espeak {ESPEAK[i % len(ESPEAK)]}", read(path)))
        i += 1
    i = 0
    while len(clips) < count // 2:
        path = work / "flite.wav"
        run(["flite", "-voice", FLITE[i % len(FLITE)], "-t", text(i + 3, 2 + i % 3), "-o", str(path)])
        clips.append((f"flite {FLITE[i % len(FLITE)]}", read(path)))
        i += 1
    recordings = sorted(Path("/usr/share/sounds/alsa").glob("*.wav"))
    for i, rec in enumerate(recordings * 8):
        # The eight recordings, each at several speeds and pitches (sox), so human speech is not a handful.
        path = work / "alsa.wav"
        run(["sox", str(rec), "-r", str(RATE), str(path), "speed", f"{0.8 + 0.05 * (i // len(recordings)):.2f}", "pad", "0", "0.5", "repeat", "2"])
        clips.append((f"alsa {rec.stem}", read(path)))
    while len(clips) < count * 3 // 5:
        seconds = 4 + rng.integers(0, 8)
        white = rng.normal(0, 1, seconds * RATE)
        colour = rng.integers(0, 3)
        if colour:  # pink (1/f) or brown (1/f^2) noise, shaped in the spectrum
            spectrum = np.fft.rfft(white)
            f = np.maximum(np.arange(len(spectrum)), 1)
            white = np.fft.irfft(spectrum / f ** (0.5 * colour), n=len(white))
        clips.append((["white", "pink", "brown"][colour] + " noise", (white / np.max(np.abs(white)) * rng.uniform(0.05, 0.9)).astype(np.float32)))
    while len(clips) < count * 4 // 5:
        t = np.arange((3 + rng.integers(0, 8)) * RATE) / RATE
        kind = rng.integers(0, 3)
        if kind == 0:
            x = sum(np.sin(2 * np.pi * rng.uniform(100, 4000) * t) for _ in range(rng.integers(1, 4)))
        elif kind == 1:
            f0, f1 = rng.uniform(50, 500), rng.uniform(1000, 8000)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        else:
            x = np.sin(2 * np.pi * rng.uniform(300, 3000) * t) * (np.sin(2 * np.pi * rng.uniform(1, 8) * t) > 0)
        clips.append((["tones", "sweep", "beeps"][kind], (x / np.max(np.abs(x)) * 0.5).astype(np.float32)))
    i = 0
    while len(clips) < count:
        path = work / "music.wav"
        notes = []
        for _ in range(4 + i % 6):
            chord = " ".join(f"{w} {rng.choice(['A', 'C', 'D', 'E', 'G'])}{rng.integers(2, 6)}" for w in rng.choice(["sine", "square", "triangle", "sawtooth", "pluck"], size=rng.integers(1, 4)))
            notes.append(chord)
        parts = []
        for k, chord in enumerate(notes):
            part = work / f"note-{k}.wav"
            run(["sox", "-n", "-r", str(RATE), str(part), "synth", f"{rng.uniform(0.3, 1.5):.2f}", *chord.split(), "fade", "0.02", "0", "0.1", "gain", "-12", "channels", "1"])
            parts.append(str(part))
        run(["sox", *parts, str(path), "tremolo", f"{rng.uniform(2, 8):.1f}", "40", "reverb", "30"])
        clips.append(("sox music", read(path)))
        i += 1
    return clips[:count]


# -- the attacks ----------------------------------------------------------------------------------


def ffmpeg(x: np.ndarray, encode: list[str], extension: str, decode: list[str] | None = None) -> np.ndarray:
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        src, mid, back = Path(d, "in.wav"), Path(d, f"mid.{extension}"), Path(d, "back.wav")
        sf.write(src, np.clip(x, -1, 1), RATE, subtype="PCM_16")
        run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *encode, str(mid)])
        run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(mid), *(decode or []), "-ac", "1", "-ar", str(RATE), str(back)])
        return read(back)


def sox(x: np.ndarray, effect: list[str]) -> np.ndarray:
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        src, out = Path(d, "in.wav"), Path(d, "out.wav")
        sf.write(src, np.clip(x, -1, 1), RATE, subtype="PCM_16")
        run(["sox", str(src), "-r", str(RATE), str(out), *effect])
        return read(out)


def noise(x: np.ndarray, pink: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.normal(0, 1, len(x))
    if pink:
        spectrum = np.fft.rfft(n)
        n = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n=len(n))
    power = np.mean(np.square(x, dtype=np.float64))
    return (x + n * np.sqrt(power / 100 / np.mean(n**2))).astype(np.float32)


def crop(x: np.ndarray, seconds: float, seed: int) -> np.ndarray:
    n = int(seconds * RATE)
    if len(x) <= n:
        return x
    start = np.random.default_rng(seed).integers(0, len(x) - n)
    return x[start : start + n]


ATTACKS: dict[str, tuple[str, object]] = {
    "none": ("W1", lambda x, s: x),
    "crop 3 s": ("W1", lambda x, s: crop(x, 3.0, s)),
    "mp3 64k": ("W2", lambda x, s: ffmpeg(x, ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3")),
    "mp3 32k": ("W3", lambda x, s: ffmpeg(x, ["-c:a", "libmp3lame", "-b:a", "32k"], "mp3")),
    "aac 64k": ("W4", lambda x, s: ffmpeg(x, ["-c:a", "aac", "-b:a", "64k"], "m4a")),
    "opus 32k": ("W5", lambda x, s: ffmpeg(x, ["-c:a", "libopus", "-b:a", "32k"], "ogg")),
    "opus 16k": ("W6", lambda x, s: ffmpeg(x, ["-c:a", "libopus", "-b:a", "16k"], "ogg")),
    "resample 16k": ("W7", lambda x, s: ffmpeg(x, ["-ar", "16000"], "wav")),
    "resample 44.1k": ("W7", lambda x, s: ffmpeg(x, ["-ar", "44100"], "wav")),
    "8 kHz, 300-3400 Hz": ("W8", lambda x, s: ffmpeg(x, ["-af", "highpass=f=300,lowpass=f=3400", "-ar", "8000"], "wav")),
    "gain +6 dB, clipped": ("W9", lambda x, s: np.clip(x * 2.0, -1, 1)),
    "gain -6 dB": ("W9", lambda x, s: x * 0.5),
    "white noise 20 dB": ("W10", lambda x, s: noise(x, False, s)),
    "pink noise 20 dB": ("W10", lambda x, s: noise(x, True, s)),
    "echo (aecho)": ("W11", lambda x, s: ffmpeg(x, ["-af", "aecho=0.8:0.88:60:0.4"], "wav")),
    "reverb (sox)": ("W11", lambda x, s: sox(x, ["reverb", "50"])),
    "crop 5 s off grid": ("W12", lambda x, s: crop(x, 5.0, s)),
    "speed +5 % (atempo)": ("W15", lambda x, s: ffmpeg(x, ["-af", "atempo=1.05"], "wav")),
    "speed -5 % (sox)": ("W15", lambda x, s: sox(x, ["speed", "0.95"])),
}
#: The attacks every unmarked clip goes through (W16: W2-W12).
NEGATIVE = [a for a, (w, _) in ATTACKS.items() if w not in ("W15",)]


@dataclass
class Outcome:
    attack: str
    marked: bool
    detected: bool
    score: float
    tag_ok: bool


_clips: dict[str, list] = {}


def _job(job: tuple[str, int, str]) -> Outcome:
    kind, i, attack = job
    x, tag = _clips[kind][i]
    y = ATTACKS[attack][1](x, i * 1000 + zlib.crc32(attack.encode()) % 1000)
    found = detect(y, RATE, KEY)
    return Outcome(attack, kind == "marked", found.detected, found.score, tag is not None and found.tag == tag)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--marked", type=int, default=50)
    ap.add_argument("--unmarked", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="timbre-provenance-"))
    t0 = time.perf_counter()
    print(f"eval-provenance: making {args.marked} marked clips (classic engine, >= 10 s) and {args.unmarked} unmarked ones", flush=True)
    originals = [x for x in classic_clips(work, args.marked, 5) if len(x) >= 10 * RATE]
    marked_pairs = []
    embed_seconds = 0.0
    for i, x in enumerate(originals):
        tag = int.from_bytes(KEY.derive(f"eval clip {i}")[:4], "big")
        start = time.process_time()
        y = embed(x, RATE, KEY, tag)
        embed_seconds += time.process_time() - start
        marked_pairs.append((x, y, tag))
    unmarked = unmarked_clips(work, args.unmarked)
    print(f"eval-provenance: clips ready in {time.perf_counter() - t0:.0f} s ({len(marked_pairs)} marked, {len(unmarked)} unmarked)", flush=True)

    _clips["marked"] = [(y, tag) for _, y, tag in marked_pairs]
    _clips["unmarked"] = [(x, None) for _, x in unmarked]
    jobs = [("marked", i, a) for i in range(len(marked_pairs)) for a in ATTACKS]
    jobs += [("unmarked", i, a) for i in range(len(unmarked)) for a in NEGATIVE]
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        outcomes = pool.map(_job, jobs, chunksize=16)

    print()
    print(f"| id | attack | TPR (marked, n={len(marked_pairs)}) | payload exact | marked score min / median | FPR (unmarked, n={len(unmarked)}) | unmarked score max |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for attack, (wid, _) in ATTACKS.items():
        pos = [o for o in outcomes if o.attack == attack and o.marked]
        neg = [o for o in outcomes if o.attack == attack and not o.marked]
        tpr = sum(o.detected for o in pos) / len(pos)
        tags = sum(o.tag_ok for o in pos) / len(pos)
        scores = sorted(o.score for o in pos)
        fpr = f"{sum(o.detected for o in neg)} / {len(neg)}" if neg else "—"
        worst = f"{max(o.score for o in neg):.1f}" if neg else "—"
        print(f"| {wid} | {attack} | {tpr:.1%} | {tags:.1%} | {scores[0]:.1f} / {scores[len(scores) // 2]:.1f} | {fpr} | {worst} |")

    wrong = [detect(y, RATE, k) for _, y, _ in marked_pairs for k in WRONG_KEYS]
    print(f"\nW16 wrong key: {sum(f.detected for f in wrong)} detections in {len(wrong)} checks (marked clips, {len(WRONG_KEYS)} other keys); highest score {max(f.score for f in wrong):.1f}")

    # W13: 5 s of a marked clip spliced into 20 s of unmarked speech, found and located.
    located = 0
    for i, (x, y, tag) in enumerate(marked_pairs):
        host = np.concatenate([u for _, u in unmarked[i * 3 : i * 3 + 6]])[: 20 * RATE]
        at = 5 * RATE + (i * 7919) % (8 * RATE)
        spliced = np.concatenate([host[:at], y[2 * RATE : 7 * RATE], host[at:]])
        found = detect(spliced, RATE, KEY)
        hits = [w for w in found.windows if w.score >= THRESHOLD]
        start = at / RATE
        if found.detected and hits and all(w.end > start and w.start < start + 5 for w in hits):
            located += 1
    print(f"W13 splice: 5 s marked inside 20 s unmarked found and located in {located} of {len(marked_pairs)}")

    # W14: chunked equals whole, for chunk sizes from 1 to 4800 samples.
    rng = np.random.default_rng(14)
    worst = 0.0
    for x, y, tag in marked_pairs[:5]:
        for size in (1, 7, 480, 1024, 4800, None):
            m = Marker(KEY, tag, RATE)
            sizes = rng.integers(1, 4801, size=len(x)) if size is None else None
            parts, i, k = [], 0, 0
            while i < len(x):
                n = int(sizes[k]) if sizes is not None else size
                parts.append(m.push(x[i : i + n]))
                i, k = i + n, k + 1
            parts.append(m.finish())
            worst = max(worst, float(np.max(np.abs(np.concatenate(parts) - y))))
    print(f"W14 chunked vs whole: largest difference {worst:.2e} (target 1e-6)")

    # W17: quality.
    snr = [10 * np.log10(np.sum(np.square(x, dtype=np.float64)) / np.sum(np.square(y.astype(np.float64) - x))) for x, y, _ in marked_pairs]
    clipped = sum(int(np.sum(np.abs(y) >= 1.0)) for _, y, _ in marked_pairs)
    from timbre.asr import Recognizer, word_errors

    asr = Recognizer()
    errors_plain = errors_marked = words = 0
    checked = marked_pairs[:20]
    for i, (x, y, _) in enumerate(checked):
        ref = text(i, 5)
        e, n = word_errors(ref, asr.transcribe(x, RATE))
        errors_plain += e
        words += n
        errors_marked += word_errors(ref, asr.transcribe(y, RATE))[0]
    print(f"W17 quality: SNR min {min(snr):.1f} dB, median {np.median(snr):.1f} dB; {clipped} samples at full scale; "
          f"pocketsphinx WER {errors_plain / words:.1%} unmarked vs {errors_marked / words:.1%} marked ({len(checked)} clips, {words} words)")

    # W18: cost.
    audio = sum(len(x) for x, _, _ in marked_pairs) / RATE
    sixty = np.concatenate([y for _, y, _ in marked_pairs[:8]])[: 60 * RATE]
    detect(sixty, RATE, KEY)
    start = time.perf_counter()
    detect(sixty, RATE, KEY)
    print(f"W18 cost: embedding {audio / embed_seconds:.0f}x real time on one core; a 60 s file detected in {time.perf_counter() - start:.2f} s")
    print(f"eval-provenance: done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
