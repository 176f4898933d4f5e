"""Intake: accepting submitted tasks (and those a durable store hands back).

A submission is routed to its function and lane, checked against the bookkeeping
(duplicates, unknown dependencies, cycles) and against the room in the queue
(:mod:`~async_processor.overload`: the priority bands, shedding under
``overload_policy="shed"``), journalled by a durable store, then registered: the work it
waits on is lifted to its priority and deadline, and it is made ready once its
dependencies have completed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from . import overload
from .errors import InvalidArgumentError, InvalidTaskError, QueueFullError
from .lanes import Lane
from .lifecycle import TaskStatus
from .monitor import PerformanceMonitor
from .outcomes import Outcomes
from .routing import Route, Routes
from .stores import Recovered, TaskStore
from .task import ProcessingTask
from .task_manager import TaskManager, TaskRecord

__all__ = ["Intake"]

logger = logging.getLogger("async_processor")


class Intake:
    """Accepts tasks into the scheduler; see the module docstring."""

    def __init__(
        self,
        manager: TaskManager,
        monitor: PerformanceMonitor,
        routes: Routes,
        lanes: Mapping[str, Lane],
        outcomes: Outcomes,
        store: TaskStore,
        enqueue: Callable[[TaskRecord], None],
        bounds: tuple[int, str, float],
    ) -> None:
        """``bounds``: ``queue_size``, ``overload_policy`` and ``priority_reserve``."""
        self.manager = manager
        self.monitor = monitor
        self.routes = routes
        self.lanes = lanes
        self.outcomes = outcomes
        self.store = store
        self._durable = store.durable
        self._enqueue = enqueue
        self.queue_size, self.overload_policy, self.priority_reserve = bounds
        self._band_limits = overload.band_limits(self.queue_size, self.priority_reserve)

    def submit(self, task: ProcessingTask, idempotency_key: str | None) -> str:
        """Accept a task (the processor checked that it runs); see ``submit_task``."""
        if idempotency_key is not None and (first := self._idempotent(idempotency_key)):
            return first
        route = self.routes.route(task, self.lanes)
        self.manager.check(task)
        journal = self._durable or idempotency_key is not None
        if journal:
            prepared = self.store.prepare([task], [idempotency_key])
        self._make_room([task])
        if journal:
            self.store.add(prepared)
        self.accept(task, route)
        return task.id

    def submit_batch(self, tasks: Iterable[ProcessingTask]) -> list[str]:
        """Accept a batch, all or nothing; see ``submit_tasks``."""
        batch = list(tasks)
        routes = [self.routes.route(task, self.lanes) for task in batch]
        by_id = {task.id: route for task, route in zip(batch, routes, strict=True)}
        ordered = self.manager.order_batch(batch)
        if self._durable:
            prepared = self.store.prepare(ordered, [None] * len(ordered))
        if batch:
            self._make_room(batch)
        if self._durable and batch:
            self.store.add(prepared)
        for task in ordered:
            self.accept(task, by_id[task.id])
        return [task.id for task in batch]

    def _make_room(self, incoming: list[ProcessingTask]) -> None:
        """Ensure ``incoming`` fits in the queue (and in its priority bands, see
        :mod:`~async_processor.overload`), shedding if the policy allows."""
        manager = self.manager
        if len(incoming) == 1:  # the common case, without sorting
            level = incoming[0].priority.value
            excess = manager.waiting + 1 - self._band_limits[level]
        else:
            excess = overload.excess(
                manager.waiting, self._band_limits, (t.priority.value for t in incoming)
            )
        if excess <= 0:
            return
        if self.overload_policy == "shed":
            victims = overload.choose_victims(manager.records, incoming, excess)
            if victims is not None:
                for victim in victims:
                    if victim.task.id in manager.records:
                        logger.warning("task %s shed under overload", victim.task.id)
                        self.outcomes.finish(
                            victim,
                            TaskStatus.CANCELLED,
                            None,
                            f"shed under overload: the queue was full (queue_size="
                            f"{self.queue_size}) and more urgent work needed the room",
                        )
                return
        raise self._queue_full(incoming)

    def _queue_full(self, incoming: list[ProcessingTask]) -> QueueFullError:
        waiting = self.manager.waiting
        least = max(incoming, key=lambda t: t.priority.value).priority
        room = self._band_limits[least.value]
        if room < self.queue_size and waiting + len(incoming) <= self.queue_size:
            return QueueFullError(
                f"the queue has no room for {least.name} work: {waiting} tasks are waiting "
                f"and {least.name} work may fill {room} of queue_size {self.queue_size} "
                f"(priority_reserve={self.priority_reserve:g} keeps the rest for more urgent "
                "work); wait for work to finish, raise queue_size, or lower priority_reserve"
            )
        return QueueFullError(
            f"the queue is full: {waiting} tasks are waiting and queue_size is "
            f"{self.queue_size}; wait for work to finish, raise queue_size, or use "
            "overload_policy='shed' to make room for urgent work"
        )

    def accept(self, task: ProcessingTask, route: Route) -> None:
        manager = self.manager
        fn, lane, plan = route
        record = manager.add(task, fn, lane)
        record.send_plan = plan
        record.stats = self.monitor.breakdowns(record.type_name, record.priority_name)
        context = contextvars.copy_context()
        if len(context):  # the processor will run in a copy of the submitter's context
            record.context = context
        logger.debug("task %s (%s) accepted, tags %s", task.id, record.type_name, task.tags)
        if record.doom is not None:
            status, error = record.doom
            self.outcomes.finish(record, status, None, error)
            return
        if task.depends_on:
            for lifted in manager.lift_priority(record):
                if lifted.queue is not None:
                    lifted.queue.requeue(lifted)
        if record.deadline is not None:
            self.outcomes.arm_deadline(record)
            for tightened in manager.tighten_deadlines(record):
                self.outcomes.arm_deadline(tightened)
        if record.waiting == 0:
            self._enqueue(record)

    # -- from a durable store ------------------------------------------------------------

    def recover(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the durable store, adopt what it holds, and let it hand over more later."""
        results = self.manager.results
        recovered = self.store.open(loop, results.ttl, results.max_results)
        try:
            self._adopt(recovered)
        except InvalidTaskError:
            self.store.close()
            raise
        self.store.adopt = self._adopt

    def _adopt(self, recovered: Recovered) -> None:
        """Bring back kept results, then accept unfinished tasks again in their original
        order (dependencies first), with their attempt counts; tasks already here are
        skipped. Raises InvalidTaskError, accepting nothing, if one cannot run here."""
        results = self.manager.results
        tasks = [(t, n) for t, n in recovered.tasks if t.id not in self.manager.records]
        routes = []
        for task, _ in tasks:
            try:
                routes.append(self.routes.route(task, self.lanes))
            except InvalidTaskError as exc:
                raise type(exc)(f"cannot recover task {task.id} from the store: {exc}") from exc
        now = time.time()
        for result in recovered.results:
            results.add(result, now)
        for (task, attempts), route in zip(tasks, routes, strict=True):
            self.accept(task, route)
            record = self.manager.records.get(task.id)
            if record is not None:
                record.attempts = attempts
        if tasks:
            logger.info("recovered %d unfinished tasks from the store", len(tasks))

    def _idempotent(self, key: str) -> str | None:
        """The id of a still-known task first submitted with ``key``."""
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"idempotency_key must be a non-empty string, got {key!r}")
        first = self.store.find_key(key)
        return first if first is not None and first in self.manager else None
