"""Text preparation shared by every engine: what an editor's agent writes, as a person would say it.

Agents send markdown with code, links, paths, numbers and units. Read symbol by symbol that is
noise, so `prepare` first removes or summarises the markup (any language, markup.py), then, for
English, spells out what speech engines misread (verbalise.py): numbers, dates, times, money, units,
abbreviations, URLs, e-mail addresses and file paths. Other languages keep their digits: the
multilingual engines read them in the language's own way, which an English rule would break.
"""
from __future__ import annotations

import re

from .markup import strip_markup
from .verbalise import verbalise

_ENGLISH = {"en", "en-us", "en-gb", "english"}


def _tidy(text: str) -> str:
    """Leftover symbols removed; paragraphs kept (they end sentences), other whitespace collapsed."""
    text = re.sub(r"[*_`#|<>{}\[\]\\^]+", " ", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n[ \t]*\n", text)]
    text = "\n\n".join(p for p in paragraphs if p)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return re.sub(r"([,;:])(?=[,.;:!?])", "", text)


def is_english(language: str | None, text: str) -> bool:
    if language and language.lower() not in ("auto",):
        return language.lower() in _ENGLISH
    # Auto: English when the letters are overwhelmingly ASCII.
    if text.isascii():
        return True
    letters = [c for c in text if c.isalpha()]
    return not letters or sum(c.isascii() for c in letters) / len(letters) > 0.9


def prepare(text: str, language: str | None = None) -> str:
    """The text as it should be spoken: markup gone, and for English, symbols spelled out."""
    english = is_english(language, text)
    text = strip_markup(text, english)
    if english:
        text = verbalise(text)
    return _tidy(text)
