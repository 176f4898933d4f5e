"""``serve(config)``: the API on uvicorn, with a graceful stop on SIGTERM or SIGINT.

On the first signal the server stops accepting connections, ends the event streams, lets
requests in flight finish, drains the processor (queued and running tasks finish within
``shutdown_timeout``), and returns, so the process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import AsyncProcessorError
from ..processor import AdvancedAsyncProcessor
from .app import ServiceState, build_processor, create_app
from .config import ServiceConfig

__all__ = ["ServiceStartError", "serve", "uvicorn_config"]

logger = logging.getLogger("async_processor.service")


class ServiceStartError(AsyncProcessorError):
    """The server could not start (the log says why: port in use, startup failed, ...)."""


def _protocol(head_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head (request line and
    headers) has not arrived ``head_timeout`` seconds after the connection opened or the
    previous answer ended: uvicorn alone keeps a half-sent request open forever."""

    class HeadTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            self.loop.call_later(head_timeout, self._head_timed_out, self.cycle)

        def _head_timed_out(self, cycle: object) -> None:
            waiting = self.cycle is cycle and self.conn.their_state is h11.IDLE
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol


def uvicorn_config(app: FastAPI, config: ServiceConfig, **options: object) -> uvicorn.Config:
    """The server settings of ``config``: its connection limits and which proxies to
    believe (X-Forwarded-For/-Proto only from ``trusted_proxies``)."""
    return uvicorn.Config(
        app,
        http=_protocol(config.timeout_request_head),
        limit_concurrency=config.limit_concurrency,
        timeout_keep_alive=config.timeout_keep_alive,
        h11_max_incomplete_event_size=config.max_header_bytes,
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=list(config.trusted_proxies) or None,
        ws="none",
        access_log=False,  # the service logs requests itself, with the token's name
        log_config=None,
        lifespan="on",
        **options,  # type: ignore[arg-type]
    )


class _GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self._state = state

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Like uvicorn's, but does not re-raise the signal afterwards: a clean stop exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            logger.warning("second %s: stopping now", signal.Signals(sig).name)
            self.force_exit = True
        else:
            logger.warning("received %s: draining, then exiting", signal.Signals(sig).name)
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._state.close_streams()
        await super().shutdown(sockets)


async def _run(
    server: _GracefulServer, processor: AdvancedAsyncProcessor, config: ServiceConfig
) -> None:
    """Start the processor first, so that a store it cannot open is one clear error rather
    than a failed startup inside uvicorn; drain it after the server stopped accepting."""
    try:
        await processor.start()
    except AsyncProcessorError as exc:
        raise ServiceStartError(f"the processor could not start: {exc}") from None
    try:
        await server.serve()
    finally:
        await processor.shutdown(timeout=config.shutdown_timeout)


def serve(config: ServiceConfig, processor: AdvancedAsyncProcessor | None = None) -> None:
    """Run the service until SIGTERM/SIGINT, then drain and return.

    ``processor`` (not started) replaces the one ``config`` describes; either way this
    function starts it and shuts it down.

    Raises:
        ConfigError: the configuration is wrong (no tokens, a processor that cannot load).
        ServiceStartError: the server did not start (port in use, a task store that cannot
            be opened, ...).
    """
    config.require_tokens()
    if processor is None:
        processor = build_processor(config)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
    app = create_app(processor, config, manage_processor=False)
    server = _GracefulServer(
        uvicorn_config(
            app,
            config,
            host=config.host,
            port=config.port,
            timeout_graceful_shutdown=max(1, round(config.shutdown_timeout)),
        ),
        app.state.service,
    )
    asyncio.run(_run(server, processor, config))
    if not server.started:
        raise ServiceStartError(
            f"the service did not start on {config.host}:{config.port}; see the log above"
        )
