"""Lanes and their workers: where a ready task waits, and the coroutines that run it.

A task runs in one of three lanes: ``async`` (a coroutine, inline on the loop),
``thread`` or ``process`` (a sync function, through the lane's
:class:`~async_processor.executors.base.Executor`). Each lane has its own ready queue and
one worker coroutine per slot; a free worker pops the most urgent ready task that passes
admission, runs one attempt of it under its timeout, and hands the outcome to
:class:`~async_processor.outcomes.Outcomes`. Nothing is handed to a pool ahead of time, so
a pool never holds work that a more urgent task should have overtaken.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from .admission import Admission
from .executors.base import Executor, SlotState
from .lifecycle import TaskStatus
from .monitor import PerformanceMonitor
from .outcomes import AttemptOutcome, Outcomes, outcome_of
from .ready_queue import ReadyQueue
from .task_manager import TaskManager, TaskRecord
from .tracing import AVAILABLE as TRACING
from .tracing import end_attempt, run_context, start_attempt

__all__ = ["Lane", "Lanes", "Worker"]

#: Longest a worker runs tasks back to back without letting the event loop breathe.
_YIELD_EVERY = 0.002


class Worker:
    """One slot of one lane, and what it has done."""

    __slots__ = (
        "current",
        "handle",
        "id",
        "slot",
        "status",
        "tasks_processed",
        "total_execution_time",
    )

    def __init__(self, lane: str, slot: int) -> None:
        self.id = f"{lane}-{slot}"
        self.slot = slot
        self.status = SlotState.IDLE
        self.current: str | None = None
        self.tasks_processed = 0
        self.total_execution_time = 0.0
        self.handle: asyncio.Task[None] | None = None

    def account(self, record: TaskRecord) -> float:
        """Count an attempt that ended; returns how long it ran."""
        elapsed = time.monotonic() - record.exec_started
        self.tasks_processed += 1
        self.total_execution_time += elapsed
        return elapsed


class Lane:
    """An execution context: its ready queue, its workers, and (off-loop) its executor."""

    __slots__ = ("executor", "idle", "name", "queue", "started", "starting", "workers")

    def __init__(self, name: str, executor: Executor | None, size: int, aging: float | None):
        self.name = name
        self.executor = executor
        self.queue = ReadyQueue(aging)
        self.idle: deque[asyncio.Future[None]] = deque()
        self.workers = [Worker(name, slot) for slot in range(size)]
        self.started = executor is None
        self.starting: asyncio.Task[None] | None = None

    def push(self, record: TaskRecord) -> None:
        """Make a record ready in this lane and wake one idle worker."""
        if not record.ready_at:  # first time ready: the start of its queue wait
            record.ready_at = time.monotonic()
        self.queue.push(record)
        idle = self.idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break


class Lanes:
    """Runs the workers of every lane; see the module docstring."""

    def __init__(
        self,
        lanes: dict[str, Lane],
        manager: TaskManager,
        monitor: PerformanceMonitor,
        admission: Admission,
        outcomes: Outcomes,
    ) -> None:
        self.lanes = lanes
        self.manager = manager
        self.monitor = monitor
        self.admission = admission
        self.outcomes = outcomes
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start one worker coroutine per slot (a pool starts with its first task)."""
        self.loop = loop
        for lane in self.lanes.values():
            for worker in lane.workers:
                worker.handle = loop.create_task(
                    self._work(lane, worker), name=f"async-processor {worker.id}"
                )

    async def stop(self, timeout: float) -> None:
        """Stop the workers, then each started pool within ``timeout`` (at most 5 s)."""
        handles = [w.handle for lane in self.lanes.values() for w in lane.workers if w.handle]
        for handle in handles:
            handle.cancel()
        await asyncio.gather(*handles, return_exceptions=True)
        for lane in self.lanes.values():
            for worker in lane.workers:
                worker.status = SlotState.STOPPED
            if lane.starting is not None:
                assert lane.executor is not None
                with contextlib.suppress(Exception):  # a pool that failed to start
                    await lane.starting
                await lane.executor.shutdown(min(timeout, 5.0))

    def worker_stats(self) -> dict[str, dict[str, Any]]:
        return {
            worker.id: {
                "context": lane.name,
                "status": worker.status.value,
                "tasks_processed": worker.tasks_processed,
                "total_execution_time": worker.total_execution_time,
                "current_task": worker.current,
            }
            for lane in self.lanes.values()
            for worker in lane.workers
        }

    def failures(self) -> list[tuple[str, str]]:
        """``("worker_died", lane)`` for a worker coroutine that ended while running, and
        ``("pool_failed", what it raised)`` for a pool that failed to start."""
        found: list[tuple[str, str]] = []
        for lane in self.lanes.values():
            if any(w.handle is not None and w.handle.done() for w in lane.workers):
                found.append(("worker_died", f"a worker of the {lane.name} lane ended"))
            starting = lane.starting
            if starting is not None and starting.done() and not starting.cancelled():
                error = starting.exception()
                if error is not None:
                    found.append(
                        ("pool_failed", f"the {lane.name} pool failed to start: {error!r}")
                    )
        return found

    def executor_stats(self) -> dict[str, dict[str, int]]:
        return {
            lane.name: lane.executor.statistics()
            for lane in self.lanes.values()
            if lane.executor is not None
        }

    # -- the worker loop -----------------------------------------------------------------

    def _next(self, lane: Lane) -> TaskRecord | None:
        """Pop the most urgent record of a lane that may start now."""
        queue = lane.queue
        while (record := queue.pop()) is not None:
            if record.deadline is not None and record.deadline <= time.time():
                self.outcomes.expire(record)
            elif self.admission.admit(record):
                return record  # type: ignore[no-any-return]
        return None

    async def _work(self, lane: Lane, worker: Worker) -> None:
        """One slot: take the most urgent ready task, run it, repeat.

        Tasks that never suspend would let a worker run the whole queue in one go; it
        yields to the loop at least every ``_YIELD_EVERY`` seconds so timers and I/O run.
        """
        loop = asyncio.get_running_loop()
        yielded = loop.time()
        while True:
            record = self._next(lane)
            if record is None:
                worker.status = SlotState.IDLE
                waiter: asyncio.Future[None] = loop.create_future()
                lane.idle.append(waiter)
                await waiter
                yielded = loop.time()
                continue
            await self._execute(lane, worker, record)
            if loop.time() - yielded > _YIELD_EVERY:
                await asyncio.sleep(0)
                yielded = loop.time()

    def _begin(self, worker: Worker, record: TaskRecord) -> None:
        self.manager.transition(record, TaskStatus.RUNNING)
        record.attempts += 1
        record.worker_id = worker.id
        record.runner = worker.handle
        worker.status = SlotState.BUSY
        worker.current = record.task.id
        now = time.monotonic()
        if record.attempts == 1:
            record.started_at = time.time()
            self.monitor.task_started(
                record.stats, now - record.ready_at, record.ready_at - record.submitted_at
            )
        record.exec_started = now

    async def _execute(self, lane: Lane, worker: Worker, record: TaskRecord) -> None:
        """Run one attempt and settle its outcome; then free the slot."""
        self._begin(worker, record)
        if TRACING:
            record.span = start_attempt(record)
        outcome = await self._attempt(lane, worker, record)
        worker.current = None
        if record.status is TaskStatus.RUNNING:  # shutdown may have ended it already
            if outcome.status is TaskStatus.CANCELLED:
                _uncancel()
            self.outcomes.settle(record, outcome, worker.account(record))
        if lane.executor is not None:
            state = lane.executor.slot_state(worker.slot)
            if state is not SlotState.IDLE:
                worker.status = state
            await lane.executor.release(worker.slot)
        worker.status = SlotState.IDLE

    async def _attempt(self, lane: Lane, worker: Worker, record: TaskRecord) -> AttemptOutcome:
        """Run the task's function once under its timeout and judge what happened.

        Raises CancelledError only when the worker itself is being stopped.
        """
        value: Any = None
        failure: BaseException | None = None
        timed_out = False
        try:
            value = await self._timed_run(lane, worker, record)
        except asyncio.CancelledError:
            if lane.executor is not None:  # a thread may still run it: tell it to stop
                record.attempt_task.cancel_requested = True
            if record.cancel_reason is None:  # the worker itself is being stopped
                stopped = AttemptOutcome(TaskStatus.CANCELLED, error="worker stopped")
                _end_span(record, stopped, None)
                if record.status is TaskStatus.RUNNING:
                    self.outcomes.settle(record, stopped, worker.account(record))
                raise
        except _TimedOut:
            timed_out = True
            if lane.executor is not None:
                record.attempt_task.cancel_requested = True
        except Exception as exc:  # the processor's own failure
            failure = exc
        else:
            if record.cancel_reason is not None:  # the processor swallowed its cancellation
                record.cancel_reason = None
                _uncancel()
        outcome = outcome_of(record, value, failure, timed_out)
        _end_span(record, outcome, failure)
        return outcome

    async def _timed_run(self, lane: Lane, worker: Worker, record: TaskRecord) -> Any:
        """Run once; raises _TimedOut when the task's own timeout (not another) expired."""
        if not lane.started:  # a pool's start-up does not count against the timeout
            await self._start_lane(lane)
            record.exec_started = time.monotonic()
        call = self._call(lane, worker, record)
        timeout = record.task.timeout
        if timeout is None:
            return await call
        try:
            async with asyncio.timeout(timeout) as scope:
                return await call
        except TimeoutError:
            if scope.expired():
                raise _TimedOut from None
            raise

    def _call(self, lane: Lane, worker: Worker, record: TaskRecord) -> Awaitable[Any]:
        """The awaitable of one run: inline, through the executor, and in the submitter's
        contextvars when it had any (with the attempt's span current, when traced)."""
        if record.span is not None:
            context = run_context(record.span, record.context)
            return asyncio.create_task(self._run(lane, worker, record), context=context)
        if record.context is not None:
            return asyncio.create_task(self._run(lane, worker, record), context=record.context)
        if lane.executor is None:
            return record.fn(record.attempt_task)  # type: ignore[no-any-return]
        return self._run(lane, worker, record)

    async def _run(self, lane: Lane, worker: Worker, record: TaskRecord) -> Any:
        executor = lane.executor
        if executor is None:
            coroutine: Awaitable[Any] = record.fn(record.attempt_task)
            return await coroutine
        return await executor.run(worker.slot, record.fn, record.attempt_task, record.send_plan)

    async def _start_lane(self, lane: Lane) -> None:
        """Start a lane's executor once; concurrent callers wait for the same start."""
        if lane.starting is None:
            assert lane.executor is not None and self.loop is not None
            lane.starting = self.loop.create_task(lane.executor.start())
        await asyncio.shield(lane.starting)
        lane.started = True


class _TimedOut(Exception):
    """The attempt ran out of its task's ``timeout``."""


def _end_span(record: TaskRecord, outcome: AttemptOutcome, failure: BaseException | None) -> None:
    if record.span is not None:
        end_attempt(record.span, outcome, failure)
        record.span = None


def _uncancel() -> None:
    """Clear the worker's cancellation once a task's cancellation was handled."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
