"""Text preparation: a table of what agents write and what should be said."""
import pytest

from timbre.numbers import cardinal, ordinal, year
from timbre.textprep import prepare


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety-nine"), (100, "one hundred"),
        (101, "one hundred one"), (1234, "one thousand two hundred thirty-four"),
        (1_000_000, "one million"), (2_500_017, "two million five hundred thousand seventeen"),
        (-7, "minus seven"),
    ],
)
def test_cardinals(n, words):
    assert cardinal(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (12, "twelfth"), (20, "twentieth"),
     (21, "twenty-first"), (103, "one hundred third"), (1000, "one thousandth")],
)
def test_ordinals(n, words):
    assert ordinal(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1999, "nineteen ninety-nine"), (2005, "two thousand five"), (2024, "twenty twenty-four"),
     (1905, "nineteen oh five"), (1900, "nineteen hundred"), (2000, "two thousand")],
)
def test_years(n, words):
    assert year(n) == words


ENGLISH = [
    # numbers
    ("I have 3 cats.", "I have three cats."),
    ("There are 1,234 rows.", "There are one thousand two hundred thirty-four rows."),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("It fell to -5 today.", "It fell to minus five today."),
    ("Agent 007 called.", "Agent zero zero seven called."),
    ("She came 21st of 30.", "She came twenty-first of thirty."),
    ("Pages 10-20 are blank.", "Pages ten to twenty are blank."),
    ("Ticket #42 is closed.", "Ticket number forty-two is closed."),
    ("It is ~5 seconds.", "It is about five seconds."),
    # dates and years
    ("Released on 2024-03-15.", "Released on March fifteenth, twenty twenty-four."),
    ("Due March 5, 2025.", "Due March fifth, twenty twenty-five."),
    ("Due Dec 1st.", "Due December first."),
    ("Born 4 July 1976.", "Born the fourth of July nineteen seventy-six."),
    ("Since 1999 it grew.", "Since nineteen ninety-nine it grew."),
    ("From 2020-2024 it grew.", "From twenty twenty to twenty twenty-four it grew."),
    ("Music of the 1980s.", "Music of the nineteen eighties."),
    ("Signed 12/25/2023.", "Signed December twenty-fifth, twenty twenty-three."),
    # times
    ("Meet at 9:05 pm.", "Meet at nine oh five p m."),
    ("Meet at 10:00.", "Meet at ten o'clock."),
    ("The build ran at 14:30.", "The build ran at fourteen thirty."),
    # money and percentages
    ("It costs $5.", "It costs five dollars."),
    ("It costs $1.50.", "It costs one dollar and fifty cents."),
    ("Only $0.99 now.", "Only ninety-nine cents now."),
    ("Raised $2.5 billion.", "Raised two point five billion dollars."),
    ("Raised $3M.", "Raised three million dollars."),
    ("About €20 each.", "About twenty euros each."),
    ("Just £1.", "Just one pound."),
    ("Up 50% this year.", "Up fifty percent this year."),
    ("Down 12.5%.", "Down twelve point five percent."),
    # units
    ("Drive 5 km north.", "Drive five kilometers north."),
    ("It weighs 1 kg.", "It weighs one kilogram."),
    ("Latency is 120 ms.", "Latency is one hundred twenty milliseconds."),
    ("Sampled at 24 kHz.", "Sampled at twenty-four kilohertz."),
    ("The file is 3.5 GB.", "The file is three point five gigabytes."),
    ("It is 20°C outside.", "It is twenty degrees Celsius outside."),
    ("A 7B model.", "A seven billion model."),
    ("It is 5x faster.", "It is five times faster."),
    ("Walk 5-10 km.", "Walk five to ten kilometers."),
    ("I said 5 m, not 5m.", "I said five m, not five meters."),
    # abbreviations and acronyms
    ("Ask Dr. Smith.", "Ask Doctor Smith."),
    ("Use a tool, e.g. grep.", "Use a tool, for example, grep."),
    ("Apples, pears, etc. are fruit.", "Apples, pears, et cetera are fruit."),
    ("Cats vs. dogs.", "Cats versus dogs."),
    ("The API uses the GPU.", "The A P I uses the G P U."),
    ("Version v2.0 and 1.2.3 are out.", "Version version two point zero and one point two point three are out."),
    # addresses
    ("See https://github.com/openai/whisper for more.", "See github dot com slash openai slash whisper for more."),
    ("See https://example.com/a?b=c#d.", "See example dot com slash a."),
    ("Visit www.example.org today.", "Visit example dot org today."),
    ("Write to jane.doe@example.com today.", "Write to jane dot doe at example dot com today."),
    ("Edit src/ControlPlane/Program.cs now.", "Edit src slash Control Plane slash Program dot cs now."),
    ("Run /usr/local/bin/timbre please.", "Run usr slash local slash bin slash timbre please."),
    ("Open ~/notes/todo.md now.", "Open home notes slash todo dot md now."),
    ("Check README.md first.", "Check README dot md first."),
    ("Either and/or works.", "Either and/or works."),
    # symbols
    ("Salt & pepper.", "Salt and pepper."),
    ("Input -> output.", "Input to output."),
]

MARKDOWN = [
    ("# Summary\nAll good.", "Summary. All good."),
    ("**Bold** and *italic* and ~~gone~~.", "Bold and italic and gone."),
    ("Keep my_var_name as words.", "Keep my var name as words."),
    ("Call `parse_header()` first.", "Call parse header first."),
    ("Call `parseHttpHeader` first.", "Call parse Http Header first."),
    ("Run `for i in range(10): print(i, i**2, {i: [i]})` once.", "Run a code snippet once."),
    ("Read [the docs](https://example.com/docs) now.", "Read the docs now."),
    ("![a diagram](img.png) Done.", "a diagram Done."),
    ("- first\n- second item", "first. second item."),
    ("1. one\n2. two", "one. two."),
    ("- [x] done task", "done task."),
    ("> quoted words", "quoted words"),
    ("Before\n\n---\n\nAfter", "Before\n\nAfter"),
    ("Line <b>bold</b> text.", "Line bold text."),
    ("| name | size |\n|---|---|\n| a | 2 |", "name, size.\n\na, two."),
    ("Great work 🎉!", "Great work!"),
]


@pytest.mark.parametrize("text, spoken", ENGLISH + MARKDOWN)
def test_english_is_prepared_for_speech(text, spoken):
    assert prepare(text, "en") == spoken


def test_code_blocks_are_summarised_not_read():
    text = "Here is the fix:\n\n```python\ndef f(x):\n    return x * 2\n\nprint(f(3))\n```\n\nThat is all."
    assert prepare(text, "en") == (
        "Here is the fix:\n\nThere is a block of Python code here, three lines long.\n\nThat is all."
    )


def test_an_unclosed_code_block_is_summarised_too():
    assert prepare("Look:\n```\nx = 1\n", "en") == "Look:\n\nThere is a block of code here, one line long."


def test_other_languages_lose_markup_but_keep_their_digits():
    assert prepare("**Ich** habe 3 Äpfel für 5 €.", "de") == "Ich habe 3 Äpfel für 5 €."
    assert prepare("Voilà:\n```js\nx()\n```\nFini.", "fr") == "Voilà:\n\nFini."


def test_language_auto_treats_ascii_text_as_english():
    assert prepare("I have 2 dogs.", None) == "I have two dogs."
    assert prepare("我有3只猫。", None) == "我有3只猫。"


def test_text_that_is_only_code_has_nothing_else_to_say():
    assert prepare("```\nx\n```", "de") == ""


@pytest.mark.parametrize(
    "text, spoken",
    [
        ("Card 4111111111111111 expires.", "Card four one one one, one one one one, one one one one, one one one one expires."),
        ("Serial 12345678901234567.", "Serial one two three four, five six seven eight, nine zero one two, three four five six, seven."),
        ("1,234,567,890,123,456 units", "one, two three four, five six seven, eight nine zero, one two three, four five six units"),
        # Fifteen digits are still a quantity, and a long fraction stays a decimal.
        ("123456789012345", "one hundred twenty-three trillion four hundred fifty-six billion seven hundred eighty-nine million twelve thousand three hundred forty-five"),
        ("3.14159265358979323846", "three point " + " ".join("one four one five nine two six five three five eight nine seven nine three two three eight four six".split())),
    ],
)
def test_long_digit_runs_are_read_in_groups(text, spoken):
    assert prepare(text, "en") == spoken


@pytest.mark.parametrize("text", ["9" * 5000, "#" + "9" * 5000, "9" * 5000 + "th", "$" + "9" * 5000, "9" * 5000 + " km", ",".join(["999"] * 1500)])
def test_digit_runs_past_pythons_int_limit_are_spoken_not_an_error(text):
    # CPython refuses int() on more than 4300 digits; a long run must never get that far.
    spoken = prepare(text, "en")
    assert spoken.count("nine") >= 4000
    assert not any(c.isdigit() for c in spoken)


@pytest.mark.parametrize(
    "text, spoken",
    [
        # A case-blind rule matches the dotless ı, the long ſ and the Greek μ as the letters they stand
        # for; looking the unit up as written raised KeyError, which failed the whole request.
        ("It is 5mı away.", "It is five miles away."),
        ("It took 5μs.", "It took five microseconds."),
        ("Raised $5 mıllion.", "Raised five million dollars."),
        ("Raised $5 MİLLİON.", "Raised five million dollars."),
        ("Wait 3 ſec.", "Wait three seconds."),
    ],
)
def test_look_alike_letters_in_units_are_read_not_an_error(text, spoken):
    assert prepare(text, "en") == spoken


_PIECES = [
    "e.g.", "I.E.,", "ı.e.", "etc.", "etc. and", "vs", "VS.", "vſ", "approx.", "Dr. Who", "Mr.", "Ms.", "No. 5",
    "w/o", "W/", "TODO", "API", "GPUs", "https://example.com/a/b?x=1", "WWW.bar.com/x", "a@b.com", "@user",
    "/usr/local/bin", "~/x/y", "src/app/main.py", "C:\\Users\\x", "README.md", "Foo.COM", "x.mp3", "5km", "5 m",
    "3.5GB", "10°C", "$5", "€3.50", "$2.5m", "10%", "v1.2.3", "1990s", "'90s", "12/25/2024", "2024-01-05",
    "Jan 5", "5th of March", "10:30 pm", "1999-2005", "5–10", "#42", "1234567890123456789", "~5", "->", "→",
    "&", "+", "=", "!=", "<=", ">=", "٣", "in 1999", "007", "\u22124", "the", "cat", "K", "x", "s", "in", ".", ",",
    "```py\nx = 1\n```", "~~~\ncode\n~~~", "<b>", "<https://x.io>", "![alt](a.png)", "[text](http://u.com/x)",
    "`code_here()`", "| a | b |", "|---|---|", "---", "***", "> quote", "# Head", "- item", "1. item", "2) item",
    "- [x] done", "**bold**", "*it*", "__u__", "_u_", "~~s~~", "🎉", "\ufe0f", "naïve", "日本", "\n", "\n\n", "/",
]


def test_skipping_rules_that_cannot_match_never_changes_the_result(monkeypatch):
    """Each rule of text preparation runs only where the text holds what every match of it needs; with
    every rule run, the table above and a corpus of mixed pieces come out the same."""
    import random

    from timbre import markup, verbalise

    rnd = random.Random(14)
    corpus = [t for t, _ in ENGLISH + MARKDOWN] + [
        "".join(rnd.choice(_PIECES) + rnd.choice([" ", " ", "", ", ", ". ", "\n"]) for _ in range(rnd.randint(1, 10)))
        for _ in range(3000)
    ]
    languages = [rnd.choice(["en", None, "de"]) for _ in corpus]
    hinted = [prepare(t, language) for t, language in zip(corpus, languages)]
    monkeypatch.setattr(verbalise, "_RULES", [(lambda _: True, rule) for _, rule in verbalise._RULES])
    monkeypatch.setattr(markup, "_RULES", [(lambda _: True, rule) for _, rule in markup._RULES])
    every_rule = [prepare(t, language) for t, language in zip(corpus, languages)]
    assert [(t, a) for t, a, b in zip(corpus, hinted, every_rule) if a != b] == []
