"""The gate a provider's streamed reply passes, one sentence at a time, before release.

Text from the model is buffered until a sentence ends; the sentence is then assessed by the
output-side classifier (:func:`.safeguarding.assess_reply`, with the child's words) and,
when ``Settings.moderation`` is set, by the provider moderation check. A sentence that
passes (the classifier finds no risk in it) is released; the first that fails closes the
gate: the stream is abandoned and the
rest of the reply is replaced by a safe fallback. A check that errors or times out closes
the gate the same way (fail closed), and the result says why. The gate also closes, without
a fallback, once the child's age allows no more sentences.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from . import safeguarding, safety
from .moderation import ModerationFailed, moderate
from .settings import Settings

__all__ = ["GateOutcome", "ReplyGate"]


@dataclass(frozen=True)
class GateOutcome:
    """What the gate let through, and why it closed."""

    text: str
    action: str  # "allowed", "shortened" or "replaced"
    flags: tuple[str, ...]
    reasons: tuple[str, ...]
    released: tuple[str, ...]
    assessment: safeguarding.Assessment | None

    def safety(self) -> dict[str, Any]:
        """The ``safety`` entry of an ``AI_RESPONSE`` result."""
        return {
            "passed": self.action == "allowed",
            "flags": list(self.flags),
            "action": self.action,
            "reasons": list(self.reasons),
            "text": self.text,
            "released_sentences": len(self.released),
        }


@dataclass
class ReplyGate:
    """Feed it the stream's text with :meth:`feed` until it returns False, then call
    :meth:`outcome`."""

    child_message: str | None
    settings: Settings
    max_sentences: int
    max_words: int
    released: list[str] = field(default_factory=list)
    seen_text: bool = False
    _buffer: str = ""
    _closed: bool = False
    _shortened: bool = False
    _flags: list[str] = field(default_factory=list)
    _reasons: list[str] = field(default_factory=list)
    _blocked: safeguarding.Assessment | None = None

    async def feed(self, delta: str) -> bool:
        """Take more of the reply; False once the gate is closed (stop reading)."""
        if self._closed:
            return False
        self.seen_text = self.seen_text or bool(delta.strip())
        self._buffer += delta
        sentences = safety.split_sentences(self._buffer)
        if len(sentences) < 2:
            return True
        *complete, last = sentences
        self._buffer = self._buffer[self._buffer.rfind(last) :]
        for sentence in complete:
            if not await self._release(sentence):
                return False
        return True

    async def finish(self) -> None:
        """The stream ended: check and release what is left in the buffer."""
        tail = self._buffer.strip()
        self._buffer = ""
        if tail and not self._closed:
            await self._release(tail)

    async def _release(self, sentence: str) -> bool:
        longer = " ".join([*self.released, sentence])
        if len(self.released) >= self.max_sentences or (
            self.released and safety.word_count(longer) > self.max_words
        ):
            self._shortened = self._closed = True
            return False
        problem = await self._check(sentence)
        if problem is not None:
            self._closed = True
            number = len(self.released) + 1
            self._reasons.append(f"sentence {number} of the reply {problem}")
            return False
        self.released.append(sentence)
        return True

    async def _check(self, sentence: str) -> str | None:
        """Why ``sentence`` may not be said, or None."""
        try:
            assessment = await asyncio.to_thread(
                safeguarding.assess_reply, sentence, self.child_message
            )
        except Exception as exc:  # the classifier itself failed: fail closed
            self._flags.append("check_failed")
            return f"could not be checked ({type(exc).__name__}: {exc})"
        top = assessment.top
        if top is not None:
            self._blocked = assessment
            self._flags.extend(risk.category.value for risk in assessment.risks)
            return f"carries a risk of {top.category.value} ({top.severity.name.lower()})"
        config = self.settings.moderation
        if config is None:
            return None
        try:
            verdict = await moderate(
                sentence, self.child_message, config, self.settings.moderation_api
            )
        except ModerationFailed as exc:
            self._flags.append("moderation_failed")
            return f"could not be moderated, so it was not said: {exc}"
        if verdict.flagged:
            self._flags.extend(f"moderation:{name}" for name in verdict.categories or ("flagged",))
            return f"was flagged by the moderation check ({', '.join(verdict.categories)})"
        return None

    def outcome(self, fallback: str) -> GateOutcome:
        """The reply to say: the released sentences, then ``fallback`` if the gate closed
        on a problem."""
        if self._reasons:
            text = " ".join([*self.released, fallback])
            action = "replaced"
        else:
            text = " ".join(self.released)
            if safety.word_count(text) > self.max_words:  # one long sentence
                text = " ".join(text.split()[: self.max_words]).rstrip(",;:") + "..."
                self._shortened = True
            action = "shortened" if self._shortened else "allowed"
        reasons = list(self._reasons)
        if self._shortened:
            reasons.append(
                f"the reply was cut to fit {self.max_sentences} sentences and "
                f"{self.max_words} words"
            )
        flags = [*dict.fromkeys(self._flags)] + (["too_long"] if self._shortened else [])
        return GateOutcome(
            text, action, tuple(flags), tuple(reasons), tuple(self.released), self._blocked
        )
