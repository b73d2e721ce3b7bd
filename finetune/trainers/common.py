"""What every trainer shares: its error, the dataset's metadata, options, and the version manifest."""
from __future__ import annotations

import json
import os
from typing import Any

from timbre.engines.versions import VERSION_FILE

from ..progress import Progress


class TrainingError(ValueError):
    """The run cannot go on; the message says what to change."""


def read_metadata(path: str) -> list[tuple[str, str]]:
    """The (clip, text) rows of a prepared dataset's metadata CSV."""
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("|", 1)) for line in f if "|" in line]  # type: ignore[misc]


def settings(engine: str, options: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """The trainer's defaults with the caller's options over them; an option it does not take is an error."""
    unknown = set(options or {}) - set(defaults)
    if unknown:
        raise TrainingError(f"unknown {engine} option(s) {', '.join(sorted(unknown))}; the {engine} trainer takes {', '.join(defaults)}")
    return {**defaults, **{k: v for k, v in (options or {}).items() if v is not None}}


def finish(out: str, manifest: dict[str, Any], progress: Progress, shown: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes version.json whole (the folder is a version only once it is there) and reports the result."""
    tmp = os.path.join(out, VERSION_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, os.path.join(out, VERSION_FILE))
    progress.result(version=os.path.abspath(out), **(shown if shown is not None else manifest))
    return manifest
