"""Delayed tasks: ``create_task(..., delay=)`` and ``run_at=`` hold a task back until then.

The time is what is under test here: each test checks that a task did not start before
its ``run_at``; a slower machine only makes that more certain.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidTaskError,
    ProcessingTask,
    TaskPriority,
    TaskStatus,
    create_task,
)


def make(**kwargs: Any) -> AdvancedAsyncProcessor:
    return AdvancedAsyncProcessor(
        max_workers=1,
        max_thread_workers=0,
        max_process_workers=0,
        builtin_processors=False,
        enable_monitoring=False,
        **kwargs,
    )


async def started(task: ProcessingTask) -> float:
    return time.time()


async def test_delay_holds_the_task_back_without_holding_a_worker() -> None:
    async with make(processors={"t": started}) as processor:
        before = time.time()
        later = await processor.submit_task(create_task("t", delay=0.3, priority="CRITICAL"))
        record = processor.task_manager.records[later]
        assert record.task.run_at is not None and record.task.run_at >= before + 0.3
        assert record.queue is None  # not ready: on no queue
        assert processor.view(later).status is TaskStatus.PENDING
        now = await processor.submit_task(create_task("t", priority="BATCH"))
        first = await processor.wait_for_task(now, timeout=10)
        assert processor.task_manager.records[later].status is TaskStatus.PENDING
        result = await processor.wait_for_task(later, timeout=10)
    assert result.status is TaskStatus.COMPLETED
    assert result.result >= record.task.run_at
    assert first.result < result.result  # the worker was free for the BATCH task


async def test_run_at_takes_unix_seconds_or_an_aware_datetime() -> None:
    at = datetime.now(UTC) + timedelta(seconds=0.2)
    async with make(processors={"t": started}) as processor:
        ids = [
            await processor.submit_task(create_task("t", run_at=at)),
            await processor.submit_task(create_task("t", run_at=at.timestamp())),
            await processor.submit_task(create_task("t", run_at=time.time() - 60)),  # past
        ]
        results = await processor.wait_for_tasks(ids, timeout=10)
    assert all(r.result >= at.timestamp() for r in results[:2])
    assert results[2].status is TaskStatus.COMPLETED


async def test_a_dependent_of_a_delayed_task_waits_for_it_and_may_be_delayed_too() -> None:
    async with make(processors={"t": started}) as processor:
        first = await processor.submit_task(create_task("t", delay=0.2))
        then = await processor.submit_task(create_task("t", depends_on=[first]))
        late = await processor.submit_task(create_task("t", depends_on=[first], delay=0.4))
        a, b, c = await processor.wait_for_tasks([first, then, late], timeout=10)
    assert a.result <= b.result
    assert c.result >= processor_run_at(c, 0.4)


def processor_run_at(result: Any, delay: float) -> float:
    """The earliest start of a task submitted at ``created_at`` with ``delay``."""
    return float(result.created_at) + delay


async def test_cancelling_a_delayed_task_ends_it_at_once() -> None:
    async with make(processors={"t": started}) as processor:
        task_id = await processor.submit_task(create_task("t", delay=3600))
        assert await processor.cancel_task(task_id)
        result = await processor.wait_for_task(task_id)
        assert result.status is TaskStatus.CANCELLED
        assert processor.task_manager.records == {}


async def test_a_deadline_before_run_at_expires_the_task() -> None:
    async with make(processors={"t": started}) as processor:
        task_id = await processor.submit_task(
            create_task("t", delay=3600, deadline=time.time() + 0.05)
        )
        result = await processor.wait_for_task(task_id, timeout=10)
    assert result.status is TaskStatus.TIMEOUT and result.attempts == 0


async def test_aging_counts_from_run_at() -> None:
    gate = asyncio.Event()

    async def hold(task: ProcessingTask) -> None:
        await gate.wait()

    order: list[str] = []

    async def note(task: ProcessingTask) -> None:
        order.append(task.payload["name"])

    async with make(processors={"hold": hold, "note": note}, aging_interval=0.01) as processor:
        held = await processor.submit_task(create_task("hold"))
        batch = create_task("note", {"name": "delayed BATCH"}, TaskPriority.BATCH, delay=0.3)
        delayed = await processor.submit_task(batch)
        await asyncio.sleep(0.1)  # > 2 aging intervals, < the delay
        normal = await processor.submit_task(create_task("note", {"name": "NORMAL"}))
        record = processor.task_manager.records[delayed]
        while record.queue is None:  # noqa: ASYNC110 (becoming ready publishes no event)
            await asyncio.sleep(0.01)
        gate.set()
        await processor.wait_for_tasks([held, delayed, normal], timeout=10)
    # Aged from its submission, the BATCH task would have gained 10 intervals (> 2 levels)
    # on NORMAL; aged from its run_at, it arrived after NORMAL and is less urgent.
    assert order == ["NORMAL", "delayed BATCH"]


async def test_a_delayed_task_survives_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'tasks.db'}"
    run_at = time.time() + 0.5
    async with make(store=store, processors={"t": started}) as first:
        await first.submit_task(create_task("t", id="later", run_at=run_at))
        await first.shutdown(timeout=0.01)  # it has not started; it stays in the store
    async with make(store=store, processors={"t": started}) as second:
        assert second.task_manager.records["later"].task.run_at == run_at
        result = await second.wait_for_task("later", timeout=10)
    assert result.status is TaskStatus.COMPLETED and result.result >= run_at


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delay": -1}, "delay must be a number of seconds >= 0, got -1"),
        ({"delay": "5"}, "delay must be a number of seconds >= 0, got '5'"),
        ({"delay": float("inf")}, "delay must be finite"),
        ({"delay": 1, "run_at": 5.0}, "pass delay= or run_at=, not both"),
        ({"run_at": datetime(2030, 1, 1)}, "run_at must be an aware datetime"),
        ({"run_at": "tomorrow"}, "run_at must be a Unix timestamp or an aware datetime"),
    ],
)
def test_bad_delays_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        create_task("t", **fields)
