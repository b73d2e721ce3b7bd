"""On-disk cache of prepared voices, inside each voice's own folder."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Sequence

from .engines.protocol import VoiceSample


def samples_key(engine: str, version: str, samples: Sequence[VoiceSample]) -> str:
    """Key by engine, engine version and the exact bytes and transcripts of the samples."""
    h = hashlib.sha256(f"{engine}:{version}".encode())
    for s in samples:
        with open(s.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0" + (s.transcript or "").encode() + b"\0")
    return h.hexdigest()[:32]


def cache_path(voice_dir: str, engine: str, key: str, suffix: str) -> str:
    return os.path.join(voice_dir, "cache", f"{engine}-{key}{suffix}")


def read_json(path: str) -> dict[str, object] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json_atomic(path: str, value: dict[str, object]) -> None:
    """Write then rename, so a crash never leaves a half-written cache entry."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
