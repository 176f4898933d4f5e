"""Issue 10, finding 8 (listener part): a listener that raises never harms the scheduler.

Before the fix, a ``TaskManager.listeners`` entry that raised on COMPLETED killed the
worker that ended the task: the task stayed COMPLETED in the records, ``wait_for_task``
never returned, and ``shutdown`` raised ``InvalidTransitionError``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from async_processor import (
    ProcessingTask,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.task_manager import TaskRecord


async def echo(task: ProcessingTask) -> object:
    return task.payload["value"]


def explode(record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
    raise RuntimeError(f"listener bug on {new.value}")


async def test_a_raising_transition_listener_never_kills_a_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = await create_processor(
        max_workers=1, max_thread_workers=0, max_process_workers=0, builtin_processors=False
    )
    processor.register_processor("echo", echo)
    processor.task_manager.listeners.append(explode)
    try:
        with caplog.at_level(logging.ERROR, logger="async_processor"):
            first = create_task("echo", {"value": 1})
            second = create_task("echo", {"value": 2})
            await processor.submit_task(first)
            await processor.submit_task(second)  # runs on the same, only worker
            # The timeout only bounds a hang (the bug); a pass never depends on it.
            async with asyncio.timeout(30):
                results = [await processor.wait_for_task(t.id) for t in (first, second)]
        assert [r.status for r in results] == [TaskStatus.COMPLETED] * 2
        assert [r.result for r in results] == [1, 2]
        assert not processor.task_manager.records
        assert "listener bug on completed" in caplog.text
    finally:
        await processor.shutdown(5)  # raised InvalidTransitionError before the fix


async def test_a_raising_event_listener_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = await create_processor(
        max_workers=1, max_thread_workers=0, max_process_workers=0, builtin_processors=False
    )
    processor.register_processor("echo", echo)
    seen: list[TaskStatus] = []

    def broken(event: object) -> None:
        raise RuntimeError("event listener bug")

    processor.add_listener(broken)
    processor.add_listener(lambda event: seen.append(event.status))
    try:
        with caplog.at_level(logging.ERROR, logger="async_processor"):
            task = create_task("echo", {"value": 3})
            await processor.submit_task(task)
            async with asyncio.timeout(30):
                result = await processor.wait_for_task(task.id)
        assert result.status is TaskStatus.COMPLETED
        assert seen == [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED]
        logged = [r for r in caplog.records if r.exc_info and "event listener" in r.getMessage()]
        assert len(logged) == 3  # submitted, running, completed
    finally:
        await processor.shutdown(5)
