"""What a caller may read about tasks: :class:`TaskView` snapshots and :class:`TaskEvent`.

Both are frozen: a view is a copy of the scheduler's state at one moment, never a handle
on it, so nothing read through them can change how a task runs. Neither holds a payload
(payloads carry children's voices and words) nor a result (see ``wait_for_task``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass

from .errors import InvalidArgumentError
from .lifecycle import TaskStatus
from .record import TaskRecord
from .result import TaskResult
from .retention import EndedTask, Kept
from .task import TaskPriority

__all__ = [
    "EventListener",
    "TaskEvent",
    "TaskFilter",
    "TaskView",
    "check_page",
    "page",
    "view_of_ended",
    "view_of_record",
]

_PRIORITIES = TaskPriority._value2member_map_


@dataclass(frozen=True, slots=True)
class TaskView:
    """A snapshot of one task, pending, running or ended.

    ``priority`` and ``deadline`` are as submitted; ``effective_priority`` and
    ``effective_deadline`` are what the scheduler uses (a more urgent dependent lifts the
    priority and tightens the deadline of the work it waits on; one ``aging_interval`` of
    waiting is further worth one level in the ready queue, not shown here). Times are Unix
    seconds. ``error`` is set once a task has ended badly. ``dependents`` lists the tasks
    that depend on this one, ``seq`` its submission number (the order of ``tasks()``).
    """

    task_id: str
    task_type: str
    status: TaskStatus
    priority: TaskPriority
    effective_priority: TaskPriority
    depends_on: tuple[str, ...]
    dependents: tuple[str, ...]
    created_at: float
    started_at: float | None
    completed_at: float | None
    attempts: int
    error: str | None
    worker_id: str | None
    deadline: float | None
    effective_deadline: float | None
    tags: Set[str]
    seq: int


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One change of a task's status, as listeners added with ``add_listener`` see it.

    ``previous_status`` is None for the event of a task's submission (status PENDING).
    ``priority`` is the effective priority; ``time`` is Unix seconds. By the time a
    listener sees an ending, the task's result is kept (``get_task_result`` returns it).
    """

    task_id: str
    task_type: str
    status: TaskStatus
    previous_status: TaskStatus | None
    priority: TaskPriority
    time: float


#: A function called with every :class:`TaskEvent`; what it raises is logged and dropped.
EventListener = Callable[[TaskEvent], None]


def view_of_record(record: TaskRecord) -> TaskView:
    task = record.task
    return TaskView(
        task.id,
        record.type_name,
        record.status,
        task.priority,
        _PRIORITIES[record.priority],  # type: ignore[arg-type]
        tuple(task.depends_on),
        tuple(d.id for d in record.dependents or ()),
        task.created_at,
        record.started_at,
        None,
        record.attempts,
        None,
        record.worker_id,
        task.deadline,
        record.deadline,
        task.tags,
        record.seq,
    )


def view_of_ended(ended: EndedTask) -> TaskView:
    result = ended.result
    return TaskView(
        result.task_id,
        result.task_type,
        result.status,
        result.priority,
        _PRIORITIES[ended.priority],  # type: ignore[arg-type]
        tuple(ended.depends_on),
        tuple(ended.dependents or ()),
        result.created_at,
        result.started_at,
        result.completed_at,
        result.attempts,
        result.error,
        result.worker_id,
        ended.deadline,
        ended.effective_deadline,
        result.tags,
        ended.seq,
    )


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What ``tasks()`` keeps: every criterion given must hold."""

    status: TaskStatus | None
    task_type: str | None
    priority: TaskPriority | None
    tags: frozenset[str]

    @classmethod
    def checked(
        cls,
        status: object,
        task_type: object,
        priority: object,
        tags: Iterable[str],
    ) -> TaskFilter:
        """Raises InvalidArgumentError for a filter of the wrong type."""
        for name, value, kind in (
            ("status", status, TaskStatus),
            ("task_type", task_type, str),
            ("priority", priority, TaskPriority),
        ):
            if value is not None and not isinstance(value, kind):
                raise InvalidArgumentError(
                    f"{name} must be a {kind.__name__} or None, got {value!r}"
                )
        if isinstance(tags, str):
            raise InvalidArgumentError(f"tags must be a list of strings, got {tags!r}")
        return cls(status, task_type, priority, frozenset(tags))  # type: ignore[arg-type]

    def keeps_record(self, record: TaskRecord) -> bool:
        task = record.task
        return (
            (self.status is None or record.status is self.status)
            and (self.task_type is None or record.type_name == self.task_type)
            and (self.priority is None or task.priority is self.priority)
            and self.tags <= task.tags
        )

    def keeps_ended(self, result: TaskResult) -> bool:
        return (
            (self.status is None or result.status is self.status)
            and (self.task_type is None or result.task_type == self.task_type)
            and (self.priority is None or result.priority is self.priority)
            and self.tags <= result.tags
        )


def check_page(limit: object, after: object) -> None:
    """Raises InvalidArgumentError unless ``limit`` >= 1 and ``after`` is an id or None."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgumentError(f"limit must be a positive int, got {limit!r}")
    if after is not None and not isinstance(after, str):
        raise InvalidArgumentError(f"after must be a str or None, got {after!r}")


def page(
    candidates: list[tuple[int, TaskRecord | Kept]],
    start: int | None,
    limit: int,
    newest_first: bool,
) -> list[TaskView]:
    """The views of the first ``limit`` candidates (by submission number) after ``start``."""
    if start is not None:
        candidates = [c for c in candidates if (c[0] < start if newest_first else c[0] > start)]
    pick = heapq.nlargest if newest_first else heapq.nsmallest
    chosen = pick(limit, candidates, key=lambda c: c[0])
    return [
        view_of_record(item)
        if isinstance(item, TaskRecord)
        else view_of_ended(item if isinstance(item, EndedTask) else EndedTask(item))
        for _, item in chosen
    ]
