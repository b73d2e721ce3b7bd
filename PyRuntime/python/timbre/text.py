"""Splitting text into sentences for streaming synthesis."""
from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?:(?<=[.!?;:])|(?<=[.!?;:][\"')\]]))\s+|\n\s*\n")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")


def sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences in order; one longer than max_chars is split at clauses, then at spaces."""
    out: list[str] = []
    for part in _SENTENCE_END.split(text.strip()):
        part = " ".join(part.split())
        if not part:
            continue
        if len(part) <= max_chars:
            out.append(part)
            continue
        current = ""
        for piece in _pieces(part, max_chars):
            if current and len(current) + 1 + len(piece) > max_chars:
                out.append(current)
                current = piece
            else:
                current = f"{current} {piece}".strip()
        if current:
            out.append(current)
    return out


def _pieces(part: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    for clause in _CLAUSE.split(part):
        while len(clause) > max_chars:
            cut = clause.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(clause[:cut])
            clause = clause[cut:].strip()
        if clause:
            pieces.append(clause)
    return pieces
