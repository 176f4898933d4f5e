"""What the teddy bear says when a child's words carry a risk, or when it is unsure.

The replies are data (``data/risk_replies.json``), one set per safeguarding category and
age band, written to child-protection guidance: calm and kind, believe and reassure, never a
question that probes (who, where, what, why, or yes/no), never a promise to keep a secret,
and always a trusted grown-up, right away where the danger may be immediate. They never
repeat the child's words. A variant is picked deterministically from a seed (the session,
turn and words), so a session hears the same reply for the same words.

Two more sets answer turns the bear must not echo: ``unsure`` (the classifier is not sure
the words are safe) and ``question`` (the child asked something the bank does not know).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .safeguarding import Category

__all__ = [
    "BANDS",
    "RiskReplies",
    "is_question",
    "load_risk_replies",
    "question_reply",
    "risk_reply",
    "unsure_reply",
]

#: The age bands, in the order of the data file's keys.
BANDS = ("young", "older")

_QUESTION_START = re.compile(
    r"^\W*(?:who|what|whats|what's|where|wheres|where's|when|why|how|which|whose|can|could|"
    r"will|would|should|shall|do|does|did|is|are|am|was|were|have|has)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Variants:
    """The replies of one category (or of ``unsure``/``question``) per age band."""

    young: tuple[str, ...]
    older: tuple[str, ...]
    urgent: bool = False

    def pick(self, child_age: int | None, young_age: int, seed: int) -> str:
        pool = self.young if child_age is not None and child_age <= young_age else self.older
        return pool[seed % len(pool)]


@dataclass(frozen=True)
class RiskReplies:
    """The whole set, as loaded."""

    young_age: int
    categories: Mapping[Category, Variants]
    unsure: Variants
    question: Variants


def _variants(item: Any, where: str) -> Variants:
    if not isinstance(item, Mapping):
        raise ValueError(f"risk replies {where}: expected an object with 'young' and 'older'")
    pools = []
    for band in BANDS:
        pool = item.get(band)
        if not isinstance(pool, list) or not pool or not all(isinstance(r, str) for r in pool):
            raise ValueError(f"risk replies {where}: {band!r} must be a non-empty list of strings")
        pools.append(tuple(pool))
    return Variants(pools[0], pools[1], bool(item.get("urgent", False)))


def load_risk_replies(document: Mapping[str, Any] | None = None) -> RiskReplies:
    """The replies in ``document``, or the shipped ``data/risk_replies.json``.

    Raises:
        ValueError: the document is malformed or misses a category (the message says which).
    """
    if document is None:
        source = resources.files(__package__) / "data" / "risk_replies.json"
        document = json.loads(source.read_text(encoding="utf-8"))
    given = document.get("categories", {})
    missing = sorted(c.value for c in Category if c.value not in given)
    if missing:
        raise ValueError(f"risk replies: no replies for {', '.join(missing)}")
    return RiskReplies(
        young_age=int(document["young_age"]),
        categories={c: _variants(given[c.value], c.value) for c in Category},
        unsure=_variants(document.get("unsure"), "unsure"),
        question=_variants(document.get("question"), "question"),
    )


REPLIES = load_risk_replies()


def risk_reply(category: Category, child_age: int | None, seed: int) -> str:
    """The reply to a child whose words carry a risk of ``category``."""
    return REPLIES.categories[category].pick(child_age, REPLIES.young_age, seed)


def unsure_reply(child_age: int | None, seed: int) -> str:
    """Something safe and simple, for words the classifier is not sure about."""
    return REPLIES.unsure.pick(child_age, REPLIES.young_age, seed)


def question_reply(child_age: int | None, seed: int) -> str:
    """For a question the reply bank cannot answer: a grown-up, never an echo."""
    return REPLIES.question.pick(child_age, REPLIES.young_age, seed)


def is_question(text: str) -> bool:
    """Whether the child asked something: a question mark, or a question word first
    (transcriptions rarely have the mark)."""
    return text.rstrip().endswith("?") or bool(_QUESTION_START.match(text))
