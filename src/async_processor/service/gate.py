"""The ASGI layer in front of every route: auth (with a limit on failed attempts per client
address), rate limit, body limit, security headers, access log, and a generic 500 that
never shows a stack trace."""

from __future__ import annotations

import logging
import math
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import RateLimiter, Sessions, TokenAuth, bearer_token
from .config import ServiceConfig
from .responses import error_response
from .tenancy import Caller

__all__ = [
    "COOKIE",
    "LONG_REQUEST_SHARE",
    "PUBLIC_PATHS",
    "SECURITY_HEADERS",
    "Gate",
    "LongRequests",
]

logger = logging.getLogger("async_processor.service")
access_log = logging.getLogger("async_processor.service.access")

#: Paths that need no token and are never rate-limited (a valid token unlocks more).
PUBLIC_PATHS = frozenset({"/health"})
#: The dashboard's session cookie (signed, see :class:`Sessions`): set by
#: ``GET /?access_token=`` for an admin token, accepted on GET requests only.
COOKIE = "async_processor_session"
#: On every answer. The dashboard loads only its own scripts, styles and data.
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
#: Percent of ``limit_concurrency`` that event streams and long polls may hold together.
LONG_REQUEST_SHARE = 80
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: A refused body up to this size is read to its end before the 413, so that the client
#: sees the answer rather than a reset connection; a bigger one is cut off.
_DRAIN_LIMIT = 64 * 1024 * 1024


class Gate:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, config: ServiceConfig, sessions: Sessions) -> None:
        self.app = app
        self.auth = TokenAuth(config.tokens)
        self.sessions = sessions
        self.names = frozenset(config.tokens)
        self.admins = frozenset(config.admins)
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst)
        self.failures = RateLimiter(config.auth_failure_rate, config.auth_failure_burst)
        self.max_body = config.max_body_bytes
        self.long = LongRequests(
            config.limit_concurrency * LONG_REQUEST_SHARE // 100,
            config.max_long_requests_per_token,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent: dict[str, Any] = {"status": 0}
        name: str | None = None

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        try:
            name = self._identify(scope)
            refusal = self._refuse(scope, name)
            if refusal is not None:
                await refusal(scope, receive, send_and_note)
                return
            if scope["method"] in _BODY_METHODS:
                body = await self._read_body(scope, receive, send_and_note)
                if body is None:
                    return
                receive = _replay(body, receive)
            state = scope.setdefault("state", {})
            state["token_name"] = name
            state["caller"] = None if name is None else Caller(name, name in self.admins)
            await self._run(scope, receive, send_and_note, name)
        except Exception:
            logger.exception("%s %s failed", scope["method"], scope["path"])
            if not sent["status"]:
                response = error_response(
                    500, "internal_error", "the server failed to handle the request; see its log"
                )
                await response(scope, receive, send_and_note)
        finally:
            access_log.info(
                "%s %s %s token=%s %.1fms",
                scope["method"],
                scope["path"],  # never the query string: it may carry access_token
                sent["status"],
                name or "-",
                (time.perf_counter() - started) * 1000,
            )

    async def _run(self, scope: Scope, receive: Receive, send: Send, name: str | None) -> None:
        """The route, counted while it runs if it is a long poll or an event stream."""
        if name is None or not _is_long(scope):
            await self.app(scope, receive, send)
            return
        refusal = self.long.refusal(name)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        self.long.open(name)
        try:
            await self.app(scope, receive, send)
        finally:
            self.long.close(name)

    def _identify(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        token = bearer_token(headers.get("authorization"))
        if token is None and scope["method"] in ("GET", "HEAD"):
            token = _query_token(scope)
            if token is None:
                name = self.sessions.verify(_cookie(headers.get("cookie")))
                return name if name in self.names else None
        return self.auth.identify(token)

    def _refuse(self, scope: Scope, name: str | None) -> ASGIApp | None:
        if scope["path"] in PUBLIC_PATHS:
            return None
        client = scope["client"][0] if scope.get("client") else "-"
        blocked = self.failures.waiting(client)
        if blocked > 0:  # even a valid token: a guess must not learn that it was right
            return error_response(
                429,
                "too_many_failed_logins",
                f"too many requests with a wrong token from this address; retry in {blocked:.0f}s",
                {"Retry-After": str(max(1, math.ceil(blocked)))},
            )
        if name is None:
            self.failures.acquire(client)
            return error_response(
                401,
                "unauthorized",
                "a valid bearer token is required: send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="async-processor"'},
            )
        wait = self.limiter.acquire(name)
        if wait > 0:
            return error_response(
                429,
                "rate_limited",
                f"too many requests for token {name!r}; retry in {wait:.2f}s",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return None

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 400/413."""
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and not declared.isdigit():
            await error_response(400, "bad_request", "Content-Length must be a number")(
                scope, receive, send
            )
            return None
        too_large = declared is not None and int(declared) > self.max_body
        chunks: list[bytes] = []
        size = 0
        more = not (too_large and int(declared or 0) > _DRAIN_LIMIT)
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body:
                too_large = True
                chunks.clear()
                more = more and size <= _DRAIN_LIMIT  # read it to the end, then answer
            elif not too_large:
                chunks.append(chunk)
        if too_large:
            await error_response(
                413,
                "body_too_large",
                f"the request body is larger than {self.max_body} bytes (max_body_bytes)",
            )(scope, receive, send)
            return None
        return b"".join(chunks)


class LongRequests:
    """Event streams and long polls open now, per token and in all.

    They may hold ``total`` of uvicorn's ``limit_concurrency`` places at once, so that the
    rest stays free for short requests (a CRITICAL submit is never locked out by waits),
    and ``per_token`` each, so that one token cannot take them all.
    """

    def __init__(self, total: int, per_token: int) -> None:
        self.total = max(1, total)
        self.per_token = per_token
        self.open_by_token: dict[str, int] = {}
        self.open_total = 0

    def refusal(self, name: str) -> ASGIApp | None:
        if self.open_by_token.get(name, 0) >= self.per_token:
            return error_response(
                429,
                "too_many_long_requests",
                f"token {name!r} has {self.per_token} event streams and long polls open "
                "(max_long_requests_per_token); close one first",
                {"Retry-After": "1"},
            )
        if self.open_total >= self.total:
            return error_response(
                503,
                "long_requests_full",
                f"{self.total} event streams and long polls are open, the most the server "
                "keeps (80% of limit_concurrency, the rest is kept for short requests)",
                {"Retry-After": "1"},
            )
        return None

    def open(self, name: str) -> None:
        self.open_by_token[name] = self.open_by_token.get(name, 0) + 1
        self.open_total += 1

    def close(self, name: str) -> None:
        self.open_total -= 1
        left = self.open_by_token[name] - 1
        if left:
            self.open_by_token[name] = left
        else:
            del self.open_by_token[name]


def _is_long(scope: Scope) -> bool:
    """GET /events and GET /tasks/{id}/wait: requests that may stay open for long."""
    path: str = scope["path"]
    return scope["method"] == "GET" and (
        path == "/events" or (path.startswith("/tasks/") and path.endswith("/wait"))
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _query_token(scope: Scope) -> str | None:
    query: bytes = scope.get("query_string", b"")
    if b"access_token=" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get("access_token")
    return values[0] if values else None


def _cookie(cookie: str | None) -> str | None:
    if not cookie or COOKIE not in cookie:
        return None
    for part in cookie.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE:
            return value or None
    return None
