"""A task's lifecycle, written down once as a table of allowed transitions.

    PENDING ──> RUNNING ──> COMPLETED
       │  ^        │
       │  └────────┤ (a retry puts a failed attempt back in the queue)
       │           ├──> FAILED
       │           ├──> TIMEOUT
       │           └──> CANCELLED
       ├──> CANCELLED  (cancelled, shed under overload, or a dependency did not complete)
       └──> TIMEOUT    (its deadline passed before it could start)

Every change of status passes through :func:`check_transition`; any other pair is a bug
and raises :class:`~async_processor.errors.InvalidTransitionError`.
"""

from __future__ import annotations

from enum import Enum

from .errors import InvalidTransitionError

__all__ = ["TERMINAL_STATUSES", "TRANSITIONS", "TaskStatus", "check_transition"]


class TaskStatus(str, Enum):
    """Where a task is in its life. Values are lower-case strings that serialise as they are."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMEOUT}
)

TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        (TaskStatus.PENDING, TaskStatus.RUNNING),
        (TaskStatus.PENDING, TaskStatus.CANCELLED),
        (TaskStatus.PENDING, TaskStatus.TIMEOUT),
        (TaskStatus.RUNNING, TaskStatus.COMPLETED),
        (TaskStatus.RUNNING, TaskStatus.FAILED),
        (TaskStatus.RUNNING, TaskStatus.TIMEOUT),
        (TaskStatus.RUNNING, TaskStatus.CANCELLED),
        (TaskStatus.RUNNING, TaskStatus.PENDING),
    }
)


def check_transition(task_id: str, start: TaskStatus, finish: TaskStatus) -> None:
    """Raise InvalidTransitionError unless ``start -> finish`` is in :data:`TRANSITIONS`."""
    if (start, finish) not in TRANSITIONS:
        raise InvalidTransitionError(
            f"task {task_id}: {start.value} -> {finish.value} is not an allowed transition; "
            "this is a bug in async_processor, please report it"
        )
