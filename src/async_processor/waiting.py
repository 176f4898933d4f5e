"""Waiting for tasks to end: one, many in order, or many as they end.

A waiter is a future on the record of a task that has not ended; ``Outcomes.finish`` hands
it the task's :class:`TaskResult`. A wait that gives up (its timeout ran out, or the caller
stopped iterating) takes its waiters back, so nothing is left behind on the record; the
tasks themselves go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from .arguments import check_seconds
from .errors import InvalidArgumentError
from .result import TaskResult
from .task_manager import TaskManager, TaskRecord

__all__ = ["add_waiter", "as_completed", "wait_for_all", "wait_for_one"]


def add_waiter(record: TaskRecord) -> asyncio.Future[TaskResult]:
    """A future (of the running loop) that gets the record's result when its task ends."""
    waiter: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
    if record.waiters is None:
        record.waiters = [waiter]
    else:
        record.waiters.append(waiter)
    return waiter


def _drop(record: TaskRecord, waiter: asyncio.Future[TaskResult]) -> None:
    """Take back a waiter whose wait gave up."""
    waiter.cancel()  # a no-op when done (a timeout cancels it too)
    if record.waiters is not None and waiter in record.waiters:
        record.waiters.remove(waiter)


def _timeout(timeout: float | None) -> float | None:
    return None if timeout is None else check_seconds("timeout", timeout, allow_zero=True)


async def wait_for_one(manager: TaskManager, task_id: str, timeout: float | None) -> TaskResult:
    """The task's result once it ends (see ``AdvancedAsyncProcessor.wait_for_task``)."""
    timeout = _timeout(timeout)
    record = manager.records.get(task_id)
    if record is None:
        result = manager.result(task_id)  # raises TaskNotFoundError when unknown
        assert result is not None
        return result
    waiter = add_waiter(record)
    try:
        async with asyncio.timeout(timeout):
            return await waiter
    finally:
        _drop(record, waiter)


def _ids(task_ids: Iterable[str]) -> list[str]:
    """The ids as a list; InvalidArgumentError for a single string or a non-string id."""
    if isinstance(task_ids, str | bytes):
        raise InvalidArgumentError(
            f"task_ids must be a list of task ids, got the single string {task_ids!r}; "
            "pass [task_id] (or use wait_for_task)"
        )
    try:
        ids = list(task_ids)
    except TypeError:
        raise InvalidArgumentError(
            f"task_ids must be an iterable of task ids, got {type(task_ids).__name__}"
        ) from None
    for task_id in ids:
        if not isinstance(task_id, str):
            raise InvalidArgumentError(f"a task id must be a string, got {task_id!r}")
    return ids


_Wait = tuple[TaskRecord | None, "asyncio.Future[TaskResult]"]


def _resolve(manager: TaskManager, task_ids: Iterable[str]) -> list[_Wait]:
    """For each id in order, a future of its result (already done if it has ended) and
    its record while it runs.

    Every id is checked before any waiter is added (TaskNotFoundError for an unknown one).
    """
    ids = _ids(task_ids)
    for task_id in ids:
        if task_id not in manager.records:
            manager.result(task_id)  # raises TaskNotFoundError when unknown
    entries: list[_Wait] = []
    for task_id in ids:
        record = manager.records.get(task_id)
        if record is not None:
            entries.append((record, add_waiter(record)))
            continue
        ended: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        result = manager.result(task_id)
        assert result is not None
        ended.set_result(result)
        entries.append((None, ended))
    return entries


def _drop_all(entries: list[_Wait]) -> None:
    for record, waiter in entries:
        if record is not None:
            _drop(record, waiter)


async def wait_for_all(
    manager: TaskManager,
    task_ids: Iterable[str],
    timeout: float | None,
) -> list[TaskResult]:
    """Every task's result, in the order of ``task_ids``, once all have ended."""
    timeout = _timeout(timeout)
    entries = _resolve(manager, task_ids)
    try:
        async with asyncio.timeout(timeout):
            return [await waiter for _, waiter in entries]
    finally:
        _drop_all(entries)


async def as_completed(
    manager: TaskManager,
    task_ids: Iterable[str],
    timeout: float | None,
) -> AsyncIterator[TaskResult]:
    """Each task's result as it ends: those already ended first, in the given order."""
    timeout = _timeout(timeout)
    entries = _resolve(manager, task_ids)
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    ended: asyncio.Queue[TaskResult] = asyncio.Queue()

    def arrived(waiter: asyncio.Future[TaskResult]) -> None:
        if not waiter.cancelled():
            ended.put_nowait(waiter.result())

    for _, waiter in entries:
        waiter.add_done_callback(arrived)
    try:
        for _ in entries:
            async with asyncio.timeout_at(deadline):
                result = await ended.get()
            yield result
    finally:
        _drop_all(entries)
