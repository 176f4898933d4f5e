"""Real servers for the database and notification tests, all on 127.0.0.1.

- :func:`postgres_cluster`: a throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``, run as
  the ``postgres`` user when the tests run as root), or the server named by
  ``ASYNC_PROCESSOR_TEST_POSTGRES_URL``. Raises :class:`ServiceUnavailable` (the tests skip
  with its reason) when neither is there.
- :func:`smtp_server`: an aiosmtpd SMTP server in the running event loop that records each
  message and refuses the recipients it is told to refuse with 550.
- :class:`HttpReceiver`: an aiohttp app that records each POST and answers from a script;
  as a webhook receiver it checks the HMAC signature as a real receiver would (401 when it
  does not match), as an SMS/push gateway it checks the bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "POSTGRES_URL_ENV",
    "Answer",
    "HttpReceiver",
    "Posted",
    "ReceivedMail",
    "ServiceUnavailable",
    "SmtpServer",
    "closed_port",
    "postgres_cluster",
    "smtp_server",
]

#: A PostgreSQL URL to use instead of starting a cluster (CI may run its own server).
POSTGRES_URL_ENV = "ASYNC_PROCESSOR_TEST_POSTGRES_URL"


class ServiceUnavailable(Exception):
    """A server the tests need cannot run on this machine; the message says what to install."""


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- PostgreSQL -----------------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _run(command: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr or done.stdout}")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server that accepts ``postgres`` without a password."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        yield url
        return
    bindir = _postgres_bindir()
    if bindir is None:
        raise ServiceUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql, "
            f"or set {POSTGRES_URL_ENV} to a server's URL"
        )
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if owner is None or runuser is None:
            raise ServiceUnavailable(
                "running as root, PostgreSQL needs the 'postgres' user and runuser (util-linux) "
                f"to start a cluster; install the Debian package postgresql or set "
                f"{POSTGRES_URL_ENV}"
            )
        run_as = [runuser, "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="async-processor-pg-"))
    data = base / "data"
    try:
        if owner is not None:
            os.chown(base, owner.pw_uid, owner.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        _run([*run_as, *initdb, "-E", "UTF8", "--no-sync"], base, "initdb")
        port = _start_postgres(run_as, bindir, base, data)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run(
                [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                base,
                "pg_ctl stop",
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _start_postgres(run_as: list[str], bindir: Path, base: Path, data: Path) -> int:
    """Start the cluster on a free port (another try if the port was taken meanwhile)."""
    for attempt in range(3):
        port = closed_port()
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        command = [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log")]
        try:
            _run([*command, "-w", "-t", "60", "-o", options, "start"], base, "pg_ctl start")
        except RuntimeError:
            if attempt == 2:
                log = (base / "log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start; its log ends:\n{log}") from None
            continue
        return port
    raise AssertionError("unreachable")


# --- SMTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    host: str
    port: int
    refuse: set[str]
    received: list[ReceivedMail] = field(default_factory=list)

    # aiosmtpd handler hooks
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@contextlib.asynccontextmanager
async def smtp_server(
    refuse: set[str] | None = None, credentials: tuple[str, str] | None = None
) -> AsyncIterator[SmtpServer]:
    """An SMTP server in the running loop (``Controller(port=0)`` cannot bind port 0).

    With ``credentials`` it offers AUTH (over plain TCP: this is a test) and accepts only
    that user and password; without, it takes mail from anyone."""
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        valid = isinstance(data, LoginPassword) and credentials is not None
        valid = valid and (data.login.decode(), data.password.decode()) == credentials
        return AuthResult(success=valid, handled=False)  # False: aiosmtpd answers 535

    recorder = SmtpServer("127.0.0.1", 0, refuse or set())
    options: dict[str, Any] = {"hostname": "localhost"}
    if credentials is not None:
        options.update(authenticator=authenticate, auth_require_tls=False)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(recorder, **options), recorder.host, 0)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()


# --- HTTP: webhook receiver, SMS and push gateways ---------------------------------------


@dataclass(frozen=True)
class Answer:
    """How to answer one request: a status and a JSON body, after ``delay`` seconds."""

    status: int = 200
    body: Any = None
    delay: float = 0.0


@dataclass(frozen=True)
class Posted:
    """One request the receiver accepted (it passed the signature or token check)."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """An aiohttp server on 127.0.0.1 in the running loop.

    With ``secret`` it is a webhook receiver: it recomputes
    ``HMAC-SHA256(secret, X-Timestamp + "." + body)`` and answers 401 unless
    ``X-Signature-256`` is ``sha256=`` and that hex digest, and the timestamp is within
    five minutes. With ``token`` it is a gateway that answers 401 unless
    ``Authorization: Bearer <token>``. Requests that pass are recorded and answered from the
    queued :class:`Answer` list, then with ``default``.
    """

    def __init__(
        self, secret: str | None = None, token: str | None = None, default: Answer = Answer()
    ) -> None:
        from aiohttp import web

        self.secret = secret
        self.token = token
        self.default = default
        self.answers: deque[Answer] = deque()
        self.received: list[Posted] = []
        self.rejected = 0
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def queue(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def _authentic(self, headers: dict[str, str], body: bytes) -> bool:
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return False
        if self.secret is None:
            return True
        timestamp = headers.get("x-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return False
        digest = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(headers.get("x-signature-256", ""), f"sha256={digest}")

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        if not self._authentic(headers, body):
            self.rejected += 1
            return web.json_response({"error": "bad signature or token"}, status=401)
        self.received.append(Posted(request.path, headers, body))
        answer = self.answers.popleft() if self.answers else self.default
        if answer.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), answer.delay)
        if answer.body is None:
            return web.Response(status=answer.status)
        return web.json_response(answer.body, status=answer.status)

    async def __aenter__(self) -> HttpReceiver:
        from aiohttp import web

        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        await self._runner.cleanup()
