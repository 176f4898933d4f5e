"""The scheduler: :class:`AdvancedAsyncProcessor`.

How a task moves (read top to bottom):

1. ``submit_task`` checks it (type, dependencies, room in the queue), registers it with the
   :class:`~async_processor.task_manager.TaskManager`, lifts the priority and tightens the
   deadline of the work it waits on, and — once its dependencies have completed — pushes it
   onto the ready queue of its *lane*: ``async`` (coroutines on the loop), ``thread`` or
   ``process``.
2. Each lane has one worker coroutine per slot. A free worker pops the most urgent ready
   task, checks its deadline and admission limits (per-type concurrency and rate, memory
   budget; a refused task is parked until the limit frees up), and runs it: a coroutine
   inline, a sync function through the lane's executor, under the task's timeout.
3. The outcome ends the task (COMPLETED, FAILED, TIMEOUT, CANCELLED) or, if retries
   remain, puts it back in the queue after a backoff. Ending a task releases its
   dependents: completed results flow into their ``dependency_results``; a bad ending ends
   them too, along the graph only. Waiters are woken.

Everything here runs on the event loop thread; executors hand results back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import enum
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from . import overload
from .arguments import check_count, check_seconds
from .errors import (
    InvalidArgumentError,
    InvalidTaskError,
    NonRetryableError,
    ProcessorNotRunningError,
    QueueFullError,
    UnknownTaskTypeError,
)
from .executors.base import Executor
from .executors.thread import ThreadExecutor
from .lifecycle import TaskStatus
from .limits import MemoryBudget, TypeLimit, available_memory_mb
from .monitor import PerformanceMonitor
from .processors import Settings
from .processors import builtin_processors as builtins_for
from .ready_queue import ReadyQueue
from .result import TaskResult
from .retry import RetryPolicy
from .stores import Recovered, TaskStore, open_store
from .task import ProcessingTask, ProcessingType, TaskPriority
from .task_manager import EXPIRED, TaskManager, TaskRecord
from .views import EventListener, TaskView

__all__ = ["AdvancedAsyncProcessor", "create_processor", "run_custom", "run_custom_async"]

logger = logging.getLogger("async_processor")

TaskProcessor = Callable[[ProcessingTask], Any]

#: Longest a worker runs tasks back to back without letting the event loop breathe.
_YIELD_EVERY = 0.002


def run_custom(task: ProcessingTask) -> Any:
    """``ProcessingType.CUSTOM``: call ``payload["processor"](payload)``."""
    return task.payload["processor"](task.payload)


async def run_custom_async(task: ProcessingTask) -> Any:
    """``ProcessingType.CUSTOM`` with an ``async def`` processor."""
    return await task.payload["processor"](task.payload)


class _State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


_NOT_RUNNING = {
    _State.CREATED: "the processor has not been started; call 'await processor.start()' "
    "or build it with 'await create_processor()'",
    _State.STOPPING: "the processor is shutting down and accepts no new tasks",
    _State.STOPPED: "the processor was shut down; create a new one to submit more tasks",
}


class _Worker:
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
        self.status = "idle"
        self.current: str | None = None
        self.tasks_processed = 0
        self.total_execution_time = 0.0
        self.handle: asyncio.Task[None] | None = None


class _Lane:
    """An execution context: its ready queue, its workers, and (off-loop) its executor."""

    __slots__ = ("executor", "idle", "name", "queue", "started", "starting", "workers")

    def __init__(self, name: str, executor: Executor | None, size: int, aging: float | None):
        self.name = name
        self.executor = executor
        self.queue = ReadyQueue(aging)
        self.idle: deque[asyncio.Future[None]] = deque()
        self.workers = [_Worker(name, slot) for slot in range(size)]
        self.started = executor is None
        self.starting: asyncio.Task[None] | None = None


class AdvancedAsyncProcessor:
    """Runs prioritised tasks with dependencies on the loop, threads and processes.

    Args:
        max_workers: tasks that may run at once on the event loop (``async def`` processors).
        max_thread_workers: threads for plain ``def`` processors (``io_bound`` or no hint).
        max_process_workers: processes for ``cpu_intensive`` plain ``def`` processors.
        queue_size: most tasks that may wait (not yet running) at once.
        enable_monitoring: keep latency percentiles and measure event-loop lag.
        enable_profiling: add a per-type breakdown of where time went to the metrics.
        aging_interval: seconds of waiting that are worth one priority level (None: off).
        result_ttl: seconds an ended task's result is kept.
        max_results: most ended results kept; the oldest go first.
        retry_policy: backoff between attempts.
        overload_policy: ``"reject"`` raises QueueFullError when the queue is full;
            ``"shed"`` first cancels the least urgent waiting tasks that are less urgent
            than the newcomer, and only refuses when there are none.
        priority_reserve: the share of ``queue_size`` that LOW work leaves to NORMAL and
            more urgent work, and BATCH work (twice the share) to LOW and above, so that a
            flood of background work never locks urgent work out (0 turns it off; see
            :mod:`~async_processor.overload`).
        max_memory_intensive: most ``memory_intensive`` tasks running at once.
        min_free_memory_mb: no ``memory_intensive`` task starts below this much free memory.
        health_max_queue: a longer queue makes the health check "degraded".
        health_min_success_rate: a lower success rate (percent) makes it "degraded".
        thread_executor, process_executor: replace the built-in executors (for example
            with a Dask-backed one); their ``capacity`` sets the lane's size.
        builtin_processors: register the built-in processor of every task type but
            ``CUSTOM`` (see :mod:`async_processor.processors`); ``register_processor``
            replaces any of them.
        settings: engines and providers of the built-in processors; None reads
            :meth:`Settings.from_env`, which is offline unless configured.
        store: where tasks are kept: ``"memory"`` (lost in a crash),
            ``"sqlite:///file.db"`` (journalled; unfinished tasks run again after a restart)
            or a :class:`~async_processor.stores.TaskStore`. See docs/stores.md.
        cluster: run ``cpu_intensive`` tasks on a Dask cluster instead of local processes:
            a scheduler address (``"tcp://host:8786"``) or an asynchronous
            ``distributed.Client``; the process lane gets one slot per cluster thread.
            Needs ``async-processor[dask]``. See docs/dask.md.
        cluster_resources: Dask resources per task type, e.g. ``{"embed": {"GPU": 1}}``.
    """

    def __init__(
        self,
        max_workers: int = 10,
        max_thread_workers: int = 5,
        max_process_workers: int = 2,
        queue_size: int = 1000,
        enable_monitoring: bool = True,
        enable_profiling: bool = False,
        *,
        aging_interval: float | None = 10.0,
        result_ttl: float = 3600.0,
        max_results: int = 100_000,
        retry_policy: RetryPolicy | None = None,
        overload_policy: Literal["reject", "shed"] = "reject",
        priority_reserve: float = 0.1,
        max_memory_intensive: int = 1,
        min_free_memory_mb: float = 256.0,
        health_max_queue: int = 1000,
        health_min_success_rate: float = 95.0,
        process_start_method: str = "forkserver",
        thread_executor: Executor | None = None,
        process_executor: Executor | None = None,
        builtin_processors: bool = True,
        settings: Settings | None = None,
        store: str | TaskStore | None = "memory",
        cluster: str | Any | None = None,
        cluster_resources: dict[str, dict[str, float]] | None = None,
    ) -> None:
        for name, value, low in (
            ("max_workers", max_workers, 1),
            ("max_thread_workers", max_thread_workers, 0),
            ("max_process_workers", max_process_workers, 0),
            ("queue_size", queue_size, 1),
            ("max_results", max_results, 0),
            ("max_memory_intensive", max_memory_intensive, 1),
            ("health_max_queue", health_max_queue, 0),
        ):
            check_count(name, value, low)
        if aging_interval is not None:
            aging_interval = check_seconds("aging_interval", aging_interval)
        result_ttl = check_seconds("result_ttl", result_ttl, allow_zero=True)
        check_seconds("min_free_memory_mb", min_free_memory_mb, allow_zero=True)
        if (
            isinstance(health_min_success_rate, bool)
            or not isinstance(health_min_success_rate, int | float)
            or not 0 <= health_min_success_rate <= 100
        ):
            raise InvalidArgumentError(
                f"health_min_success_rate must be a percentage from 0 to 100, got "
                f"{health_min_success_rate!r}"
            )
        if overload_policy not in ("reject", "shed"):
            raise InvalidArgumentError(
                f"overload_policy must be 'reject' or 'shed', got {overload_policy!r}"
            )
        self.queue_size = queue_size
        self.aging_interval = aging_interval
        self.overload_policy = overload_policy
        self.priority_reserve = overload.check_reserve(priority_reserve)
        self._band_limits = overload.band_limits(queue_size, self.priority_reserve)
        self.retry_policy = retry_policy or RetryPolicy()
        self.health_max_queue = health_max_queue
        self.health_min_success_rate = health_min_success_rate
        self.task_manager = TaskManager(result_ttl, max_results)
        self.monitor = PerformanceMonitor(enable_monitoring, enable_profiling)
        self._memory = MemoryBudget(
            max_memory_intensive, min_free_memory_mb, ReadyQueue(aging_interval)
        )
        if thread_executor is None and max_thread_workers:
            thread_executor = ThreadExecutor(max_thread_workers)
        if cluster is not None:  # the Dask executor (docs/dask.md)
            if process_executor is not None:
                raise InvalidArgumentError("pass cluster= or process_executor=, not both")
            from .executors.dask import DaskExecutor

            try:
                process_executor = DaskExecutor(cluster, resources=cluster_resources)
            except ValueError as exc:
                raise InvalidArgumentError(str(exc)) from exc
        elif cluster_resources is not None:
            raise InvalidArgumentError("cluster_resources needs cluster= (a Dask cluster)")
        if process_executor is None and max_process_workers:
            from .executors.process import ProcessExecutor

            process_executor = ProcessExecutor(
                max_process_workers, start_method=process_start_method
            )
        self._lanes: dict[str, _Lane] = {"async": _Lane("async", None, max_workers, aging_interval)}
        for name, executor in (("thread", thread_executor), ("process", process_executor)):
            if executor is not None and executor.capacity:
                self._lanes[name] = _Lane(name, executor, executor.capacity, aging_interval)
        self._processors: dict[str, tuple[TaskProcessor, bool]] = {}
        self.settings = settings if settings is not None else Settings.from_env()
        if builtin_processors:
            for task_type, func in builtins_for(self.settings).items():
                self.register_processor(task_type, func)
        self._limits: dict[str, TypeLimit] = {}
        self._timers: dict[object, asyncio.TimerHandle] = {}
        self._state = _State.CREATED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._probe_at = 0.0
        # -- task store (docs/stores.md): a non-durable store is only asked about keys
        self._store = open_store(store)
        self._durable = self._store.durable
        if self._durable:
            self.task_manager.listeners.append(self._store.transition)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between ``start()`` and the beginning of ``shutdown()``."""
        return self._state is _State.RUNNING

    @property
    def _running(self) -> bool:  # the guide reads processor._running
        return self._state is _State.RUNNING

    async def start(self) -> None:
        """Start the workers. Starting a running processor does nothing.

        Nothing here awaits, so concurrent calls cannot start two sets of workers; the
        thread and process pools start when their first task arrives.

        With a durable store, its unfinished tasks are accepted again first (register
        their processors before ``start()``) and its kept results become queryable.

        Raises:
            ProcessorNotRunningError: the processor was shut down (create a new one).
            StoreError: the durable store cannot be opened (the message says why).
            UnknownTaskTypeError: the store holds a task whose type has no processor.
        """
        if self._state is _State.RUNNING:
            return
        if self._state is not _State.CREATED:
            raise ProcessorNotRunningError(_NOT_RUNNING[self._state])
        loop = self._loop = asyncio.get_running_loop()
        if self._durable:
            self._recover(loop)
        for lane in self._lanes.values():
            for worker in lane.workers:
                worker.handle = loop.create_task(
                    self._work(lane, worker), name=f"async-processor {worker.id}"
                )
        if self.monitor.enabled:
            self._probe_at = loop.time() + 0.5
            self._timers["probe"] = loop.call_at(self._probe_at, self._probe_loop_lag)
        self._state = _State.RUNNING
        logger.info(
            "processor started: %s",
            ", ".join(f"{lane.name}={len(lane.workers)}" for lane in self._lanes.values()),
        )

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop: refuse new work at once, let queued and running work finish within
        ``timeout`` seconds, then cancel what is left and stop every thread and process.
        """
        if self._state is _State.CREATED:
            self._state = _State.STOPPED
            return
        if self._state is not _State.RUNNING:  # a second call waits for the first
            if self._stopped is not None:
                await asyncio.shield(self._stopped)
            return
        self._state = _State.STOPPING
        loop = self._loop
        assert loop is not None
        self._stopped = loop.create_future()
        started = time.monotonic()
        if self.task_manager.records:
            self._drained = loop.create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._drained
        if self._durable:  # what shutdown cancels stays unfinished in the store
            self._store.freeze()
        left = list(self.task_manager.records.values())
        if left:
            logger.warning("shutdown: cancelling %d unfinished tasks", len(left))
        for record in left:
            if record.task.id in self.task_manager.records:
                self._cancel(record, "the processor shut down before the task finished")
        for _ in range(100):  # running tasks unwind within a few loop iterations
            if not self.task_manager.records:
                break
            await asyncio.sleep(0.01)
        for record in list(self.task_manager.records.values()):  # ignored its cancellation
            self._finish(record, TaskStatus.CANCELLED, None, "the processor shut down")
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        handles = [w.handle for lane in self._lanes.values() for w in lane.workers if w.handle]
        for handle in handles:
            handle.cancel()
        await asyncio.gather(*handles, return_exceptions=True)
        remaining = max(1.0, timeout - (time.monotonic() - started))
        for lane in self._lanes.values():
            for worker in lane.workers:
                worker.status = "stopped"
            if lane.starting is not None:
                assert lane.executor is not None
                with contextlib.suppress(Exception):
                    await lane.starting
                await lane.executor.shutdown(min(remaining, 5.0))
        self._store.close()
        self._state = _State.STOPPED
        self._stopped.set_result(None)
        logger.info("processor stopped")

    # -- registering processors and limits -----------------------------------------------

    def register_processor(self, task_type: ProcessingType | str, func: TaskProcessor) -> None:
        """Run ``func(task)`` for tasks of ``task_type``; its return value is the result.

        An ``async def`` function runs on the event loop; a plain function runs in the
        thread pool, or in the process pool for ``cpu_intensive`` tasks.
        """
        if isinstance(task_type, ProcessingType):
            name = task_type.value
        elif isinstance(task_type, str) and task_type:
            name = task_type
        else:
            raise InvalidArgumentError(
                f"task_type must be a ProcessingType or a non-empty string, got {task_type!r}"
            )
        if not callable(func):
            raise InvalidArgumentError(f"the processor for {name!r} must be callable, got {func!r}")
        self._processors[name] = (func, _is_async(func))

    def set_limits(
        self,
        task_type: ProcessingType | str,
        max_concurrency: int | None = None,
        rate: float | None = None,
        per: float = 1.0,
    ) -> None:
        """Limit one task type: at most ``max_concurrency`` running, ``rate`` starts per
        ``per`` seconds. Both None removes the limits. Waiting tasks keep their order.
        """
        name = task_type.value if isinstance(task_type, ProcessingType) else str(task_type)
        limit = self._limits.get(name)
        now = time.monotonic()
        if limit is None:
            if max_concurrency is None and rate is None:
                return
            self._limits[name] = TypeLimit(max_concurrency, rate, per, self.aging_interval, now)
            return
        limit.configure(max_concurrency, rate, per, now)
        if limit.active:
            self._wake_limit(limit)
        else:
            for record in _drain(limit.parked):
                self._enqueue(record)

    # -- submitting ------------------------------------------------------------------------

    async def submit_task(self, task: ProcessingTask, *, idempotency_key: str | None = None) -> str:
        """Accept a task and return its id.

        With a durable store the task is on disk when this returns. A second submit with
        the same ``idempotency_key`` returns the first task's id (while that task or its
        result is kept) and accepts nothing.

        Raises:
            ProcessorNotRunningError: before start() or after shutdown() began.
            InvalidTaskError: not a ProcessingTask, or a field is wrong; subclasses say
                which: UnknownTaskTypeError, DuplicateTaskError, DependencyNotFoundError,
                UnsendableTaskError, UnstorableTaskError (a durable store cannot keep it).
            QueueFullError: the queue holds queue_size waiting tasks.
            StoreError: the durable store cannot be written; the task was not accepted.
        """
        if self._state is not _State.RUNNING:
            raise ProcessorNotRunningError(_NOT_RUNNING[self._state])
        if idempotency_key is not None and (first := self._idempotent(idempotency_key)):
            return first
        fn, lane = self._route(task)
        self.task_manager.check(task)
        journal = self._durable or idempotency_key is not None
        if journal:
            prepared = self._store.prepare([task], [idempotency_key])
        self._make_room([task])
        if journal:
            self._store.add(prepared)
        self._accept(task, fn, lane)
        return task.id

    async def submit_tasks(self, tasks: Iterable[ProcessingTask]) -> list[str]:
        """Accept a batch atomically, in any order: all of it, or (on error) none of it.

        Raises what :meth:`submit_task` raises, and DependencyCycleError.
        """
        if self._state is not _State.RUNNING:
            raise ProcessorNotRunningError(_NOT_RUNNING[self._state])
        batch = list(tasks)
        routes = [self._route(task) for task in batch]
        by_id = {task.id: route for task, route in zip(batch, routes, strict=True)}
        ordered = self.task_manager.order_batch(batch)
        if self._durable:
            prepared = self._store.prepare(ordered, [None] * len(ordered))
        if batch:
            self._make_room(batch)
        if self._durable and batch:
            self._store.add(prepared)
        for task in ordered:
            self._accept(task, *by_id[task.id])
        return [task.id for task in batch]

    def _route(self, task: ProcessingTask) -> tuple[TaskProcessor, str]:
        """Find the task's function and lane, and check that it can reach that lane."""
        if not isinstance(task, ProcessingTask):
            raise InvalidTaskError(
                f"submit_task() takes a ProcessingTask (see create_task()), got "
                f"{type(task).__name__}"
            )
        entry = self._processors.get(task.type_name)
        if entry is not None:
            fn, is_async = entry
        elif task.task_type is ProcessingType.CUSTOM:
            custom = task.payload.get("processor")
            if not callable(custom):
                raise InvalidTaskError(
                    "a CUSTOM task needs payload['processor'], a callable that takes the "
                    "payload, or a processor registered for ProcessingType.CUSTOM"
                )
            is_async = _is_async(custom)
            fn = run_custom_async if is_async else run_custom
        else:
            known = ", ".join(sorted(self._processors)) or "none yet"
            raise UnknownTaskTypeError(
                f"no processor is registered for task type {task.type_name!r} "
                f"(registered: {known}); call processor.register_processor("
                f"{task.type_name!r}, func) first"
            )
        if task.timeout is None:  # a built-in's Settings.default_timeouts (docs/security.md)
            task.timeout = getattr(fn, "default_timeout", None)
        if is_async:
            return fn, "async"
        name = "process" if task.cpu_intensive else "thread"
        lane = self._lanes.get(name)
        if lane is None:
            setting = "max_process_workers" if name == "process" else "max_thread_workers"
            raise InvalidTaskError(
                f"task {task.id} needs the {name} pool, but this processor has none "
                f"({setting}=0); raise {setting} or make the processor 'async def'"
            )
        if lane.executor is not None:
            lane.executor.check_sendable(fn, task)
        return fn, name

    def _make_room(self, incoming: list[ProcessingTask]) -> None:
        """Ensure ``incoming`` fits in the queue (and in its priority bands, see
        :mod:`~async_processor.overload`), shedding if the policy allows."""
        manager = self.task_manager
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
                        self._finish(
                            victim,
                            TaskStatus.CANCELLED,
                            None,
                            f"shed under overload: the queue was full (queue_size="
                            f"{self.queue_size}) and more urgent work needed the room",
                        )
                return
        raise self._queue_full(incoming)

    def _queue_full(self, incoming: list[ProcessingTask]) -> QueueFullError:
        waiting = self.task_manager.waiting
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

    def _accept(self, task: ProcessingTask, fn: TaskProcessor, lane: str) -> None:
        manager = self.task_manager
        record = manager.add(task, fn, lane)
        record.stats = self.monitor.breakdowns(record.type_name, record.priority_name)
        context = contextvars.copy_context()
        if len(context):  # the processor will run in a copy of the submitter's context
            record.context = context
        logger.debug("task %s (%s) accepted, tags %s", task.id, record.type_name, task.tags)
        if record.doom is not None:
            status, error = record.doom
            self._finish(record, status, None, error)
            return
        if task.depends_on:
            for lifted in manager.lift_priority(record):
                if lifted.queue is not None:
                    lifted.queue.requeue(lifted)
        if record.deadline is not None:
            self._arm_deadline(record)
            for tightened in manager.tighten_deadlines(record):
                self._arm_deadline(tightened)
        if record.waiting == 0:
            self._enqueue(record)

    # -- queues and admission --------------------------------------------------------------

    def _enqueue(self, record: TaskRecord) -> None:
        """Make a record ready in its lane and wake one idle worker of that lane."""
        lane = self._lanes[record.lane]
        if not record.ready_at:  # first time ready: the start of its queue wait
            record.ready_at = time.monotonic()
        lane.queue.push(record)
        idle = lane.idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _next(self, lane: _Lane) -> TaskRecord | None:
        """Pop the most urgent record of a lane that may start now."""
        queue = lane.queue
        while (record := queue.pop()) is not None:
            if record.deadline is not None and record.deadline <= time.time():
                self._expire(record)
            elif self._admit(record):
                return record  # type: ignore[no-any-return]
        return None

    def _admit(self, record: TaskRecord) -> bool:
        """Take the type limit and memory budget a record needs, or park it behind them.

        A parked record waits in priority order; every admission and release wakes the
        next parked record when there is room, so parked work never stalls.
        """
        limit = self._limits.get(record.type_name) if self._limits else None
        if limit is not None and not limit.has_room(time.monotonic()):
            limit.parked.push(record)
            self._wake_limit(limit)
            return False
        if record.task.memory_intensive:
            if not self._memory.try_acquire():
                self._memory.parked.push(record)
                self._wake_memory()
                return False
            record.holds_memory = True
            self._wake_memory()
        if limit is not None:
            limit.acquire(time.monotonic())
            record.limit = limit
            self._wake_limit(limit)
        return True

    def _release_admission(self, record: TaskRecord) -> None:
        limit = record.limit
        if limit is not None:
            record.limit = None
            limit.release()
            self._wake_limit(limit)
        if record.holds_memory:
            record.holds_memory = False
            self._memory.release()
            self._wake_memory()

    def _wake_limit(self, limit: TypeLimit) -> None:
        """Let the most urgent task parked behind ``limit`` try again once it has room."""
        if not limit.parked or limit.saturated:  # a release will wake it
            return
        delay = limit.next_token_in(time.monotonic())
        if delay is None:
            self._unpark(limit.parked)
        else:
            self._set_timer(limit, delay, lambda: self._wake_limit(limit))

    def _wake_memory(self) -> None:
        """Let the most urgent parked memory-intensive task try again once there is room."""
        memory = self._memory
        if not memory.parked or memory.saturated:  # a release will wake it
            return
        if memory.memory_low():
            self._set_timer("memory", 0.5, self._wake_memory)
        else:
            self._unpark(memory.parked)

    def _unpark(self, parked: ReadyQueue) -> None:
        """Send the most urgent parked record back to its ready queue."""
        record = parked.pop()
        if record is not None:
            self._enqueue(record)

    def _set_timer(self, key: object, delay: float, callback: Callable[[], None]) -> None:
        if key in self._timers or self._loop is None:
            return

        def fire() -> None:
            del self._timers[key]
            callback()

        self._timers[key] = self._loop.call_later(delay, fire)

    # -- deadlines ---------------------------------------------------------------------------

    def _arm_deadline(self, record: TaskRecord) -> None:
        """(Re)start the timer that expires a record at its deadline, if it has one."""
        assert self._loop is not None
        if record.deadline_timer is not None:
            record.deadline_timer.cancel()
            record.deadline_timer = None
        if record.deadline is None:
            return
        delay = max(0.0, record.deadline - time.time())
        record.deadline_timer = self._loop.call_later(delay, self._deadline_due, record)

    def _deadline_due(self, record: TaskRecord) -> None:
        record.deadline_timer = None
        if (
            record.status is TaskStatus.PENDING
            and record.task.id in self.task_manager.records
            and record.deadline is not None
            and record.deadline <= time.time() + 0.001
        ):
            self._expire(record)

    def _expire(self, record: TaskRecord) -> None:
        inherited = record.deadline != record.task.deadline
        self._finish(
            record,
            TaskStatus.TIMEOUT,
            None,
            f"{EXPIRED}: its deadline"
            + (" (inherited from a task that depends on it)" if inherited else "")
            + " passed before it could start",
            expired=True,
        )

    # -- running -----------------------------------------------------------------------------

    async def _work(self, lane: _Lane, worker: _Worker) -> None:
        """One slot: take the most urgent ready task, run it, repeat.

        Tasks that never suspend would let a worker run the whole queue in one go; it
        yields to the loop at least every ``_YIELD_EVERY`` seconds so timers and I/O run.
        """
        loop = asyncio.get_running_loop()
        yielded = loop.time()
        while True:
            record = self._next(lane)
            if record is None:
                worker.status = "idle"
                waiter: asyncio.Future[None] = loop.create_future()
                lane.idle.append(waiter)
                await waiter
                yielded = loop.time()
                continue
            await self._execute(lane, worker, record)
            if loop.time() - yielded > _YIELD_EVERY:
                await asyncio.sleep(0)
                yielded = loop.time()

    async def _execute(self, lane: _Lane, worker: _Worker, record: TaskRecord) -> None:
        task = record.task
        self.task_manager.transition(record, TaskStatus.RUNNING)
        record.attempts += 1
        record.worker_id = worker.id
        record.runner = worker.handle
        worker.status = "busy"
        worker.current = task.id
        now = time.monotonic()
        if record.attempts == 1:
            record.started_at = time.time()
            self.monitor.task_started(
                record.stats, now - record.ready_at, record.ready_at - record.submitted_at
            )
        record.exec_started = now
        value: Any = None
        failure: BaseException | None = None
        timed_out = False
        try:
            if not lane.started:  # a pool's start-up does not count against the timeout
                await self._start_lane(lane)
                record.exec_started = time.monotonic()
            call: Awaitable[Any]
            if record.context is not None:  # run in the submitter's contextvars
                call = asyncio.create_task(self._call(lane, worker, record), context=record.context)
            elif lane.executor is None:
                call = record.fn(task)
            else:
                call = self._call(lane, worker, record)
            if task.timeout is None:
                value = await call
            else:
                async with asyncio.timeout(task.timeout) as scope:
                    value = await call
        except asyncio.CancelledError:
            if record.cancel_reason is None:  # the worker itself is being stopped
                if record.status is TaskStatus.RUNNING:
                    self._end_attempt(record, worker, TaskStatus.CANCELLED, None, "worker stopped")
                raise
        except TimeoutError as exc:
            if task.timeout is not None and scope.expired():
                timed_out = True
            else:
                failure = exc
        except Exception as exc:  # the processor's own failure
            failure = exc
        else:
            if record.cancel_reason is not None:  # the processor swallowed its cancellation
                record.cancel_reason = None
                self._uncancel()
        worker.current = None
        if record.status is TaskStatus.RUNNING:  # shutdown may have ended it already
            if record.cancel_reason is not None:
                self._uncancel()
                self._end_attempt(record, worker, TaskStatus.CANCELLED, None, record.cancel_reason)
            elif timed_out:
                self._attempt_failed(
                    record,
                    worker,
                    TaskStatus.TIMEOUT,
                    f"timed out after {task.timeout:g}s (attempt {record.attempts})",
                )
            elif failure is not None:
                status = TaskStatus.FAILED
                error = f"{type(failure).__name__}: {failure}"
                if isinstance(failure, NonRetryableError | InvalidTaskError):
                    self._end_attempt(record, worker, status, None, error)
                else:
                    self._attempt_failed(record, worker, status, error)
            else:
                self._end_attempt(record, worker, TaskStatus.COMPLETED, value, None)
        if lane.executor is not None:
            state = lane.executor.slot_state(worker.slot)
            if state != "idle":
                worker.status = state
            await lane.executor.release(worker.slot)
        worker.status = "idle"

    @staticmethod
    def _uncancel() -> None:
        """Clear the worker's cancellation once a task's cancellation was handled."""
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()

    async def _call(self, lane: _Lane, worker: _Worker, record: TaskRecord) -> Any:
        executor = lane.executor
        if executor is None:
            coroutine: Awaitable[Any] = record.fn(record.task)
            return await coroutine
        return await executor.run(worker.slot, record.fn, record.task)

    async def _start_lane(self, lane: _Lane) -> None:
        """Start a lane's executor once; concurrent callers wait for the same start."""
        if lane.starting is None:
            assert lane.executor is not None and self._loop is not None
            lane.starting = self._loop.create_task(lane.executor.start())
        await asyncio.shield(lane.starting)
        lane.started = True

    def _attempt_failed(
        self, record: TaskRecord, worker: _Worker, status: TaskStatus, error: str
    ) -> None:
        """Retry if attempts remain, otherwise end the task with ``status``."""
        task = record.task
        if record.attempts > task.max_retries or self._state is _State.STOPPED:
            logger.warning(
                "task %s (%s) %s after %d attempt(s): %s",
                task.id,
                task.type_name,
                status.value,
                record.attempts,
                error,
            )
            self._end_attempt(record, worker, status, None, error)
            return
        self._account(record, worker)
        self._release_admission(record)
        delay = self.retry_policy.backoff(record.attempts)
        logger.info(
            "task %s (%s) attempt %d %s (%s); retrying in %.2fs",
            task.id,
            task.type_name,
            record.attempts,
            status.value,
            error,
            delay,
        )
        if task.cancel_requested:  # an abandoned thread still holds this object
            record.task = copy.copy(task)
            record.task.cancel_requested = False
        self.task_manager.transition(record, TaskStatus.PENDING)
        self.monitor.task_retried(record.stats, delay)
        assert self._loop is not None
        record.retry_timer = self._loop.call_later(delay, self._retry_due, record)

    def _retry_due(self, record: TaskRecord) -> None:
        record.retry_timer = None
        if record.status is TaskStatus.PENDING and record.task.id in self.task_manager.records:
            self._enqueue(record)

    def _account(self, record: TaskRecord, worker: _Worker) -> float:
        elapsed = time.monotonic() - record.exec_started
        worker.tasks_processed += 1
        worker.total_execution_time += elapsed
        return elapsed

    def _end_attempt(
        self,
        record: TaskRecord,
        worker: _Worker,
        status: TaskStatus,
        value: Any,
        error: str | None,
    ) -> None:
        elapsed = self._account(record, worker)
        self._finish(record, status, value, error, elapsed)

    # -- ending ------------------------------------------------------------------------------

    def _finish(
        self,
        record: TaskRecord,
        status: TaskStatus,
        value: Any,
        error: str | None,
        execution_time: float | None = None,
        expired: bool = False,
    ) -> None:
        """End a task and, through the graph, the dependents that cannot run without it."""
        manager = self.task_manager
        stack = [(record, status, value, error, execution_time, expired)]
        while stack:
            record, status, value, error, execution_time, expired = stack.pop()
            self._detach(record)
            task = record.task
            if status is not TaskStatus.COMPLETED:
                task.cancel_requested = True
            result, ready, doomed = manager.finish(
                record, status, value, error, execution_time or 0.0, expired
            )
            if self._durable:
                self._store.finished(result)
            if (
                record.deadline is not None
                and task.depends_on
                and not expired
                and record.deadline > time.time()
            ):  # a dependent past its deadline leaves it: the work it waited on is hopeless
                for relaxed in manager.relax_deadlines(record):
                    self._arm_deadline(relaxed)
            self.monitor.task_ended(record.stats, status, execution_time)
            waiters = record.waiters
            if waiters:
                record.waiters = None
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(result)
            for dependent in ready:
                self._enqueue(dependent)
            for dependent in doomed:
                assert dependent.doom is not None
                doom_status, doom_error = dependent.doom
                stack.append(
                    (
                        dependent,
                        doom_status,
                        None,
                        doom_error,
                        None,
                        doom_status is TaskStatus.TIMEOUT,
                    )
                )
        if self._drained is not None and not manager.records and not self._drained.done():
            self._drained.set_result(None)

    def _detach(self, record: TaskRecord) -> None:
        """Take a record out of every queue and timer, and give back what it held."""
        if record.queue is not None:
            record.queue.remove(record)
        if record.deadline_timer is not None:
            record.deadline_timer.cancel()
            record.deadline_timer = None
        if record.retry_timer is not None:
            record.retry_timer.cancel()
            record.retry_timer = None
        if record.limit is not None or record.holds_memory:
            self._release_admission(record)
        record.runner = None

    # -- task store --------------------------------------------------------------------------

    def _recover(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the durable store, adopt what it holds, and let it hand over more later."""
        results = self.task_manager.results
        recovered = self._store.open(loop, results.ttl, results.max_results)
        try:
            self._adopt(recovered)
        except InvalidTaskError:
            self._store.close()
            raise
        self._store.adopt = self._adopt

    def _adopt(self, recovered: Recovered) -> None:
        """Bring back kept results, then accept unfinished tasks again in their original
        order (dependencies first), with their attempt counts; tasks already here are
        skipped. Raises InvalidTaskError, accepting nothing, if one cannot run here."""
        results = self.task_manager.results
        tasks = [(t, n) for t, n in recovered.tasks if t.id not in self.task_manager.records]
        routes = []
        for task, _ in tasks:
            try:
                routes.append(self._route(task))
            except InvalidTaskError as exc:
                raise type(exc)(f"cannot recover task {task.id} from the store: {exc}") from exc
        now = time.time()
        for result in recovered.results:
            results.add(result, now)
        for (task, attempts), (fn, lane) in zip(tasks, routes, strict=True):
            self._accept(task, fn, lane)
            record = self.task_manager.records.get(task.id)
            if record is not None:
                record.attempts = attempts
        if tasks:
            logger.info("recovered %d unfinished tasks from the store", len(tasks))

    def _idempotent(self, key: str) -> str | None:
        """The id of a still-known task first submitted with ``key``."""
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"idempotency_key must be a non-empty string, got {key!r}")
        first = self._store.find_key(key)
        return first if first is not None and first in self.task_manager else None

    # -- cancelling --------------------------------------------------------------------------

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a waiting or running task and every task that depends on it.

        A running coroutine is cancelled, a process is killed and replaced, a thread is
        told through ``task.cancel_requested`` and its late result discarded.

        Returns:
            True if the task was cancelled; False if it had already ended (or, running,
            ended otherwise: an ``async def`` processor that swallows its cancellation
            and returns has completed).

        Raises:
            TaskNotFoundError: the id is unknown.
        """
        record = self.task_manager.records.get(task_id)
        if record is None:
            self.task_manager.result(task_id)  # raises TaskNotFoundError when unknown
            return False
        if record.status is TaskStatus.PENDING:
            self._cancel(record, "cancelled by cancel_task()")
            return True
        waiter = self._waiter(record)
        self._cancel(record, "cancelled by cancel_task()")
        try:
            async with asyncio.timeout(5.0):
                result = await waiter
        except TimeoutError:
            return True  # cancellation requested; the processor is slow to honour it
        return result.status is TaskStatus.CANCELLED

    def _cancel(self, record: TaskRecord, reason: str) -> None:
        if record.status is TaskStatus.PENDING:
            self._finish(record, TaskStatus.CANCELLED, None, reason)
        elif record.runner is not None and record.cancel_reason is None:
            record.cancel_reason = reason
            record.task.cancel_requested = True
            record.runner.cancel()

    # -- waiting and asking ------------------------------------------------------------------

    def _waiter(self, record: TaskRecord) -> asyncio.Future[TaskResult]:
        assert self._loop is not None
        waiter: asyncio.Future[TaskResult] = self._loop.create_future()
        if record.waiters is None:
            record.waiters = [waiter]
        else:
            record.waiters.append(waiter)
        return waiter

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait until the task ends and return its result, whatever the status.

        Raises:
            asyncio.TimeoutError: ``timeout`` seconds passed first (the task goes on).
            TaskNotFoundError: the id is unknown.
        """
        if timeout is not None:
            timeout = check_seconds("timeout", timeout, allow_zero=True)
        record = self.task_manager.records.get(task_id)
        if record is None:
            result = self.task_manager.result(task_id)
            assert result is not None
            return result
        waiter = self._waiter(record)
        try:
            if timeout is None:
                return await waiter
            async with asyncio.timeout(timeout):
                return await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
                if record.waiters is not None and waiter in record.waiters:
                    record.waiters.remove(waiter)

    def view(self, task_id: str) -> TaskView:
        """A frozen snapshot of one task, pending, running or ended (no payload, no result).

        Raises:
            TaskNotFoundError: the id is unknown (never submitted, or its result evicted).
        """
        return self.task_manager.view(task_id)

    def tasks(
        self,
        *,
        status: TaskStatus | None = None,
        task_type: str | None = None,
        priority: TaskPriority | None = None,
        tags: Iterable[str] = (),
        limit: int = 100,
        after: str | None = None,
        newest_first: bool = False,
    ) -> list[TaskView]:
        """Snapshots of the tasks this processor knows, in submission order.

        Args:
            status, task_type, priority: keep only tasks with this status, type, and
                priority as submitted.
            tags: keep only tasks that carry all of these tags.
            limit: most views returned.
            after: the id of the last task of the previous page; this page starts after it.
            newest_first: list from the newest submission back.

        Raises:
            InvalidArgumentError: a filter has the wrong type, or ``limit`` < 1.
            TaskNotFoundError: ``after`` names a task no longer known.
        """
        return self.task_manager.views(
            status=status,
            task_type=task_type,
            priority=priority,
            tags=tags,
            limit=limit,
            after=after,
            newest_first=newest_first,
        )

    def dependents(self, task_id: str) -> list[str]:
        """Ids of the tasks that depend directly on ``task_id``, in submission order.

        Raises:
            TaskNotFoundError: the id is unknown.
        """
        return self.task_manager.dependents(task_id)

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(event)`` with a frozen :class:`TaskEvent` on every change of
        status, on the event loop thread, as it happens.

        A listener that raises is logged and never harms the scheduler or the other
        listeners. Keep listeners short: they run inside the scheduler's bookkeeping.

        Returns:
            A function that removes the listener.

        Raises:
            InvalidArgumentError: ``listener`` is not callable.
        """
        return self.task_manager.add_listener(listener)

    async def get_task_status(self, task_id: str) -> TaskStatus:
        """The task's current status. Raises TaskNotFoundError for an unknown id."""
        return self.task_manager.status(task_id)

    async def get_task_result(self, task_id: str) -> TaskResult | None:
        """The task's result, or None while it has not ended.

        Raises TaskNotFoundError for an unknown id.
        """
        return self.task_manager.result(task_id)

    # -- metrics and health ------------------------------------------------------------------

    def _probe_loop_lag(self) -> None:
        """Measure how late the loop runs a timer: the event-loop lag."""
        loop = self._loop
        assert loop is not None
        now = loop.time()
        self.monitor.record_loop_lag(max(0.0, now - self._probe_at))
        self._probe_at = now + 0.5
        self._timers["probe"] = loop.call_at(self._probe_at, self._probe_loop_lag)

    async def get_performance_metrics(self) -> dict[str, Any]:
        """A snapshot of counters, latencies and worker states (see docs/metrics.md)."""
        metrics = self.monitor.snapshot()
        manager = self.task_manager
        by_priority = manager.waiting_by_priority
        worker_stats = {}
        for lane in self._lanes.values():
            for worker in lane.workers:
                worker_stats[worker.id] = {
                    "context": lane.name,
                    "status": worker.status,
                    "tasks_processed": worker.tasks_processed,
                    "total_execution_time": worker.total_execution_time,
                    "current_task": worker.current,
                }
        metrics.update(
            queue_size=manager.waiting,
            queued_by_priority={p.name: by_priority[p.value] for p in TaskPriority},
            running_tasks=len(manager.records) - manager.waiting,
            worker_stats=worker_stats,
            executors={
                lane.name: lane.executor.statistics()
                for lane in self._lanes.values()
                if lane.executor is not None
            },
            retained_results=len(manager.results),
            results_evicted=manager.results.evicted,
            limits={
                name: {"running": limit.running, "waiting": len(limit.parked)}
                for name, limit in self._limits.items()
                if limit.active
            },
            memory_intensive={
                "running": self._memory.running,
                "waiting": len(self._memory.parked),
                "available_memory_mb": available_memory_mb(),
            },
        )
        return metrics

    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "degraded" | "unhealthy", "reason": ..., "metrics": ...}``."""
        metrics = await self.get_performance_metrics()
        if not self.running:
            return {"status": "unhealthy", "reason": "processor_stopped", "metrics": metrics}
        if metrics["queue_size"] > self.health_max_queue:
            return {"status": "degraded", "reason": "high_queue_size", "metrics": metrics}
        if metrics["success_rate"] < self.health_min_success_rate:
            return {"status": "degraded", "reason": "low_success_rate", "metrics": metrics}
        return {"status": "healthy", "reason": None, "metrics": metrics}


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _drain(queue: ReadyQueue) -> list[Any]:
    records = []
    while (record := queue.pop()) is not None:
        records.append(record)
    return records


async def create_processor(**kwargs: Any) -> AdvancedAsyncProcessor:
    """Build an :class:`AdvancedAsyncProcessor` with ``kwargs`` and start it."""
    processor = AdvancedAsyncProcessor(**kwargs)
    await processor.start()
    return processor
