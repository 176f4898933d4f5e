"""Issue 10, finding 5 (library part): a flood of less urgent work never locks urgent work out.

Before the fix, one batch of BATCH tasks filling ``queue_size`` made every CRITICAL
submission raise QueueFullError until the batch drained.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingTask,
    QueueFullError,
    TaskPriority,
    TaskStatus,
    create_task,
)
from async_processor.overload import band_limits, excess

QUEUE_SIZE = 100

Make = Callable[..., Awaitable[AdvancedAsyncProcessor]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[AdvancedAsyncProcessor] = []

    async def build(**kwargs: Any) -> AdvancedAsyncProcessor:
        processor = AdvancedAsyncProcessor(
            max_workers=1,
            max_thread_workers=0,
            max_process_workers=0,
            queue_size=QUEUE_SIZE,
            builtin_processors=False,
            **kwargs,
        )
        await processor.start()
        made.append(processor)
        return processor

    yield build
    for processor in made:
        await processor.shutdown(5.0)


async def hold(processor: AdvancedAsyncProcessor) -> asyncio.Event:
    """Occupy the only worker until the returned event is set, so everything else waits."""
    started, release = asyncio.Event(), asyncio.Event()

    async def gate(task: ProcessingTask) -> None:
        started.set()
        await release.wait()

    async def work(task: ProcessingTask) -> str:
        return task.priority.name

    processor.register_processor("gate", gate)
    processor.register_processor("work", work)
    await processor.submit_task(create_task("gate", priority=TaskPriority.CRITICAL))
    await started.wait()
    return release


async def flood(processor: AdvancedAsyncProcessor, level: TaskPriority) -> list[str]:
    """Submit ``level`` tasks one at a time until the queue refuses one."""
    ids: list[str] = []
    for _ in range(QUEUE_SIZE + 1):
        try:
            ids.append(await processor.submit_task(create_task("work", priority=level)))
        except QueueFullError:
            break
    return ids


@pytest.mark.parametrize("level", [TaskPriority.BATCH, TaskPriority.LOW])
@pytest.mark.parametrize("policy", ["reject", "shed"])
async def test_urgent_work_is_admitted_under_a_flood_of_background_work(
    make: Make, level: TaskPriority, policy: str
) -> None:
    processor = await make(overload_policy=policy)
    release = await hold(processor)
    flooded = await flood(processor, level)
    assert len(flooded) < QUEUE_SIZE  # the flood was stopped short of the whole queue
    urgent = [create_task("work", priority=p) for p in (TaskPriority.CRITICAL, TaskPriority.HIGH)]
    for task in urgent:
        await processor.submit_task(task)  # raised QueueFullError before the fix
    release.set()
    for task in urgent:
        result = await processor.wait_for_task(task.id, timeout=30)
        assert result.status is TaskStatus.COMPLETED


async def test_a_batch_of_background_work_is_refused_whole_beyond_its_share(
    make: Make,
) -> None:
    processor = await make()
    release = await hold(processor)
    batch = [create_task("work", priority=TaskPriority.BATCH) for _ in range(QUEUE_SIZE)]
    with pytest.raises(QueueFullError, match="no room for BATCH work") as info:
        await processor.submit_tasks(batch)
    assert "priority_reserve" in str(info.value)  # says what to change
    assert processor.task_manager.waiting == 0  # nothing of the batch was kept
    await processor.submit_tasks(batch[:80])  # 80% of the queue is BATCH's share
    critical = create_task("work", priority=TaskPriority.CRITICAL)
    await processor.submit_tasks([critical])
    release.set()
    assert (await processor.wait_for_task(critical.id, timeout=30)).result == "CRITICAL"


async def test_normal_work_keeps_the_whole_queue(make: Make) -> None:
    processor = await make()
    release = await hold(processor)
    assert len(await flood(processor, TaskPriority.NORMAL)) == QUEUE_SIZE
    release.set()


async def test_a_zero_reserve_lets_background_work_fill_the_queue(make: Make) -> None:
    processor = await make(priority_reserve=0)
    release = await hold(processor)
    assert len(await flood(processor, TaskPriority.BATCH)) == QUEUE_SIZE
    with pytest.raises(QueueFullError, match="the queue is full"):
        await processor.submit_task(create_task("work", priority=TaskPriority.CRITICAL))
    release.set()


@pytest.mark.parametrize("reserve", [-0.1, 0.5, True, "0.1", None])
def test_the_reserve_is_checked(reserve: object) -> None:
    with pytest.raises(InvalidArgumentError, match="priority_reserve"):
        AdvancedAsyncProcessor(priority_reserve=reserve)  # type: ignore[arg-type]


def test_band_limits_and_excess_without_a_processor() -> None:
    limits = band_limits(1000, 0.1)
    assert limits[1:] == [1000, 1000, 1000, 900, 800]
    assert band_limits(3, 0.1)[1:] == [3, 3, 3, 3, 3]  # small queues keep their meaning
    batch, low, critical = (
        p.value for p in (TaskPriority.BATCH, TaskPriority.LOW, TaskPriority.CRITICAL)
    )
    assert excess(799, limits, [batch]) == 0
    assert excess(800, limits, [batch]) == 1
    assert excess(800, limits, [critical]) == -199
    # the least urgent newcomers take their places first
    assert excess(798, limits, [critical, batch, batch]) == 0
    assert excess(898, limits, [low, low, batch]) == 99
