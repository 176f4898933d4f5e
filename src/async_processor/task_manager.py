"""Bookkeeping of tasks and their dependencies, without I/O.

:class:`TaskManager` knows every task that has not ended (as a :class:`TaskRecord`) and the
results of those that have. It validates batches (duplicates, unknown dependencies,
cycles), links the dependency graph, lifts the priority and tightens the deadline of the
work a task waits on, and records endings. It never awaits anything: the processor
(``processor.py``) carries out what it decides.

Every change of status passes through :meth:`TaskManager.transition`, which checks the
lifecycle table and tells the registered listeners; a durable store or an event stream
plugs in there.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import (
    DependencyCycleError,
    DependencyNotFoundError,
    DuplicateTaskError,
    TaskNotFoundError,
)
from .lifecycle import TRANSITIONS, TaskStatus, check_transition
from .result import TaskResult
from .retention import ResultStore
from .task import ProcessingTask, TaskPriority

if TYPE_CHECKING:
    import asyncio

    from .limits import TypeLimit
    from .ready_queue import ReadyQueue

__all__ = ["EXPIRED", "TaskManager", "TaskRecord", "TransitionListener"]

#: How the error of a task whose deadline passed before it could start begins.
EXPIRED = "expired in the queue"

TransitionListener = Callable[["TaskRecord", TaskStatus, TaskStatus], None]


class TaskRecord:
    """The scheduler's state for one task that has not ended yet."""

    __slots__ = (
        "attempts",
        "cancel_reason",
        "context",
        "deadline",
        "deadline_timer",
        "dependents",
        "doom",
        "entry",
        "exec_started",
        "fn",
        "holds_memory",
        "lane",
        "limit",
        "priority",
        "priority_name",
        "queue",
        "ready_at",
        "retry_timer",
        "runner",
        "started_at",
        "stats",
        "status",
        "submitted_at",
        "task",
        "type_name",
        "waiters",
        "waiting",
        "worker_id",
    )

    def __init__(self, task: ProcessingTask, fn: Callable[..., Any], lane: str) -> None:
        self.task = task
        self.fn = fn
        #: "async", "thread" or "process": where the task runs.
        self.lane = lane
        self.type_name = task.type_name
        self.priority_name: str = task.priority._name_
        self.status = TaskStatus.PENDING
        #: Effective priority (a dependent may lift it); lower is more urgent.
        self.priority: int = task.priority.value
        #: Effective deadline in Unix seconds (a dependent may tighten it), or None.
        self.deadline = task.deadline
        #: How many dependencies have not ended yet; the task is ready at 0.
        self.waiting = 0
        #: Records that wait on this one (None until one does).
        self.dependents: list[TaskRecord] | None = None
        #: Set when a dependency ended badly: (status, error) to end with at once.
        self.doom: tuple[TaskStatus, str] | None = None
        self.attempts = 0
        self.submitted_at = time.monotonic()
        self.ready_at = 0.0
        self.exec_started = 0.0
        self.started_at: float | None = None
        self.worker_id: str | None = None
        self.entry: list[Any] | None = None
        self.queue: ReadyQueue | None = None
        self.runner: asyncio.Task[Any] | None = None
        self.waiters: list[asyncio.Future[TaskResult]] | None = None
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.retry_timer: asyncio.TimerHandle | None = None
        self.limit: TypeLimit | None = None
        self.holds_memory = False
        #: The submitter's contextvars, when it had any set.
        self.context: contextvars.Context | None = None
        #: The monitor's counters for this task's type and priority.
        self.stats: Any = None
        #: Why a running task is being cancelled; set just before its runner is cancelled.
        self.cancel_reason: str | None = None

    @property
    def id(self) -> str:
        return self.task.id


class TaskManager:
    """Tasks that have not ended, their dependency graph, and the results of those that have."""

    def __init__(self, result_ttl: float = 3600.0, max_results: int = 100_000) -> None:
        #: Every task that has not ended, by id.
        self.records: dict[str, TaskRecord] = {}
        self.results = ResultStore(result_ttl, max_results)
        self.listeners: list[TransitionListener] = []
        #: How many tasks wait (not ended, not running), in all and by effective priority.
        self.waiting = 0
        self.waiting_by_priority = [0] * (len(TaskPriority) + 1)

    # -- queries -------------------------------------------------------------------------

    def __contains__(self, task_id: object) -> bool:
        """True for a task that has not ended, or whose result is still kept (TTL-aware)."""
        if task_id in self.records:
            return True
        return isinstance(task_id, str) and self.results.get(task_id, time.time()) is not None

    def status(self, task_id: str) -> TaskStatus:
        record = self.records.get(task_id)
        if record is not None:
            return record.status
        result = self.results.get(task_id, time.time())
        if result is None:
            raise _not_found(task_id)
        return result.status

    def result(self, task_id: str) -> TaskResult | None:
        """The result of an ended task, None while it has not ended."""
        if task_id in self.records:
            return None
        result = self.results.get(task_id, time.time())
        if result is None:
            raise _not_found(task_id)
        return result

    async def get_ready_tasks(self) -> list[str]:
        """Ids of tasks whose dependencies have all completed and that have not started."""
        return [
            r.id
            for r in self.records.values()
            if r.status is TaskStatus.PENDING and r.waiting == 0 and r.doom is None
        ]

    # -- accepting tasks -----------------------------------------------------------------

    def check(self, task: ProcessingTask) -> None:
        """Check one task on its own (the fast path of :meth:`order_batch`)."""
        if task.id in self:
            raise DuplicateTaskError(
                f"task id {task.id!r} was already submitted; create a new task (ids must be unique)"
            )
        for dep in task.depends_on:
            if dep not in self:
                raise _unknown_dependency(task, dep)

    def order_batch(self, tasks: Iterable[ProcessingTask]) -> list[ProcessingTask]:
        """Check a batch and return it with every task after its dependencies.

        Raises:
            DuplicateTaskError: an id is already known, or repeats within the batch.
            DependencyNotFoundError: a dependency is neither known nor in the batch.
            DependencyCycleError: dependencies within the batch form a cycle.
        """
        batch: dict[str, ProcessingTask] = {}
        for task in tasks:
            if task.id in batch or task.id in self:
                raise DuplicateTaskError(
                    f"task id {task.id!r} was already submitted; "
                    "create a new task (ids must be unique)"
                )
            batch[task.id] = task
        for task in batch.values():
            for dep in task.depends_on:
                if dep not in batch and dep not in self:
                    raise _unknown_dependency(task, dep)
                if dep == task.id:
                    raise DependencyCycleError(f"task {task.id} depends on itself")
        return _topological(batch)

    def add(self, task: ProcessingTask, fn: Callable[..., Any], lane: str) -> TaskRecord:
        """Register a checked task and link it to its dependencies."""
        record = TaskRecord(task, fn, lane)
        records = self.records
        for dep_id in task.depends_on:
            dep = records.get(dep_id)
            if dep is not None:
                record.waiting += 1
                if dep.dependents is None:
                    dep.dependents = [record]
                else:
                    dep.dependents.append(record)
                continue
            result = self.results.get(dep_id, time.time())
            if result is None:  # its result expired since check()/order_batch()
                record.doom = (
                    TaskStatus.CANCELLED,
                    f"dependency {dep_id}'s result expired (result_ttl) before it was used",
                )
                continue
            expired = result.status is TaskStatus.TIMEOUT and (result.error or "").startswith(
                EXPIRED
            )
            self._dependency_ended(record, result, expired)
        records[task.id] = record
        self.waiting += 1
        self.waiting_by_priority[record.priority] += 1
        for listener in self.listeners:
            listener(record, TaskStatus.PENDING, TaskStatus.PENDING)
        return record

    def lift_priority(self, record: TaskRecord) -> list[TaskRecord]:
        """Lift every pending transitive dependency to at least ``record``'s priority.

        Returns the records whose priority changed (the caller re-queues them).
        """
        priority = record.priority

        def lift(dep: TaskRecord) -> bool:
            if dep.priority <= priority:
                return False
            self.waiting_by_priority[dep.priority] -= 1
            self.waiting_by_priority[priority] += 1
            dep.priority = priority
            return True

        return self._update_upstream(record, lift)

    def tighten_deadlines(self, record: TaskRecord) -> list[TaskRecord]:
        """Give every pending transitive dependency at most ``record``'s deadline.

        Returns the records whose deadline changed (the caller re-arms their timers).
        """
        deadline = record.deadline
        if deadline is None:
            return []

        def tighten(dep: TaskRecord) -> bool:
            if dep.deadline is not None and dep.deadline <= deadline:
                return False
            dep.deadline = deadline
            return True

        return self._update_upstream(record, tighten)

    def relax_deadlines(self, record: TaskRecord) -> list[TaskRecord]:
        """Take back the deadline an ended ``record`` lent to the work it waited on.

        Each pending transitive dependency gets the earliest of its own deadline and those
        of its dependents still waiting. Returns the records whose deadline changed.
        """

        def relax(dep: TaskRecord) -> bool:
            waiting = [
                d.deadline
                for d in dep.dependents or ()
                if d.status is TaskStatus.PENDING and d.deadline is not None
            ]
            own = [] if dep.task.deadline is None else [dep.task.deadline]
            deadline = min(own + waiting, default=None)
            if deadline == dep.deadline:
                return False
            dep.deadline = deadline
            return True

        return self._update_upstream(record, relax)

    def _update_upstream(
        self, record: TaskRecord, update: Callable[[TaskRecord], bool]
    ) -> list[TaskRecord]:
        """Apply ``update`` to the pending tasks ``record`` waits on, and on upstream
        through each one it changed. Returns the changed records."""
        changed: list[TaskRecord] = []
        stack = [record]
        while stack:
            for dep_id in stack.pop().task.depends_on:
                dep = self.records.get(dep_id)
                if dep is not None and dep.status is TaskStatus.PENDING and update(dep):
                    changed.append(dep)
                    stack.append(dep)
        return changed

    # -- changing state ------------------------------------------------------------------

    def transition(self, record: TaskRecord, status: TaskStatus) -> None:
        """The one place a task's status changes."""
        old = record.status
        if (old, status) not in TRANSITIONS:
            check_transition(record.task.id, old, status)
        record.status = status
        if old is TaskStatus.PENDING:
            self.waiting -= 1
            self.waiting_by_priority[record.priority] -= 1
        elif status is TaskStatus.PENDING:
            self.waiting += 1
            self.waiting_by_priority[record.priority] += 1
        for listener in self.listeners:
            listener(record, old, status)

    def finish(
        self,
        record: TaskRecord,
        status: TaskStatus,
        value: Any = None,
        error: str | None = None,
        execution_time: float = 0.0,
        expired: bool = False,
    ) -> tuple[TaskResult, list[TaskRecord], list[TaskRecord]]:
        """End a task: record its result and release its dependents.

        ``expired`` marks a task whose deadline passed before it could start: its
        dependents then end TIMEOUT too; after any other bad ending they end CANCELLED.
        Returns the result, the dependents that became ready, and the dependents that must
        now end too (their ``doom`` says how).
        """
        self.transition(record, status)
        task = record.task
        now = time.time()
        result = TaskResult(
            task.id,
            status,
            value if status is TaskStatus.COMPLETED else None,
            error,
            execution_time,
            task.created_at,
            record.started_at,
            now,
            record.attempts,
            record.worker_id,
            record.type_name,
            task.priority,
            task.tags,
        )
        del self.records[task.id]
        self.results.add(result, now)
        ready: list[TaskRecord] = []
        doomed: list[TaskRecord] = []
        for dependent in record.dependents or ():
            if dependent.status is not TaskStatus.PENDING or dependent.doom is not None:
                continue
            dependent.waiting -= 1
            self._dependency_ended(dependent, result, expired)
            if dependent.doom is not None:
                doomed.append(dependent)
            elif dependent.waiting == 0:
                ready.append(dependent)
        record.dependents = None
        return result, ready, doomed

    @staticmethod
    def _dependency_ended(record: TaskRecord, result: TaskResult, expired: bool) -> None:
        task = record.task
        if result.status is TaskStatus.COMPLETED or task.allow_failure:
            results = task.dependency_results
            if type(results) is not dict:  # the shared, read-only empty default
                results = task.dependency_results = dict(results)
            ok = result.status is TaskStatus.COMPLETED
            results[result.task_id] = result.result if ok else result
        else:
            status = TaskStatus.TIMEOUT if expired else TaskStatus.CANCELLED
            record.doom = (
                status,
                f"dependency {result.task_id} ended {result.status.value}"
                + (f": {result.error}" if result.error else ""),
            )


def _topological(batch: dict[str, ProcessingTask]) -> list[ProcessingTask]:
    """Order a batch so that each task follows its in-batch dependencies (Kahn's algorithm)."""
    indegree = dict.fromkeys(batch, 0)
    dependents: dict[str, list[str]] = {task_id: [] for task_id in batch}
    for task in batch.values():
        for dep in task.depends_on:
            if dep in batch:
                indegree[task.id] += 1
                dependents[dep].append(task.id)
    order = [task_id for task_id, n in indegree.items() if n == 0]
    for task_id in order:  # grows while iterating
        for dependent in dependents[task_id]:
            indegree[dependent] -= 1
            if indegree[dependent] == 0:
                order.append(dependent)
    if len(order) < len(batch):
        stuck = sorted(task_id for task_id, n in indegree.items() if n > 0)
        raise DependencyCycleError(
            f"the dependencies of tasks {', '.join(stuck)} form a cycle; nothing of this "
            "batch was submitted"
        )
    return [batch[task_id] for task_id in order]


def _unknown_dependency(task: ProcessingTask, dep: str) -> DependencyNotFoundError:
    return DependencyNotFoundError(
        f"task {task.id} depends on {dep!r}, which this processor does not know; submit the "
        "dependency first, or submit both together with submit_tasks()"
    )


def _not_found(task_id: str) -> TaskNotFoundError:
    return TaskNotFoundError(
        f"no task {task_id!r}: it was never submitted to this processor, or its result "
        "was evicted (see result_ttl and max_results)"
    )
