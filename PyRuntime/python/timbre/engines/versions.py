"""A voice's fine-tuned versions, as engines see them: a sample with role "model" naming a version
folder whose version.json says which engine trained it (finetune/trainers write them)."""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

from .protocol import EngineInputError, VoiceSample

VERSION_FILE = "version.json"


def active(samples: Sequence[VoiceSample], engine: str) -> tuple[str, dict[str, Any]] | None:
    """The folder and manifest of the voice's active version when `engine` trained it; None when the
    voice has none, or its version is another engine's (the zero-shot clone serves then)."""
    for sample in samples:
        if sample.role != "model":
            continue
        try:
            with open(os.path.join(sample.path, VERSION_FILE), encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise EngineInputError(f"the voice's active version is missing or unreadable ({sample.path}): activate another version", field="voice") from e
        if manifest.get("engine") == engine:
            return sample.path, manifest
    return None
