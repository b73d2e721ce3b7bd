"""The protocol every Timbre engine implements, and the types that cross it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence

import numpy as np


class EngineInputError(ValueError):
    """The caller asked for something the engine cannot do; the message says what to change.

    field names the request field at fault (text, language, speed, instructions, voice), when one is,
    so that the server's 400 names it too.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class EngineUnavailableError(RuntimeError):
    """The engine cannot run on this machine (package missing, no CUDA, licence not accepted);
    the message says what to install or configure."""


@dataclass(frozen=True)
class VoiceSample:
    """One enrolled recording: a mono 24 kHz WAV and its transcript, if known.

    role: "sample" for an uploaded recording; "prompt" for the enrolment's chosen 3–15 s segment
    (what Qwen3 clones from); "reference" for up to 30 s of the voice's best speech (XTTS).
    """

    path: str
    transcript: str | None = None
    role: str = "sample"


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    language: str | None = None
    speed: float = 1.0
    instructions: str | None = None
    options: dict[str, object] = field(default_factory=dict)


def by_role(samples: Sequence[VoiceSample], role: str) -> list[VoiceSample]:
    """The samples of one role; the uploaded samples when the voice has none of that role."""
    chosen = [s for s in samples if s.role == role]
    return chosen or [s for s in samples if s.role == "sample"]


class Engine(Protocol):
    """A speech engine: loaded once, prepares voices (cached on disk), streams float32 chunks."""

    name: str
    sample_rate: int

    def load(self) -> None: ...

    def languages(self) -> list[str]: ...

    def prepare_voice(self, voice_dir: str, samples: Sequence[VoiceSample]) -> dict[str, object]:
        """Build (or load from the voice's cache) what synthesis needs; return a summary."""
        ...

    def stream(
        self, voice_dir: str, samples: Sequence[VoiceSample], request: SpeechRequest
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks at sample_rate; the first before the whole text is done."""
        ...
