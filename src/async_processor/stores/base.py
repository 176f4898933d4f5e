"""The small interface between the processor and a task store, and the store errors.

The processor calls a store at four points: :meth:`TaskStore.open` in ``start()``
(returning what to recover), :meth:`TaskStore.prepare` and :meth:`TaskStore.add` while a
submit is accepted (``add`` has committed when it returns), :meth:`TaskStore.transition`
(a :class:`~async_processor.task_manager.TaskManager` listener) and
:meth:`TaskStore.finished` as tasks change and end, and :meth:`TaskStore.close` in
``shutdown()``. A store that is not ``durable`` is only asked about idempotency keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AsyncProcessorError, InvalidTaskError

if TYPE_CHECKING:
    from ..lifecycle import TaskStatus
    from ..result import TaskResult
    from ..task import ProcessingTask
    from ..task_manager import TaskRecord

__all__ = [
    "Recovered",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "TaskStore",
    "UnstorableTaskError",
]


class StoreError(AsyncProcessorError):
    """The task store cannot be read or written; the message names the file and what to do."""


class StoreCorruptError(StoreError):
    """The store file is not a task store, or is damaged (corrupt or truncated)."""


class StoreLockedError(StoreError):
    """Another process holds the store (each SQLite store has one processor at a time)."""


class StoreFullError(StoreError):
    """The disk (or a file-size limit) has no room for the store to grow."""


class UnstorableTaskError(InvalidTaskError):
    """A durable store cannot keep the task: its payload holds a function or an object."""


@dataclass(slots=True)
class Recovered:
    """What a durable store held at ``open()``.

    ``results``: ended tasks, oldest ending first. ``tasks``: unfinished tasks in the order
    they were accepted (so each comes after its dependencies), with their attempt counts.
    """

    results: list[TaskResult] = field(default_factory=list)
    tasks: list[tuple[ProcessingTask, int]] = field(default_factory=list)


class TaskStore:
    """Where accepted tasks, their state changes and results are kept."""

    #: False: the processor journals nothing (only idempotency keys are asked for).
    durable = False
    #: Set by the processor after open(): a store that claims more tasks later (another
    #: processor's, PostgreSQL) hands them to this on the processor's loop; it raises
    #: InvalidTaskError, accepting none, if one of them cannot run here.
    adopt: Callable[[Recovered], None] | None = None

    def open(
        self, loop: asyncio.AbstractEventLoop, result_ttl: float, max_results: int
    ) -> Recovered:
        """Open the store, drop results past retention, and return what to recover."""
        return Recovered()

    def find_key(self, key: str) -> str | None:
        """The id of the task first submitted with this idempotency key, if kept."""
        raise NotImplementedError

    def prepare(self, tasks: Sequence[ProcessingTask], keys: Sequence[str | None]) -> Any:
        """Encode tasks for :meth:`add`; raises UnstorableTaskError before anything is kept."""
        return list(zip(tasks, keys, strict=True))

    def add(self, prepared: Any) -> None:
        """Keep accepted tasks; they are on disk (committed) when this returns."""
        raise NotImplementedError

    def transition(self, record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
        """A TaskManager listener: note a change of status and attempts."""

    def finished(self, result: TaskResult) -> None:
        """Note an ended task's result."""

    async def health(self) -> str | None:
        """None when the store answers; otherwise what is wrong (read by the health check,
        so a cheap round trip at most)."""
        return None

    def freeze(self) -> None:
        """Stop noting changes: the tasks shutdown cancels stay unfinished in the store."""

    def close(self) -> None:
        """Write what is pending and release the store."""
