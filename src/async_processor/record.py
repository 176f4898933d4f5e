"""The scheduler's state for one task that has not ended: :class:`TaskRecord`."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .lifecycle import TaskStatus
from .result import TaskResult
from .task import ProcessingTask

if TYPE_CHECKING:
    import asyncio

    from .limits import TypeLimit
    from .ready_queue import ReadyQueue

__all__ = ["TaskRecord"]


class TaskRecord:
    """The scheduler's state for one task that has not ended yet."""

    __slots__ = (
        "attempt_task",
        "attempts",
        "cancel_reason",
        "context",
        "deadline",
        "deadline_timer",
        "dependents",
        "doom",
        "entry",
        "exec_started",
        "failure",
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
        "send_plan",
        "seq",
        "span",
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
        #: The task as submitted (the caller's object).
        self.task = task
        #: What the processor function receives: the task itself, or a fresh copy for a
        #: retry after an attempt whose thread may still poll ``cancel_requested``.
        self.attempt_task = task
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
        #: How the lane's executor said to send it (its ``check_sendable`` answer).
        self.send_plan: object = None
        #: Submission number, set by TaskManager.add: the order of TaskManager.views.
        self.seq = 0
        #: The exception the task ends with, as (error_type, traceback); set just before
        #: a failed task's ending, read when its TaskResult is made.
        self.failure: tuple[str, str] | None = None
        #: The OpenTelemetry span of the attempt running now, when traced (tracing.py).
        self.span: Any = None

    @property
    def id(self) -> str:
        return self.task.id
