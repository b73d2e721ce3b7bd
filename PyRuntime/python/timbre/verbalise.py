"""English verbalisation: what speech engines misread, spelled out as a person would say it.

Numbers, ordinals, years, dates, times, money, percentages, units, versions, abbreviations,
acronyms, URLs, e-mail addresses and file paths. Markup must already be gone (see markup.py).
"""
from __future__ import annotations

import re
from typing import Callable

from .markup import identifier
from .numbers import cardinal, decimal, digits, ordinal, year

_MONTHS = "January February March April May June July August September October November December".split()
_MONTH_RE = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"


def _month(name: str) -> str:
    return next(m for m in _MONTHS if m.lower().startswith(name[:3].lower()))


_TLD = r"(?:com|org|net|io|dev|ai|app|co|edu|gov|uk|de|fr|eu|me|info|sh|ly|gg|tv|us|ca|au|nl|jp|cn|ru|xyz)"
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_DOMAIN = re.compile(rf"\b(?:[a-z0-9-]+\.)+{_TLD}\b(?!\.\w)", re.I)
_EXTENSIONS = (
    "cs|py|md|json|yaml|yml|toml|txt|js|ts|tsx|jsx|html|css|xml|csproj|sln|sh|rs|go|java|kt|swift|c|h|cpp|hpp|"
    "rb|php|sql|lock|cfg|ini|conf|log|csv|wav|mp3|flac|ogg|png|jpg|jpeg|gif|svg|pdf|zip|gz|tar|dll|so|exe|ipynb|env|props"
)
_PATH = re.compile(
    rf"(?<![\w/])(?:~|\.{{1,2}})?(?:/[\w.@+-]+){{2,}}/?"  # /usr/local/bin, ~/x/y, ./a/b
    rf"|(?<![\w/])[\w.@-]+(?:/[\w.@-]+)+\.(?:{_EXTENSIONS})\b"  # src/app/main.py
    rf"|(?<![\w/])[\w-]+(?:/[\w-]+){{2,}}/?(?![\w/])"  # src/app/models
    rf"|\b[A-Za-z]:\\[^\s]+"  # C:\Users\x
)
_FILE = re.compile(rf"(?<![\w/.])([\w-]+(?:\.[\w-]+)*)\.({_EXTENSIONS})\b")


def _dotted(s: str) -> str:
    return " dot ".join(identifier(part) for part in s.split(".") if part)


def _url(match: re.Match[str]) -> str:
    url = match.group(0).rstrip(".,;:!?)")
    trailing = match.group(0)[len(url):]
    rest = re.sub(r"^(?:https?|ftp)://", "", url, flags=re.I)
    host, _, path = rest.partition("/")
    host = re.sub(r"^www\.", "", host.split("@")[-1].split(":")[0], flags=re.I)
    segments = [s for s in re.split(r"[?#]", path)[0].split("/") if s][:3]
    spoken = " slash ".join([_dotted(host)] + [_dotted(s) for s in segments])
    return spoken + trailing


def _email(match: re.Match[str]) -> str:
    user, _, domain = match.group(0).partition("@")
    return f"{_dotted(user)} at {_dotted(domain)}"


def _path(match: re.Match[str]) -> str:
    path = match.group(0)
    if re.match(r"[A-Za-z]:\\", path):
        parts = [p for p in path[3:].split("\\") if p]
        return f"{path[0].upper()} drive " + " backslash ".join(_dotted(p) for p in parts)
    prefix = {"~": "home ", ".": "", "..": "parent "}.get(path.split("/")[0], "")
    parts = [p for p in path.split("/") if p and p not in ("~", ".", "..")]
    if len(parts) > 4:  # the end of a long path is what identifies it
        parts = parts[-3:]
        prefix = ""
    return prefix + " slash ".join(_dotted(p) for p in parts)


_UNITS: dict[str, tuple[str, str]] = {
    "km": ("kilometer", "kilometers"), "m": ("meter", "meters"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"),
    "in": ("inch", "inches"), "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"), "l": ("liter", "liters"), "ml": ("milliliter", "milliliters"),
    "ms": ("millisecond", "milliseconds"), "µs": ("microsecond", "microseconds"),
    "ns": ("nanosecond", "nanoseconds"), "s": ("second", "seconds"), "sec": ("second", "seconds"),
    "min": ("minute", "minutes"), "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"), "°c": ("degree Celsius", "degrees Celsius"),
    "°f": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
    "k": ("thousand", "thousand"), "b": ("billion", "billion"), "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"), "tb": ("terabyte", "terabytes"), "kib": ("kibibyte", "kibibytes"),
    "mib": ("mebibyte", "mebibytes"), "gib": ("gibibyte", "gibibytes"), "hz": ("hertz", "hertz"),
    "khz": ("kilohertz", "kilohertz"), "mhz": ("megahertz", "megahertz"), "ghz": ("gigahertz", "gigahertz"),
    "w": ("watt", "watts"), "kw": ("kilowatt", "kilowatts"), "kwh": ("kilowatt hour", "kilowatt hours"),
    "v": ("volt", "volts"), "mah": ("milliamp hour", "milliamp hours"), "px": ("pixel", "pixels"),
    "fps": ("frame per second", "frames per second"), "db": ("decibel", "decibels"),
    "x": ("times", "times"),
}
# Units that are also ordinary words or letters are only taken when glued to the number ("5m",
# not "5 m"), except where the spaced form is unambiguous in technical text.
_SPACED_AMBIGUOUS = {"m", "in", "s", "h", "g", "l", "b", "k", "w", "v", "x", "min"}
_UNIT_ALTERNATION = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_MEASURE = re.compile(rf"(?<![\w.,])(-?{_NUMBER})(\s?)({_UNIT_ALTERNATION})(?![\w/°])", re.I)

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "", ""),
             "₹": ("rupee", "rupees", "paisa", "paise")}
_SCALE_WORDS = {"k": "thousand", "m": "million", "mm": "million", "bn": "billion", "b": "billion",
                "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}
_MONEY = re.compile(rf"([$€£¥₹])\s?({_NUMBER})(?:\s?(thousand|million|billion|trillion|bn|mm|[kmb])\b)?", re.I)

_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?:\s*([AaPp])\.?\s?[Mm]\.?)?(?!\w)")
_ISO_DATE = re.compile(r"\b(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\b")
_MONTH_DAY = re.compile(rf"\b{_MONTH_RE}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_RE}(?:,?\s+(\d{{4}})\b)?")
_MONTH_YEAR = re.compile(rf"\b{_MONTH_RE}\s+(\d{{4}})\b")
_PERCENT = re.compile(rf"(?<![\w.])(-?{_NUMBER})\s?%")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_RANGE = re.compile(rf"(?<![\w.,-])({_NUMBER})\s?[–-]\s?({_NUMBER})(?![\w.,]\d)")
_VERSION = re.compile(r"(?<![\w.])(?:v(\d+(?:\.\d+)*)|(\d+(?:\.\d+){2,}))(?![\w.]*\d)")
_DECADE = re.compile(r"(?<![\w.])'?((?:1[1-9]|20)?\d0)s\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_YEAR_RANGE = re.compile(r"(?<![\w.,-])((?:1[1-9]|20)\d\d)\s?[–-]\s?((?:1[1-9]|20)\d\d)\b")
_YEAR_CONTEXT = re.compile(
    r"\b(in|since|by|from|until|till|year|during|before|after|around|circa|early|late|mid|to|between)\s+((?:1[1-9]|20)\d\d)\b(?!\s?%|,\d)", re.I
)
# Past fifteen digits nobody says a number as a quantity: a serial, card or hash is read digit by
# digit in groups (as written, when it has separators; else in fours), with a pause between groups.
_LONG_DIGITS = re.compile(r"(?<![\d,.])(?:\d{1,3}(?:,\d{3}){5,}(?![\d,]\d)|\d{16,})")
_PLAIN_NUMBER = re.compile(rf"(?<![\w.])(-|\u2212)?({_NUMBER})(?![\w])")
_HASH_NUMBER = re.compile(r"(?<![\w&])#(\d+)\b")

# Each rule with what every match of it contains (in the lower-cased text for a case-blind rule; a
# case-blind "i" or "s" also matches the dotless ı and the long ſ, hence ".e." and "vſ").
_ABBREVIATIONS = [
    (("e.g.",), re.compile(r"\be\.g\.,?(?=\s|$)", re.I), "for example,"),
    ((".e.",), re.compile(r"\bi\.e\.,?(?=\s|$)", re.I), "that is,"),
    (("etc.",), re.compile(r"\betc\.(?=\s+[a-z])"), "et cetera"),
    (("etc.",), re.compile(r"\betc\."), "et cetera."),
    (("vs", "vſ"), re.compile(r"\bvs\.?(?=\s)", re.I), "versus"),
    (("approx.",), re.compile(r"\bapprox\.(?=\s)", re.I), "approximately"),
    (("Dr.",), re.compile(r"\bDr\.(?=\s+[A-Z])"), "Doctor"),
    (("Mr.",), re.compile(r"\bMr\.(?=\s)"), "Mister"),
    (("Mrs.",), re.compile(r"\bMrs\.(?=\s)"), "Missus"),
    (("Ms.",), re.compile(r"\bMs\.(?=\s)"), "Miz"),
    (("Prof.",), re.compile(r"\bProf\.(?=\s+[A-Z])"), "Professor"),
    (("No.",), re.compile(r"\bNo\.\s?(?=\d)"), "number "),
    (("w/o",), re.compile(r"\bw/o\b", re.I), "without"),
    (("w/",), re.compile(r"(?<!\w)w/(?=\s)", re.I), "with"),
    (("TODO",), re.compile(r"\bTODO\b"), "to do"),
]
_ACRONYMS = (
    "API|CPU|GPU|CLI|UI|UX|PR|CI|SQL|HTTP|HTTPS|URL|TTS|MCP|SDK|VM|OS|PDF|CSS|HTML|XML|AWS|LLM|IDE|"
    "RAM|SSD|USB|DNS|SSH|TCP|UDP|IP|CSV|JWT|VPN|ASR|RTF"
)
_ACRONYM = re.compile(rf"\b({_ACRONYMS})(s?)\b")
_SYMBOLS = [
    (("->", "→", "=>"), re.compile(r"\s*(?:->|→|=>)\s*"), " to "),
    (("&",), re.compile(r"\s+&\s+"), " and "),
    (("+",), re.compile(r"(?<=\s)\+(?=\s)"), "plus"),
    (("=",), re.compile(r"(?<=\s)={1,3}(?=\s)"), "equals"),
    (("!=",), re.compile(r"(?<=\s)!=(?=\s)"), "is not equal to"),
    (("<=",), re.compile(r"(?<=\s)<=(?=\s)"), "is at most"),
    ((">=",), re.compile(r"(?<=\s)>=(?=\s)"), "is at least"),
    (("@",), re.compile(r"(?<![\w.])@(?=\w)"), "at "),
]


def _plural(words: str, singular: str, plural: str) -> str:
    return singular if words in ("one", "minus one") else plural


# A case-blind rule also matches these look-alikes of a unit's or scale's letters (the dotless ı, the
# long ſ, the Greek μ for the micro sign): read as the letter they stand for, not looked up as written.
_LOOKALIKES = str.maketrans({"ı": "i", "İ": "i", "ſ": "s", "μ": "µ", "Μ": "µ"})


def _fold(word: str) -> str:
    return word.translate(_LOOKALIKES).lower()


def _money(match: re.Match[str]) -> str:
    symbol, amount, scale = match.group(1), match.group(2), _fold(match.group(3) or "")
    one, many, sub_one, sub_many = _CURRENCY[symbol]
    if scale:
        return f"{decimal(amount)} {_SCALE_WORDS[scale]} {many}"
    whole, _, cents = amount.replace(",", "").partition(".")
    whole_words = cardinal(int(whole))
    spoken = f"{whole_words} {_plural(whole_words, one, many)}"
    if len(cents) == 2 and sub_one:
        if int(cents) == 0:
            return spoken
        cents_words = cardinal(int(cents))
        sub = f"{cents_words} {_plural(cents_words, sub_one, sub_many)}"
        return sub if whole == "0" else f"{spoken} and {sub}"
    if cents:
        return f"{decimal(amount)} {many}"
    return spoken


def _measure(match: re.Match[str]) -> str:
    number, space, unit = match.groups()
    key = _fold(unit)
    if space and key in _SPACED_AMBIGUOUS:
        return match.group(0)
    words = decimal(number)
    if not space and unit in ("K", "M", "B"):  # 7B parameters, 5M rows
        return f"{words} {_SCALE_WORDS[unit.lower()]}"
    singular, plural = _UNITS[key]
    return f"{words} {_plural(words, singular, plural)}"


def _time(match: re.Match[str]) -> str:
    hour, minute, second, meridiem = match.groups()
    h, m = int(hour), int(minute)
    if meridiem:
        spoken = cardinal(h) if m == 0 else f"{cardinal(h)} {('oh ' + cardinal(m)) if m < 10 else cardinal(m)}"
        # "p.m." at the end of a sentence also ends the sentence.
        end = "." if match.group(0).endswith(".") else ""
        return f"{spoken} {'a m' if meridiem.lower() == 'a' else 'p m'}{end}"
    if second:
        return f"{cardinal(h)} hours {cardinal(m)} minutes {cardinal(int(second))} seconds"
    if m == 0:
        return f"{cardinal(h)} o'clock" if h <= 12 else f"{cardinal(h)} hundred hours"
    return f"{cardinal(h)} {('oh ' + cardinal(m)) if m < 10 else cardinal(m)}"


def _date(month: str, day: str | None, year_: str | None) -> str:
    spoken = _month(month)
    if day:
        spoken += f" {ordinal(int(day))}"
    if year_:
        spoken += f"{',' if day else ''} {year(int(year_))}"
    return spoken


def _long_digits(match: re.Match[str]) -> str:
    run = match.group(0)
    groups = run.split(",") if "," in run else [run[i:i + 4] for i in range(0, len(run), 4)]
    return ", ".join(digits(g) for g in groups)


def _plain_number(match: re.Match[str]) -> str:
    sign, number = match.group(1), match.group(2)
    if not sign and re.fullmatch(r"0\d+", number):  # 007, zip codes, ids
        return digits(number)
    words = decimal(number)
    return f"minus {words}" if sign else words


def _version(match: re.Match[str]) -> str:
    tagged, bare = match.groups()
    spoken = " point ".join(cardinal(int(p)) for p in (tagged or bare).split("."))
    return f"version {spoken}" if tagged else spoken


def _decade(match: re.Match[str]) -> str:
    n = int(match.group(1))
    words = year(n) if n >= 1000 else cardinal(n)
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _slash_date(match: re.Match[str]) -> str:
    a, b, y = (int(g) for g in match.groups())
    if 1 <= a <= 12 and 1 <= b <= 31:  # US order first, as most editor text is
        return _date(_MONTHS[a - 1], str(b), str(y))
    if 1 <= b <= 12 and 1 <= a <= 31:
        return f"the {ordinal(a)} of {_date(_MONTHS[b - 1], None, str(y))}"
    return match.group(0)


def _has(*needles: str) -> Callable[[str], bool]:
    return lambda text: any(n in text for n in needles)


def _has_folded(*needles: str) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        folded = text.lower()
        return any(n in folded for n in needles)

    return check


def _finds(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: pattern.search(text) is not None


def _rule(pattern: re.Pattern[str], spoken: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    return lambda text: pattern.sub(spoken, text)


_NUMBERS = _finds(re.compile(r"\d"))

# Every rule in order, with what every match of it must contain: a rule whose hint is missing would find
# nothing, so it is skipped and the result is the same. No rule writes a digit, so text without one never
# gains one. Plain prose then takes a handful of scans instead of 64: this runs before the engine starts,
# so it is part of every time to first audio. Order matters: addresses before numbers (they contain
# digits and dots), dates and times before plain numbers, ranges before units ("5-10 km").
_RULES: list[tuple[Callable[[str], bool], Callable[[str], str]]] = [
    (lambda text: "://" in text or "www." in text.lower(), _rule(_URL, _url)),
    (_NUMBERS, _rule(re.compile(r"~(?=\d)"), "about ")),
    (_has("@"), _rule(_EMAIL, _email)),
    (_NUMBERS, _rule(_SLASH_DATE, _slash_date)),
    (_has("/", "\\"), _rule(_PATH, _path)),
    (_NUMBERS, _rule(_LONG_DIGITS, _long_digits)),
    (_finds(re.compile(rf"\.(?:{_EXTENSIONS})\b")), _rule(_FILE, lambda m: f"{_dotted(m.group(1))} dot {m.group(2)}")),
    (_finds(re.compile(rf"\.{_TLD}\b", re.I)), _rule(_DOMAIN, lambda m: _dotted(m.group(0)))),
    *(((_has_folded if pattern.flags & re.I else _has)(*needles), _rule(pattern, spoken)) for needles, pattern, spoken in _ABBREVIATIONS),
    (_NUMBERS, lambda text: _numbers(text)),
    (_finds(re.compile(rf"(?:{_ACRONYMS})")), _rule(_ACRONYM, lambda m: " ".join(m.group(1)) + ("'s" if m.group(2) else ""))),
    *((_has(*needles), _rule(pattern, spoken)) for needles, pattern, spoken in _SYMBOLS),
]


def verbalise(text: str) -> str:
    """English: spell out what engines misread. Markup must already be gone."""
    for needed, rule in _RULES:
        if needed(text):
            text = rule(text)
    return text


def _numbers(text: str) -> str:
    """Dates, times, money, ranges, percentages, versions, units, ordinals and plain numbers, in that order."""
    text = _ISO_DATE.sub(lambda m: _date(_MONTHS[int(m.group(2)) - 1], m.group(3), m.group(1)), text)
    text = _MONTH_DAY.sub(lambda m: _date(m.group(1), m.group(2), m.group(3)), text)
    text = _DAY_MONTH.sub(lambda m: f"the {ordinal(int(m.group(1)))} of {_date(m.group(2), None, m.group(3))}", text)
    text = _MONTH_YEAR.sub(lambda m: _date(m.group(1), None, m.group(2)), text)
    text = _TIME.sub(_time, text)
    text = _MONEY.sub(_money, text)
    text = _YEAR_RANGE.sub(lambda m: f"{year(int(m.group(1)))} to {year(int(m.group(2)))}", text)
    text = _RANGE.sub(r"\1 to \2", text)
    text = _PERCENT.sub(lambda m: f"{decimal(m.group(1))} percent", text)
    text = _VERSION.sub(_version, text)
    text = _DECADE.sub(_decade, text)
    text = _MEASURE.sub(_measure, text)
    text = _ORDINAL.sub(lambda m: ordinal(int(m.group(1))), text)
    text = _YEAR_CONTEXT.sub(lambda m: f"{m.group(1)} {year(int(m.group(2)))}", text)
    text = _HASH_NUMBER.sub(lambda m: f"number {cardinal(int(m.group(1)))}", text)
    return _PLAIN_NUMBER.sub(_plain_number, text)
