"""Tasks that must not start before a time: ``create_task(..., run_at=...)`` or ``delay=``.

A task whose ``run_at`` is still ahead is held back when it would become ready (accepted
with nothing left to wait for, or released by its last dependency): a timer makes it ready
at ``run_at``. Until then it is PENDING but on no ready queue, so it holds no worker and
more urgent work cannot queue behind it. Its wait for priority aging counts from
``run_at``: a task scheduled for later has not been waiting before then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .lifecycle import TaskStatus
from .task_manager import TaskRecord

__all__ = ["Delays"]


class Delays:
    """Holds records back until their task's ``run_at``; see the module docstring."""

    def __init__(self, enqueue: Callable[[TaskRecord], None]) -> None:
        self._enqueue = enqueue
        self.loop: asyncio.AbstractEventLoop | None = None

    def hold(self, record: TaskRecord) -> bool:
        """Arm the record's timer and return True if its ``run_at`` is still ahead.

        The timer is ``record.retry_timer``: whatever ends the task cancels it.
        """
        run_at = record.task.run_at
        if run_at is None:
            return False
        wait = run_at - time.time()
        if wait <= 0:
            return False
        assert self.loop is not None
        record.retry_timer = self.loop.call_later(wait, self._due, record)
        return True

    def _due(self, record: TaskRecord) -> None:
        record.retry_timer = None
        if record.status is TaskStatus.PENDING and record.queue is None:
            record.submitted_at = time.monotonic()  # aging counts from run_at
            self._enqueue(record)
