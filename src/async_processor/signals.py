"""Graceful shutdown on SIGINT and SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .processor import AdvancedAsyncProcessor

__all__ = ["install_signal_handlers"]

logger = logging.getLogger("async_processor")


def install_signal_handlers(
    processor: AdvancedAsyncProcessor,
    *,
    timeout: float = 30.0,
    signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> asyncio.Event:
    """On the first of ``signals``, shut ``processor`` down gracefully (within ``timeout``).

    Call it from the running event loop. Returns an event that is set once the shutdown
    has finished, so a service can ``await stopped.wait()`` and then exit.
    """
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def stop(signum: signal.Signals) -> None:
        logger.warning("received %s: shutting down (up to %.0fs)", signum.name, timeout)
        try:
            await processor.shutdown(timeout=timeout)
        finally:
            stopped.set()

    def handle(signum: signal.Signals) -> None:
        if not tasks:  # a second signal while stopping changes nothing
            tasks.append(loop.create_task(stop(signum)))

    for signum in signals:
        loop.add_signal_handler(signum, handle, signum)
    return stopped
