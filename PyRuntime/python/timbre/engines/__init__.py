"""Engine registry: every engine Timbre knows, created on demand and described without loading."""
from __future__ import annotations

import importlib
from typing import Any

from .protocol import Engine, EngineInputError, EngineUnavailableError, SpeechRequest, VoiceSample

__all__ = ["Engine", "EngineInputError", "EngineUnavailableError", "SpeechRequest", "VoiceSample", "create", "describe", "NAMES"]

# name → (module, class); modules are imported only when the engine is used or described.
_CLASSES = {
    "classic": ("timbre.engines.classic.engine", "ClassicEngine"),
    "qwen3": ("timbre.engines.qwen3", "Qwen3Engine"),
    "xtts": ("timbre.engines.xtts", "XttsEngine"),
}
NAMES = tuple(_CLASSES)


def _class(name: str) -> Any:
    if name not in _CLASSES:
        raise EngineInputError(f"there is no engine '{name}'; Timbre has {', '.join(NAMES)}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def create(name: str, options: dict[str, object] | None = None) -> Engine:
    cls = _class(name)
    try:
        return cls(**(options or {}))
    except TypeError as e:
        raise EngineUnavailableError(f"the {name} engine's configuration is wrong: {e}") from e


def describe(name: str, options: dict[str, object] | None = None) -> dict[str, Any]:
    """What the engine is and whether it can run here (package importable, CUDA present, licence)."""
    return _class(name).describe(options or {})
