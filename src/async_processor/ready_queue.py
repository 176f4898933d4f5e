"""The queue of ready tasks: most urgent first, FIFO among equals, with aging.

Aging without re-sorting: a task of level ``p`` (CRITICAL=1 ... BATCH=5) submitted at time
``t`` is ordered by the key ``p * aging_interval + t``. Waiting one
``aging_interval`` is therefore worth exactly one level: a BATCH task that has waited three
intervals ties with a HIGH task arriving now (and, having arrived first, goes first), and
since the key never changes while a task waits, the heap never needs re-sorting. CRITICAL
tasks live in a heap of their own that is always served first, so aged work is never
promoted above HIGH. With aging disabled the key
is the level alone. Either way equal levels run in submission order, and the key of a task
does not change while it waits for dependencies, a limit or a retry.

Removal (cancellation, a priority lift) is lazy: the entry is blanked and skipped on pop.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Protocol

__all__ = ["Queueable", "ReadyQueue"]

_CRITICAL = 1


class Queueable(Protocol):
    """What the queue needs to know of a task record."""

    priority: int
    submitted_at: float
    entry: list[Any] | None
    queue: ReadyQueue | None


class ReadyQueue:
    """Ready records of one execution context (or parked behind one limit)."""

    __slots__ = ("_aged", "_aging_interval", "_count", "_critical", "_seq")

    def __init__(self, aging_interval: float | None) -> None:
        self._aging_interval = aging_interval or 0.0
        self._critical: list[list[Any]] = []
        self._aged: list[list[Any]] = []
        self._seq = itertools.count()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, record: Queueable) -> None:
        """Add a record, keyed by its current priority and ``submitted_at``."""
        if record.priority == _CRITICAL:
            entry = [0.0, next(self._seq), record]
            heapq.heappush(self._critical, entry)
        else:
            key = (
                record.priority * self._aging_interval + record.submitted_at
                if self._aging_interval
                else float(record.priority)
            )
            entry = [key, next(self._seq), record]
            heapq.heappush(self._aged, entry)
        record.entry = entry
        record.queue = self
        self._count += 1

    def pop(self) -> Any:
        """Remove and return the most urgent record, or None when empty."""
        for heap in (self._critical, self._aged):
            while heap:
                record = heapq.heappop(heap)[2]
                if record is not None:
                    record.entry = None
                    record.queue = None
                    self._count -= 1
                    return record
        return None

    def remove(self, record: Queueable) -> None:
        """Take a record out (lazily); it must be in this queue."""
        assert record.queue is self and record.entry is not None
        record.entry[2] = None
        record.entry = None
        record.queue = None
        self._count -= 1

    def requeue(self, record: Queueable) -> None:
        """Re-key a record after its priority changed."""
        self.remove(record)
        self.push(record)
