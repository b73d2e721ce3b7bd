"""English number words: cardinals, ordinals, years, decimals and digit strings."""
from __future__ import annotations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}


def _under_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _under_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append(f"{_ONES[hundreds]} hundred")
    if rest or not hundreds:
        parts.append(_under_hundred(rest))
    return " ".join(parts)


def cardinal(n: int) -> str:
    """1234 → 'one thousand two hundred thirty-four'."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= 10**15:
        return digits(str(n))
    parts = []
    for scale, name in _SCALES:
        if n >= scale:
            count, n = divmod(n, scale)
            parts.append(f"{cardinal(count)} {name}")
    if n or not parts:
        parts.append(_under_thousand(n))
    return " ".join(parts)


def ordinal(n: int) -> str:
    """21 → 'twenty-first'."""
    words = cardinal(n)
    head, sep, last = words.rpartition("-" if words.rfind("-") > words.rfind(" ") else " ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}"


def year(n: int) -> str:
    """1999 → 'nineteen ninety-nine', 2005 → 'two thousand five', 2024 → 'twenty twenty-four'."""
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1000 <= n <= 9999:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} {'oh ' + _ONES[low] if low < 10 else _under_hundred(low)}"


def digits(s: str) -> str:
    """'0451' → 'zero four five one'."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def decimal(s: str) -> str:
    """'3.14' → 'three point one four'; '1,250' → 'one thousand two hundred fifty'."""
    negative = s.startswith(("-", "\u2212"))
    s = s.lstrip("-\u2212").replace(",", "")
    whole, _, frac = s.partition(".")
    words = cardinal(int(whole or "0"))
    if frac:
        words += " point " + digits(frac)
    return ("minus " if negative else "") + words
