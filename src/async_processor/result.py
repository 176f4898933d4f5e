"""What a task ended with: :class:`TaskResult`."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from .lifecycle import TaskStatus
from .task import TaskPriority, to_json

__all__ = ["TaskResult"]


@dataclass(slots=True, eq=False)
class TaskResult:
    """The outcome of one task, kept for ``result_ttl`` seconds after it ended.

    ``result`` is the processor's return value (COMPLETED only); ``error`` says what went
    wrong otherwise. When the task FAILED because its processor raised, ``error_type`` is
    the exception's qualified class name (``"KeyError"``, ``"mypackage.errors.BadInput"``;
    builtins without their module) and ``traceback`` its formatted traceback, chained
    causes included (from a worker process: the child's traceback as the cause); both are
    None for any other ending (a timeout, a cancellation, a dependency that failed).
    ``execution_time`` is the last attempt's run time in seconds; ``attempts`` counts runs
    that started. Times are Unix seconds.
    """

    task_id: str
    status: TaskStatus
    result: Any = None
    error: str | None = None
    execution_time: float = 0.0
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    attempts: int = 0
    worker_id: str | None = None
    task_type: str = ""
    priority: TaskPriority = TaskPriority.NORMAL
    tags: Set[str] = frozenset()
    error_type: str | None = None
    traceback: str | None = None
    #: Submission number (``TaskView.seq``), kept here so an ended task needs no other object.
    _seq: int = field(default=0, init=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, with ``status`` and ``priority`` as their values."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "result": to_json(self.result),
            "error": self.error,
            "execution_time": self.execution_time,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "attempts": self.attempts,
            "worker_id": self.worker_id,
            "task_type": self.task_type,
            "priority": self.priority.value,
            "tags": sorted(self.tags),
            "error_type": self.error_type,
            "traceback": self.traceback,
        }
