"""Text normalisation for the safeguarding classifier (standard library only).

A child typing, or a model trying to slip past a filter, writes "k1ll mys3lf",
"s.e.c.r.e.t", "sooooo sad" or a phone number as "five five five, one two three four".
:func:`normalise` turns the first three into ordinary spelling before the text is
encoded (the same function runs in training, so the model sees one spelling), and
:func:`spoken_digits` writes spoken-out digit runs as digits for the exact rules.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalise", "spoken_digits"]

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
#: A run of letters, digits and the leet symbols, with at least one letter in it.
_TOKEN = re.compile(r"[a-z0-9@$]*[a-z][a-z0-9@$]*")
#: Ordinals, times and decades ("1st", "4th", "7pm", "90s") are not leetspeak; nor is a
#: token with two digits in a row ("abc123", "covid19").
_NUMBER_WORD = re.compile(r"\d+(?:st|nd|rd|th|am|pm|s|k|kg|cm|m|mm|km|h)")
#: Three or more single letters with a dot, dash, star or underscore (and spaces) between.
_SPELLED = re.compile(r"(?<![a-z0-9])[a-z](?:\s*[.\-_*]\s*[a-z]){2,}(?![a-z0-9])")
#: Three or more single letters with only spaces between ("k i l l").
_SPACED = re.compile(r"(?<![a-z0-9])[a-z](?: [a-z]){3,}(?![a-z0-9])")
_REPEATED = re.compile(r"([a-z])\1{2,}")
_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DIGIT_WORD = "(?:" + "|".join(_DIGIT_WORDS) + ")"
_SPOKEN_RUN = re.compile(
    rf"\b(?:(?:double |triple )?{_DIGIT_WORD}[\s,.-]+){{6,}}(?:double |triple )?{_DIGIT_WORD}\b",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """The text as the model should read it: compatibility forms folded, lower case,
    leetspeak letters restored inside words, spelled-out letters joined and letters
    repeated three or more times cut to two. Ordinary text is returned lower-cased."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = _SPELLED.sub(lambda m: re.sub(r"[\s.\-_*]", "", m.group()), folded)
    folded = _SPACED.sub(lambda m: m.group().replace(" ", ""), folded)
    folded = _TOKEN.sub(_unleet, folded)
    return _REPEATED.sub(r"\1\1", folded)


def _unleet(match: re.Match[str]) -> str:
    token = match.group()
    if token.isalpha() or _NUMBER_WORD.fullmatch(token) or re.search(r"\d\d", token):
        return token
    return token.translate(_LEET)


def spoken_digits(text: str) -> str:
    """The text with each run of seven or more spoken digits ("five five five one two
    three four", "oh seven double seven ...") written as digits."""
    return _SPOKEN_RUN.sub(_digits_of, text)


def _digits_of(match: re.Match[str]) -> str:
    words = re.findall(r"[a-z]+", match.group().casefold())
    digits: list[str] = []
    repeat = 1
    for word in words:
        if word in ("double", "triple"):
            repeat = 2 if word == "double" else 3
            continue
        digits.append(_DIGIT_WORDS[word] * repeat)
        repeat = 1
    return "".join(digits)
