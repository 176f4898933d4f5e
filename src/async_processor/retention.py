"""Results of ended tasks, kept for a while and then forgotten, so memory stays flat."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .result import TaskResult

__all__ = ["EndedTask", "RetainedResults"]

_SHARDS = 64


class EndedTask:
    """What is kept of an ended task: its result and its place in the graph (no payload)."""

    __slots__ = (
        "deadline",
        "dependents",
        "depends_on",
        "effective_deadline",
        "priority",
        "result",
        "seq",
    )

    def __init__(
        self,
        result: TaskResult,
        seq: int,
        depends_on: Sequence[str] = (),
        dependents: list[str] | None = None,
        deadline: float | None = None,
        effective_deadline: float | None = None,
        priority: int | None = None,
    ) -> None:
        self.result = result
        #: Submission number: the order of :meth:`TaskManager.views`.
        self.seq = seq
        self.depends_on = depends_on
        #: Ids of the tasks that depend on this one (None until one does).
        self.dependents = dependents
        self.deadline = deadline
        self.effective_deadline = effective_deadline
        #: Effective priority when it ended.
        self.priority = result.priority.value if priority is None else priority


class RetainedResults:
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

    __slots__ = ("_next_seq", "_order", "_shards", "evicted", "max_results", "ttl")

    def __init__(self, ttl: float, max_results: int) -> None:
        self.ttl = ttl
        self.max_results = max_results
        self._order: deque[str] = deque()
        self._shards: list[dict[str, EndedTask]] = [{} for _ in range(_SHARDS)]
        self.evicted = 0
        #: Submission numbers for results added without one (recovered from a store).
        self._next_seq = -(2**62)

    def _shard(self, task_id: str) -> dict[str, EndedTask]:
        return self._shards[hash(task_id) % _SHARDS]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and task_id in self._shard(task_id)

    def add(self, result: TaskResult, now: float) -> None:
        """Keep a result that comes without its graph (recovered from a task store)."""
        self._next_seq += 1
        self.keep(EndedTask(result, self._next_seq), now)

    def keep(self, ended: EndedTask, now: float) -> None:
        task_id = ended.result.task_id
        self._shard(task_id)[task_id] = ended
        self._order.append(task_id)
        self.expire(now)

    def get(self, task_id: str, now: float) -> TaskResult | None:
        """The result, or None if unknown or past its TTL."""
        ended = self.ended(task_id, now)
        return None if ended is None else ended.result

    def ended(self, task_id: str, now: float) -> EndedTask | None:
        """What is kept of an ended task, or None if unknown or past its TTL."""
        ended = self._shard(task_id).get(task_id)
        if ended is None:
            return None
        completed_at = ended.result.completed_at
        if completed_at is not None and now - completed_at > self.ttl:
            self.expire(now)
            return None
        return ended

    def expire(self, now: float) -> None:
        """Drop results past their TTL and any beyond ``max_results``."""
        order = self._order
        while len(order) > self.max_results:
            self._drop(order.popleft())
        cutoff = now - self.ttl
        while order:
            oldest = self._shard(order[0])[order[0]].result
            if oldest.completed_at is None or oldest.completed_at > cutoff:
                break
            self._drop(order.popleft())

    def _drop(self, task_id: str) -> None:
        del self._shard(task_id)[task_id]
        self.evicted += 1

    def values(self) -> list[TaskResult]:
        """Every kept result, oldest first."""
        return [self._shard(task_id)[task_id].result for task_id in self._order]

    def entries(self) -> list[EndedTask]:
        """Everything kept of every ended task, in completion order."""
        return [self._shard(task_id)[task_id] for task_id in self._order]
