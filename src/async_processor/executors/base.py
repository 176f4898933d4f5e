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
from enum import Enum
from typing import Any

from ..task import ProcessingTask

__all__ = ["Executor", "SlotState", "TaskFunction"]

TaskFunction = Callable[[ProcessingTask], Any]


class SlotState(str, Enum):
    """What a slot (and the worker coroutine serving it) is doing. Values serialise as
    they are, in the metrics' ``worker_stats``."""

    IDLE = "idle"
    BUSY = "busy"
    #: A thread whose task was cancelled or timed out still runs it; the slot stays held.
    ABANDONED = "abandoned"
    #: A replacement worker process is starting.
    RESTARTING = "restarting"
    STOPPED = "stopped"


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
    async def run(
        self, slot: int, fn: TaskFunction, task: ProcessingTask, plan: object = None
    ) -> Any:
        """Run ``fn(task)`` in ``slot`` and return its value, or raise its exception.

        ``plan`` is what :meth:`check_sendable` answered for this task. Cancelling the
        awaiting coroutine stops the work where the context allows it, then re-raises
        ``CancelledError``. An executor never changes ``task``: telling a thread task to
        stop (``task.cancel_requested``) is the processor's business.
        """

    async def release(self, slot: int) -> None:  # noqa: B027 - optional hook
        """Return once the slot's previous work has really stopped."""

    def check_sendable(self, fn: TaskFunction, task: ProcessingTask) -> object:
        """Raise UnsendableTaskError now if ``fn`` or ``task`` could not reach a slot.

        Returns how to send it (None by default), decided once: the processor keeps it
        with the task's record and hands it back to every :meth:`run` of the task.
        """
        return None

    def slot_state(self, slot: int) -> SlotState:
        """What the slot is doing (IDLE unless the executor knows better)."""
        return SlotState.IDLE

    def statistics(self) -> dict[str, int]:
        """Counters for metrics, e.g. ``{"restarts": 2}``."""
        return {}

    @abstractmethod
    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every slot, giving running work up to ``timeout`` seconds to end.

        After it returns no process of this executor runs; a thread stuck in user code
        cannot be stopped, so thread executors log it and leave it as a daemon.
        """
