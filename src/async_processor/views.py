"""What a caller may read about tasks: :class:`TaskView` snapshots and :class:`TaskEvent`.

Both are frozen: a view is a copy of the scheduler's state at one moment, never a handle
on it, so nothing read through them can change how a task runs. Neither holds a payload
(payloads carry children's voices and words) nor a result (see ``wait_for_task``).
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lifecycle import TaskStatus
from .task import TaskPriority

if TYPE_CHECKING:
    from .retention import EndedTask
    from .task_manager import TaskRecord

__all__ = ["EventListener", "TaskEvent", "TaskView"]

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

    @classmethod
    def of_record(cls, record: TaskRecord) -> TaskView:
        """The view of a task that has not ended."""
        task = record.task
        return cls(
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

    @classmethod
    def of_ended(cls, ended: EndedTask) -> TaskView:
        """The view of an ended task, from what is kept of it."""
        result = ended.result
        return cls(
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
