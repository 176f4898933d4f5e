"""Safeguarding alerts: a HIGH-severity risk in a child's words reaches the configured channel
(a real signed-webhook receiver on 127.0.0.1) once per session, as a CRITICAL notification,
with the child's words only when configured; a failed delivery never fails the reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from servers import Answer, HttpReceiver, smtp_server

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingType,
    Settings,
    SmtpSettings,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import safeguarding_alerts
from async_processor.processors.risk_replies import REPLIES
from async_processor.processors.safeguarding import Category

pytest.importorskip("httpx")
pytest.importorskip("aiohttp")

SECRET = "alert-test-secret"
DISCLOSURE = "I want to kill myself"  # self-harm: HIGH severity
MEDIUM = "my phone number is 555 123 4567"  # personal details: not HIGH


def local_settings(**fields: Any) -> Settings:
    """Settings for receivers on 127.0.0.1: the one place to allow loopback egress."""
    return Settings(webhook_secret=SECRET, egress_allow=("127.0.0.1",), **fields)


@pytest.fixture(autouse=True)
def fresh_sessions() -> Iterator[None]:
    safeguarding_alerts.forget_sessions()
    yield
    safeguarding_alerts.forget_sessions()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AdvancedAsyncProcessor]:
    processor = await create_processor(max_process_workers=0, settings=settings)
    try:
        yield processor
    finally:
        await processor.shutdown(timeout=5)


async def say(
    processor: AdvancedAsyncProcessor, words: str, session: str | None = "s-1", turn: int = 1
) -> TaskResult:
    context: dict[str, Any] = {"child_age": 7, "turn": turn}
    if session is not None:
        context["session_id"] = session
    task = create_task(
        ProcessingType.AI_RESPONSE, {"prompt": f'The child said: "{words}"', "context": context}
    )
    await processor.submit_task(task)
    result = await processor.wait_for_task(task.id, timeout=60)
    assert result.status is TaskStatus.COMPLETED, result.error
    return result


def alert_of(result: TaskResult) -> Any:
    return result.result["safeguarding"]["alert"]


async def test_a_disclosure_alerts_the_parent_app_once_per_session() -> None:
    async with (
        HttpReceiver(secret=SECRET) as parent,
        running(local_settings(parent_webhook=parent.url())) as processor,
    ):
        first = await say(processor, DISCLOSURE)
        again = await say(processor, DISCLOSURE, turn=2)
        other = await say(processor, DISCLOSURE, session="s-2")
    assert first.result["response"] in REPLIES.categories[Category.SELF_HARM].older
    assert first.result["safeguarding"]["assessment"]["risks"][0]["category"] == "self_harm"
    alert = alert_of(first)
    assert alert["sent"] is True and alert["channel"] == "webhook"
    assert alert["category"] == "self_harm"
    assert alert_of(again) == {
        "id": alert["id"],
        "category": "self_harm",
        "sent": False,
        "duplicate": True,
        "first_task": first.task_id,
    }
    assert alert_of(other)["sent"] is True and alert_of(other)["id"] != alert["id"]
    assert len(parent.received) == 2 and parent.rejected == 0  # signed, verified
    posted = parent.received[0]
    assert posted.headers["idempotency-key"] == alert["message_id"]
    document = posted.json()
    assert document["subject"].startswith("Safeguarding alert: talk of self-harm")
    data = document["data"]
    assert data["type"] == "safeguarding_alert" and data["severity"] == "high"
    assert data["session_id"] == "s-1" and data["task_id"] == first.task_id
    assert data["bear_reply"] == first.result["response"]
    assert "child_words" not in data and "kill" not in posted.body.decode()


async def test_the_childs_words_go_in_only_when_configured() -> None:
    async with HttpReceiver(secret=SECRET) as parent:
        settings = local_settings(parent_webhook=parent.url(), safeguarding_include_words=True)
        async with running(settings) as processor:
            await say(processor, DISCLOSURE)
    data = parent.received[0].json()
    assert data["data"]["child_words"] == DISCLOSURE
    assert DISCLOSURE in data["body"]


async def test_a_safeguarding_channel_routes_alerts_away_from_the_parent_account() -> None:
    async with HttpReceiver(secret=SECRET) as parent, HttpReceiver(secret=SECRET) as team:
        settings = local_settings(
            parent_webhook=parent.url(), safeguarding_channel=team.url("/safeguarding")
        )
        async with running(settings) as processor:
            result = await say(processor, DISCLOSURE)
    assert alert_of(result)["sent"] is True
    assert [p.path for p in team.received] == ["/safeguarding"]
    assert parent.received == []


async def test_an_alert_can_go_to_a_safeguarding_lead_by_email() -> None:
    pytest.importorskip("aiosmtplib")
    pytest.importorskip("aiosmtpd")
    async with smtp_server() as mail:
        settings = local_settings(
            safeguarding_channel="mailto:lead@school.example",
            smtp=SmtpSettings(host=mail.host, port=mail.port, sender="teddy@toy.example"),
        )
        async with running(settings) as processor:
            result = await say(processor, DISCLOSURE)
    assert alert_of(result)["sent"] is True and alert_of(result)["channel"] == "email"
    (received,) = mail.received
    assert received.rcpt_tos == ["lead@school.example"]
    assert str(received.message["Subject"]).startswith("Safeguarding alert:")
    assert "kill" not in received.message.get_content()


async def test_without_a_channel_the_result_says_the_alert_was_not_sent() -> None:
    async with running(local_settings()) as processor:
        result = await say(processor, DISCLOSURE)
    alert = alert_of(result)
    assert alert["sent"] is False
    assert "ASYNC_PROCESSOR_SAFEGUARDING_CHANNEL" in alert["reason"]
    assert result.result["response"] in REPLIES.categories[Category.SELF_HARM].older


async def test_risks_below_high_and_safe_turns_raise_no_alert() -> None:
    async with (
        HttpReceiver(secret=SECRET) as parent,
        running(local_settings(parent_webhook=parent.url())) as processor,
    ):
        medium = await say(processor, MEDIUM)
        safe = await say(processor, "I like trains")
    assert medium.result["safeguarding"]["assessment"]["risks"]
    assert alert_of(medium) is None and alert_of(safe) is None
    assert parent.received == []


async def test_a_failed_delivery_is_reported_and_the_next_turn_tries_again() -> None:
    async with HttpReceiver(secret=SECRET) as parent:
        parent.queue(Answer(500))
        async with running(local_settings(parent_webhook=parent.url())) as processor:
            failed = await say(processor, DISCLOSURE)
            retried = await say(processor, DISCLOSURE, turn=2)
    assert alert_of(failed)["sent"] is False
    assert "ProviderError" in alert_of(failed)["error"]
    assert failed.result["response"] in REPLIES.categories[Category.SELF_HARM].older
    assert alert_of(retried)["sent"] is True
    assert len(parent.received) == 2


async def test_a_slow_receiver_does_not_hold_the_reply_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(safeguarding_alerts, "ALERT_WAIT_S", 0.05)
    async with HttpReceiver(secret=SECRET) as parent:
        parent.queue(Answer(204, delay=30))
        async with running(local_settings(parent_webhook=parent.url())) as processor:
            result = await say(processor, DISCLOSURE)
            alert = alert_of(result)
            assert alert["pending"] is True and alert["sent"] is False
            for _ in range(500):  # the delivery went on: the receiver has it
                if parent.received:
                    break
                await asyncio.sleep(0.01)
    assert len(parent.received) == 1


def test_the_channel_settings_are_checked() -> None:
    assert Settings(safeguarding_channel="mailto:team@example.org").safeguarding_target() == (
        "email",
        "team@example.org",
    )
    assert Settings(parent_webhook="https://app.example/hook").safeguarding_target() == (
        "webhook",
        "https://app.example/hook",
    )
    assert Settings().safeguarding_target() is None
    with pytest.raises(InvalidArgumentError, match="safeguarding_channel must be an http"):
        Settings(safeguarding_channel="team@example.org")
    with pytest.raises(InvalidArgumentError, match="parent_webhook must be an http"):
        Settings(parent_webhook="sms:+447700900123")


def test_the_alert_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ASYNC_PROCESSOR_SAFEGUARDING_CHANNEL": "sms:+447700900123",
            "ASYNC_PROCESSOR_PARENT_WEBHOOK": "https://app.example/hook",
            "ASYNC_PROCESSOR_SAFEGUARDING_INCLUDE_WORDS": "1",
        }
    )
    assert settings.safeguarding_target() == ("sms", "+447700900123")
    assert settings.parent_webhook == "https://app.example/hook"
    assert settings.safeguarding_include_words is True
    assert Settings.from_env({}).safeguarding_include_words is False
    with pytest.raises(InvalidArgumentError, match="INCLUDE_WORDS must be 1 or 0"):
        Settings.from_env({"ASYNC_PROCESSOR_SAFEGUARDING_INCLUDE_WORDS": "maybe"})
