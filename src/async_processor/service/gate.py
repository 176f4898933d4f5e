"""The ASGI layer in front of every route: auth, rate limit, body limit, access log, and a
generic 500 that never shows a stack trace."""

from __future__ import annotations

import logging
import math
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import RateLimiter, TokenAuth, bearer_token
from .config import ServiceConfig
from .responses import error_response
from .tenancy import Caller

__all__ = ["COOKIE", "PUBLIC_PATHS", "Gate"]

logger = logging.getLogger("async_processor.service")
access_log = logging.getLogger("async_processor.service.access")

#: Paths that need no token and are never rate-limited (a valid token unlocks more).
PUBLIC_PATHS = frozenset({"/health"})
#: The dashboard's cookie: set by ``GET /?access_token=``, accepted on GET requests only.
COOKIE = "async_processor_token"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: A refused body up to this size is read to its end before the 413, so that the client
#: sees the answer rather than a reset connection; a bigger one is cut off.
_DRAIN_LIMIT = 64 * 1024 * 1024


class Gate:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, config: ServiceConfig) -> None:
        self.app = app
        self.auth = TokenAuth(config.tokens)
        self.admins = frozenset(config.admins)
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst)
        self.max_body = config.max_body_bytes

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
            await self.app(scope, receive, send_and_note)
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

    def _identify(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        token = bearer_token(headers.get("authorization"))
        if token is None and scope["method"] in ("GET", "HEAD"):
            token = _query_token(scope) or _cookie_token(headers.get("cookie"))
        return self.auth.identify(token)

    def _refuse(self, scope: Scope, name: str | None) -> ASGIApp | None:
        if scope["path"] in PUBLIC_PATHS:
            return None
        if name is None:
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


def _cookie_token(cookie: str | None) -> str | None:
    if not cookie or COOKIE not in cookie:
        return None
    for part in cookie.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE:
            return value or None
    return None
