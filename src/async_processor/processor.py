"""The scheduler's front door: :class:`AdvancedAsyncProcessor`.

How a task moves, and through which module (read top to bottom):

1. ``submit_task`` (here) routes it to its function and lane (``routing.py``), checks it
   against the bookkeeping (``task_manager.py``) and the queue's room (``overload.py``),
   registers it, lifts the priority and tightens the deadline of the work it waits on,
   and, once its dependencies have completed, pushes it onto its lane's ready queue.
2. A free worker of that lane (``lanes.py``) pops the most urgent ready task that passes
   admission (``admission.py``: per-type limits, memory budget; a refused task is parked
   until the limit frees up) and runs one attempt: a coroutine inline, a sync function
   through the lane's executor (``executors/``), under the task's timeout.
3. The attempt's outcome is settled in one place (``outcomes.py``): a retry after a
   backoff, or an ending. The bookkeeping decides what ends with it down the graph;
   ``outcomes.py`` carries it out, wakes waiters and makes released dependents ready.

Everything here runs on the event loop thread; executors hand results back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

from . import overload, waiting
from .admission import Admission
from .arguments import check_count, check_seconds
from .delays import Delays
from .errors import (
    InvalidArgumentError,
    ProcessorNotRunningError,
)
from .executors.base import Executor
from .executors.thread import ThreadExecutor
from .health import HealthLimits, Observed, judge
from .intake import Intake
from .lanes import Lane, Lanes
from .lifecycle import TaskStatus
from .monitor import PerformanceMonitor
from .outcomes import Outcomes
from .result import TaskResult
from .retry import RetryPolicy
from .routing import Routes, TaskProcessor, run_custom, run_custom_async
from .stores import TaskStore, open_store
from .task import ProcessingTask, ProcessingType, TaskPriority
from .task_manager import TaskManager, TaskRecord
from .views import EventListener, TaskView

if TYPE_CHECKING:
    from .processors import Settings

__all__ = ["AdvancedAsyncProcessor", "create_processor", "run_custom", "run_custom_async"]

logger = logging.getLogger("async_processor")


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
        health_min_success_rate: a lower success rate (percent) over the last
            ``health_window`` seconds makes it "degraded", once ``health_min_tasks``
            tasks ran to an outcome in that window.
        health_max_loop_lag: seconds late the event loop may run a timer before the
            health check says "degraded" (docs/metrics.md, "Health").
        thread_executor, process_executor: replace the built-in executors (for example
            with a Dask-backed one); their ``capacity`` sets the lane's size.
        builtin_processors: register the built-in processor of every task type but
            ``CUSTOM`` (see :mod:`async_processor.processors`); ``register_processor``
            replaces any of them.
        settings: engines and providers of the built-in processors; None: the built-ins
            read :meth:`Settings.from_env` (offline unless configured). The scheduler
            itself never reads them, nor imports a built-in unless ``builtin_processors``.
        store: where tasks are kept: ``"memory"`` (lost in a crash),
            ``"sqlite:///file.db"`` (journalled; unfinished tasks run again after a restart)
            or a :class:`~async_processor.stores.TaskStore`. See docs/stores.md.
        cluster: run ``cpu_intensive`` tasks on a Dask cluster instead of local processes:
            a scheduler address (``"tcp://host:8786"``) or an asynchronous
            ``distributed.Client``; the process lane gets one slot per cluster thread.
            Needs ``async-processor[dask]``. See docs/dask.md.
        cluster_resources: Dask resources per task type, e.g. ``{"embed": {"GPU": 1}}``.
        processors: ``{task_type: function}`` registered at once (after the built-ins, so
            they replace them), before ``start()`` recovers a durable store's unfinished
            tasks: a restart after a crash can run tasks of a custom type.

    ``async with AdvancedAsyncProcessor(...) as processor:`` starts it (if it is not
    running yet) and shuts it down on the way out, whatever the block raised.
    """

    # The parts that carry the work out, built by _assemble().
    _durable: bool
    _delays: Delays
    _admission: Admission
    _outcomes: Outcomes
    _lanes: Lanes
    _routes: Routes
    _intake: Intake

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
        health_window: float = 300.0,
        health_min_tasks: int = 10,
        health_max_loop_lag: float = 1.0,
        process_start_method: str = "forkserver",
        thread_executor: Executor | None = None,
        process_executor: Executor | None = None,
        builtin_processors: bool = True,
        settings: Settings | None = None,
        store: str | TaskStore | None = "memory",
        cluster: str | Any | None = None,
        cluster_resources: dict[str, dict[str, float]] | None = None,
        processors: Mapping[ProcessingType | str, TaskProcessor] | None = None,
    ) -> None:
        _check_arguments(locals())
        if aging_interval is not None:
            aging_interval = check_seconds("aging_interval", aging_interval)
        self.aging_interval = aging_interval
        self.retry_policy = retry_policy or RetryPolicy()
        self.health_max_queue = health_max_queue
        self.health_min_success_rate = health_min_success_rate
        self.health_limits = _health_limits(locals())
        self.task_manager = TaskManager(
            check_seconds("result_ttl", result_ttl, allow_zero=True), max_results
        )
        self.monitor = PerformanceMonitor(enable_monitoring, enable_profiling)
        self.monitor.recent_window = self.health_limits.window
        threads = thread_executor or (
            ThreadExecutor(max_thread_workers) if max_thread_workers else None
        )
        processes = _process_executor(
            process_executor, max_process_workers, process_start_method, cluster, cluster_resources
        )
        self._lane_map = _build_lanes(max_workers, aging_interval, threads, processes)
        self._store = open_store(store)  # docs/stores.md
        bounds = (queue_size, overload_policy, overload.check_reserve(priority_reserve))
        _assemble(self, max_memory_intensive, min_free_memory_mb, bounds)
        self._settings = settings
        self._register(builtin_processors, processors)
        self._state = _State.CREATED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None

    def _register(
        self, builtins: bool, processors: Mapping[ProcessingType | str, TaskProcessor] | None
    ) -> None:
        """Register the built-ins (when asked), then the caller's ``processors`` over them."""
        if builtins:
            self._register_builtins()
        if processors is not None:
            self._routes.register_all(processors)

    def _register_builtins(self) -> None:
        from .processors import builtin_processors

        for task_type, func in builtin_processors(self.settings).items():
            self.register_processor(task_type, func)

    @property
    def settings(self) -> Settings:
        """The built-ins' settings: as given, or :meth:`Settings.from_env` on first use."""
        if self._settings is None:
            from .processors import Settings

            self._settings = Settings.from_env()
        return self._settings

    @property
    def queue_size(self) -> int:
        """Most tasks that may wait at once."""
        return self._intake.queue_size

    @property
    def overload_policy(self) -> str:
        return self._intake.overload_policy

    @property
    def priority_reserve(self) -> float:
        return self._intake.priority_reserve

    def _enqueue(self, record: TaskRecord) -> None:
        if record.task.run_at is None or not self._delays.hold(record):
            self._lane_map[record.lane].push(record)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between ``start()`` and the beginning of ``shutdown()``."""
        return self._state is _State.RUNNING

    _running = running  # the guide reads processor._running

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
        self._admission.loop = self._outcomes.loop = self._delays.loop = loop
        if self._durable:
            self._intake.recover(loop)
        self._lanes.start(loop)
        if self.monitor.enabled:
            self.monitor.probe_loop_lag(loop)
        self._state = _State.RUNNING
        logger.info(
            "processor started: %s",
            ", ".join(f"{lane.name}={len(lane.workers)}" for lane in self._lane_map.values()),
        )

    async def __aenter__(self) -> Self:
        """Start the processor (a running one is left as it is) and return it."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Shut the processor down (default ``timeout``); what the block raised goes on."""
        await self.shutdown()

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
        assert self._loop is not None
        self._stopped = self._loop.create_future()
        started = time.monotonic()
        await self._drain(timeout)
        if self._durable:  # what shutdown cancels stays unfinished in the store
            self._store.freeze()
        await self._outcomes.cancel_unfinished()
        self._admission.cancel_timers()
        self.monitor.stop_probe()
        await self._lanes.stop(max(1.0, timeout - (time.monotonic() - started)))
        self._store.close()
        self._state = _State.STOPPED
        self._outcomes.retries_allowed = False
        self._stopped.set_result(None)
        logger.info("processor stopped")

    async def _drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every task to end."""
        if not self.task_manager.records:
            return
        assert self._loop is not None
        drained = self._outcomes.drained = self._loop.create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await drained

    # -- registering processors and limits -----------------------------------------------

    def register_processor(self, task_type: ProcessingType | str, func: TaskProcessor) -> None:
        """Run ``func(task)`` for tasks of ``task_type``; its return value is the result.

        An ``async def`` function runs on the event loop; a plain function runs in the
        thread pool, or in the process pool for ``cpu_intensive`` tasks.
        """
        self._routes.register(task_type, func)

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
        self._admission.set_limits(name, max_concurrency, rate, per)

    def registered_task_types(self) -> list[str]:
        """The task types that have a processor, sorted."""
        return sorted(self._routes.processors)

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
        return self._intake.submit(task, idempotency_key)

    async def submit_tasks(self, tasks: Iterable[ProcessingTask]) -> list[str]:
        """Accept a batch atomically, in any order: all of it, or (on error) none of it.

        Raises what :meth:`submit_task` raises, and DependencyCycleError.
        """
        if self._state is not _State.RUNNING:
            raise ProcessorNotRunningError(_NOT_RUNNING[self._state])
        return self._intake.submit_batch(tasks)

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
            self._outcomes.cancel(record, "cancelled by cancel_task()")
            return True
        waiter = waiting.add_waiter(record)
        self._outcomes.cancel(record, "cancelled by cancel_task()")
        try:
            async with asyncio.timeout(5.0):
                result = await waiter
        except TimeoutError:
            return True  # cancellation requested; the processor is slow to honour it
        return result.status is TaskStatus.CANCELLED

    # -- waiting and asking ------------------------------------------------------------------

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait until the task ends and return its result, whatever the status.

        Raises:
            asyncio.TimeoutError: ``timeout`` seconds passed first (the task goes on).
            TaskNotFoundError: the id is unknown.
        """
        return await waiting.wait_for_one(self.task_manager, task_id, timeout)

    async def wait_for_tasks(
        self, task_ids: Iterable[str], timeout: float | None = None
    ) -> list[TaskResult]:
        """Wait until every task ends (``timeout`` bounds the whole wait); their results
        in the order of ``task_ids``.

        Raises:
            asyncio.TimeoutError: ``timeout`` seconds passed first (the tasks go on).
            TaskNotFoundError: an id is unknown (checked before waiting).
            InvalidArgumentError: ``task_ids`` is a single string or holds a non-string.
        """
        return await waiting.wait_for_all(self.task_manager, task_ids, timeout)

    def as_completed(
        self, task_ids: Iterable[str], timeout: float | None = None
    ) -> AsyncIterator[TaskResult]:
        """``async for result in processor.as_completed(ids):`` each task's result as it
        ends (those already ended first); ``timeout`` bounds the whole iteration.

        Raises (while iterating):
            asyncio.TimeoutError: ``timeout`` seconds passed before every task ended.
            TaskNotFoundError: an id is unknown (checked before the first result).
            InvalidArgumentError: ``task_ids`` is a single string or holds a non-string.
        """
        return waiting.as_completed(self.task_manager, task_ids, timeout)

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

    async def get_performance_metrics(self) -> dict[str, Any]:
        """A snapshot of counters, latencies and worker states (see docs/metrics.md)."""
        return self.metrics_snapshot()

    def metrics_snapshot(self) -> dict[str, Any]:
        """:meth:`get_performance_metrics` without awaiting: call it on the processor's
        loop thread (an exporter scraping from another thread awaits the former there)."""
        metrics = self.monitor.snapshot()
        manager = self.task_manager
        by_priority = manager.waiting_by_priority
        metrics.update(
            queue_size=manager.waiting,
            queued_by_priority={p.name: by_priority[p.value] for p in TaskPriority},
            running_tasks=len(manager.records) - manager.waiting,
            worker_stats=self._lanes.worker_stats(),
            executors=self._lanes.executor_stats(),
            retained_results=len(manager.results),
            results_evicted=manager.results.evicted,
            **self._admission.statistics(),
        )
        return metrics

    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "degraded" | "unhealthy", "reason", "reasons",
        "metrics"}``: every problem found, the worst first; ``metrics["health"]`` says what
        was seen (:mod:`~async_processor.health`, docs/metrics.md)."""
        running = self.running  # a stopped processor's workers and store are let go
        observed = Observed(
            running,
            self.monitor.recent_outcomes(),
            self._lanes.failures() if running else [],
            await self._store.health() if running else None,
        )
        return judge(self.metrics_snapshot(), observed, self.health_limits)


def _assemble(
    self: AdvancedAsyncProcessor,
    max_memory_intensive: int,
    min_free_memory_mb: float,
    bounds: tuple[int, str, float],
) -> None:
    """Build the processor's parts that carry the work out: admission, outcomes, lanes, routes and
    intake (``bounds``: queue_size, overload_policy, priority_reserve)."""
    self._durable = self._store.durable
    self._delays = Delays(self._enqueue)
    if self._durable:  # a non-durable store is only asked about idempotency keys
        self.task_manager.listeners.append(self._store.transition)
    self._admission = Admission(
        self.aging_interval, max_memory_intensive, min_free_memory_mb, self._enqueue
    )
    self._outcomes = Outcomes(
        self.task_manager,
        self.monitor,
        self._admission,
        self.retry_policy,
        self._store,
        self._enqueue,
    )
    self._lanes = Lanes(
        self._lane_map, self.task_manager, self.monitor, self._admission, self._outcomes
    )
    self._routes = Routes()
    self._intake = Intake(
        self.task_manager,
        self.monitor,
        self._routes,
        self._lane_map,
        self._outcomes,
        self._store,
        self._enqueue,
        bounds,
    )


#: The constructor's count arguments and the least each may be.
_COUNTS = {
    "max_workers": 1,
    "max_thread_workers": 0,
    "max_process_workers": 0,
    "queue_size": 1,
    "max_results": 0,
    "max_memory_intensive": 1,
    "health_max_queue": 0,
    "health_min_tasks": 1,
}


def _check_arguments(arguments: dict[str, Any]) -> None:
    """Raise InvalidArgumentError for a constructor argument out of range.

    ``arguments`` are the constructor's, by name (its ``locals()`` on entry).
    """
    for name, low in _COUNTS.items():
        check_count(name, arguments[name], low)
    check_seconds("min_free_memory_mb", arguments["min_free_memory_mb"], allow_zero=True)
    rate = arguments["health_min_success_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 100:
        raise InvalidArgumentError(
            f"health_min_success_rate must be a percentage from 0 to 100, got {rate!r}"
        )
    policy = arguments["overload_policy"]
    if policy not in ("reject", "shed"):
        raise InvalidArgumentError(f"overload_policy must be 'reject' or 'shed', got {policy!r}")


def _health_limits(arguments: dict[str, Any]) -> HealthLimits:
    """The constructor's ``health_*`` arguments (its ``locals()``), checked."""
    return HealthLimits(
        check_seconds("health_window", arguments["health_window"]),
        arguments["health_min_tasks"],
        arguments["health_max_queue"],
        arguments["health_min_success_rate"],
        check_seconds("health_max_loop_lag", arguments["health_max_loop_lag"]),
    )


def _process_executor(
    given: Executor | None,
    max_process_workers: int,
    start_method: str,
    cluster: str | Any | None,
    cluster_resources: dict[str, dict[str, float]] | None,
) -> Executor | None:
    """The process lane's executor: the one given, a Dask cluster's, or local processes."""
    if cluster is not None:  # the Dask executor (docs/dask.md)
        if given is not None:
            raise InvalidArgumentError("pass cluster= or process_executor=, not both")
        from .executors.dask import DaskExecutor

        try:
            return DaskExecutor(cluster, resources=cluster_resources)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from exc
    if cluster_resources is not None:
        raise InvalidArgumentError("cluster_resources needs cluster= (a Dask cluster)")
    if given is None and max_process_workers:
        from .executors.process import ProcessExecutor

        return ProcessExecutor(max_process_workers, start_method=start_method)
    return given


def _build_lanes(
    max_workers: int,
    aging_interval: float | None,
    thread_executor: Executor | None,
    process_executor: Executor | None,
) -> dict[str, Lane]:
    lanes = {"async": Lane("async", None, max_workers, aging_interval)}
    for name, executor in (("thread", thread_executor), ("process", process_executor)):
        if executor is not None and executor.capacity:
            lanes[name] = Lane(name, executor, executor.capacity, aging_interval)
    return lanes


async def create_processor(**kwargs: Any) -> AdvancedAsyncProcessor:
    """Build an :class:`AdvancedAsyncProcessor` with ``kwargs`` and start it.

    ``processors={task_type: function}`` registers before the start, so a durable store's
    unfinished tasks of those types run again. ``async with await create_processor() as p``
    shuts it down at the end of the block.
    """
    processor = AdvancedAsyncProcessor(**kwargs)
    await processor.start()
    return processor
