"""NOTIFICATION: email over SMTP, signed webhooks, and SMS or push through HTTP gateways.

Payload: ``channel`` (``email``, ``webhook``, ``sms`` or ``push``), ``to``, ``subject``,
``body``, and ``data`` (a JSON object, webhook and push only). Without ``body`` the text of
the dependencies is sent: an AI reply's ``response``, else a transcription's ``text``.

- ``email``: ``to`` is an address or a list of them (``a@example.org`` or
  ``Name <a@example.org>``). Sent with aiosmtplib (extra ``notify``) to
  :attr:`Settings.smtp` (env ``ASYNC_PROCESSOR_SMTP_URL``, ``ASYNC_PROCESSOR_MAIL_FROM``),
  From the configured sender, with a ``Message-ID`` that is returned as ``message_id``.
- ``webhook``: ``to`` is one http(s) URL. The JSON document ``{"message_id", "subject",
  "body", "data", "sent_at"}`` is POSTed with httpx, signed with
  :attr:`Settings.webhook_secret` (env ``ASYNC_PROCESSOR_WEBHOOK_SECRET``): header
  ``X-Timestamp`` is the Unix time in seconds and ``X-Signature-256`` is
  ``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + the exact body bytes) (see
  :func:`signature`). A receiver recomputes it, compares in constant time, and refuses old
  timestamps (replays). Redirects are not followed.
- ``sms``: ``to`` is a number or a list, in E.164 (``+447700900123``; spaces, dashes, dots
  and brackets are removed). ``push``: ``to`` is a device token or topic, or a list. Both POST
  JSON (``{"to": [...], "body", "message_id"}``, push also ``"title"`` = ``subject`` and
  ``"data"``) to the gateway configured as :attr:`Settings.sms` / :attr:`Settings.push`
  (a ``ProviderSettings`` of kind ``"http"``: ``base_url`` is the endpoint, ``api_key`` is
  sent as ``Authorization: Bearer``), retrying a 429, 5xx or lost connection up to its
  ``max_retries`` times. The gateway's ``message_id`` (or ``id``) in a JSON reply becomes
  ``message_id``.

Every channel connects only to public addresses unless :attr:`Settings.egress_allow` (env
``ASYNC_PROCESSOR_EGRESS_ALLOW``) allows the host: a webhook, gateway or SMTP server that
resolves to a loopback, private, link-local, CGNAT, unique-local or metadata address fails
with :class:`~async_processor.EgressDeniedError` before anything is sent (see
:mod:`.egress`). Errors and results never show URL credentials or query values, nor the body
of a refusal: only its status code.

``message_id`` is derived from the task id, so a retried task sends the same id (the
``Idempotency-Key`` header on HTTP channels) and a receiver can drop the duplicate.

Result: ``delivered`` (True: the server or endpoint accepted it), ``channel``, ``message_id``,
and beyond the contract ``recipients`` (those accepted; a webhook URL with its credentials and
query values redacted); email also ``refused`` (address ->
the server's reply, for recipients refused while others were accepted) and ``response``;
HTTP channels also ``status_code``, and sms/push ``attempts``.

Errors: a bad payload (unknown channel, no recipient, a malformed address, URL or number, a
body that is empty or too long) or a channel that is not configured fails the task with
:class:`~async_processor.InvalidInputError`. A server that cannot be reached, times out, or
answers 429, 5xx or an SMTP 4xx raises :class:`~async_processor.ProviderError` (retried under
the task's ``max_retries``); other 4xx answers, an SMTP 5xx (recipient refused, bad
credentials) and redirects raise :class:`~async_processor.ProviderRequestError`.
"""

from __future__ import annotations

import asyncio
import datetime
import email.errors
import email.utils
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidInputError, ProviderError, ProviderRequestError
from ..task import ProcessingTask
from . import extras, inputs
from .egress import EgressPolicy, open_socket, redact_url, redacted_netloc
from .settings import ProviderSettings, Settings

__all__ = [
    "CHANNELS",
    "MAX_BODY_CHARS",
    "MAX_RECIPIENTS",
    "MAX_SMS_CHARS",
    "WEBHOOK_TIMEOUT",
    "process",
    "signature",
]

CHANNELS = ("email", "webhook", "sms", "push")
#: Seconds a webhook receiver has to answer.
WEBHOOK_TIMEOUT = 10.0
#: The most recipients one task may address.
MAX_RECIPIENTS = 50
#: The longest body, in characters (an SMS is limited to :data:`MAX_SMS_CHARS`).
MAX_BODY_CHARS = 100_000
#: Ten concatenated SMS segments.
MAX_SMS_CHARS = 1600
#: The longest Retry-After an SMS/push gateway may ask for before the task fails instead.
_MAX_RETRY_AFTER = 10.0

_PHONE_NOISE = re.compile(r"[\s().\-]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_USER_AGENT = "async-processor-notify"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Signature-256`` value of a webhook: ``sha256=`` + hex HMAC-SHA256 of
    ``timestamp + "." + body`` keyed with ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


# --- the payload --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    channel: str
    to: Any
    subject: str
    body: str
    data: dict[str, Any] | None
    message_id: str


def _request(task: ProcessingTask) -> _Request:
    payload = task.payload
    channel = payload.get("channel")
    if channel not in CHANNELS:
        raise InvalidInputError(
            f"payload['channel'] must be one of {', '.join(CHANNELS)}, got {channel!r}"
        )
    if payload.get("to") in (None, "", [], ()):
        raise InvalidInputError(
            f"a {channel} notification needs payload['to']: "
            + {
                "email": "an email address or a list of them",
                "webhook": "the http(s) URL to POST to",
                "sms": "a phone number in E.164 form (+447700900123) or a list of them",
                "push": "a device token or topic, or a list of them",
            }[channel]
        )
    subject = payload.get("subject") or ""
    if not isinstance(subject, str) or "\r" in subject or "\n" in subject:
        raise InvalidInputError("payload['subject'] must be a string on one line")
    body = payload.get("body")
    if body is None:
        body = inputs.from_dependencies(task, "response") or inputs.from_dependencies(task, "text")
    if body is not None and not isinstance(body, str):
        raise InvalidInputError(f"payload['body'] must be a string, got {type(body).__name__}")
    data = payload.get("data")
    if data is not None:
        if channel not in ("webhook", "push"):
            raise InvalidInputError(f"payload['data'] is sent by webhook and push, not {channel}")
        if not isinstance(data, Mapping):
            raise InvalidInputError("payload['data'] must be a JSON object (a dict)")
        try:
            data = json.loads(json.dumps(data))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"payload['data'] is not JSON-serialisable: {exc}") from exc
    if not (body and body.strip()) and not (channel == "webhook" and data):
        raise InvalidInputError(
            f"a {channel} notification needs payload['body'] (a non-empty string), or a "
            "dependency whose result has 'response' or 'text'"
            + (" (a webhook may send payload['data'] instead)" if channel == "webhook" else "")
        )
    body = body or ""
    limit = MAX_SMS_CHARS if channel == "sms" else MAX_BODY_CHARS
    if len(body) > limit:
        raise InvalidInputError(
            f"payload['body'] has {len(body)} characters; a {channel} allows {limit}"
        )
    return _Request(channel, payload["to"], subject, body, data, f"{task.id}.{channel}")


def _recipients(to: Any, what: str) -> list[str]:
    items = [to] if isinstance(to, str) else to
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise InvalidInputError(f"payload['to'] must be {what} or a list of them")
    if len(items) > MAX_RECIPIENTS:
        raise InvalidInputError(
            f"payload['to'] has {len(items)} recipients; the limit is {MAX_RECIPIENTS}"
        )
    return list(items)


def _email_address(raw: str) -> Address:
    problem = "it has a line break" if "\r" in raw or "\n" in raw else None
    if problem is None:
        parsed = email.utils.getaddresses([raw])
        if len(parsed) != 1:
            problem = "it holds several addresses: pass a list"
        else:
            name, spec = parsed[0]
            try:
                address = Address(display_name=name, addr_spec=spec)
            except (ValueError, IndexError, email.errors.HeaderParseError):
                problem = "expected name@domain or Name <name@domain>"
            else:
                if address.username and address.domain:
                    return address
                problem = "expected name@domain or Name <name@domain>"
    raise InvalidInputError(f"{raw!r} is not an email address: {problem}")


def _phone_number(raw: str) -> str:
    number = _PHONE_NOISE.sub("", raw)
    if not _E164.fullmatch(number):
        raise InvalidInputError(
            f"{raw!r} is not a phone number in E.164 form: a + then the country code and "
            "number, 8 to 15 digits (+447700900123)"
        )
    return number


def _push_target(raw: str) -> str:
    if not raw or len(raw) > 4096 or any(char.isspace() for char in raw):
        raise InvalidInputError(
            f"{raw[:40]!r} is not a push device token or topic (no spaces, 1-4096 characters)"
        )
    return raw


def _webhook_url(to: Any) -> str:
    if not isinstance(to, str):
        raise InvalidInputError("a webhook's payload['to'] is one http(s) URL (a string)")
    parts = urlsplit(to)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{to!r} is not an http(s) URL a webhook can be POSTed to")
    return to


# --- email ----------------------------------------------------------------------------------


async def _send_email(request: _Request, settings: Settings) -> dict[str, Any]:
    addresses = [_email_address(raw) for raw in _recipients(request.to, "an email address")]
    smtp = settings.smtp
    if smtp is None:
        raise InvalidInputError(
            "email notifications need an SMTP server: set ASYNC_PROCESSOR_SMTP_URL="
            "smtp://user:password@host:587 (and ASYNC_PROCESSOR_MAIL_FROM), or pass "
            "Settings(smtp=SmtpSettings(host=...))"
        )
    aiosmtplib = await extras.require_off_loop("aiosmtplib", "notify", "Email notifications")
    sender_domain = smtp.sender.rpartition("@")[2].strip("> ") or "localhost"
    message_id = f"<{request.message_id}@{sender_domain}>"
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = addresses
    message["Subject"] = request.subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = message_id
    message.set_content(request.body)
    where = f"the SMTP server {smtp.host}:{smtp.port}"
    policy = EgressPolicy(settings.egress_allow)
    try:
        sock = await open_socket(policy, smtp.host, smtp.port, smtp.timeout)
    except (OSError, TimeoutError) as exc:
        raise ProviderError(f"cannot deliver to {where}: {exc or type(exc).__name__}") from exc
    try:
        refused, response = await aiosmtplib.send(
            message,
            hostname=smtp.host,  # the TLS server name; the socket is connected to a checked address
            sock=sock,
            username=smtp.username,
            password=smtp.password,
            use_tls=smtp.use_tls,
            start_tls=smtp.start_tls,
            timeout=smtp.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        replies = {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
        detail = "; ".join(f"{who}: {reply}" for who, reply in replies.items())
        if all(r.code >= 500 for r in exc.recipients):
            raise ProviderRequestError(f"{where} refused every recipient: {detail}") from exc
        raise ProviderError(f"{where} deferred the recipients: {detail}") from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ProviderRequestError(
            f"{where} refused the credentials ({exc.code} {exc.message}): check the user and "
            "password in ASYNC_PROCESSOR_SMTP_URL"
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        error = ProviderError if 400 <= exc.code < 500 else ProviderRequestError
        raise error(f"{where} answered {exc.code} {exc.message}") from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise ProviderRequestError(f"{where}: {exc}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise ProviderError(f"cannot deliver to {where}: {exc or type(exc).__name__}") from exc
    finally:
        sock.close()
    return {
        "delivered": True,
        "channel": "email",
        "message_id": message_id,
        "recipients": [a.addr_spec for a in addresses if a.addr_spec not in refused],
        "refused": {who: f"{reply.code} {reply.message}" for who, reply in refused.items()},
        "response": response,
    }


# --- HTTP channels --------------------------------------------------------------------------


def _http_failure(what: str, response: Any) -> Exception:
    """The error for a non-2xx answer: its status code, never its body (which may hold
    whatever an internal server or an attacker's endpoint chose to show)."""
    status = response.status_code
    if status == 429 or status >= 500:
        return ProviderError(f"{what} answered {status}")
    if 300 <= status < 400:
        return ProviderRequestError(
            f"{what} answered {status}, a redirect to {response.headers.get('location')!r}; "
            "redirects are not followed: configure the final URL"
        )
    hint = ""
    if status in (401, 403):
        hint = " (check the secret or token it expects)"
    return ProviderRequestError(f"{what} refused the notification: {status}{hint}")


def _transport_failure(what: str, exc: Exception, httpx: Any, timeout: float) -> Exception:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"{what} did not answer within {timeout:g} s")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return InvalidInputError(f"{what}: {exc}")
    return ProviderError(f"cannot reach {what}: {type(exc).__name__}: {exc}")


async def _send_webhook(request: _Request, settings: Settings) -> dict[str, Any]:
    url = _webhook_url(request.to)
    if not settings.webhook_secret:
        raise InvalidInputError(
            "webhooks are always signed: set ASYNC_PROCESSOR_WEBHOOK_SECRET (or "
            "Settings(webhook_secret=...)) to the secret the receiver checks"
        )
    httpx = await extras.require_off_loop("httpx", "notify", "Webhook notifications")
    document = {
        "message_id": request.message_id,
        "subject": request.subject,
        "body": request.body,
        "data": request.data or {},
        "sent_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
        "X-Timestamp": timestamp,
        "X-Signature-256": signature(settings.webhook_secret, timestamp, body),
        "Idempotency-Key": request.message_id,
    }
    what = f"the webhook {redacted_netloc(url)}"
    timeout = WEBHOOK_TIMEOUT
    client = await _http_client(settings, timeout)
    try:
        async with client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise _transport_failure(what, exc, httpx, timeout) from exc
    if not response.is_success:
        raise _http_failure(what, response)
    return {
        "delivered": True,
        "channel": "webhook",
        "message_id": request.message_id,
        "recipients": [redact_url(url)],
        "status_code": response.status_code,
    }


async def _send_gateway(request: _Request, settings: Settings) -> dict[str, Any]:
    if request.channel == "sms":
        recipients = [_phone_number(raw) for raw in _recipients(request.to, "a phone number")]
        config, variable = settings.sms, "SMS"
    else:
        recipients = [_push_target(raw) for raw in _recipients(request.to, "a device token")]
        config, variable = settings.push, "PUSH"
    if config is None or not config.base_url:
        raise InvalidInputError(
            f"{request.channel} notifications need a gateway: set "
            f"ASYNC_PROCESSOR_{variable}_URL to its endpoint (and ASYNC_PROCESSOR_{variable}"
            f"_TOKEN), or Settings({request.channel}=ProviderSettings('http', base_url=...))"
        )
    if config.kind != "http":
        raise ProviderRequestError(
            f"Settings.{request.channel} must be a ProviderSettings of kind 'http', got "
            f"{config.kind!r}"
        )
    httpx = await extras.require_off_loop(
        "httpx", "notify", f"{request.channel.upper()} notifications"
    )
    document: dict[str, Any] = {
        "to": recipients,
        "body": request.body,
        "message_id": request.message_id,
    }
    if request.channel == "push":
        document.update(title=request.subject, data=request.data or {})
    headers = {"User-Agent": _USER_AGENT, "Idempotency-Key": request.message_id}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    what = f"the {request.channel} gateway {redacted_netloc(config.base_url)}"
    client = await _http_client(settings, config.timeout)
    response, attempts = await _post_with_retries(httpx, client, config, document, headers, what)
    message_id = request.message_id
    try:
        reply = response.json()
    except ValueError:
        reply = None
    if isinstance(reply, Mapping):
        given = reply.get("message_id", reply.get("id"))
        if isinstance(given, str | int) and not isinstance(given, bool) and str(given):
            message_id = str(given)
    return {
        "delivered": True,
        "channel": request.channel,
        "message_id": message_id,
        "recipients": recipients,
        "status_code": response.status_code,
        "attempts": attempts,
    }


async def _http_client(settings: Settings, timeout: float) -> Any:
    """An httpx client that reaches only what the egress policy allows (no redirects)."""
    from . import egress_http  # needs httpx, which the caller has checked is installed

    return await egress_http.async_client(
        EgressPolicy(settings.egress_allow), timeout=timeout, follow_redirects=False
    )


async def _post_with_retries(
    httpx: Any,
    client: Any,
    config: ProviderSettings,
    document: dict[str, Any],
    headers: dict[str, str],
    what: str,
) -> tuple[Any, int]:
    """POST to ``config.base_url``, retrying 429, 5xx and lost connections
    ``config.max_retries`` times."""
    async with client:
        for attempt in range(config.max_retries + 1):
            failure: Exception
            wait = min(0.25 * 2**attempt, 4.0)
            try:
                response = await client.post(config.base_url, json=document, headers=headers)
            except httpx.HTTPError as exc:
                failure = _transport_failure(what, exc, httpx, config.timeout)
                if not isinstance(failure, ProviderError):
                    raise failure from exc
            else:
                if response.is_success:
                    return response, attempt + 1
                failure = _http_failure(what, response)
                if not isinstance(failure, ProviderError):
                    raise failure
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    wait = float(retry_after)
            if attempt == config.max_retries or wait > _MAX_RETRY_AFTER:
                raise failure
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


# --- the processor --------------------------------------------------------------------------


async def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Send the task's notification (see the module docstring)."""
    request = _request(task)
    if request.channel == "email":
        return await _send_email(request, settings)
    if request.channel == "webhook":
        return await _send_webhook(request, settings)
    return await _send_gateway(request, settings)
