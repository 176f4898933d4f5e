"""NOTIFICATION through the processor against real local servers: an aiosmtpd SMTP server, a
webhook receiver that verifies the HMAC signature, and SMS and push gateways that check a
bearer token; failures of each kind, and bad inputs failing their task clearly."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from servers import Answer, HttpReceiver, SmtpServer, closed_port, smtp_server

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingType,
    ProviderSettings,
    Settings,
    SmtpSettings,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import notification

pytest.importorskip("aiosmtplib")
pytest.importorskip("httpx")
pytest.importorskip("aiosmtpd")
pytest.importorskip("aiohttp")

SECRET = "parent-app-secret"
SMS_TOKEN = "sms-token"
PUSH_TOKEN = "push-token"
SENDER = "Teddy <teddy@bear.example>"
#: The local test servers, allowed explicitly: by default no internal address is reached.
LOCAL_RECEIVERS = ("127.0.0.1",)


@dataclass
class Servers:
    smtp: SmtpServer
    hook: HttpReceiver
    sms: HttpReceiver
    push: HttpReceiver
    processor: AdvancedAsyncProcessor


def settings_for(
    smtp: SmtpServer, sms: HttpReceiver, push: HttpReceiver, /, **more: Any
) -> Settings:
    values: dict[str, Any] = {
        "smtp": SmtpSettings(smtp.host, smtp.port, sender=SENDER, timeout=5),
        "webhook_secret": SECRET,
        "sms": ProviderSettings("http", sms.url("/v1/sms"), SMS_TOKEN, max_retries=0),
        "push": ProviderSettings("http", push.url("/v1/push"), PUSH_TOKEN, max_retries=0),
        "egress_allow": LOCAL_RECEIVERS,
    }
    return Settings(**{**values, **more})


@pytest.fixture
async def env() -> AsyncIterator[Servers]:
    async with (
        smtp_server(refuse={"nobody@example.org", "ghost@example.org"}) as smtp,
        HttpReceiver(secret=SECRET) as hook,
        HttpReceiver(token=SMS_TOKEN) as sms,
        HttpReceiver(token=PUSH_TOKEN) as push,
    ):
        processor = await create_processor(
            max_process_workers=0, settings=settings_for(smtp, sms, push)
        )
        try:
            yield Servers(smtp, hook, sms, push, processor)
        finally:
            await processor.shutdown()


async def run(
    processor: AdvancedAsyncProcessor, payload: dict[str, Any], **fields: Any
) -> TaskResult:
    task = create_task(ProcessingType.NOTIFICATION, payload, **fields)
    return await processor.wait_for_task(await processor.submit_task(task), timeout=60)


async def sent(processor: AdvancedAsyncProcessor, payload: dict[str, Any]) -> dict[str, Any]:
    result = await run(processor, payload)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert isinstance(result.result, dict) and result.result["delivered"] is True
    return result.result


async def failed(env: Servers, payload: dict[str, Any], error: str, **fields: Any) -> TaskResult:
    """The task fails with ``error`` in its message, and the processor still delivers the
    next notification."""
    result = await run(env.processor, payload, **fields)
    assert result.status is TaskStatus.FAILED, result
    assert result.error is not None and error in result.error, result.error
    before = len(env.hook.received)
    await sent(env.processor, {"channel": "webhook", "to": env.hook.url(), "body": "still here"})
    assert len(env.hook.received) == before + 1
    return result


# --- email ----------------------------------------------------------------------------------


async def test_email_reaches_the_smtp_server(env: Servers) -> None:
    result = await sent(
        env.processor,
        {
            "channel": "email",
            "to": ["Mum <mum@example.org>", "dad@example.org"],
            "subject": "Teddy's day",
            "body": "Ada talked about the sky and felt happy.",
        },
    )
    assert result["channel"] == "email"
    assert result["recipients"] == ["mum@example.org", "dad@example.org"]
    assert result["refused"] == {}
    [mail] = env.smtp.received
    assert mail.mail_from == "teddy@bear.example"
    assert mail.rcpt_tos == ["mum@example.org", "dad@example.org"]
    message = mail.message
    assert message["From"] == SENDER
    assert message["To"] == "Mum <mum@example.org>, dad@example.org"
    assert message["Subject"] == "Teddy's day"
    assert message["Message-ID"] == result["message_id"]
    assert result["message_id"].endswith("@bear.example>")
    assert message.get_content().strip() == "Ada talked about the sky and felt happy."


async def test_email_with_one_refused_recipient_goes_to_the_others(env: Servers) -> None:
    result = await sent(
        env.processor,
        {"channel": "email", "to": ["mum@example.org", "nobody@example.org"], "body": "Hi"},
    )
    assert result["recipients"] == ["mum@example.org"]
    assert set(result["refused"]) == {"nobody@example.org"}
    assert result["refused"]["nobody@example.org"].startswith("550 5.1.1")
    assert [mail.rcpt_tos for mail in env.smtp.received] == [["mum@example.org"]]


async def test_email_all_recipients_refused_is_not_retried(env: Servers) -> None:
    result = await failed(
        env,
        {"channel": "email", "to": ["nobody@example.org", "ghost@example.org"], "body": "Hi"},
        "ProviderRequestError: the SMTP server 127.0.0.1:",
        max_retries=2,
    )
    assert "refused every recipient: nobody@example.org: 550 5.1.1" in (result.error or "")
    assert result.attempts == 1
    assert env.smtp.received == []


async def test_unreachable_smtp_server_is_retried(env: Servers) -> None:
    processor = await create_processor(
        max_process_workers=0,
        settings=Settings(
            smtp=SmtpSettings("127.0.0.1", closed_port(), timeout=2),
            egress_allow=LOCAL_RECEIVERS,
        ),
    )
    try:
        payload = {"channel": "email", "to": "mum@example.org", "body": "Hi"}
        result = await run(processor, payload, max_retries=1)
        assert result.status is TaskStatus.FAILED
        assert result.error is not None
        assert result.error.startswith("ProviderError: cannot deliver to the SMTP server")
        assert result.attempts == 2
        assert processor.running
    finally:
        await processor.shutdown()
    await failed(env, {"channel": "email", "to": "nobody@example.org", "body": "x"}, "550")


@pytest.mark.parametrize(("password", "delivered"), [("honey", True), ("wrong", False)])
async def test_email_logs_in_with_the_configured_credentials(
    password: str, delivered: bool
) -> None:
    async with smtp_server(credentials=("teddy", "honey")) as smtp:
        url = f"smtp://teddy:{password}@{smtp.host}:{smtp.port}"
        settings = Settings.from_env(
            {"ASYNC_PROCESSOR_SMTP_URL": url, "ASYNC_PROCESSOR_EGRESS_ALLOW": smtp.host}
        )
        processor = await create_processor(max_process_workers=0, settings=settings)
        try:
            result = await run(
                processor, {"channel": "email", "to": "mum@example.org", "body": "x"}
            )
        finally:
            await processor.shutdown()
    if delivered:
        assert result.status is TaskStatus.COMPLETED, result.error
        assert len(smtp.received) == 1
    else:
        assert result.status is TaskStatus.FAILED and result.error is not None
        assert "refused the credentials (535" in result.error
        assert result.error.startswith("ProviderRequestError: ")
        assert smtp.received == []


async def test_email_without_smtp_settings_says_how_to_configure() -> None:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        result = await run(processor, {"channel": "email", "to": "a@example.org", "body": "x"})
        assert result.status is TaskStatus.FAILED
        assert result.error is not None
        assert result.error.startswith("InvalidInputError: email notifications need an SMTP")
        assert "ASYNC_PROCESSOR_SMTP_URL" in result.error
    finally:
        await processor.shutdown()


# --- webhook --------------------------------------------------------------------------------


async def test_signed_webhook_is_verified_and_delivered(env: Servers) -> None:
    env.hook.queue(Answer(202, {"ok": True}))
    result = await sent(
        env.processor,
        {
            "channel": "webhook",
            "to": env.hook.url("/teddy?session=1"),
            "subject": "Teddy's day",
            "body": "3 turns today",
            "data": {"moods": ["happy", "scared"], "turns": 3},
        },
    )
    assert result["status_code"] == 202
    assert result["recipients"] == [env.hook.url("/teddy?session=***")]  # query values redacted
    [posted] = env.hook.received
    assert posted.path == "/teddy"
    document = posted.json()
    assert document["message_id"] == result["message_id"]
    assert document["subject"] == "Teddy's day" and document["body"] == "3 turns today"
    assert document["data"] == {"moods": ["happy", "scared"], "turns": 3}
    assert posted.headers["idempotency-key"] == result["message_id"]
    assert posted.headers["content-type"] == "application/json"
    assert env.hook.rejected == 0


async def test_webhook_signed_with_another_secret_is_refused(env: Servers) -> None:
    processor = await create_processor(
        max_process_workers=0,
        settings=settings_for(env.smtp, env.sms, env.push, webhook_secret="not-the-secret"),
    )
    try:
        result = await run(
            processor, {"channel": "webhook", "to": env.hook.url(), "body": "x"}, max_retries=2
        )
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.FAILED and result.attempts == 1
    assert result.error is not None
    assert result.error.startswith("ProviderRequestError: the webhook 127.0.0.1:")
    assert "401" in result.error and "check the secret" in result.error
    assert env.hook.rejected == 1 and env.hook.received == []


@pytest.mark.parametrize(
    ("answer", "error", "attempts"),
    [
        (Answer(500, {"error": "boom"}), "ProviderError: the webhook 127.0.0.1:", 2),
        (Answer(503), "answered 503", 2),
        (Answer(429, {"error": "slow down"}), "answered 429", 2),
        (Answer(404, {"error": "no such hook"}), "ProviderRequestError: ", 1),
        (Answer(400), "refused the notification: 400", 1),
        (Answer(302), "redirects are not followed", 1),
    ],
)
async def test_webhook_failures(env: Servers, answer: Answer, error: str, attempts: int) -> None:
    env.hook.queue(*[answer] * attempts)
    result = await failed(
        env, {"channel": "webhook", "to": env.hook.url(), "body": "x"}, error, max_retries=1
    )
    assert result.attempts == attempts
    ids = {posted.json()["message_id"] for posted in env.hook.received[:attempts]}
    assert len(ids) == 1  # a retry sends the same id, so the receiver can drop the duplicate


async def test_webhook_timeout_is_retryable(env: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notification, "WEBHOOK_TIMEOUT", 0.3)
    env.hook.queue(Answer(200, delay=10))
    started = time.perf_counter()
    result = await failed(
        env,
        {"channel": "webhook", "to": env.hook.url(), "body": "x"},
        "ProviderError: the webhook 127.0.0.1:",
    )
    assert "did not answer within 0.3 s" in (result.error or "")
    assert time.perf_counter() - started < 3


async def test_webhook_to_a_closed_port_is_retryable(env: Servers) -> None:
    result = await failed(
        env,
        {"channel": "webhook", "to": f"http://127.0.0.1:{closed_port()}/hook", "body": "x"},
        "ProviderError: cannot reach the webhook 127.0.0.1:",
    )
    assert "ConnectError" in (result.error or "")


async def test_webhook_without_a_secret_is_refused() -> None:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        result = await run(
            processor, {"channel": "webhook", "to": "http://127.0.0.1:9/hook", "body": "x"}
        )
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.FAILED and result.error is not None
    assert "webhooks are always signed: set ASYNC_PROCESSOR_WEBHOOK_SECRET" in result.error


async def test_body_comes_from_a_dependency(env: Servers) -> None:
    env.processor.register_processor("reply", lambda task: {"response": "Sleep tight, Ada!"})
    reply = create_task("reply")
    notify = create_task(
        ProcessingType.NOTIFICATION,
        {"channel": "webhook", "to": env.hook.url(), "data": {"kind": "reply"}},
        depends_on=[reply.id],
    )
    await env.processor.submit_tasks([reply, notify])
    result = await env.processor.wait_for_task(notify.id, timeout=30)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert env.hook.received[0].json()["body"] == "Sleep tight, Ada!"


# --- SMS and push ---------------------------------------------------------------------------


async def test_sms_goes_through_the_gateway(env: Servers) -> None:
    env.sms.queue(Answer(201, {"message_id": "SM-0001", "status": "queued"}))
    result = await sent(
        env.processor,
        {"channel": "sms", "to": ["+44 7700 900123", "+1 (555) 010-9999"], "body": "Hello!"},
    )
    assert result == {
        "delivered": True,
        "channel": "sms",
        "message_id": "SM-0001",
        "recipients": ["+447700900123", "+15550109999"],
        "status_code": 201,
        "attempts": 1,
    }
    [posted] = env.sms.received
    assert posted.path == "/v1/sms"
    assert posted.headers["authorization"] == f"Bearer {SMS_TOKEN}"
    assert posted.json()["to"] == ["+447700900123", "+15550109999"]
    assert posted.json()["body"] == "Hello!"


async def test_push_with_title_and_data(env: Servers) -> None:
    env.push.queue(Answer(200, {"id": 42}))
    result = await sent(
        env.processor,
        {
            "channel": "push",
            "to": "device-token-abc",
            "subject": "Teddy",
            "body": "Ada is asleep",
            "data": {"screen": "journal"},
        },
    )
    assert result["message_id"] == "42" and result["recipients"] == ["device-token-abc"]
    document = env.push.received[0].json()
    assert document["title"] == "Teddy" and document["data"] == {"screen": "journal"}
    assert document["to"] == ["device-token-abc"] and document["body"] == "Ada is asleep"


async def test_gateway_without_an_id_gets_a_generated_one(env: Servers) -> None:
    result = await sent(env.processor, {"channel": "push", "to": "tok", "body": "hi"})
    assert result["message_id"] == env.push.received[0].json()["message_id"]
    assert result["message_id"].endswith(".push")


async def test_gateway_retries_a_503_itself(env: Servers) -> None:
    settings = settings_for(
        env.smtp,
        env.sms,
        env.push,
        sms=ProviderSettings("http", env.sms.url("/v1/sms"), SMS_TOKEN, max_retries=1),
    )
    processor = await create_processor(max_process_workers=0, settings=settings)
    env.sms.queue(Answer(503), Answer(200, {"message_id": "SM-2"}))
    try:
        result = await sent(processor, {"channel": "sms", "to": "+447700900123", "body": "hi"})
    finally:
        await processor.shutdown()
    assert result["message_id"] == "SM-2" and result["attempts"] == 2
    assert len(env.sms.received) == 2


async def test_gateway_with_a_wrong_token_is_refused(env: Servers) -> None:
    settings = settings_for(
        env.smtp,
        env.sms,
        env.push,
        push=ProviderSettings("http", env.push.url("/v1/push"), "wrong"),
    )
    processor = await create_processor(max_process_workers=0, settings=settings)
    try:
        result = await run(processor, {"channel": "push", "to": "tok", "body": "hi"})
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.FAILED and result.error is not None
    assert result.error.startswith("ProviderRequestError: the push gateway 127.0.0.1:")
    assert "401" in result.error and env.push.rejected == 1


async def test_unconfigured_gateway_says_how_to_configure() -> None:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        result = await run(processor, {"channel": "sms", "to": "+447700900123", "body": "x"})
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.FAILED and result.error is not None
    assert "set ASYNC_PROCESSOR_SMS_URL" in result.error


# --- bad inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"channel": "fax", "to": "x", "body": "x"}, "must be one of email, webhook, sms, push"),
        ({"to": "a@example.org", "body": "x"}, "got None"),
        ({"channel": "email", "body": "x"}, "needs payload['to']: an email address"),
        ({"channel": "email", "to": [], "body": "x"}, "needs payload['to']"),
        ({"channel": "email", "to": "not an email", "body": "x"}, "is not an email address"),
        ({"channel": "email", "to": "a@", "body": "x"}, "is not an email address"),
        ({"channel": "email", "to": "a@x.org, b@x.org", "body": "x"}, "pass a list"),
        ({"channel": "email", "to": [1], "body": "x"}, "must be an email address or a list"),
        (
            {"channel": "email", "to": "a@x.org", "body": "x", "subject": "a\nBcc: b@x.org"},
            "one line",
        ),
        ({"channel": "email", "to": "a@x.org"}, "needs payload['body']"),
        ({"channel": "email", "to": "a@x.org", "body": "  "}, "needs payload['body']"),
        ({"channel": "email", "to": "a@x.org", "body": 5}, "must be a string, got int"),
        ({"channel": "email", "to": "a@x.org", "body": "x", "data": {}}, "webhook and push"),
        ({"channel": "email", "to": ["a@x.org"] * 51, "body": "x"}, "the limit is 50"),
        ({"channel": "webhook", "to": "ftp://example.org/x", "body": "x"}, "not an http(s) URL"),
        ({"channel": "webhook", "to": "not a url", "body": "x"}, "not an http(s) URL"),
        ({"channel": "webhook", "to": ["http://a.example"], "body": "x"}, "one http(s) URL"),
        ({"channel": "webhook", "to": "http://a.example", "data": [1]}, "must be a JSON object"),
        ({"channel": "webhook", "to": "http://a.example", "data": {"a": {1, 2}}}, "JSON"),
        ({"channel": "sms", "to": "07700 900123", "body": "x"}, "not a phone number in E.164"),
        ({"channel": "sms", "to": "+44", "body": "x"}, "not a phone number in E.164"),
        ({"channel": "sms", "to": "+447700900123", "body": "x" * 1601}, "a sms allows 1600"),
        ({"channel": "push", "to": "two words", "body": "x"}, "not a push device token"),
    ],
)
async def test_bad_inputs_fail_clearly(env: Servers, payload: dict[str, Any], error: str) -> None:
    result = await failed(env, payload, error, max_retries=2)
    assert result.error is not None and result.error.startswith("InvalidInputError: ")
    assert result.attempts == 1
    assert env.smtp.received == [] and env.sms.received == [] and env.push.received == []


# --- latency --------------------------------------------------------------------------------


async def test_send_latency(env: Servers) -> None:
    """Median time from submit to COMPLETED per channel; printed for the docs."""
    payloads = {
        "email": {"channel": "email", "to": "mum@example.org", "subject": "s", "body": "b"},
        "webhook": {"channel": "webhook", "to": env.hook.url(), "body": "b"},
        "sms": {"channel": "sms", "to": "+447700900123", "body": "b"},
        "push": {"channel": "push", "to": "tok", "body": "b"},
    }
    medians = {}
    for channel, payload in payloads.items():
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            await sent(env.processor, payload)
            timings.append(time.perf_counter() - started)
        medians[channel] = round(statistics.median(timings) * 1000, 2)
    print(f"\nnotification send latency, median ms over 30: {medians}")
    assert len(env.smtp.received) == 30
    assert all(median < 100 for median in medians.values()), medians
