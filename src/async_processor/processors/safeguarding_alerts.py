"""Safeguarding alerts: a child's words with a HIGH-severity risk reach a human.

When :func:`.safeguarding.assess_child` finds a risk of HIGH severity in what a child said
(a disclosure of abuse, talk of self-harm, a stranger's lure, immediate danger),
``AI_RESPONSE`` answers with the vetted reply of :mod:`.risk_replies` and raises an alert:
a ``NOTIFICATION`` task at ``CRITICAL`` priority to :meth:`Settings.safeguarding_target`
(``Settings.safeguarding_channel``, else the parent's app webhook ``Settings.parent_webhook``),
signed like every webhook.

The notification task is run here, in the reply's own task, by the notification
processor: a built-in processor has no handle on the processor that runs it, and an alert
that waits in the queue behind other work is worse than one sent at once. The reply waits at
most :data:`ALERT_WAIT_S` for the delivery; a slower delivery goes on in the background and
the result says ``"pending"``.

One alert per session and category: ``context['session_id']`` keys it, remembered in this
process for the :data:`MAX_SESSIONS` most recent sessions. The alert's id is derived from
the session and category, and sent as the webhook's ``message_id`` and ``Idempotency-Key``,
so a receiver can drop a repeat that a restarted process sends again. Without a session id
every HIGH-severity turn alerts. The child's own words go in the alert only with
``Settings.safeguarding_include_words``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..task import ProcessingType, TaskPriority, create_task
from . import notification
from .safeguarding import Assessment, Risk, Severity
from .settings import Settings

__all__ = ["ALERT_WAIT_S", "MAX_SESSIONS", "AlertContext", "forget_sessions", "raise_alert"]

logger = logging.getLogger(__name__)

#: How long the reply waits for the alert to be delivered before it goes on without it.
ALERT_WAIT_S = 3.0
#: How many sessions' alerts are remembered for deduplication.
MAX_SESSIONS = 10_000

_DESCRIPTIONS = {
    "sexual_abuse": "a possible disclosure of sexual abuse or grooming",
    "physical_abuse": "a possible disclosure of physical abuse or violence at home",
    "neglect": "a possible sign of neglect or a child left alone",
    "self_harm": "talk of self-harm or of not wanting to live",
    "dangerous_acts": "a child about to do something dangerous",
    "strangers": "a stranger approaching or luring the child",
    "personal_information": "personal details shared or asked for",
    "secrecy": "an adult asking the child to keep secrets",
    "bullying": "bullying",
    "scary_content": "frightening or violent content",
    "substances": "drugs, alcohol or medicine",
    "purchases": "purchases or payment details",
}


@dataclass(frozen=True)
class AlertContext:
    """The turn an alert is about."""

    task_id: str
    session_id: str | None
    turn: Any
    child_age: int | None
    words: str
    reply: str


_sent: OrderedDict[str, str] = OrderedDict()  # session|category -> the task that alerted
_background: set[asyncio.Task[Any]] = set()


def forget_sessions() -> None:
    """Forget which sessions were alerted (for tests and a fresh start)."""
    _sent.clear()


def alert_id(session_or_task: str, risk: Risk) -> str:
    digest = hashlib.sha256(f"{session_or_task}\x00{risk.category.value}".encode()).hexdigest()
    return f"safeguarding-{digest[:24]}"


async def raise_alert(
    assessment: Assessment, context: AlertContext, settings: Settings
) -> dict[str, Any] | None:
    """Send an alert for a HIGH-severity risk in ``assessment``; what happened, for the
    result (None when there was nothing to alert). Never raises for a failed delivery: the
    child still gets the reply, and the result says what went wrong."""
    risk = assessment.top
    if risk is None or risk.severity is not Severity.HIGH:
        return None
    key = f"{context.session_id}|{risk.category.value}"
    ident = alert_id(context.session_id or context.task_id, risk)
    record: dict[str, Any] = {"id": ident, "category": risk.category.value, "sent": False}
    target = settings.safeguarding_target()
    if target is None:
        record["reason"] = (
            "no safeguarding channel is configured: set ASYNC_PROCESSOR_SAFEGUARDING_CHANNEL "
            "or ASYNC_PROCESSOR_PARENT_WEBHOOK"
        )
        logger.warning("safeguarding alert %s not sent: no channel configured", ident)
        return record
    if context.session_id and key in _sent:
        record.update(duplicate=True, first_task=_sent[key])
        return record
    if context.session_id:
        _sent[key] = context.task_id
        while len(_sent) > MAX_SESSIONS:
            _sent.popitem(last=False)
    record["channel"] = target[0]
    delivery = asyncio.ensure_future(_deliver(ident, key, risk, context, target, settings))
    _background.add(delivery)
    delivery.add_done_callback(_background.discard)
    try:
        record.update(await asyncio.wait_for(asyncio.shield(delivery), ALERT_WAIT_S))
    except TimeoutError:
        record["pending"] = True
    return record


def _payload(
    ident: str, risk: Risk, context: AlertContext, target: tuple[str, str], include: bool
) -> dict[str, Any]:
    description = _DESCRIPTIONS[risk.category.value]
    body = (
        f"Teddy heard {description} (confidence {risk.confidence:.2f}) and told the child to "
        "talk to a trusted grown-up. Please check on the child."
    )
    data: dict[str, Any] = {
        "type": "safeguarding_alert",
        "alert_id": ident,
        "category": risk.category.value,
        "severity": risk.severity.name.lower(),
        "confidence": risk.confidence,
        "session_id": context.session_id,
        "turn": context.turn,
        "task_id": context.task_id,
        "child_age": context.child_age,
        "bear_reply": context.reply,
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if include:
        data["child_words"] = context.words
        body += f' The child said: "{context.words}"'
    payload: dict[str, Any] = {
        "channel": target[0],
        "to": target[1],
        "subject": f"Safeguarding alert: {description}",
        "body": body,
    }
    if target[0] in ("webhook", "push"):
        payload["data"] = data
    return payload


async def _deliver(
    ident: str,
    key: str,
    risk: Risk,
    context: AlertContext,
    target: tuple[str, str],
    settings: Settings,
) -> dict[str, Any]:
    """Run the CRITICAL notification task; on failure, forget the session so that the next
    HIGH-severity turn tries again."""
    payload = _payload(ident, risk, context, target, settings.safeguarding_include_words)
    task = create_task(
        ProcessingType.NOTIFICATION, payload, TaskPriority.CRITICAL, id=ident, tags={"alert"}
    )
    try:
        delivered = await notification.process(task, settings)
    except Exception as exc:  # any failure is reported, never lost
        if _sent.get(key) == context.task_id:
            del _sent[key]
        logger.error("safeguarding alert %s was not delivered: %s", ident, exc)
        return {"sent": False, "error": f"{type(exc).__name__}: {exc}"}
    logger.info("safeguarding alert %s delivered by %s", ident, target[0])
    return {"sent": True, "message_id": delivered.get("message_id")}
