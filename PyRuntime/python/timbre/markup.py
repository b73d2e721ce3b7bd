"""Markdown and code, as an agent writes them, turned into what is worth saying.

Headings and list items become sentences, tables become comma-separated rows, links and images keep
their text, emphasis and HTML tags go, short inline code is read as the words in it, and code blocks
are summarised ("There is a block of Python code here, twelve lines long.") — or, in languages other
than English, dropped.
"""
from __future__ import annotations

import re
from typing import Callable

from .numbers import cardinal

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^\1\2[ \t]*$|\Z)", re.M | re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()\s]|\([^)]*\))*(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_EMPHASIS = re.compile(r"(\*\*|\*|~~)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\3(?!\w)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M)
_QUOTE = re.compile(r"^[ \t]{0,3}>[ \t]?", re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?", re.M)
_BULLET_HINT = re.compile(r"[-*+]|\d[.)]")
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.M)
_TABLE_SEPARATOR = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$", re.M)
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.M)
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")

_LANGUAGE_NAMES = {
    "py": "Python", "python": "Python", "js": "JavaScript", "javascript": "JavaScript",
    "ts": "TypeScript", "typescript": "TypeScript", "cs": "C sharp", "csharp": "C sharp",
    "c#": "C sharp", "sh": "shell", "bash": "shell", "shell": "shell", "zsh": "shell",
    "console": "shell", "json": "JSON", "yaml": "YAML", "yml": "YAML", "toml": "TOML",
    "sql": "SQL", "html": "HTML", "css": "CSS", "xml": "XML", "go": "Go", "rust": "Rust",
    "rs": "Rust", "java": "Java", "kotlin": "Kotlin", "swift": "Swift", "c": "C", "cpp": "C plus plus",
    "c++": "C plus plus", "ruby": "Ruby", "rb": "Ruby", "php": "PHP", "diff": "diff",
    "dockerfile": "Dockerfile", "markdown": "markdown", "md": "markdown",
}


def _code_block(match: re.Match[str], english: bool) -> str:
    if not english:
        return "\n\n"
    language = _LANGUAGE_NAMES.get(match.group(3).lower(), "")
    lines = [line for line in match.group(4).splitlines() if line.strip()]
    n = len(lines)
    size = "one line" if n == 1 else f"{cardinal(n)} lines"
    kind = f"{language} code" if language else "code"
    return f"\n\nThere is a block of {kind} here, {size} long.\n\n"


def _inline_code(code: str) -> str:
    """Short code is read as the words in it; anything longer is named, not spelled out."""
    code = code.strip()
    if len(code) > 40 or len(re.findall(r"[^\w\s./-]", code)) > 4:
        return "a code snippet"
    return identifier(code)


def identifier(token: str) -> str:
    """foo_bar() → 'foo bar'; parseHttpHeader → 'parse Http Header'; a.b → 'a dot b'."""
    token = re.sub(r"\(\)|[()\[\]{}<>;`'\"$]", " ", token)
    token = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", token)
    token = re.sub(r"(?<=\w)\.(?=\w)", " dot ", token)
    token = re.sub(r"[_=:]+|(?<=\w)-(?=\w)", " ", token)
    return " ".join(token.split())


def _table_row(match: re.Match[str]) -> str:
    cells = [c.strip() for c in match.group(1).split("|") if c.strip()]
    return ", ".join(cells) + "."


def _sentence_per_line(pattern: re.Pattern[str], text: str) -> str:
    """Headings and list items become sentences of their own."""

    def end(line: str) -> str:
        line = line.rstrip()
        return line if not line or line[-1] in ".!?:;" else line + "."

    out = []
    for line in text.split("\n"):
        if pattern.match(line):
            line = end(pattern.sub("", line) if pattern is _BULLET else pattern.sub(r"\1", line))
        out.append(line)
    return "\n".join(out)


def _lines(pattern: re.Pattern[str]) -> Callable[[str, bool], str]:
    return lambda text, english: _sentence_per_line(pattern, text)


def _emphasis(text: str, english: bool) -> str:
    for _ in range(2):  # nested emphasis: ***bold italic***
        text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(4), text)
    return text


# Every rule in order, with a check for what every match of it must contain: prose without markup skips
# the scans, and the result is the same (a rule skipped would have found nothing).
_RULES: list[tuple[Callable[[str], bool], Callable[[str, bool], str]]] = [
    (lambda t: "```" in t or "~~~" in t, lambda t, english: _FENCE.sub(lambda m: _code_block(m, english), t)),
    (lambda t: "<" in t, lambda t, english: _AUTOLINK.sub(r"\1", t)),
    (lambda t: "<" in t, lambda t, english: _HTML_TAG.sub(" ", t)),
    (lambda t: "![" in t, lambda t, english: _IMAGE.sub(lambda m: m.group(1), t)),
    (lambda t: "](" in t, lambda t, english: _LINK.sub(r"\1", t)),
    (lambda t: "`" in t, lambda t, english: _INLINE_CODE.sub(lambda m: _inline_code(m.group(2)), t)),
    (lambda t: "--" in t, lambda t, english: _TABLE_SEPARATOR.sub("", t)),
    (lambda t: "|" in t, lambda t, english: _TABLE_ROW.sub(_table_row, t)),
    (lambda t: "-" in t or "*" in t or "_" in t, lambda t, english: _RULE.sub("", t)),
    (lambda t: ">" in t, lambda t, english: _QUOTE.sub("", t)),
    (lambda t: "#" in t, _lines(_HEADING)),
    (lambda t: _BULLET_HINT.search(t) is not None, _lines(_BULLET)),
    (lambda t: "*" in t or "_" in t or "~~" in t, _emphasis),
    (lambda t: not t.isascii(), lambda t, english: _EMOJI.sub("", t)),
]


def strip_markup(text: str, english: bool = True) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for needed, rule in _RULES:
        if needed(text):
            text = rule(text, english)
    return text
