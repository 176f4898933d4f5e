"""Text normalisation for the safeguarding classifier: leetspeak, spelled-out letters,
repeated letters and spoken-out digits, and the text it must leave alone."""

from __future__ import annotations

import pytest

from async_processor.processors.safeguarding_text import normalise, spoken_digits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want to k1ll mys3lf", "i want to kill myself"),
        ("take the p1lls", "take the pills"),
        ("it is our s.e.c.r.e.t", "it is our secret"),
        ("a s-e-c-r-e-t game", "a secret game"),
        ("k i l l", "kill"),
        ("im sooooo sad", "im soo sad"),
        ("$tay @lone", "stay alone"),
        ("\uff26\uff35\uff2c\uff2c width", "full width"),
    ],
)
def test_disguised_spelling_is_restored(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "meet at 7pm on the 4th",
        "call 07700 900123",
        "i am 5 years old and i have 3 cats",
        "my username is abc123",
        "a b c",
        "i got a good book",
    ],
)
def test_ordinary_text_is_only_lower_cased(text: str) -> None:
    assert normalise(text) == text.casefold()


def test_spoken_digit_runs_become_digits() -> None:
    assert spoken_digits("my number is five five five, one two three four") == (
        "my number is 5551234"
    )
    assert spoken_digits("Oh seven double seven oh nine double oh one two three") == ("07770900123")


def test_short_spoken_numbers_are_left_alone() -> None:
    text = "one two three four five six, here i come"
    assert spoken_digits(text) == text
