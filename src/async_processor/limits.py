"""Admission limits that a ready task must pass before it may start.

A task that a limit refuses is *parked* behind that limit, in priority order, and goes back
to its ready queue when the limit frees up (a running task of that kind ends, or a rate
token comes due). Limits never reorder work within a priority level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .arguments import check_count, check_seconds
from .ready_queue import ReadyQueue

__all__ = ["MemoryBudget", "TypeLimit", "available_memory_mb"]


class TypeLimit:
    """At most ``max_concurrency`` running, and at most ``rate`` starts per ``per`` seconds.

    The rate is a token bucket holding up to ``rate`` tokens (so a burst of ``rate`` starts
    is allowed after a quiet spell), refilled continuously at ``rate / per`` per second.
    """

    __slots__ = (
        "_capacity",
        "_per",
        "_rate",
        "_tokens",
        "_updated",
        "max_concurrency",
        "parked",
        "running",
    )

    def __init__(
        self,
        max_concurrency: int | None,
        rate: float | None,
        per: float,
        aging_interval: float | None,
        now: float,
    ) -> None:
        self.running = 0
        self.parked = ReadyQueue(aging_interval)
        self.configure(max_concurrency, rate, per, now)

    def configure(
        self, max_concurrency: int | None, rate: float | None, per: float, now: float
    ) -> None:
        """Set new limits; tasks running now keep counting against them."""
        if max_concurrency is not None:
            check_count("max_concurrency", max_concurrency, 1)
        if rate is not None:
            rate = check_seconds("rate", rate)
        per = check_seconds("per", per)
        self.max_concurrency = max_concurrency
        self._rate = rate
        self._per = per
        #: The bucket holds at least one token, so a rate below 1 per ``per`` still admits.
        self._capacity = max(rate, 1.0) if rate is not None else 0.0
        self._tokens = self._capacity
        self._updated = now

    @property
    def active(self) -> bool:
        """False once both limits were removed (the object stays for running tasks)."""
        return self.max_concurrency is not None or self._rate is not None

    def has_room(self, now: float) -> bool:
        """True if a task may start now: a running slot and a rate token are free."""
        if self.max_concurrency is not None and self.running >= self.max_concurrency:
            return False
        if self._rate is not None:
            self._refill(now)
            return self._tokens >= 1.0
        return True

    def acquire(self, now: float) -> None:
        """Take a running slot and a rate token; call only after :meth:`has_room`."""
        if self._rate is not None:
            self._refill(now)
            self._tokens -= 1.0
        self.running += 1

    def release(self) -> None:
        self.running -= 1

    @property
    def saturated(self) -> bool:
        """All running slots are taken (only a release can make room)."""
        return self.max_concurrency is not None and self.running >= self.max_concurrency

    def next_token_in(self, now: float) -> float | None:
        """Seconds until a rate token is due, or None when not rate-limited right now."""
        if self._rate is None:
            return None
        self._refill(now)
        if self._tokens >= 1.0:
            return None
        return (1.0 - self._tokens) * self._per / self._rate

    def _refill(self, now: float) -> None:
        assert self._rate is not None
        self._tokens = min(
            self._capacity, self._tokens + (now - self._updated) * self._rate / self._per
        )
        self._updated = now


@dataclass(slots=True)
class MemoryBudget:
    """Admits ``memory_intensive`` tasks while there is room.

    At most ``max_concurrent`` such tasks run at once, and none starts while the system's
    available memory is below ``min_free_mb``.
    """

    max_concurrent: int
    min_free_mb: float
    parked: ReadyQueue
    running: int = 0

    @property
    def saturated(self) -> bool:
        """All slots are taken (only a release can make room)."""
        return self.running >= self.max_concurrent

    def memory_low(self) -> bool:
        return self.min_free_mb > 0 and available_memory_mb() < self.min_free_mb

    def try_acquire(self) -> bool:
        if self.saturated or self.memory_low():
            return False
        self.running += 1
        return True

    def release(self) -> None:
        self.running -= 1


def available_memory_mb() -> float:
    """The memory the system can give without swapping (Linux MemAvailable), in MiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024) if pages else float("inf")
