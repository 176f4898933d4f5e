"""Task state changes, fanned out to server-sent-event clients and kept for the dashboard.

The processor calls :meth:`EventHub.publish` on every status change; it only appends to
bounded queues, so a slow client never slows the processor: a client whose queue is full
is dropped (it gets a final ``dropped`` event and may reconnect). A client that is not an
admin receives only the events of its own tasks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import Any

from ..lifecycle import TaskStatus
from .reads import ProcessorReads
from .tenancy import Caller, owner_of

__all__ = ["EventHub", "Subscription"]

logger = logging.getLogger("async_processor.service")

_DROPPED = object()
_CLOSED = object()
_BAD_ENDINGS = frozenset({TaskStatus.FAILED.value, TaskStatus.TIMEOUT.value})


class Subscription:
    """One SSE client: its queue and optional filters (``owner`` None: every task)."""

    __slots__ = ("owner", "queue", "task_id", "task_type")

    def __init__(self, task_id: str | None, task_type: str | None, owner: str | None) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.task_id = task_id
        self.task_type = task_type
        self.owner = owner

    def wants(self, event: dict[str, Any]) -> bool:
        return (
            (self.task_id is None or event["task_id"] == self.task_id)
            and (self.task_type is None or event["task_type"] == self.task_type)
            and (self.owner is None or event["owner"] == self.owner)
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
        self._reads: ProcessorReads | None = None
        self.closed = False

    def attach(self, reads: ProcessorReads) -> None:
        self._reads = reads
        reads.listen(self.publish)

    def detach(self) -> None:
        if self._reads is not None:
            self._reads.stop_listening()

    def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self.closed = True
        for sub in self.subscribers:
            sub.queue.put_nowait(_CLOSED)
        self.subscribers.clear()

    def publish(self, change: dict[str, Any]) -> None:
        """Keep and fan out one status change (see :meth:`ProcessorReads.listen`)."""
        event = {k: v for k, v in change.items() if k != "tags"}
        event["owner"] = owner_of(change["tags"])
        if event["status"] in _BAD_ENDINGS:
            self.recent_failures.appendleft(event)
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

    def subscribe(
        self,
        caller: Caller | None = None,
        task_id: str | None = None,
        task_type: str | None = None,
    ) -> Subscription:
        """A stream of the changes ``caller`` may see (None or an admin: every task)."""
        owner = None if caller is None or caller.admin else caller.name
        sub = Subscription(task_id, task_type, owner)
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
