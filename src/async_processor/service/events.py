"""Task state changes, fanned out to server-sent-event clients and kept for the dashboard.

The processor calls :meth:`EventHub.on_transition` on every status change; it only appends
to bounded queues, so a slow client never slows the processor: a client whose queue is
full is dropped (it gets a final ``dropped`` event and may reconnect).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..lifecycle import TaskStatus

if TYPE_CHECKING:
    from ..processor import AdvancedAsyncProcessor
    from ..task_manager import TaskRecord

__all__ = ["EventHub", "Subscription"]

logger = logging.getLogger("async_processor.service")

_DROPPED = object()
_CLOSED = object()
_BAD_ENDINGS = frozenset({TaskStatus.FAILED, TaskStatus.TIMEOUT})


class Subscription:
    """One SSE client: its queue and optional filters."""

    __slots__ = ("queue", "task_id", "task_type")

    def __init__(self, task_id: str | None, task_type: str | None) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.task_id = task_id
        self.task_type = task_type

    def wants(self, event: dict[str, Any]) -> bool:
        return (self.task_id is None or event["task_id"] == self.task_id) and (
            self.task_type is None or event["task_type"] == self.task_type
        )


class EventHub:
    """Receives the processor's transitions; see the module docstring."""

    def __init__(self, queue_size: int, recent: int = 50, failures: int = 20) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Subscription] = set()
        self.recent_tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.recent_failures: deque[dict[str, Any]] = deque(maxlen=failures)
        self.dropped = 0
        self._recent = recent
        self._seq = itertools.count(1)
        self._processor: AdvancedAsyncProcessor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def attach(self, processor: AdvancedAsyncProcessor) -> None:
        self._processor = processor
        self._loop = asyncio.get_running_loop()
        processor.task_manager.listeners.append(self.on_transition)

    def detach(self) -> None:
        if self._processor is not None:
            listeners = self._processor.task_manager.listeners
            if self.on_transition in listeners:
                listeners.remove(self.on_transition)

    def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self.closed = True
        for sub in self.subscribers:
            sub.queue.put_nowait(_CLOSED)
        self.subscribers.clear()

    def on_transition(self, record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
        event = {
            "task_id": record.task.id,
            "task_type": record.type_name,
            "status": new.value,
            "previous": None if old is new else old.value,
            "priority": record.priority,
            "time": time.time(),
        }
        if new.is_terminal and self._loop is not None:
            self._loop.call_soon(self._ended, event)  # the result is stored just after this
        else:
            self._publish(event)

    def _ended(self, event: dict[str, Any]) -> None:
        assert self._processor is not None
        result = self._processor.task_manager.results.get(event["task_id"], time.time())
        if result is not None:
            event["error"] = result.error
            event["execution_time"] = result.execution_time
            if result.status in _BAD_ENDINGS:
                self.recent_failures.appendleft(event)
        self._publish(event)

    def _publish(self, event: dict[str, Any]) -> None:
        recent = self.recent_tasks
        task_id = event["task_id"]
        recent[task_id] = event
        recent.move_to_end(task_id)
        if len(recent) > self._recent:
            recent.popitem(last=False)
        if not self.subscribers:
            return
        item = (next(self._seq), event)
        for sub in list(self.subscribers):
            if not sub.wants(event):
                continue
            if sub.queue.qsize() >= self.queue_size:
                self.subscribers.discard(sub)
                sub.queue.put_nowait(_DROPPED)
                self.dropped += 1
                logger.warning(
                    "dropped a slow event-stream client (%d events queued)", self.queue_size
                )
            else:
                sub.queue.put_nowait(item)

    def subscribe(self, task_id: str | None = None, task_type: str | None = None) -> Subscription:
        sub = Subscription(task_id, task_type)
        if self.closed:
            sub.queue.put_nowait(_CLOSED)
        else:
            self.subscribers.add(sub)
        return sub

    async def stream(self, sub: Subscription, heartbeat: float) -> AsyncIterator[str]:
        """The SSE text of ``sub``: ``task`` events, ``: ping`` comments, a last event."""
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), heartbeat)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if item is _DROPPED:
                    yield 'event: dropped\ndata: {"reason": "client too slow"}\n\n'
                    return
                if item is _CLOSED:
                    yield 'event: shutdown\ndata: {"reason": "server shutting down"}\n\n'
                    return
                assert isinstance(item, tuple)
                yield f"id: {item[0]}\nevent: task\ndata: {json.dumps(item[1])}\n\n"
        finally:
            self.subscribers.discard(sub)

    def recent(self) -> list[dict[str, Any]]:
        """The latest event of the most recently changed tasks, newest first."""
        return list(reversed(self.recent_tasks.values()))
