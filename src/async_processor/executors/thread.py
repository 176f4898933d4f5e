"""Sync task functions on threads, one thread per slot.

Each slot owns one daemon thread fed by its own queue, so the scheduler (not a shared
executor queue) decides what runs next, and the scheduler's own work never shares these
threads. A thread cannot be killed: when its task times out or is cancelled, the task ends
at once for its waiters, the processor sets ``task.cancel_requested`` on the object the
function received, for it to poll (this executor never changes the task), the late result
is discarded, and the slot stays *abandoned* (busy) until the function really
returns. The caller's ``contextvars`` are copied into the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import queue
import threading
import time
from typing import Any

from ..task import ProcessingTask
from .base import Executor, SlotState, TaskFunction

__all__ = ["ThreadExecutor"]

logger = logging.getLogger("async_processor")

_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    TaskFunction,
    ProcessingTask,
]


class ThreadExecutor(Executor):
    """``max_workers`` threads, each running one task at a time."""

    name = "thread"

    def __init__(self, max_workers: int, *, thread_name_prefix: str = "async-processor") -> None:
        self._size = max_workers
        self._prefix = thread_name_prefix
        self._inboxes: list[queue.SimpleQueue[_Job | None]] = []
        self._threads: list[threading.Thread] = []
        self._state = [SlotState.IDLE] * max_workers
        self._freed: list[asyncio.Future[None] | None] = [None] * max_workers
        self.abandoned_total = 0

    @property
    def capacity(self) -> int:
        return self._size

    async def start(self) -> None:
        for slot in range(self._size):
            inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._serve, args=(slot, inbox), name=f"{self._prefix}-{slot}", daemon=True
            )
            thread.start()
            self._inboxes.append(inbox)
            self._threads.append(thread)

    async def run(
        self, slot: int, fn: TaskFunction, task: ProcessingTask, plan: object = None
    ) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._state[slot] = SlotState.BUSY
        self._inboxes[slot].put((loop, future, contextvars.copy_context(), fn, task))
        try:
            return await future
        except asyncio.CancelledError:
            if self._state[slot] is SlotState.BUSY:
                self._state[slot] = SlotState.ABANDONED
                self.abandoned_total += 1
                self._freed[slot] = loop.create_future()
            raise

    async def release(self, slot: int) -> None:
        freed = self._freed[slot]
        if freed is not None:
            await freed

    def slot_state(self, slot: int) -> SlotState:
        return self._state[slot]

    def statistics(self) -> dict[str, int]:
        return {
            "busy": sum(1 for s in self._state if s is not SlotState.IDLE),
            "abandoned": sum(1 for s in self._state if s is SlotState.ABANDONED),
            "abandoned_total": self.abandoned_total,
        }

    def _serve(self, slot: int, inbox: queue.SimpleQueue[_Job | None]) -> None:
        """The slot's thread: run jobs until the None sentinel."""
        while (job := inbox.get()) is not None:
            loop, future, context, fn, task = job
            try:
                value = context.run(fn, task)
                if inspect.isawaitable(value):
                    _close(value)
                    raise TypeError(
                        f"processor {getattr(fn, '__qualname__', fn)!r} is a plain function "
                        "that returned an awaitable; declare it 'async def' so that it runs "
                        "on the event loop"
                    )
                outcome: tuple[bool, Any] = (True, value)
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(self._settle, slot, future, outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _settle(self, slot: int, future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
        """On the loop: hand over the outcome, or discard it if the task was abandoned."""
        self._state[slot] = SlotState.IDLE
        freed = self._freed[slot]
        if freed is not None:
            self._freed[slot] = None
            freed.set_result(None)
        if future.done():
            return
        ok, value = outcome
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads within ``timeout``; one stuck in user code is left (it is a
        daemon thread) and logged."""
        for inbox in self._inboxes:
            inbox.put(None)
        deadline = time.monotonic() + timeout
        while any(t.is_alive() for t in self._threads) and time.monotonic() < deadline:  # noqa: ASYNC110 - threads cannot signal an asyncio.Event after the loop stops waiting
            await asyncio.sleep(0.01)
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            logger.warning(
                "threads %s are still running abandoned task code after shutdown; they are "
                "daemon threads and will not keep the interpreter alive. Poll "
                "task.cancel_requested in long-running thread tasks to stop them promptly.",
                ", ".join(stuck),
            )
        self._inboxes.clear()
        self._threads.clear()


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()
