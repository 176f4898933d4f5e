"""Results of ended tasks, kept for a while and then forgotten, so memory stays flat."""

from __future__ import annotations

from collections import deque

from .result import TaskResult

__all__ = ["ResultStore"]

_SHARDS = 64


class ResultStore:
    """Ended tasks' results, oldest out first.

    A result is dropped ``ttl`` seconds after its task ended, or sooner when more than
    ``max_results`` are kept. Results arrive in completion order, so both checks only
    look at the oldest: O(1) per added result.

    Why shards: one dict of 100,000 results is a multi-megabyte table that is reallocated
    whole as results come and go; each reallocation stalls the event loop for
    milliseconds, and glibc, having freed so large a block, stops returning such memory
    to the system, so resident memory creeps up. Completion order lives in a deque and the
    results in 64 small dicts, so no single allocation is ever large.
    """

    __slots__ = ("_order", "_shards", "evicted", "max_results", "ttl")

    def __init__(self, ttl: float, max_results: int) -> None:
        self.ttl = ttl
        self.max_results = max_results
        self._order: deque[str] = deque()
        self._shards: list[dict[str, TaskResult]] = [{} for _ in range(_SHARDS)]
        self.evicted = 0

    def _shard(self, task_id: str) -> dict[str, TaskResult]:
        return self._shards[hash(task_id) % _SHARDS]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and task_id in self._shard(task_id)

    def add(self, result: TaskResult, now: float) -> None:
        self._shard(result.task_id)[result.task_id] = result
        self._order.append(result.task_id)
        self.expire(now)

    def get(self, task_id: str, now: float) -> TaskResult | None:
        """The result, or None if unknown or past its TTL."""
        result = self._shard(task_id).get(task_id)
        if (
            result is not None
            and result.completed_at is not None
            and (now - result.completed_at > self.ttl)
        ):
            self.expire(now)
            return None
        return result

    def expire(self, now: float) -> None:
        """Drop results past their TTL and any beyond ``max_results``."""
        order = self._order
        while len(order) > self.max_results:
            self._drop(order.popleft())
        cutoff = now - self.ttl
        while order:
            oldest = self._shard(order[0])[order[0]]
            if oldest.completed_at is None or oldest.completed_at > cutoff:
                break
            self._drop(order.popleft())

    def _drop(self, task_id: str) -> None:
        del self._shard(task_id)[task_id]
        self.evicted += 1

    def values(self) -> list[TaskResult]:
        """Every kept result, oldest first."""
        return [self._shard(task_id)[task_id] for task_id in self._order]
