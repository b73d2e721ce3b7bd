"""ops/provenance: look for the provenance mark in files, without a running server.

    ops/provenance detect FILE... [--data DIR] [--json]

Reads the key ({data}/provenance.key) and the generation log ({data}/provenance.db) of a Timbre data
directory, decodes each file with ffmpeg (any format it reads, any length) and reports whether it
carries the mark, how strongly, where, and which logged clip its payload names. Exit status: 0 when
every file carries the mark, 1 when one does not, 2 on an error (no key, unreadable file).
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile

from .detect import THRESHOLD, Detection, detect
from .mark import Key, KeyError_, REFERENCE_RATE


def decode(path: Path, folder: Path) -> Path:
    out = folder / "decoded.wav"
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(REFERENCE_RATE),
         "-c:a", "pcm_f32le", "-f", "wav", "-y", str(out)],
        capture_output=True, text=True,
    )
    if run.returncode != 0:
        raise ValueError(f"{path}: ffmpeg could not decode it: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else 'unknown error'}")
    return out


def lookup(data: Path, tag: int | None) -> dict[str, object] | None:
    db = data / "provenance.db"
    if tag is None or not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        row = c.execute(
            "SELECT id, created_at, voice, engine, api_key, seconds FROM clips WHERE tag = ? ORDER BY created_at DESC LIMIT 1", (tag,)
        ).fetchone()
    if row is None:
        return None
    return dict(zip(("id", "createdAt", "voice", "engine", "apiKey", "seconds"), row))


def report(path: Path, found: Detection, clip: dict[str, object] | None) -> str:
    lines = [f"{path}: {'MARKED' if found.detected else 'no mark found'} (score {found.score:.1f}, threshold {THRESHOLD:.0f}; {found.seconds:.1f} s)"]
    if found.detected:
        if clip is not None:
            lines.append(f"  clip {clip['id']}: made {clip['createdAt']} with voice {clip['voice']} on {clip['engine']} (API key {clip['apiKey']})")
        elif found.payload_valid:
            lines.append("  its payload decoded, but the generation log has no such clip")
        else:
            lines.append("  made by this Timbre, but its payload could not be read (too short or too damaged)")
        marked = [w for w in found.windows if w.score >= THRESHOLD]
        if marked and len(marked) < len(found.windows):
            lines.append("  marked stretches: " + ", ".join(f"{w.start:.0f}-{w.end:.0f} s" for w in marked))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ops/provenance", description="Look for Timbre's provenance mark in recordings.")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("detect", help="look for the mark in files")
    d.add_argument("files", nargs="+", type=Path)
    d.add_argument("--data", type=Path, required=True, help="the Timbre data directory holding provenance.key")
    d.add_argument("--json", action="store_true", help="one JSON object per file")
    args = ap.parse_args(argv)

    try:
        key = Key.load(args.data / "provenance.key")
    except KeyError_ as e:
        print(f"ops/provenance: {e}. Point --data at the data directory of the Timbre that made the audio.", file=sys.stderr)
        return 2
    pattern = key.pattern()
    status = 0
    for path in args.files:
        try:
            with tempfile.TemporaryDirectory() as folder:
                audio, rate = soundfile.read(decode(path, Path(folder)), dtype="float32")
        except (ValueError, OSError, RuntimeError) as e:
            print(f"ops/provenance: {e}", file=sys.stderr)
            status = 2
            continue
        found = detect(audio, rate, pattern)
        clip = lookup(args.data, found.tag)
        if args.json:
            print(json.dumps({
                "file": str(path), "detected": found.detected, "score": found.score, "payloadValid": found.payload_valid,
                "clip": clip, "seconds": round(found.seconds, 3),
                "windows": [{"start": w.start, "end": w.end, "score": w.score} for w in found.windows],
            }))
        else:
            print(report(path, found, clip))
        if not found.detected and status == 0:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
