"""httpx transports that connect only where an :class:`~.egress.EgressPolicy` allows.

The check sits in an httpcore network backend: when a connection pool opens a connection it
resolves the host through the policy and connects to a checked address, while the request
keeps its URL, so the ``Host`` header and the TLS server name (SNI and certificate check)
stay the original host's. Every redirect hop opens its own connection and is checked too.
The OpenAI and Anthropic SDKs use it through ``http_client=`` (:func:`async_client`,
:func:`sync_client`). Needs httpx (extras ``ai`` and ``notify``).

Environment proxies (``HTTPS_PROXY``) are not used: a proxy would connect for us, out of
the policy's sight.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

import httpcore
import httpx

from .egress import EgressPolicy

__all__ = [
    "GuardedAsyncTransport",
    "GuardedTransport",
    "async_client",
    "sync_client",
    "tls_context",
]

_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)
_tls: list[ssl.SSLContext] = []
_tls_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """One TLS context per process (about 15 ms to build): the system trust store, which
    honours SSL_CERT_FILE and SSL_CERT_DIR."""
    with _tls_lock:
        if not _tls:
            _tls.append(ssl.create_default_context())
        return _tls[0]


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx ones of the same name (what callers catch)."""
    try:
        yield
    except _CORE_ERRORS as exc:
        for kind in type(exc).__mro__:
            mapped = getattr(httpx, kind.__name__, None)
            if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
                raise mapped(str(exc)) from exc
        raise httpx.TransportError(str(exc)) from exc


def _core_request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=cast(Any, request.stream),
        extensions=request.extensions,
    )


class _GuardedAsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._policy.resolve_blocking(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close: Callable[[], Awaitable[None]] | None = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close: Callable[[], None] | None = getattr(self._stream, "close", None)
        if close is not None:
            close()


class GuardedAsyncTransport(httpx.AsyncBaseTransport):
    """An async httpx transport whose connections obey ``policy``."""

    def __init__(
        self,
        policy: EgressPolicy,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedAsyncBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors():
            response = await self._pool.handle_async_request(_core_request(request))
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_AsyncResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class GuardedTransport(httpx.BaseTransport):
    """A blocking httpx transport whose connections obey ``policy``."""

    def __init__(
        self,
        policy: EgressPolicy,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors():
            response = self._pool.handle_request(_core_request(request))
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


async def async_client(policy: EgressPolicy, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on a :class:`GuardedAsyncTransport` (``options`` go to the
    client: timeout, headers, base_url, follow_redirects, ...). The first call builds the
    TLS context in a worker thread, off the event loop."""
    context = _tls[0] if _tls else await asyncio.to_thread(tls_context)
    return httpx.AsyncClient(transport=GuardedAsyncTransport(policy, context), **options)


def sync_client(policy: EgressPolicy, **options: Any) -> httpx.Client:
    """An ``httpx.Client`` on a :class:`GuardedTransport`."""
    return httpx.Client(transport=GuardedTransport(policy), **options)
