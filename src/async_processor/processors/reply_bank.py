"""The teddy bear's reply bank: what children say, and what the bear says back.

The bank is data, in ``data/reply_bank.json`` beside this module, so that it can be reviewed
and edited without touching code. Each :class:`Intent` has example utterances (matched
against the child's words by sentence embedding, or by shared keywords without the model)
and several replies, picked deterministically per session and turn. ``young`` replies use
simpler words for children up to :data:`YOUNG_AGE`. ``{name}`` in a reply becomes the
child's name, or "friend".

Every reply there is written for a young child: short sentences, no unsafe topics, no
questions about where the child lives or who they are, and a trusted grown-up whenever
something might be wrong. A child's words that carry a risk never reach this bank: they are
answered from :mod:`.risk_replies`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "CLARIFY",
    "EMOTION_OPENERS",
    "INTENTS",
    "REFLECT",
    "YOUNG_AGE",
    "Intent",
    "load_bank",
]


@dataclass(frozen=True)
class Intent:
    """One kind of thing a child says, with the bear's possible answers.

    Attributes:
        name: a stable identifier, reported in the result as ``intent``.
        examples: utterances a child might say; the matcher compares against these.
        replies: what the bear may answer (any age).
        young: simpler answers for children up to :data:`YOUNG_AGE`; empty means ``replies``.
        keywords: extra words for the keyword matcher (used when the embedding model is absent).
        addresses: emotions the replies already speak to, so no emotion opener is added.
        reflect: answer by echoing the child's words back with a question (:data:`REFLECT`)
            when they can be echoed; ``replies`` otherwise.
    """

    name: str
    examples: tuple[str, ...]
    replies: tuple[str, ...]
    young: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    addresses: frozenset[str] = frozenset()
    reflect: bool = False


@dataclass(frozen=True)
class Bank:
    """The whole reply bank, as loaded."""

    young_age: int
    intents: tuple[Intent, ...]
    emotion_openers: Mapping[str, tuple[str, ...]]
    reflect: tuple[str, ...]
    clarify: tuple[str, ...]


def _strings(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise ValueError(f"{where}: {key!r} must be a list of non-empty strings")
    return tuple(value)


def _intent(item: Mapping[str, Any]) -> Intent:
    where = f"reply bank intent {item.get('name')!r}"
    if not isinstance(item.get("name"), str):
        raise ValueError(f"{where}: every intent needs a 'name' (a string)")
    intent = Intent(
        name=item["name"],
        examples=_strings(item, "examples", where),
        replies=_strings(item, "replies", where),
        young=_strings(item, "young", where),
        keywords=_strings(item, "keywords", where),
        addresses=frozenset(_strings(item, "addresses", where)),
        reflect=bool(item.get("reflect", False)),
    )
    if not intent.examples or not intent.replies:
        raise ValueError(f"{where}: needs at least one example and one reply")
    return intent


def load_bank(document: Mapping[str, Any] | None = None) -> Bank:
    """The bank in ``document``, or the shipped ``data/reply_bank.json``.

    Raises:
        ValueError: the document is malformed (the message names the field).
    """
    if document is None:
        source = resources.files(__package__) / "data" / "reply_bank.json"
        document = json.loads(source.read_text(encoding="utf-8"))
    openers = document.get("emotion_openers", {})
    if not isinstance(openers, Mapping):
        raise ValueError("reply bank: 'emotion_openers' must map an emotion to sentences")
    return Bank(
        young_age=int(document["young_age"]),
        intents=tuple(_intent(item) for item in document["intents"]),
        emotion_openers={
            emotion: _strings(openers, emotion, "reply bank emotion openers") for emotion in openers
        },
        reflect=_strings(document, "reflect", "reply bank"),
        clarify=_strings(document, "clarify", "reply bank"),
    )


_BANK = load_bank()

#: Children up to this age get the ``young`` replies and the shortest word budget.
YOUNG_AGE = _BANK.young_age
INTENTS: tuple[Intent, ...] = _BANK.intents
#: Said before the intent's reply when the child's emotion is not one the intent addresses
#: (one sentence each, so that it fits even the shortest replies for young children).
EMOTION_OPENERS: Mapping[str, tuple[str, ...]] = _BANK.emotion_openers
#: The fallback when nothing in the bank fits and the child's words can be echoed back.
#: ``{echo}`` is the child's words, seen from the bear's side ("my dog" -> "your dog").
REFLECT: tuple[str, ...] = _BANK.reflect
#: The fallback when nothing fits and the words cannot be echoed (gibberish).
CLARIFY: tuple[str, ...] = _BANK.clarify
