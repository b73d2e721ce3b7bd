"""Engine registry: engines by name, created once and loaded lazily."""
from __future__ import annotations

from .protocol import Engine, EngineInputError, SpeechRequest, VoiceSample

__all__ = ["Engine", "EngineInputError", "SpeechRequest", "VoiceSample", "create"]

def create(name: str, options: dict[str, object] | None = None) -> Engine:
    options = options or {}
    if name == "classic":
        from .classic.engine import ClassicEngine

        return ClassicEngine(**options)  # type: ignore[arg-type]
    raise EngineInputError(f"engine '{name}' is not available in this build; it provides: classic")
