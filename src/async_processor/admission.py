"""Admission: the per-type limits and the memory budget a popped task must pass to start.

A refused task is *parked* behind the limit that refused it, in priority order, and goes
back to its lane's ready queue as soon as that limit has room: on a release, or by a timer
when the next rate token is due (or free memory is checked again). Every admission and
release wakes the next parked task when there is room, so parked work never stalls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .limits import MemoryBudget, TypeLimit, available_memory_mb
from .ready_queue import ReadyQueue
from .task_manager import TaskRecord

__all__ = ["Admission"]

#: How often free memory is looked at again while memory-intensive work waits for it.
_MEMORY_RECHECK = 0.5


class Admission:
    """Type limits, the memory budget, what is parked behind them, and their timers."""

    def __init__(
        self,
        aging_interval: float | None,
        max_memory_intensive: int,
        min_free_memory_mb: float,
        enqueue: Callable[[TaskRecord], None],
    ) -> None:
        self.aging_interval = aging_interval
        self.limits: dict[str, TypeLimit] = {}
        self.memory = MemoryBudget(
            max_memory_intensive, min_free_memory_mb, ReadyQueue(aging_interval)
        )
        self._enqueue = enqueue
        self._timers: dict[object, asyncio.TimerHandle] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def set_limits(
        self, name: str, max_concurrency: int | None, rate: float | None, per: float
    ) -> None:
        """Limit one task type (see ``AdvancedAsyncProcessor.set_limits``)."""
        limit = self.limits.get(name)
        now = time.monotonic()
        if limit is None:
            if max_concurrency is None and rate is None:
                return
            self.limits[name] = TypeLimit(max_concurrency, rate, per, self.aging_interval, now)
            return
        limit.configure(max_concurrency, rate, per, now)
        if limit.active:
            self._wake_limit(limit)
        else:
            while (record := limit.parked.pop()) is not None:
                self._enqueue(record)

    def admit(self, record: TaskRecord) -> bool:
        """Take the type limit and memory budget ``record`` needs, or park it behind them."""
        limit = self.limits.get(record.type_name) if self.limits else None
        if limit is not None and not limit.has_room(time.monotonic()):
            limit.parked.push(record)
            self._wake_limit(limit)
            return False
        if record.task.memory_intensive:
            if not self.memory.try_acquire():
                self.memory.parked.push(record)
                self._wake_memory()
                return False
            record.holds_memory = True
            self._wake_memory()
        if limit is not None:
            limit.acquire(time.monotonic())
            record.limit = limit
            self._wake_limit(limit)
        return True

    def release(self, record: TaskRecord) -> None:
        """Give back what ``record`` took, and wake what was parked behind it."""
        limit = record.limit
        if limit is not None:
            record.limit = None
            limit.release()
            self._wake_limit(limit)
        if record.holds_memory:
            record.holds_memory = False
            self.memory.release()
            self._wake_memory()

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def statistics(self) -> dict[str, Any]:
        """The ``limits`` and ``memory_intensive`` parts of the metrics."""
        return {
            "limits": {
                name: {"running": limit.running, "waiting": len(limit.parked)}
                for name, limit in self.limits.items()
                if limit.active
            },
            "memory_intensive": {
                "running": self.memory.running,
                "waiting": len(self.memory.parked),
                "available_memory_mb": available_memory_mb(),
            },
        }

    def _wake_limit(self, limit: TypeLimit) -> None:
        """Let the most urgent task parked behind ``limit`` try again once it has room."""
        if not limit.parked or limit.saturated:  # a release will wake it
            return
        delay = limit.next_token_in(time.monotonic())
        if delay is None:
            self._unpark(limit.parked)
        else:
            self._set_timer(limit, delay, lambda: self._wake_limit(limit))

    def _wake_memory(self) -> None:
        """Let the most urgent parked memory-intensive task try again once there is room."""
        memory = self.memory
        if not memory.parked or memory.saturated:  # a release will wake it
            return
        if memory.memory_low():
            self._set_timer("memory", _MEMORY_RECHECK, self._wake_memory)
        else:
            self._unpark(memory.parked)

    def _unpark(self, parked: ReadyQueue) -> None:
        """Send the most urgent parked record back to its ready queue."""
        record = parked.pop()
        if record is not None:
            self._enqueue(record)

    def _set_timer(self, key: object, delay: float, callback: Callable[[], None]) -> None:
        if key in self._timers or self.loop is None:
            return

        def fire() -> None:
            del self._timers[key]
            callback()

        self._timers[key] = self.loop.call_later(delay, fire)
