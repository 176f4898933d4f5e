"""Finding 8 of issue 10 (connections): uvicorn's limits are set; a client that sends half
a request head and stalls is disconnected, and open connections are bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from service.conftest import ADMINS, TOKENS, RunningService, start_service

from async_processor.service import ServiceConfig

HALF_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
#: Only a guard against a hang: the server closes each connection on its own timer.
HANG_GUARD = 60.0


@contextlib.asynccontextmanager
async def half_sent(
    service: RunningService, count: int, head: bytes = HALF_HEAD
) -> AsyncIterator[list[asyncio.StreamReader]]:
    """``count`` connections that sent part of a request head and then stalled."""
    host, port = service.base_url.removeprefix("http://").split(":")
    opened = [await asyncio.open_connection(host, int(port)) for _ in range(count)]
    for _, writer in opened:
        writer.write(head)
        await writer.drain()
    try:
        yield [reader for reader, _ in opened]
    finally:
        for _, writer in opened:
            writer.close()


def config(**limits: object) -> ServiceConfig:
    return ServiceConfig(tokens=dict(TOKENS), admins=list(ADMINS), **limits)  # type: ignore[arg-type]


async def test_half_sent_heads_are_disconnected() -> None:
    with start_service(config(timeout_request_head=0.5)) as service:
        async with half_sent(service, 100) as readers:
            ends = await asyncio.wait_for(
                asyncio.gather(*(reader.read() for reader in readers)), HANG_GUARD
            )
            assert all(end == b"" for end in ends)  # closed by the server, nothing answered
        async with httpx.AsyncClient(base_url=service.base_url) as c:
            assert (await c.get("/health")).status_code == 200


async def test_open_connections_are_bounded() -> None:
    with start_service(config(limit_concurrency=5, timeout_request_head=600.0)) as service:
        async with half_sent(service, 5), httpx.AsyncClient(base_url=service.base_url) as c:
            assert (await c.get("/health")).status_code == 503


async def test_an_oversized_request_head_is_refused() -> None:
    with start_service(config(max_header_bytes=4096, timeout_request_head=600.0)) as service:
        async with half_sent(service, 1, HALF_HEAD + b"a" * 8000) as (reader,):
            answer = await asyncio.wait_for(reader.read(), HANG_GUARD)
        assert answer.startswith(b"HTTP/1.1 400 ")
        async with httpx.AsyncClient(base_url=service.base_url) as c:
            assert (await c.get("/health", headers={"X-Small": "a" * 1000})).status_code == 200
