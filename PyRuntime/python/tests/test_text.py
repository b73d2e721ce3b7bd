import pytest

from timbre.text import sentences


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("One!  Two?\nThree.", ["One!", "Two?", "Three."]),
        ("Para one\n\nPara two", ["Para one", "Para two"]),
        ("   ", []),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
    ],
)
def test_sentences_split_at_sentence_ends(text, expected):
    assert sentences(text) == expected


def test_long_sentences_split_under_the_limit_without_losing_words():
    text = ", ".join(f"clause number {i} goes here" for i in range(40)) + "."
    parts = sentences(text, max_chars=100)
    assert all(len(p) <= 100 for p in parts)
    assert " ".join(parts).split() == text.split()
