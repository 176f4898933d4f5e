"""Bookkeeping of tasks and their dependencies, without I/O.

:class:`TaskManager` knows every task that has not ended (as a :class:`TaskRecord`) and the
results of those that have. It validates batches (duplicates, unknown dependencies,
cycles), links the dependency graph, lifts the priority and tightens the deadline of the
work a task waits on, and records endings. It never awaits anything: the processor
(``processor.py``) carries out what it decides.

Every change of status passes through :meth:`TaskManager.transition`, which checks the
lifecycle table and tells the registered listeners; a durable store or an event stream
plugs in there. A listener that raises is logged and never stops the change.

The read side (:meth:`TaskManager.view`, :meth:`TaskManager.views`,
:meth:`TaskManager.dependents`) answers with frozen :class:`~async_processor.views.TaskView`
snapshots, for live and ended tasks alike.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import (
    DependencyCycleError,
    DependencyNotFoundError,
    DuplicateTaskError,
    InvalidArgumentError,
    TaskNotFoundError,
)
from .lifecycle import TRANSITIONS, TaskStatus, check_transition
from .record import TaskRecord
from .result import TaskResult
from .retention import EndedTask, Kept, RetainedResults, result_of
from .task import ProcessingTask, TaskPriority
from .views import (
    EventListener,
    TaskEvent,
    TaskFilter,
    TaskView,
    check_page,
    page,
    view_of_ended,
    view_of_record,
)

__all__ = ["EXPIRED", "Ending", "TaskManager", "TaskRecord", "TransitionListener"]

#: How the error of a task whose deadline passed before it could start begins.
EXPIRED = "expired in the queue"

logger = logging.getLogger("async_processor")

TransitionListener = Callable[["TaskRecord", TaskStatus, TaskStatus], None]

_PRIORITIES = TaskPriority._value2member_map_


@dataclass(slots=True)
class Ending:
    """An instruction of :meth:`TaskManager.end`: what the async layer must now carry out
    for one task that ended (take it out of its queue and timers, wake its waiters, and so
    on)."""

    record: TaskRecord
    result: TaskResult
    #: Dependents whose last dependency this was: push them onto their ready queues.
    ready: list[TaskRecord]
    #: Tasks whose effective deadline changed (given back): re-arm their timers.
    relaxed: list[TaskRecord]
    #: The last attempt's run time; None for a task that never ran.
    execution_time: float | None


class TaskManager:
    """Tasks that have not ended, their dependency graph, and the results of those that have."""

    def __init__(self, result_ttl: float = 3600.0, max_results: int = 100_000) -> None:
        #: Every task that has not ended, by id.
        self.records: dict[str, TaskRecord] = {}
        self.results = RetainedResults(result_ttl, max_results)
        #: Called with (record, old, new) on every change of status, and with
        #: (record, PENDING, PENDING) when a task is accepted.
        self.listeners: list[TransitionListener] = []
        self._event_listeners: dict[object, EventListener] = {}
        self._seq = itertools.count()
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

    def view(self, task_id: str) -> TaskView:
        """A snapshot of one task. Raises TaskNotFoundError for an unknown id."""
        record = self.records.get(task_id)
        if record is not None:
            return view_of_record(record)
        return view_of_ended(self._ended(task_id))

    def dependents(self, task_id: str) -> list[str]:
        """Ids of the tasks that depend directly on ``task_id``, in submission order.

        Raises TaskNotFoundError for an unknown id.
        """
        record = self.records.get(task_id)
        if record is not None:
            return [d.task.id for d in record.dependents or ()]
        return list(self._ended(task_id).dependents or ())

    def views(
        self,
        *,
        status: TaskStatus | None = None,
        task_type: str | None = None,
        priority: TaskPriority | None = None,
        tags: Iterable[str] = (),
        limit: int = 100,
        after: str | None = None,
        newest_first: bool = False,
    ) -> list[TaskView]:
        """Snapshots of known tasks (live, and ended whose results are kept), in
        submission order (or newest first), filtered by every criterion given.

        ``priority`` is the priority as submitted; ``tags`` must all be present. ``after``
        is the id of the last task of the previous page: the page starts after it.

        Raises:
            InvalidArgumentError: ``limit`` is not a positive int, or a filter has the
                wrong type.
            TaskNotFoundError: ``after`` names a task no longer known.
        """
        keep = TaskFilter.checked(status, task_type, priority, tags)
        check_page(limit, after)
        start = None if after is None else self._seq_of(after)
        candidates: list[tuple[int, TaskRecord | Kept]] = []
        if status is None or not status.is_terminal:
            candidates += [(r.seq, r) for r in self.records.values() if keep.keeps_record(r)]
        if status is None or status.is_terminal:
            self.results.expire(time.time())
            for kept in self.results.entries():
                result = result_of(kept)
                if keep.keeps_ended(result):
                    candidates.append((result._seq, kept))
        return page(candidates, start, limit, newest_first)

    def _seq_of(self, task_id: str) -> int:
        record = self.records.get(task_id)
        return record.seq if record is not None else self._ended(task_id).seq

    def _ended(self, task_id: str) -> EndedTask:
        ended = self.results.ended(task_id, time.time())
        if ended is None:
            raise _not_found(task_id)
        return ended

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
        record.seq = next(self._seq)
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
            ended = self.results.place(dep_id, time.time())
            if ended is None:  # its result expired since check()/order_batch()
                record.doom = (
                    TaskStatus.CANCELLED,
                    f"dependency {dep_id}'s result expired (result_ttl) before it was used",
                )
                continue
            if ended.dependents is None:
                ended.dependents = [task.id]
            else:
                ended.dependents.append(task.id)
            result = ended.result
            expired = result.status is TaskStatus.TIMEOUT and (result.error or "").startswith(
                EXPIRED
            )
            self._dependency_ended(record, result, expired)
        records[task.id] = record
        self.waiting += 1
        self.waiting_by_priority[record.priority] += 1
        if self.listeners:
            self._notify(record, TaskStatus.PENDING, TaskStatus.PENDING)
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
        old = self._set_status(record, status)
        if self.listeners:
            self._notify(record, old, status)

    def _set_status(self, record: TaskRecord, status: TaskStatus) -> TaskStatus:
        """Change the status and the waiting counts, without telling anyone."""
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
        return old

    def _notify(self, record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
        """Tell every listener; one that raises is logged and the others still run."""
        for listener in self.listeners:
            try:
                listener(record, old, new)
            except Exception:
                logger.exception(
                    "a transition listener (%r) raised on task %s (%s -> %s); ignored",
                    listener,
                    record.task.id,
                    old.value,
                    new.value,
                )

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with a :class:`TaskEvent` on every change of status.

        Returns a function that removes it (calling it twice does nothing).
        """
        if not callable(listener):
            raise InvalidArgumentError(f"a listener must be callable, got {listener!r}")
        token = object()
        if not self._event_listeners:
            self.listeners.append(self._publish)
        self._event_listeners[token] = listener

        def remove() -> None:
            if self._event_listeners.pop(token, None) is not None and not self._event_listeners:
                self.listeners.remove(self._publish)

        return remove

    def _publish(self, record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
        event = TaskEvent(
            record.task.id,
            record.type_name,
            new,
            None if old is new else old,
            _PRIORITIES[record.priority],  # type: ignore[arg-type]
            time.time(),
        )
        for listener in list(self._event_listeners.values()):
            try:
                listener(event)
            except Exception:
                logger.exception(
                    "an event listener (%r) raised on task %s (%s); ignored",
                    listener,
                    event.task_id,
                    new.value,
                )

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
        now end too (their ``doom`` says how). Listeners hear of the ending once the
        result is kept.
        """
        old = self._set_status(record, status)
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
            *(record.failure or (None, None)),
        )
        del self.records[task.id]
        self.results.keep(_kept(record, result), now)
        if self.listeners:
            self._notify(record, old, status)
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

    def end(
        self,
        record: TaskRecord,
        status: TaskStatus,
        value: Any = None,
        error: str | None = None,
        execution_time: float | None = None,
        expired: bool = False,
    ) -> list[Ending]:
        """End a task and, down the graph, every dependent that cannot run without it.

        The cascade decision lives here: a dependent doomed by this ending ends too
        (TIMEOUT after an expiry, CANCELLED otherwise), and so on. A dependent that ends
        before its own deadline gives that deadline back to the work it waited on; one past
        its deadline leaves it (that work was hopeless). Returns one :class:`Ending` per
        ended task, in the order they ended.
        """
        endings: list[Ending] = []
        stack: list[tuple[TaskRecord, TaskStatus, Any, str | None, float | None, bool]]
        stack = [(record, status, value, error, execution_time, expired)]
        while stack:
            record, status, value, error, execution_time, expired = stack.pop()
            result, ready, doomed = self.finish(
                record, status, value, error, execution_time or 0.0, expired
            )
            relaxed: list[TaskRecord] = []
            if (
                record.deadline is not None
                and record.task.depends_on
                and not expired
                and record.deadline > time.time()
            ):
                relaxed = self.relax_deadlines(record)
            endings.append(Ending(record, result, ready, relaxed, execution_time))
            for dependent in doomed:
                assert dependent.doom is not None
                doom_status, doom_error = dependent.doom
                timed_out = doom_status is TaskStatus.TIMEOUT
                stack.append((dependent, doom_status, None, doom_error, None, timed_out))
        return endings

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


def _kept(record: TaskRecord, result: TaskResult) -> Kept:
    """What is kept of a task that ended with ``result``: the result alone, or with its
    place in the graph when it has one (most tasks do not)."""
    result._seq = record.seq
    task = record.task
    dependents = record.dependents
    if (
        not task.depends_on
        and dependents is None
        and task.deadline is None
        and record.deadline is None
        and record.priority == task.priority.value
    ):
        return result
    return EndedTask(
        result,
        task.depends_on,
        None if dependents is None else [d.task.id for d in dependents],
        task.deadline,
        record.deadline,
        record.priority,
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
