"""A real service for the tests: uvicorn on 127.0.0.1 (a free port), in a thread of its own.

Stable interface (the dashboard and CLI tests use it too):

- fixture ``service`` -> :class:`RunningService` with the default :data:`TOKENS` (alice
  is an admin, bob and carol see only their own tasks);
- ``start_service(config=None, **processor_kwargs)``, a context manager, for another
  :class:`ServiceConfig` (small limits, a rate limit, ...).

:class:`RunningService` has ``base_url``, ``tokens`` (name -> token), ``token`` and
``headers`` (alice's), ``headers_of(name)``, ``processor`` and ``run(coro)``, which runs a
coroutine on the server's event loop (the processor lives there; touch it only through ``run``).

Processors registered by name (no built-ins): ``echo`` (async, returns the payload),
``sleep`` (async, sleeps ``payload["seconds"]``), ``fail`` (raises NonRetryableError with
``payload["message"]``), ``sizes`` (the length of each bytes value), ``sync_echo`` (a thread
task), ``nan`` (returns a NaN, which JSON cannot carry).
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed")

import uvicorn
from fastapi import FastAPI

from async_processor import AdvancedAsyncProcessor, ProcessingTask
from async_processor.errors import NonRetryableError
from async_processor.service import ServiceConfig, create_app
from async_processor.service.server import uvicorn_config

T = TypeVar("T")

TOKENS = {
    "alice": "alice-token-0123456789abcdef",
    "bob": "bob-token-0123456789abcdef",
    "carol": "carol-token-0123456789abcdef",
}
#: alice is an admin (she sees every task, the dashboard and the full event stream).
ADMINS = ["alice"]


async def echo(task: ProcessingTask) -> Any:
    return task.payload


async def sleep(task: ProcessingTask) -> Any:
    seconds = float(task.payload.get("seconds", 0.1))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def fail(task: ProcessingTask) -> Any:
    raise NonRetryableError(str(task.payload.get("message", "boom")))


async def sizes(task: ProcessingTask) -> Any:
    return {k: len(v) for k, v in task.payload.items() if isinstance(v, bytes)}


def sync_echo(task: ProcessingTask) -> Any:
    return task.payload


async def nan(task: ProcessingTask) -> Any:
    return {"value": math.nan}


TEST_PROCESSORS = {
    "echo": echo,
    "sleep": sleep,
    "fail": fail,
    "sizes": sizes,
    "sync_echo": sync_echo,
    "nan": nan,
}


@dataclass
class RunningService:
    """A started server; see the module docstring."""

    base_url: str
    tokens: dict[str, str]
    processor: AdvancedAsyncProcessor
    loop: asyncio.AbstractEventLoop
    config: ServiceConfig
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def headers_of(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    @property
    def token(self) -> str:
        return next(iter(self.tokens.values()))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def start_service(
    config: ServiceConfig | None = None,
    configure_app: Callable[[FastAPI], None] | None = None,
    **processor_kwargs: Any,
) -> Iterator[RunningService]:
    """Start a service (see the module docstring) and stop it on exit.

    ``configure_app(app)`` may add routes before the server starts.
    """
    config = config or ServiceConfig(tokens=dict(TOKENS), admins=list(ADMINS))
    kwargs = {
        "max_workers": 16,
        "max_thread_workers": 2,
        "max_process_workers": 0,
        "builtin_processors": False,
        **processor_kwargs,
    }
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        processor = AdvancedAsyncProcessor(**kwargs)
        for name, func in TEST_PROCESSORS.items():
            processor.register_processor(name, func)
        await processor.start()
        app = create_app(processor, config)
        if configure_app is not None:
            configure_app(app)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn_config(app, config))
        holder.update(
            loop=asyncio.get_running_loop(),
            server=server,
            processor=processor,
            app=app,
            port=sock.getsockname()[1],
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # uvicorn offers no event to wait on
            ready.set()
            await serving
        finally:
            ready.set()
            await processor.shutdown(timeout=5.0)
            sock.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the waiting test
            holder["error"] = exc

    thread = threading.Thread(target=run, name="service-under-test", daemon=True)
    thread.start()
    if not ready.wait(30) or "error" in holder or not holder["server"].started:
        raise RuntimeError(f"the test service did not start: {holder.get('error')!r}")
    loop: asyncio.AbstractEventLoop = holder["loop"]
    try:
        yield RunningService(
            base_url=f"http://127.0.0.1:{holder['port']}",
            tokens=dict(config.tokens),
            processor=holder["processor"],
            loop=loop,
            config=config,
        )
    finally:

        def stop() -> None:
            holder["app"].state.service.close_streams()
            holder["server"].should_exit = True

        loop.call_soon_threadsafe(stop)
        thread.join(30)
        if "error" in holder:
            raise holder["error"]


@pytest.fixture
def service() -> Iterator[RunningService]:
    """A running service with the default config and test processors."""
    with start_service() as running:
        yield running
