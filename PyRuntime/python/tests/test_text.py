import pytest

from timbre.text import fragments, sentences


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


@pytest.mark.parametrize(
    "text, lead",
    [
        # A clause mark wins; one too early is no cut, and a phrase never ends on an article.
        ("Well, after all this time the river is still rising fast.", "Well, after all this time"),
        ("After all this time, the river is still rising fast today.", "After all this time,"),
        # Otherwise the word that opens a phrase.
        ("The birch canoe slid on the smooth planks of the old dock.", "The birch canoe slid"),
        # Otherwise a fixed number of words.
        ("Seven tall green glass bottles stood quietly lined up here.", "Seven tall green glass bottles stood"),
        # A short first sentence stays whole.
        ("Glue the sheet to the dark blue background. It is easy.", None),
    ],
)
def test_fragments_split_a_long_opening_sentence_at_a_natural_boundary(text, lead):
    parts = fragments(text)
    words = [w for p in parts for w in p.text.split()]
    assert words == text.split()
    if lead is None:
        assert parts[0].text == sentences(text)[0]
    else:
        assert parts[0].text == lead
        assert parts[0].pause_after < parts[1].pause_after
