"""Where every attempt and every task ends: :class:`Outcomes`.

An attempt's outcome (:func:`outcome_of`) is settled in :meth:`Outcomes.settle`: a retry
(the decision is :func:`~async_processor.retry.next_attempt_in`'s) or an ending. An ending
goes through :meth:`Outcomes.finish`, which asks the bookkeeping
(:meth:`TaskManager.end <async_processor.task_manager.TaskManager.end>`) what ends with it
down the graph and carries that out: queues, timers and admission let go, the durable
store told, waiters woken, released dependents made ready. Deadlines end here too: a task
whose deadline passes before it starts ends TIMEOUT.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .admission import Admission
from .errors import InvalidTaskError, NonRetryableError
from .lifecycle import TaskStatus
from .monitor import PerformanceMonitor
from .result import TaskResult
from .retry import RetryPolicy, next_attempt_in
from .stores import TaskStore
from .task_manager import EXPIRED, TaskManager, TaskRecord

__all__ = ["AttemptOutcome", "Outcomes", "describe_failure", "outcome_of"]

logger = logging.getLogger("async_processor")


@dataclass(slots=True)
class AttemptOutcome:
    """How one attempt ended. ``retryable``: a retry may follow if attempts remain."""

    status: TaskStatus
    value: Any = None
    error: str | None = None
    retryable: bool = False
    #: The processor's exception as (error_type, traceback), when it raised one.
    failure: tuple[str, str] | None = None
    #: What a retry policy judges: the exception's class (TimeoutError for a timeout).
    error_class: type[BaseException] | None = None


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """An exception's qualified class name (builtins without ``builtins.``) and its
    formatted traceback, chained causes and contexts included.

    An exception from a worker process that could not be rebuilt here is raised as a
    RuntimeError carrying the original class name (``remote_error_type``); that is used.
    """
    kind = type(exc)
    module = kind.__module__
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    remote = getattr(exc, "remote_error_type", None)
    return remote if isinstance(remote, str) else name, "".join(traceback.format_exception(exc))


def outcome_of(
    record: TaskRecord, value: Any, failure: BaseException | None, timed_out: bool
) -> AttemptOutcome:
    """Judge an attempt from what its run produced (no I/O)."""
    if record.cancel_reason is not None:
        return AttemptOutcome(TaskStatus.CANCELLED, error=record.cancel_reason)
    if timed_out:
        timeout = record.task.timeout or 0.0
        error = f"timed out after {timeout:g}s (attempt {record.attempts})"
        return AttemptOutcome(
            TaskStatus.TIMEOUT, error=error, retryable=True, error_class=TimeoutError
        )
    if failure is not None:
        error = f"{type(failure).__name__}: {failure}"
        final = isinstance(failure, NonRetryableError | InvalidTaskError)
        return AttemptOutcome(
            TaskStatus.FAILED,
            error=error,
            retryable=not final,
            failure=describe_failure(failure),
            error_class=type(failure),
        )
    return AttemptOutcome(TaskStatus.COMPLETED, value)


class Outcomes:
    """Settles attempts and ends tasks; see the module docstring."""

    def __init__(
        self,
        manager: TaskManager,
        monitor: PerformanceMonitor,
        admission: Admission,
        retry_policy: RetryPolicy,
        store: TaskStore,
        enqueue: Callable[[TaskRecord], None],
    ) -> None:
        self.manager = manager
        self.monitor = monitor
        self.admission = admission
        self.retry_policy = retry_policy
        self.store = store
        self._durable = store.durable
        self._enqueue = enqueue
        self.loop: asyncio.AbstractEventLoop | None = None
        #: False once the processor has stopped: a late failure ends its task at once.
        self.retries_allowed = True
        #: Set when the last task ends, while shutdown waits for that.
        self.drained: asyncio.Future[None] | None = None

    # -- attempts ----------------------------------------------------------------------------

    def settle(self, record: TaskRecord, outcome: AttemptOutcome, elapsed: float) -> None:
        """The one place an attempt ends: retry it if it may, otherwise end the task."""
        if outcome.retryable:
            task = record.task
            policy = task.retry or self.retry_policy
            kind = outcome.error_class
            delay = next_attempt_in(
                policy,
                record.attempts,
                task.max_retries,
                retryable=self.retries_allowed and (kind is None or policy.retries(kind)),
            )
            if delay is not None:
                self._retry(record, outcome, delay)
                return
        if outcome.retryable or outcome.failure is not None:
            _log_ending(record, outcome)
        record.failure = outcome.failure
        self.finish(record, outcome.status, outcome.value, outcome.error, elapsed)

    def _retry(self, record: TaskRecord, outcome: AttemptOutcome, delay: float) -> None:
        task = record.task
        self.admission.release(record)
        logger.info(
            "task %s (%s) attempt %d %s (%s); retrying in %.2fs",
            task.id,
            task.type_name,
            record.attempts,
            outcome.status.value,
            outcome.error,
            delay,
        )
        if outcome.failure is not None:
            logger.debug(
                "task %s attempt %d raised:\n%s", task.id, record.attempts, outcome.failure[1]
            )
        if record.attempt_task.cancel_requested:  # an abandoned thread still holds it
            record.attempt_task = copy.copy(task)
            record.attempt_task.cancel_requested = False
        self.manager.transition(record, TaskStatus.PENDING)
        self.monitor.task_retried(record.stats, delay)
        assert self.loop is not None
        record.retry_timer = self.loop.call_later(delay, self._retry_due, record)

    def _retry_due(self, record: TaskRecord) -> None:
        record.retry_timer = None
        if record.status is TaskStatus.PENDING and record.task.id in self.manager.records:
            self._enqueue(record)

    # -- endings -----------------------------------------------------------------------------

    def finish(
        self,
        record: TaskRecord,
        status: TaskStatus,
        value: Any,
        error: str | None,
        execution_time: float | None = None,
        expired: bool = False,
    ) -> None:
        """End a task and, through the graph, the dependents that cannot run without it."""
        for ending in self.manager.end(record, status, value, error, execution_time, expired):
            ended = ending.record
            self._detach(ended)
            if ending.result.status is not TaskStatus.COMPLETED:
                ended.task.cancel_requested = True
                ended.attempt_task.cancel_requested = True
            if self._durable:
                self.store.finished(ending.result)
            for relaxed in ending.relaxed:
                self.arm_deadline(relaxed)
            self.monitor.task_ended(ended.stats, ending.result.status, ending.execution_time)
            _wake(ended, ending.result)
            for dependent in ending.ready:
                self._enqueue(dependent)
        drained = self.drained
        if drained is not None and not self.manager.records and not drained.done():
            drained.set_result(None)

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
            self.admission.release(record)
        record.runner = None

    def cancel(self, record: TaskRecord, reason: str) -> None:
        """End a waiting task now; ask a running one to stop (its worker settles it)."""
        if record.status is TaskStatus.PENDING:
            self.finish(record, TaskStatus.CANCELLED, None, reason)
        elif record.runner is not None and record.cancel_reason is None:
            record.cancel_reason = reason
            record.attempt_task.cancel_requested = True
            record.runner.cancel()

    async def cancel_unfinished(self) -> None:
        """Cancel what is left, give running tasks a moment to unwind, end the rest."""
        records = self.manager.records
        left = list(records.values())
        if left:
            logger.warning("shutdown: cancelling %d unfinished tasks", len(left))
        for record in left:
            if record.task.id in records:
                self.cancel(record, "the processor shut down before the task finished")
        for _ in range(100):  # running tasks unwind within a few loop iterations
            if not records:
                break
            await asyncio.sleep(0.01)
        for record in list(records.values()):  # ignored its cancellation
            self.finish(record, TaskStatus.CANCELLED, None, "the processor shut down")

    # -- deadlines ---------------------------------------------------------------------------

    def arm_deadline(self, record: TaskRecord) -> None:
        """(Re)start the timer that expires a record at its deadline, if it has one."""
        assert self.loop is not None
        if record.deadline_timer is not None:
            record.deadline_timer.cancel()
            record.deadline_timer = None
        if record.deadline is None:
            return
        delay = max(0.0, record.deadline - time.time())
        record.deadline_timer = self.loop.call_later(delay, self._deadline_due, record)

    def _deadline_due(self, record: TaskRecord) -> None:
        record.deadline_timer = None
        if (
            record.status is TaskStatus.PENDING
            and record.task.id in self.manager.records
            and record.deadline is not None
            and record.deadline <= time.time() + 0.001
        ):
            self.expire(record)

    def expire(self, record: TaskRecord) -> None:
        """End a task whose deadline passed before it could start."""
        inherited = record.deadline != record.task.deadline
        self.finish(
            record,
            TaskStatus.TIMEOUT,
            None,
            f"{EXPIRED}: its deadline"
            + (" (inherited from a task that depends on it)" if inherited else "")
            + " passed before it could start",
            expired=True,
        )


def _log_ending(record: TaskRecord, outcome: AttemptOutcome) -> None:
    """Log, at WARNING, an attempt that ends its task badly: id, type, the error and, when
    the processor raised, its traceback; never the payload."""
    failure = outcome.failure
    logger.warning(
        "task %s (%s) %s after %d attempt(s): %s%s",
        record.task.id,
        record.type_name,
        outcome.status.value,
        record.attempts,
        outcome.error,
        "" if failure is None else "\n" + failure[1],
    )


def _wake(record: TaskRecord, result: TaskResult) -> None:
    """Hand ``result`` to everyone waiting on ``record``."""
    waiters = record.waiters
    if waiters:
        record.waiters = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)
