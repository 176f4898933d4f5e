"""The one interface every execution context implements.

An executor owns a fixed number of *slots*; the processor runs one worker coroutine per
slot, and a slot runs one task at a time. Timeouts and cancellation reach an executor as
the cancellation of the coroutine awaiting :meth:`Executor.run`: the executor stops the
work if its context can (a process is killed and replaced) and re-raises. Capacity never
lies: :meth:`Executor.release` returns only once the slot's previous work has really
stopped (a thread that ignored its cancellation still holds its slot until it returns).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ..task import ProcessingTask

__all__ = ["Executor", "TaskFunction"]

TaskFunction = Callable[[ProcessingTask], Any]


class Executor(ABC):
    """A pool of slots that run sync task functions away from the event loop."""

    #: Short name used in worker ids and metrics ("thread", "process", "dask").
    name: str = ""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many tasks can run at once (the number of slots)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (threads, processes, connections); called once by the processor."""

    @abstractmethod
    async def run(self, slot: int, fn: TaskFunction, task: ProcessingTask) -> Any:
        """Run ``fn(task)`` in ``slot`` and return its value, or raise its exception.

        Cancelling the awaiting coroutine stops the work where the context allows it,
        then re-raises ``CancelledError``.
        """

    async def release(self, slot: int) -> None:  # noqa: B027 - optional hook
        """Return once the slot's previous work has really stopped."""

    def check_sendable(self, fn: TaskFunction, task: ProcessingTask) -> None:  # noqa: B027
        """Raise UnsendableTaskError now if ``fn`` or ``task`` could not reach a slot."""

    def slot_state(self, slot: int) -> str:
        """ "idle", "busy", or a context-specific state such as "abandoned"."""
        return "idle"

    def statistics(self) -> dict[str, int]:
        """Counters for metrics, e.g. ``{"restarts": 2}``."""
        return {}

    @abstractmethod
    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every slot, giving running work up to ``timeout`` seconds to end.

        After it returns no process of this executor runs; a thread stuck in user code
        cannot be stopped, so thread executors log it and leave it as a daemon.
        """
