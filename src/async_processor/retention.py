"""Results of ended tasks, kept for a while and then forgotten, so memory stays flat."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .result import TaskResult

__all__ = ["EndedTask", "Kept", "RetainedResults", "result_of"]

_SHARDS = 64
#: A shard is rebuilt once it has dropped more than this and more than half its size.
_REBUILD_AFTER = 32


class EndedTask:
    """The place in the graph of an ended task that had one, beside its result.

    Only a task with dependencies, dependents, a deadline or a lifted priority needs one.
    Most tasks have none of these: the store keeps their bare :class:`TaskResult` (the
    submission number lives on the result), so that their place in the graph costs no
    memory, and :meth:`RetainedResults.ended` builds a transient one when asked.
    """

    __slots__ = (
        "deadline",
        "dependents",
        "depends_on",
        "effective_deadline",
        "priority",
        "result",
    )

    def __init__(
        self,
        result: TaskResult,
        depends_on: Sequence[str] = (),
        dependents: list[str] | None = None,
        deadline: float | None = None,
        effective_deadline: float | None = None,
        priority: int | None = None,
    ) -> None:
        self.result = result
        self.depends_on = depends_on
        #: Ids of the tasks that depend on this one (None until one does).
        self.dependents = dependents
        self.deadline = deadline
        self.effective_deadline = effective_deadline
        #: Effective priority when it ended.
        self.priority = result.priority.value if priority is None else priority

    @property
    def seq(self) -> int:
        """Submission number: the order of :meth:`TaskManager.views`."""
        return self.result._seq


#: What the store holds per task: the bare result, or the result with its graph.
Kept = TaskResult | EndedTask


def result_of(kept: Kept) -> TaskResult:
    return kept.result if isinstance(kept, EndedTask) else kept


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

    Why rebuild a shard: a dict whose entries come and go fills its table with deleted
    slots and, when full, grows to three times the entries it holds, so under steady
    churn every shard sat at twice the size it needs. Copying a shard once it has dropped
    half its size keeps it compact, for one copy per half a shard of results dropped.
    """

    __slots__ = ("_dropped", "_next_seq", "_order", "_shards", "evicted", "max_results", "ttl")

    def __init__(self, ttl: float, max_results: int) -> None:
        self.ttl = ttl
        self.max_results = max_results
        self._order: deque[str] = deque()
        self._shards: list[dict[str, Kept]] = [{} for _ in range(_SHARDS)]
        #: Results dropped from each shard since it was last rebuilt.
        self._dropped = [0] * _SHARDS
        self.evicted = 0
        #: Submission numbers for results added without one (recovered from a store).
        self._next_seq = -(2**62)

    def _shard(self, task_id: str) -> dict[str, Kept]:
        return self._shards[hash(task_id) % _SHARDS]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and task_id in self._shard(task_id)

    def add(self, result: TaskResult, now: float) -> None:
        """Keep a result that comes without its graph (recovered from a task store)."""
        self._next_seq += 1
        result._seq = self._next_seq
        self.keep(result, now)

    def keep(self, kept: Kept, now: float) -> None:
        """Keep an ended task: its bare result, or with its graph when it has one."""
        result = kept.result if isinstance(kept, EndedTask) else kept
        task_id = result.task_id
        self._shards[hash(task_id) % _SHARDS][task_id] = kept
        self._order.append(task_id)
        self.expire(now)

    def get(self, task_id: str, now: float) -> TaskResult | None:
        """The result, or None if unknown or past its TTL."""
        kept = self._kept(task_id, now)
        return None if kept is None else result_of(kept)

    def ended(self, task_id: str, now: float) -> EndedTask | None:
        """What is kept of an ended task, or None if unknown or past its TTL. For a task
        without a graph it is built anew: changing it changes nothing kept (see
        :meth:`place`)."""
        kept = self._kept(task_id, now)
        if kept is None or isinstance(kept, EndedTask):
            return kept
        return EndedTask(kept)

    def place(self, task_id: str, now: float) -> EndedTask | None:
        """The kept place in the graph of an ended task, created if it had none, so that
        a dependent submitted after it ended can be recorded; None if unknown."""
        kept = self._kept(task_id, now)
        if kept is None or isinstance(kept, EndedTask):
            return kept
        ended = self._shard(task_id)[task_id] = EndedTask(kept)
        return ended

    def _kept(self, task_id: str, now: float) -> Kept | None:
        kept = self._shard(task_id).get(task_id)
        if kept is None:
            return None
        completed_at = result_of(kept).completed_at
        if completed_at is not None and now - completed_at > self.ttl:
            self.expire(now)
            return None
        return kept

    def expire(self, now: float) -> None:
        """Drop results past their TTL and any beyond ``max_results``."""
        order = self._order
        while len(order) > self.max_results:
            self._drop(order.popleft())
        cutoff = now - self.ttl
        shards = self._shards
        while order:
            oldest_id = order[0]
            oldest = shards[hash(oldest_id) % _SHARDS][oldest_id]
            if isinstance(oldest, EndedTask):
                oldest = oldest.result
            if oldest.completed_at is None or oldest.completed_at > cutoff:
                break
            self._drop(order.popleft())

    def _drop(self, task_id: str) -> None:
        index = hash(task_id) % _SHARDS
        shard = self._shards[index]
        del shard[task_id]
        self.evicted += 1
        dropped = self._dropped[index] = self._dropped[index] + 1
        if dropped > _REBUILD_AFTER and dropped > len(shard) // 2:
            self._shards[index] = dict(shard)
            self._dropped[index] = 0

    def values(self) -> list[TaskResult]:
        """Every kept result, oldest first."""
        return [result_of(self._shard(task_id)[task_id]) for task_id in self._order]

    def entries(self) -> list[Kept]:
        """Everything kept of every ended task, in completion order: a bare result for a
        task without a graph, an :class:`EndedTask` for one with."""
        return [self._shard(task_id)[task_id] for task_id in self._order]
