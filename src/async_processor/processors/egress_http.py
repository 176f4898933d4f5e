"""httpx transports that connect only where an :class:`~.egress.EgressPolicy` allows.

The check sits in an httpcore network backend: when a connection pool opens a connection it
resolves the host through the policy and connects to a checked address, while the request
keeps its URL, so the ``Host`` header and the TLS server name (SNI and certificate check)
stay the original host's. Every redirect hop opens its own connection and is checked too.
The OpenAI and Anthropic SDKs use it through ``http_client=``. Recent SDKs are built on
``httpx2``/``httpcore2`` (a fork with the same interfaces) and refuse an ``httpx`` client, so
the transports are made for the family a caller names (:func:`http_family`). Needs httpx
(extras ``ai`` and ``notify``).

Environment proxies (``HTTPS_PROXY``) are not used: a proxy would connect for us, out of
the policy's sight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .egress import EgressPolicy, RedactingFilter

__all__ = ["Family", "async_client", "family", "http_family", "sync_client", "tls_context"]

#: The httpcore that goes with each httpx.
_CORE_OF = {"httpx": "httpcore", "httpx2": "httpcore2"}
_tls: list[ssl.SSLContext] = []
_tls_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """One TLS context per process (about 15 ms to build): the system trust store, which
    honours SSL_CERT_FILE and SSL_CERT_DIR."""
    with _tls_lock:
        if not _tls:
            _tls.append(ssl.create_default_context())
        return _tls[0]


def http_family(sdk: ModuleType) -> str:
    """``"httpx"`` or ``"httpx2"``: the package the SDK's own HTTP client comes from."""
    default = getattr(sdk, "DefaultAsyncHttpxClient", None)
    for kind in getattr(default, "__mro__", ()):
        root = str(kind.__module__).partition(".")[0]
        if root in _CORE_OF:
            return root
    return "httpx"


@dataclass(frozen=True)
class Family:
    """Guarded transports for one httpx family."""

    http: ModuleType
    async_transport: type[Any]
    sync_transport: type[Any]


@functools.cache
def family(name: str = "httpx") -> Family:
    """The guarded transports for ``httpx`` or ``httpx2`` (made once per process)."""
    http = importlib.import_module(name)
    core = importlib.import_module(_CORE_OF[name])
    logging.getLogger(name).addFilter(RedactingFilter())  # it logs each URL in full
    return Family(http, _async_transport_class(http, core), _sync_transport_class(http, core))


@contextlib.contextmanager
def _mapped_errors(http: Any, core: Any) -> Iterator[None]:
    """httpcore's exceptions as the httpx ones of the same name (what callers catch)."""
    kinds = (
        core.TimeoutException,
        core.NetworkError,
        core.ProtocolError,
        core.ProxyError,
        core.UnsupportedProtocol,
    )
    try:
        yield
    except kinds as exc:
        for kind in type(exc).__mro__:
            mapped = getattr(http, kind.__name__, None)
            if isinstance(mapped, type) and issubclass(mapped, http.TransportError):
                raise mapped(str(exc)) from exc
        raise http.TransportError(str(exc)) from exc


def _core_request(core: Any, request: Any) -> Any:
    return core.Request(
        method=request.method,
        url=core.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _pool_options(limits: Any) -> dict[str, Any]:
    return {
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class _GuardedAsyncBackend:
    """An httpcore network backend (the interface, duck-typed) that resolves through the
    policy and connects to a checked address, each in turn."""

    def __init__(self, policy: EgressPolicy, core: Any) -> None:
        self._policy = policy
        self._core = core
        self._inner = core.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        core = self._core
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port)
        except TimeoutError as exc:
            raise core.ConnectTimeout(f"resolving {host} took over {timeout} s") from exc
        except OSError as exc:
            raise core.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = core.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (core.ConnectError, core.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, *args: Any, **kwargs: Any) -> Any:
        raise self._core.ConnectError(f"{path}: Unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedBackend:
    """The blocking twin of :class:`_GuardedAsyncBackend`."""

    def __init__(self, policy: EgressPolicy, core: Any) -> None:
        self._policy = policy
        self._core = core
        self._inner = core.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        core = self._core
        try:
            addresses = self._policy.resolve_blocking(host, port)
        except OSError as exc:
            raise core.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = core.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (core.ConnectError, core.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def connect_unix_socket(self, path: str, *args: Any, **kwargs: Any) -> Any:
        raise self._core.ConnectError(f"{path}: Unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _async_transport_class(http: Any, core: Any) -> type[Any]:
    class ResponseStream(http.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        async def __aiter__(self) -> AsyncIterator[bytes]:
            with _mapped_errors(http, core):
                async for part in self._stream:
                    yield part

        async def aclose(self) -> None:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()

    class GuardedAsyncTransport(http.AsyncBaseTransport):  # type: ignore[misc]
        """An async transport whose connections obey ``policy``."""

        def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext | None = None) -> None:
            self._pool = core.AsyncConnectionPool(
                ssl_context=ssl_context or tls_context(),
                network_backend=_GuardedAsyncBackend(policy, core),
                **_pool_options(http.Limits(max_connections=100, max_keepalive_connections=20)),
            )

        async def handle_async_request(self, request: Any) -> Any:
            with _mapped_errors(http, core):
                response = await self._pool.handle_async_request(_core_request(core, request))
            return http.Response(
                status_code=response.status,
                headers=response.headers,
                stream=ResponseStream(response.stream),
                extensions=response.extensions,
            )

        async def aclose(self) -> None:
            await self._pool.aclose()

    return GuardedAsyncTransport


def _sync_transport_class(http: Any, core: Any) -> type[Any]:
    class ResponseStream(http.SyncByteStream):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def __iter__(self) -> Iterator[bytes]:
            with _mapped_errors(http, core):
                yield from self._stream

        def close(self) -> None:
            if hasattr(self._stream, "close"):
                self._stream.close()

    class GuardedTransport(http.BaseTransport):  # type: ignore[misc]
        """A blocking transport whose connections obey ``policy``."""

        def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext | None = None) -> None:
            self._pool = core.ConnectionPool(
                ssl_context=ssl_context or tls_context(),
                network_backend=_GuardedBackend(policy, core),
                **_pool_options(http.Limits(max_connections=100, max_keepalive_connections=20)),
            )

        def handle_request(self, request: Any) -> Any:
            with _mapped_errors(http, core):
                response = self._pool.handle_request(_core_request(core, request))
            return http.Response(
                status_code=response.status,
                headers=response.headers,
                stream=ResponseStream(response.stream),
                extensions=response.extensions,
            )

        def close(self) -> None:
            self._pool.close()

    return GuardedTransport


async def async_client(policy: EgressPolicy, name: str = "httpx", **options: Any) -> Any:
    """An ``AsyncClient`` of the ``name`` family (``httpx`` or ``httpx2``) whose connections
    obey ``policy``; ``options`` go to the client (timeout, headers, follow_redirects, ...).
    The first call builds the TLS context and imports the family in a worker thread."""
    kit = family(name) if name in sys.modules else await asyncio.to_thread(family, name)
    context = _tls[0] if _tls else await asyncio.to_thread(tls_context)
    return kit.http.AsyncClient(transport=kit.async_transport(policy, context), **options)


def sync_client(policy: EgressPolicy, name: str = "httpx", **options: Any) -> Any:
    """The blocking twin of :func:`async_client`."""
    kit = family(name)
    return kit.http.Client(transport=kit.sync_transport(policy), **options)
