"""The exact rules of the safeguarding check: things a pattern finds without guessing.

Standard library only. A phone number, a street address with a house number, an email
address, a link, a payment-card number (a 13-19 digit run that passes the Luhn check) and
a few unambiguous phrases listed in ``processors/data/safeguarding/phrases.json``. The
semantic model (:mod:`.safeguarding_model`) covers everything said in other words.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .safeguarding_text import normalise, spoken_digits

__all__ = ["RuleHit", "find", "luhn_valid", "names_a_trusted_adult"]

_EMAIL = re.compile(r"[\w.%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}", re.IGNORECASE)
_LINK = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|uk|ly|me|tv"
    r"|gg|xyz|app|link|site|online|club|info|biz)\b(?:/\S*)?",
    re.IGNORECASE,
)
#: Runs of digits with the separators people write in numbers: spaces, dots, dashes, brackets.
_DIGIT_RUN = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{4,24}\d(?![\w])")
_STREET = (
    r"street|st|road|rd|avenue|ave|lane|ln|drive|dr|court|ct|close|crescent|way|place|pl"
    r"|terrace|boulevard|blvd|highway|hwy|parkway|square|sq|gardens|grove|row|mews|circle"
)
_ADDRESS = re.compile(
    rf"(?<![\w])\d{{1,5}}[a-z]?,?((?:\s+[a-z][a-z'.-]*){{1,3}})\s+(?:{_STREET})\b",
    re.IGNORECASE,
)
#: Words between a number and a street word that show it is not an address ("5 miles
#: down the road", "2 cats in the lane").
_NOT_ADDRESS = frozenset(
    [
        "a",
        "an",
        "the",
        "on",
        "in",
        "at",
        "to",
        "of",
        "down",
        "up",
        "along",
        "across",
        "by",
        "near",
        "from",
        "and",
        "or",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "miles",
        "metres",
        "meters",
        "steps",
        "km",
        "minutes",
        "blocks",
        "houses",
        "times",
        "cars",
        "cats",
        "dogs",
        "ducks",
        "birds",
        "kids",
    ]
)


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that matched: the category id and which rule (``phone``, ``card number``...)."""

    category: str
    rule: str


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (as payment cards do)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _numbers(text: str) -> list[RuleHit]:
    hits: list[RuleHit] = []
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            hits.append(RuleHit("purchases", "card number"))
        elif 7 <= len(digits) <= 15 and _looks_dialled(digits, match.group()):
            hits.append(RuleHit("personal_information", "phone"))
    return hits


def _looks_dialled(digits: str, written: str) -> bool:
    """Not a count (1234567), one digit over and over, a date or a sum written out."""
    steps = {int(b) - int(a) for a, b in itertools.pairwise(digits)}
    if steps <= {1} or steps <= {-1} or len(set(digits)) < 3:
        return False
    return not re.fullmatch(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}", written.strip())


def _addresses(text: str) -> list[RuleHit]:
    for match in _ADDRESS.finditer(text):
        between = {word.strip(",.").casefold() for word in match.group(1).split()}
        if not between & _NOT_ADDRESS:
            return [RuleHit("personal_information", "street address")]
    return []


@cache
def _phrases() -> dict[str, Any]:
    folder = resources.files("async_processor.processors") / "data" / "safeguarding"
    loaded: dict[str, Any] = json.loads((folder / "phrases.json").read_text(encoding="utf-8"))
    return loaded


def _normalise(text: str) -> str:
    """Lower case, accents and apostrophes dropped, every non-letter run one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    letters = re.sub(r"['\u2019\u2018`]", "", letters)
    return " " + re.sub(r"[^a-z0-9]+", " ", letters).strip() + " "


def _phrase_hits(text: str, side: str) -> list[RuleHit]:
    normalised = _normalise(text)
    return [
        RuleHit(category, f"phrase {phrase!r}")
        for category, phrases in _phrases()["categories"][side].items()
        for phrase in phrases
        if f" {phrase} " in normalised
    ]


def names_a_trusted_adult(text: str) -> bool:
    """True when ``text`` sends the child to a trusted grown-up (``phrases.json``)."""
    normalised = _normalise(text)
    return any(f" {phrase} " in normalised for phrase in _phrases()["trusted_adult"])


def find(text: str, side: str) -> list[RuleHit]:
    """Every rule that matches ``text`` said by ``side`` ("child" or "reply"), one hit per
    rule and category. Spoken-out digits count as digits and the phrases are matched on
    the normalised text (:mod:`.safeguarding_text`: "k1ll mys3lf" is "kill myself")."""
    hits = _numbers(spoken_digits(text)) + _addresses(text) + _phrase_hits(normalise(text), side)
    if _EMAIL.search(text):
        hits.append(RuleHit("personal_information", "email"))
    elif _LINK.search(text):
        hits.append(RuleHit("personal_information", "link"))
    return list(dict.fromkeys(hits))
