"""What the durable stores share: status changes and results buffered on the processor's
loop and written together once per loop iteration by the store's :meth:`flush`."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .base import TaskStore
from .codec import encode_result

if TYPE_CHECKING:
    from ..lifecycle import TaskStatus
    from ..result import TaskResult
    from ..task_manager import TaskRecord

__all__ = ["JournalStore"]


class JournalStore(TaskStore):
    """A durable store that batches what it notes; subclasses write it in ``flush()``."""

    durable = True

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        #: (status, attempts, task id) of each change not yet written.
        self._updates: list[tuple[str, int, str]] = []
        #: (status, attempts, encoded result, completed at, task id) not yet written.
        self._results: list[tuple[str, int, bytes, float, str]] = []
        self._flush_pending = False
        self._frozen = False

    def transition(self, record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
        # endings come with their result through finished(); old == new is add()
        if self._frozen or old is new or new.is_terminal:
            return
        self._updates.append((new.value, record.attempts, record.task.id))
        self._schedule()

    def finished(self, result: TaskResult) -> None:
        if self._frozen:
            return
        self._results.append(
            (
                result.status.value,
                result.attempts,
                encode_result(result),
                result.completed_at or time.time(),
                result.task_id,
            )
        )
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the buffered changes (and clear ``_flush_pending``)."""
        raise NotImplementedError

    def freeze(self) -> None:
        self._frozen = True
