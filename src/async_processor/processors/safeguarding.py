"""TEMPORARY adapter over :mod:`.safety` with the safeguarding classifier's interface.

Only on the ``respond`` branch, so that its tests run before the classifier branch is merged;
the merge replaces this file with the real classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import safety

__all__ = [
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
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Side(str, Enum):
    CHILD = "child"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class Risk:
    category: Category
    severity: Severity
    confidence: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "severity": self.severity.name.lower(),
            "confidence": self.confidence,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Assessment:
    side: Side
    risks: tuple[Risk, ...]
    uncertain: bool

    @property
    def safe(self) -> bool:
        return not self.risks

    @property
    def top(self) -> Risk | None:
        return max(self.risks, key=lambda r: (r.severity, r.confidence), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side.value,
            "safe": self.safe,
            "uncertain": self.uncertain,
            "risks": [risk.to_dict() for risk in self.risks],
        }


_FLAGS = {
    "self_harm": (Category.SELF_HARM, Severity.HIGH),
    "sexual": (Category.SEXUAL_ABUSE, Severity.HIGH),
    "violence": (Category.PHYSICAL_ABUSE, Severity.HIGH),
    "weapons": (Category.DANGEROUS_ACTS, Severity.HIGH),
    "dangerous_activity": (Category.DANGEROUS_ACTS, Severity.MEDIUM),
    "secrecy": (Category.SECRECY, Severity.MEDIUM),
    "personal_information": (Category.PERSONAL_INFORMATION, Severity.MEDIUM),
    "personal_information_request": (Category.PERSONAL_INFORMATION, Severity.MEDIUM),
    "link": (Category.PERSONAL_INFORMATION, Severity.MEDIUM),
    "drugs_alcohol": (Category.SUBSTANCES, Severity.MEDIUM),
    "scary_content": (Category.SCARY_CONTENT, Severity.LOW),
    "profanity": (Category.BULLYING, Severity.LOW),
}


def _assessment(side: Side, flags: list[str] | tuple[str, ...]) -> Assessment:
    risks = {_FLAGS[flag][0]: Risk(*_FLAGS[flag], 1.0, "rules") for flag in flags if flag in _FLAGS}
    return Assessment(side, tuple(risks.values()), False)


def assess_child(text: str) -> Assessment:
    return _assessment(Side.CHILD, safety.scan_text(text))


def assess_reply(text: str, child_message: str | None = None) -> Assessment:
    return _assessment(Side.REPLY, safety.check_reply(text, 200).flags)


def assess_sentences(text: str, side: Side) -> Assessment:
    return assess_child(text) if side is Side.CHILD else assess_reply(text)


def warm_up() -> None:
    return None
