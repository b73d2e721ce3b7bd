"""Splitting text into sentences and fragments for streaming synthesis."""
from __future__ import annotations

import re
from dataclasses import dataclass

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


# Words before which a speaker naturally takes a breath: a lead fragment ends there.
_PHRASE_STARTS = frozenset(
    "and but or so because which that who when while where if to in on of with for from at as by than".split()
)
_CLAUSE_END = (",", ";", ":", "\u2014", "\u2013")
# Words a phrase cannot end on.
_NO_END = frozenset("the a an my your his her its our their this these those".split())


@dataclass(frozen=True)
class Fragment:
    """A piece of text to synthesise on its own, and the pause that follows it (seconds)."""

    text: str
    pause_after: float


def fragments(
    text: str, max_chars: int = 300, sentence_pause: float = 0.22, phrase_pause: float = 0.06
) -> list[Fragment]:
    """Sentences in order, with the first one's opening phrase split off when it is long.

    Time to first audio is the time to synthesise the first fragment, so a long opening
    sentence is cut at its first clause or phrase boundary: the listener hears audio after a
    few words' worth of work, and the rest of that sentence is ready before the lead ends.
    """
    parts = sentences(text, max_chars)
    if not parts:
        return []
    lead, rest = _split_lead(parts[0])
    out = [Fragment(lead, phrase_pause)] if rest else []
    remaining = ([rest] if rest else [parts[0]]) + parts[1:]
    out.extend(Fragment(p, sentence_pause) for p in remaining)
    return out


def _split_lead(sentence: str, min_words: int = 3, max_words: int = 6) -> tuple[str, str]:
    words = sentence.split(" ")
    if len(words) <= max_words + 2:
        return sentence, ""
    # A clause mark is the most natural cut; then a word that starts a phrase; then a fixed length.
    for i in range(min_words, max_words + 1):
        if words[i - 1].endswith(_CLAUSE_END):
            return " ".join(words[:i]), " ".join(words[i:])
    for i in range(min_words, max_words + 1):
        if words[i].lower().strip("\"'(") in _PHRASE_STARTS:
            return " ".join(words[:i]), " ".join(words[i:])
    cut = max_words
    while cut > min_words and words[cut - 1].lower() in _NO_END:
        cut -= 1
    return " ".join(words[:cut]), " ".join(words[cut:])
