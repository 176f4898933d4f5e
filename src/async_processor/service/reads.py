"""The service's one window onto the processor's bookkeeping.

Every read of scheduler state the routes need (a task's view, its edges, listing, the
transition listener) goes through :class:`ProcessorReads`, so that the rest of the
service never touches ``task_manager`` or private attributes. When the processor grows a
public read API, this module is the only one to change.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import AsyncProcessorError
from ..lifecycle import TaskStatus
from ..processor import AdvancedAsyncProcessor
from ..task import ProcessingTask
from ..task_manager import TaskRecord

__all__ = ["GraphIndex", "ProcessorReads", "Transition"]

#: Called with the fields of one status change (see :meth:`ProcessorReads.listen`).
Transition = Callable[[dict[str, Any]], None]


class GraphIndex:
    """Dependency edges of tasks submitted through the API, kept after they end."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.deps: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.dependents: dict[str, list[str]] = {}

    def add(self, task: ProcessingTask) -> None:
        if not task.depends_on:
            return
        self.deps[task.id] = tuple(task.depends_on)
        for dep in task.depends_on:
            self.dependents.setdefault(dep, []).append(task.id)
        while len(self.deps) > self.limit:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        old, old_deps = self.deps.popitem(last=False)
        self.dependents.pop(old, None)
        for dep in old_deps:
            children = self.dependents.get(dep)
            if children is not None and old in children:
                children.remove(old)
                if not children:
                    del self.dependents[dep]


def _record_view(record: TaskRecord) -> dict[str, Any]:
    task = record.task
    return {
        "task_id": task.id,
        "status": record.status.value,
        "result": None,
        "error": None,
        "execution_time": 0.0,
        "created_at": task.created_at,
        "started_at": record.started_at,
        "completed_at": None,
        "attempts": record.attempts,
        "worker_id": record.worker_id,
        "task_type": record.type_name,
        "priority": task.priority.value,
        "tags": sorted(task.tags),
    }


class ProcessorReads:
    """Views of tasks (``TaskView`` dicts, tags included) and their edges."""

    def __init__(self, processor: AdvancedAsyncProcessor) -> None:
        self.processor = processor
        self.graph = GraphIndex()
        self._listener: Callable[[TaskRecord, TaskStatus, TaskStatus], None] | None = None

    @property
    def _manager(self) -> Any:
        return self.processor.task_manager

    def has_processor(self, type_name: str) -> bool:
        return type_name in self.processor._processors

    def view(self, task_id: str) -> dict[str, Any] | None:
        """The task's view, or None if it is unknown (never submitted, or evicted)."""
        record = self._manager.records.get(task_id)
        if record is not None:
            return _record_view(record)
        result = self._manager.results.get(task_id, time.time())
        return None if result is None else result.to_dict()

    def status(self, task_id: str) -> TaskStatus | None:
        try:
            status: TaskStatus = self._manager.status(task_id)
        except AsyncProcessorError:
            return None
        return status

    def depends_on(self, task_id: str) -> tuple[str, ...]:
        record = self._manager.records.get(task_id)
        if record is not None:
            return tuple(record.task.depends_on)
        return self.graph.deps.get(task_id, ())

    def dependents(self, task_id: str) -> list[str]:
        children = list(self.graph.dependents.get(task_id, ()))
        record = self._manager.records.get(task_id)
        for child in (record.dependents or ()) if record is not None else ():
            if child.task.id not in children:
                children.append(child.task.id)
        return children

    def unfinished_downstream(self, task_id: str) -> list[str]:
        """Every unfinished task that waits on ``task_id``, directly or not."""
        record = self._manager.records.get(task_id)
        downstream: list[str] = []
        if record is None:
            return downstream
        stack, seen = [record], {task_id}
        while stack:
            for child in stack.pop().dependents or ():
                if child.task.id not in seen:
                    seen.add(child.task.id)
                    downstream.append(child.task.id)
                    stack.append(child)
        return downstream

    def is_unfinished(self, task_id: str) -> bool:
        return task_id in self._manager.records

    def matching(
        self, status: TaskStatus | None, task_type: str | None, tags: set[str]
    ) -> Iterator[tuple[tuple[float, str], dict[str, Any]]]:
        """``((-created_at, id), view)`` of every kept task with these filters."""
        manager = self._manager
        if status is None or not status.is_terminal:
            for record in list(manager.records.values()):
                task = record.task
                if (
                    (status is None or record.status is status)
                    and (task_type is None or record.type_name == task_type)
                    and tags <= task.tags
                ):
                    yield (-task.created_at, task.id), _record_view(record)
        if status is None or status.is_terminal:
            now = time.time()
            cutoff = now - manager.results.ttl
            for result in manager.results.values():
                if (
                    (status is None or result.status is status)
                    and (task_type is None or result.task_type == task_type)
                    and tags <= result.tags
                    and (result.completed_at or now) > cutoff
                ):
                    yield (-result.created_at, result.task_id), result.to_dict()

    def listen(self, callback: Transition) -> None:
        """Call ``callback(event)`` on every status change; an ending task's event also
        carries its ``error`` and ``execution_time`` (called once the result is kept)."""
        loop = asyncio.get_running_loop()

        def on_transition(record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
            event = {
                "task_id": record.task.id,
                "task_type": record.type_name,
                "status": new.value,
                "previous": None if old is new else old.value,
                "priority": record.priority,
                "time": time.time(),
                "tags": record.task.tags,
            }
            if new.is_terminal:  # the result is kept just after this change
                loop.call_soon(lambda: callback(self._with_result(event)))
            else:
                callback(event)

        self._listener = on_transition
        self._manager.listeners.append(on_transition)

    def _with_result(self, event: dict[str, Any]) -> dict[str, Any]:
        result = self._manager.results.get(event["task_id"], time.time())
        if result is not None:
            event["error"] = result.error
            event["execution_time"] = result.execution_time
        return event

    def stop_listening(self) -> None:
        listeners = self._manager.listeners
        if self._listener is not None and self._listener in listeners:
            listeners.remove(self._listener)
        self._listener = None
