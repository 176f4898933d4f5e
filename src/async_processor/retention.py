"""Results of ended tasks, kept for a while and then forgotten, so memory stays flat."""

from __future__ import annotations

from collections import OrderedDict

from .result import TaskResult

__all__ = ["ResultStore"]


class ResultStore:
    """Ended tasks' results, oldest out first.

    A result is dropped ``ttl`` seconds after its task ended, or sooner when more than
    ``max_results`` are kept. Both checks cost O(1) per added result: results arrive in
    completion order, so the oldest is always at the front.
    """

    __slots__ = ("_results", "evicted", "max_results", "ttl")

    def __init__(self, ttl: float, max_results: int) -> None:
        self.ttl = ttl
        self.max_results = max_results
        self._results: OrderedDict[str, TaskResult] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._results)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._results

    def add(self, result: TaskResult, now: float) -> None:
        self._results[result.task_id] = result
        self.expire(now)

    def get(self, task_id: str, now: float) -> TaskResult | None:
        result = self._results.get(task_id)
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
        results = self._results
        while len(results) > self.max_results:
            results.popitem(last=False)
            self.evicted += 1
        cutoff = now - self.ttl
        while results:
            oldest = next(iter(results.values()))
            if oldest.completed_at is None or oldest.completed_at > cutoff:
                break
            results.popitem(last=False)
            self.evicted += 1

    def values(self) -> list[TaskResult]:
        return list(self._results.values())
