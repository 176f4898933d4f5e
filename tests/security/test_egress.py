"""Egress control (issue 10, finding 2): the built-ins reach no internal address unless the
operator allows it, check every resolved address and connect to the checked one, and never
return a response body, URL credentials or query tokens.

Only loopback receivers are ever connected to. Every other address class is checked through
the policy, which refuses before any socket exists, or through an injected resolver (the
seam the policy offers), so no test sends traffic to a private or public address."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import shutil
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from async_processor import (
    EgressDeniedError,
    InvalidArgumentError,
    ProcessingType,
    ProviderSettings,
    Settings,
    SmtpSettings,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import egress, egress_http

pytest.importorskip("aiosmtplib")
pytest.importorskip("aiosmtpd")

SECRET_BODY = "internal-admin-password=hunter2"


# --- real local servers -------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers ``status`` with
    ``body``."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def receiver(
    status: int = 200, body: bytes = b'{"ok": true}', tls: ssl.SSLContext | None = None
) -> Iterator[Receiver]:
    """A :class:`Receiver` (HTTPS with ``tls``)."""
    state = Receiver(status, body)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            state.requests.append({"path": self.path, "host": self.headers.get("Host")})
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    port: int = 0
    received: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


@asynccontextmanager
async def smtp_server() -> AsyncIterator[Mailbox]:
    from aiosmtpd.smtp import SMTP

    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox), "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    try:
        yield mailbox
    finally:
        server.close()
        await server.wait_closed()


async def run(settings: Settings, kind: ProcessingType, payload: dict[str, Any]) -> TaskResult:
    processor = await create_processor(max_process_workers=0, settings=settings)
    try:
        task_id = await processor.submit_task(create_task(kind, payload, max_retries=0))
        return await processor.wait_for_task(task_id, timeout=60)
    finally:
        await processor.shutdown()


def webhook(url: str) -> dict[str, Any]:
    return {"channel": "webhook", "to": url, "body": "Ada had a good day."}


def settings(**options: Any) -> Settings:
    return Settings(webhook_secret="parent-app-secret", **options)


def fixed(*answers: str) -> egress.Resolver:
    """A resolver that answers ``answers`` for every host (the policy's injection seam)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        return list(answers)

    return resolve


# --- address classes ------------------------------------------------------------------------

INTERNAL = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("169.254.10.10", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::ffff:127.0.0.1", "loopback address inside an IPv6"),
    ("::ffff:10.0.0.1", "private (RFC 1918) address inside an IPv6"),
    ("::ffff:169.254.169.254", "metadata address inside an IPv6"),
    ("64:ff9b::a9fe:a9fe", "inside an IPv6"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::", "loopback address inside an IPv6"),  # 6to4 of 127.0.0.1
    ("192.0.2.1", "not globally routable"),  # TEST-NET-1
]


@pytest.mark.parametrize(("address", "reason"), INTERNAL)
async def test_every_internal_address_class_is_refused_before_connecting(
    address: str, reason: str
) -> None:
    policy = egress.EgressPolicy()
    assert reason in (policy.refusal(address) or "")
    with pytest.raises(EgressDeniedError) as denied:
        await policy.resolve(address, 443)  # a numeric host: getaddrinfo sends nothing
    assert denied.value.address == address and reason in denied.value.reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert egress.EgressPolicy().refusal(address) is None


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "localhost"])
async def test_other_spellings_of_loopback_resolve_to_a_refused_address(spelling: str) -> None:
    with pytest.raises(EgressDeniedError) as denied:
        await egress.EgressPolicy().resolve(spelling, 80)
    assert denied.value.address in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    "name", ["metadata.google.internal", "METADATA.google.internal.", "metadata"]
)
async def test_metadata_names_are_refused_without_being_resolved(name: str) -> None:
    asked: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return ["93.184.216.34"]

    with pytest.raises(EgressDeniedError, match="metadata host name"):
        await egress.EgressPolicy(resolver=resolve).resolve(name, 80)
    assert asked == []


# --- the built-ins, against real local servers ---------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]"]
)
async def test_a_webhook_to_loopback_is_refused_and_nothing_is_sent(host: str) -> None:
    with receiver() as hook:
        result = await run(settings(), ProcessingType.NOTIFICATION, webhook(hook.url(host=host)))
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith("EgressDeniedError: ")
    assert "127.0.0.1" in result.error and "ASYNC_PROCESSOR_EGRESS_ALLOW" in result.error
    assert result.attempts == 1  # not retried
    assert hook.requests == []


async def test_an_open_and_a_closed_port_answer_the_same() -> None:
    """No port-scan oracle: a denied address fails the same way whether anything listens."""
    with receiver() as hook:
        open_port = await run(settings(), ProcessingType.NOTIFICATION, webhook(hook.url()))
    closed = await run(settings(), ProcessingType.NOTIFICATION, webhook(hook.url()))
    assert open_port.error == closed.error
    assert (open_port.error or "").startswith("EgressDeniedError: ")


async def test_sms_gateway_on_loopback_is_refused() -> None:
    with receiver() as gateway:
        gateway_settings = Settings(
            sms=ProviderSettings("http", gateway.url("/v1/sms", "localhost"))
        )
        payload = {"channel": "sms", "to": "+447700900123", "body": "hi"}
        result = await run(gateway_settings, ProcessingType.NOTIFICATION, payload)
    assert (result.error or "").startswith("EgressDeniedError: refused to connect to localhost")
    assert gateway.requests == []


async def test_an_llm_base_url_on_loopback_is_refused() -> None:
    pytest.importorskip("openai")
    with receiver() as llm:
        config = ProviderSettings("openai", llm.url("/v1"), "sk-test", "m", max_retries=0)
        result = await run(Settings(llm=config), ProcessingType.AI_RESPONSE, {"prompt": "Hi!"})
    assert (result.error or "").startswith("EgressDeniedError: refused to connect to 127.0.0.1")
    assert llm.requests == []


async def test_smtp_to_a_loopback_host_is_refused() -> None:
    async with smtp_server() as mailbox:
        mail = Settings(smtp=SmtpSettings("127.0.0.1", mailbox.port, timeout=5))
        payload = {"channel": "email", "to": "mum@example.org", "body": "hi"}
        result = await run(mail, ProcessingType.NOTIFICATION, payload)
    assert (result.error or "").startswith("EgressDeniedError: refused to connect to 127.0.0.1")
    assert mailbox.received == []


async def test_smtp_to_a_private_host_is_refused_before_a_socket_exists() -> None:
    policy = egress.EgressPolicy(resolver=fixed("10.20.30.40"))
    with pytest.raises(EgressDeniedError, match=r"mail\.internal\.test \(10\.20\.30\.40\)"):
        await egress.open_socket(policy, "mail.internal.test", 25, timeout=1)


async def test_smtp_to_an_allowed_host_connects_to_the_checked_address() -> None:
    async with smtp_server() as mailbox:
        policy = egress.EgressPolicy("mail.internal.test", resolver=fixed("127.0.0.1"))
        sock = await egress.open_socket(policy, "mail.internal.test", mailbox.port, timeout=5)
        with sock:
            assert sock.getpeername() == ("127.0.0.1", mailbox.port)


# --- the allow list -------------------------------------------------------------------------


async def test_an_allowed_host_name_is_reached_and_only_that_name() -> None:
    with receiver() as hook:
        allowed = settings(egress_allow=("LocalHost",))  # names match case-insensitively
        sent = await run(allowed, ProcessingType.NOTIFICATION, webhook(hook.url(host="localhost")))
        other = await run(allowed, ProcessingType.NOTIFICATION, webhook(hook.url()))
    assert sent.status is TaskStatus.COMPLETED, sent.error
    assert (other.error or "").startswith("EgressDeniedError: refused to connect to 127.0.0.1")
    assert len(hook.requests) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"])
async def test_an_allowed_network_covers_every_spelling_of_its_addresses(host: str) -> None:
    with receiver() as hook:
        allowed = settings(egress_allow=("127.0.0.0/8",))
        result = await run(allowed, ProcessingType.NOTIFICATION, webhook(hook.url(host=host)))
    assert result.status is TaskStatus.COMPLETED, result.error
    assert len(hook.requests) == 1


def test_the_allow_list_comes_from_the_environment_and_is_empty_by_default() -> None:
    assert Settings().egress_allow == ()
    assert Settings.from_env({}).egress_allow == ()
    env = {"ASYNC_PROCESSOR_EGRESS_ALLOW": " Mail.Example.ORG., 10.0.0.0/8 ,[fd00::1],"}
    assert Settings.from_env(env).egress_allow == ("mail.example.org", "10.0.0.0/8", "fd00::1/128")
    assert Settings(egress_allow="127.0.0.1").egress_allow == ("127.0.0.1/32",)  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", ["http://10.0.0.1/", "10.0.0.0/33", "bad host", "a..b"])
def test_a_bad_allow_list_entry_says_what_is_expected(entry: str) -> None:
    with pytest.raises(InvalidArgumentError, match="neither a host name"):
        Settings.from_env({"ASYNC_PROCESSOR_EGRESS_ALLOW": entry})


# --- DNS rebinding --------------------------------------------------------------------------


async def test_every_resolved_address_is_checked() -> None:
    """A name that answers a public address first and loopback second is refused whole."""
    policy = egress.EgressPolicy(resolver=fixed("93.184.216.34", "127.0.0.1"))
    with pytest.raises(EgressDeniedError) as denied:
        await policy.resolve("rebind.example", 80)
    assert denied.value.address == "127.0.0.1"
    with receiver() as hook:
        async with await egress_http.async_client(policy) as client:
            with pytest.raises(EgressDeniedError):
                await client.get(f"http://rebind.example:{hook.port}/")
    assert hook.requests == []


async def test_the_connection_goes_to_the_checked_address_with_the_host_kept() -> None:
    """An allowed name the system cannot resolve is reached at the address the policy
    checked (resolved once, not again by the connection), under its own Host header."""
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a rebinding resolver
    asked: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return next(answers)

    policy = egress.EgressPolicy("bear.test", resolver=resolve)
    with receiver() as hook:
        async with await egress_http.async_client(policy) as client:
            response = await client.get(f"http://bear.test:{hook.port}/day")
    assert response.status_code == 200
    assert asked == ["bear.test"]
    assert hook.requests == [{"path": "/day", "host": f"bear.test:{hook.port}"}]


@pytest.fixture
def bear_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``bear.test`` (made by the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "bear.pem", tmp_path / "bear.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=bear.test", "-addext", "subjectAltName=DNS:bear.test"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_goes_to_the_checked_address_under_the_original_name(
    bear_certificate: tuple[Path, Path],
) -> None:
    """Over HTTPS the server sees the name as SNI and the client verifies the certificate
    against the name, while the socket goes to the address the policy checked."""
    cert, key = bear_certificate
    server_names: list[str | None] = []
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server_tls.sni_callback = lambda sock, name, context: server_names.append(name)
    client_tls = ssl.create_default_context(cafile=str(cert))
    policy = egress.EgressPolicy("bear.test", resolver=fixed("127.0.0.1"))
    with receiver(tls=server_tls) as hook:
        transport = egress_http.family().async_transport(policy, client_tls)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"https://bear.test:{hook.port}/day")
    assert response.status_code == 200
    assert server_names == ["bear.test"]
    assert hook.requests == [{"path": "/day", "host": f"bear.test:{hook.port}"}]


def test_the_blocking_transport_obeys_the_policy_too() -> None:
    policy = egress.EgressPolicy(resolver=fixed("93.184.216.34", "127.0.0.1"))
    with (
        receiver() as hook,
        egress_http.sync_client(policy) as client,
        pytest.raises(EgressDeniedError),
    ):
        client.get(f"http://rebind.example:{hook.port}/")
    assert hook.requests == []


# --- what comes back: no bodies, no credentials ----------------------------------------------


@pytest.mark.parametrize("status", [500, 404])
async def test_a_webhook_error_carries_the_status_not_the_body(status: int) -> None:
    with receiver(status, SECRET_BODY.encode()) as hook:
        allowed = settings(egress_allow=("127.0.0.1",))
        result = await run(allowed, ProcessingType.NOTIFICATION, webhook(hook.url()))
    assert result.status is TaskStatus.FAILED and result.error is not None
    assert str(status) in result.error
    assert "hunter2" not in result.error


async def test_a_provider_error_carries_the_status_not_the_body() -> None:
    pytest.importorskip("openai")
    body = json.dumps({"error": {"message": SECRET_BODY, "type": "invalid_request_error"}})
    with receiver(400, body.encode()) as llm:
        config = ProviderSettings("openai", llm.url("/v1"), "sk-test", "m", max_retries=0)
        allowed = Settings(llm=config, egress_allow=("127.0.0.1",))
        result = await run(allowed, ProcessingType.AI_RESPONSE, {"prompt": "Hi!"})
    assert len(llm.requests) == 1
    assert result.status is TaskStatus.FAILED and result.error is not None
    assert "400" in result.error and "hunter2" not in result.error


async def test_url_credentials_and_query_tokens_never_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    allowed = settings(egress_allow=("127.0.0.1",))
    with receiver() as hook:
        url = f"http://teddy:s3cr3t-pass@127.0.0.1:{hook.port}/hook?token=t0ken-value&v=1"
        sent = await run(allowed, ProcessingType.NOTIFICATION, webhook(url))
        hook.status = 500
        failed = await run(allowed, ProcessingType.NOTIFICATION, webhook(url))
    assert sent.status is TaskStatus.COMPLETED, sent.error
    assert sent.result["recipients"] == [f"http://***@127.0.0.1:{hook.port}/hook?token=***&v=***"]
    shown = json.dumps(sent.result) + (failed.error or "") + caplog.text
    assert "s3cr3t-pass" not in shown and "t0ken-value" not in shown
    assert "500" in (failed.error or "")


def test_redact_url() -> None:
    assert egress.redact_url("https://u:p@Example.org:8443/a?key=v&x#frag") == (
        "https://***@example.org:8443/a?key=***&x=***"
    )
    assert egress.redact_url("https://example.org/plain") == "https://example.org/plain"
    assert egress.redacted_netloc("http://u:p@[::1]:80/") == "***@[::1]:80"


def test_the_denial_survives_a_process_boundary() -> None:
    error = EgressDeniedError("metadata", None, "a cloud metadata host name")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.host == "metadata" and copy.address is None
