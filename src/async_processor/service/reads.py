"""The service's one window onto the processor: its public read and event API.

Routes read tasks through :class:`ProcessorReads`, which turns the processor's frozen
:class:`~async_processor.views.TaskView` snapshots and :class:`~async_processor.views.TaskEvent`
changes into the API's JSON shapes. It reads nothing private.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import TaskNotFoundError
from ..lifecycle import TaskStatus
from ..processor import AdvancedAsyncProcessor
from ..views import TaskEvent, TaskView

__all__ = ["ProcessorReads", "Transition"]

#: Called with the fields of one status change (see :meth:`ProcessorReads.listen`).
Transition = Callable[[dict[str, Any]], None]


def _unfinished(view: TaskView) -> dict[str, Any]:
    return {
        "task_id": view.task_id,
        "status": view.status.value,
        "result": None,
        "error": view.error,
        "execution_time": 0.0,
        "created_at": view.created_at,
        "started_at": view.started_at,
        "completed_at": view.completed_at,
        "attempts": view.attempts,
        "worker_id": view.worker_id,
        "task_type": view.task_type,
        "priority": view.priority.value,
        "tags": sorted(view.tags),
    }


class ProcessorReads:
    """Snapshots of tasks, their JSON, their edges, and a feed of their changes."""

    def __init__(self, processor: AdvancedAsyncProcessor) -> None:
        self.processor = processor
        self._remove_listener: Callable[[], None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def has_processor(self, type_name: str) -> bool:
        return type_name in self.processor.registered_task_types()

    def find(self, task_id: str) -> TaskView | None:
        """The task's snapshot, or None if it is unknown (never submitted, or evicted)."""
        try:
            return self.processor.view(task_id)
        except TaskNotFoundError:
            return None

    async def as_json(self, view: TaskView) -> dict[str, Any]:
        """The API's ``TaskView``: the snapshot, with the result once the task has ended."""
        if view.status.is_terminal:
            try:
                result = await self.processor.get_task_result(view.task_id)
            except TaskNotFoundError:
                result = None
            if result is not None:
                return result.to_dict()
        return _unfinished(view)

    def dependents(self, task_id: str) -> list[str]:
        try:
            return self.processor.dependents(task_id)
        except TaskNotFoundError:
            return []

    def unfinished_downstream(self, task_id: str) -> list[str]:
        """Every unfinished task that waits on ``task_id``, directly or not."""
        downstream: list[str] = []
        stack, seen = [task_id], {task_id}
        while stack:
            for child in self.dependents(stack.pop()):
                view = self.find(child)
                if child not in seen and view is not None and not view.status.is_terminal:
                    seen.add(child)
                    downstream.append(child)
                    stack.append(child)
        return downstream

    def page(
        self,
        status: TaskStatus | None,
        task_type: str | None,
        tags: Iterable[str],
        limit: int,
        after: str | None,
    ) -> list[TaskView]:
        """Up to ``limit`` tasks newest first, after the task ``after``."""
        return self.processor.tasks(
            status=status,
            task_type=task_type,
            tags=list(tags),
            limit=limit,
            after=after,
            newest_first=True,
        )

    def listen(self, callback: Transition) -> None:
        """Call ``callback(event)`` on every status change; an ending's event also carries
        the task's ``error`` and ``execution_time``, and every event its ``tags``."""

        def on_event(event: TaskEvent) -> None:
            view = self.find(event.task_id)
            fields = {
                "task_id": event.task_id,
                "task_type": event.task_type,
                "status": event.status.value,
                "previous": None if event.previous_status is None else event.previous_status.value,
                "priority": event.priority.value,
                "time": event.time,
                "tags": frozenset() if view is None else view.tags,
            }
            if event.status.is_terminal:
                ending = asyncio.get_running_loop().create_task(self._ended(fields, callback))
                self._pending.add(ending)
                ending.add_done_callback(self._pending.discard)
            else:
                callback(fields)

        self._remove_listener = self.processor.add_listener(on_event)

    async def _ended(self, fields: dict[str, Any], callback: Transition) -> None:
        try:
            result = await self.processor.get_task_result(fields["task_id"])
        except TaskNotFoundError:
            result = None
        if result is not None:
            fields["error"] = result.error
            fields["execution_time"] = result.execution_time
        callback(fields)

    def stop_listening(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
