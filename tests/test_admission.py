"""Admission through a processor: per-type concurrency and rate limits, the memory budget,
parking (real event loop and threads, no mocks)."""

from __future__ import annotations

import asyncio
import time

import pytest
from processor_helpers import (
    Factory,
    Gate,
    wait_all,
)

from async_processor import (
    InvalidArgumentError,
    ProcessingTask,
    TaskStatus,
    create_task,
)

# --------------------------------------------------------------------------- limits


class Concurrency:
    """Counts how many processor calls run at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.starts: list[float] = []

    def enter(self) -> None:
        self.starts.append(time.monotonic())
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


async def test_max_concurrency_limit_is_never_exceeded(make_processor: Factory) -> None:
    p = await make_processor(max_workers=8)
    count = Concurrency()

    async def limited(task: ProcessingTask) -> None:
        count.enter()
        await asyncio.sleep(0.01)
        count.leave()

    p.register_processor("limited", limited)
    p.set_limits("limited", max_concurrency=2)
    ids = [await p.submit_task(create_task("limited")) for _ in range(10)]
    results = await wait_all(p, ids)
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    assert count.peak == 2


async def test_rate_limit_spreads_starts(make_processor: Factory) -> None:
    p = await make_processor(max_workers=4)
    count = Concurrency()
    free_done: list[str] = []

    async def limited(task: ProcessingTask) -> None:
        count.enter()
        count.leave()

    async def free(task: ProcessingTask) -> None:
        free_done.append(task.id)

    p.register_processor("limited", limited)
    p.register_processor("free", free)
    p.set_limits("limited", rate=5, per=0.5)
    ids = [await p.submit_task(create_task("limited")) for _ in range(10)]
    free_ids = [await p.submit_task(create_task("free")) for _ in range(5)]
    await wait_all(p, free_ids)  # another type is not held up by the rate limit
    pending = [await p.get_task_status(i) for i in ids]
    assert TaskStatus.PENDING in pending
    await wait_all(p, ids)
    starts = sorted(count.starts)
    assert len(starts) == 10
    # a bucket of 5 tokens, refilled at 10/s: the k-th start after the burst of 5 comes
    # no sooner than (k - 4) * 0.1 s after the first one
    for k in range(5, 10):
        assert starts[k] - starts[0] >= (k - 4) * 0.1 - 0.02, (k, starts[k] - starts[0])


async def test_limits_on_one_type_leave_other_types_unaffected(make_processor: Factory) -> None:
    p = await make_processor(max_workers=6)
    release = asyncio.Event()
    barrier = asyncio.Barrier(4)
    limited_started: list[str] = []

    async def limited(task: ProcessingTask) -> None:
        limited_started.append(task.id)
        await release.wait()

    async def together(task: ProcessingTask) -> str:
        async with asyncio.timeout(5.0):
            await barrier.wait()  # completes only if all four run at the same time
        return "met"

    p.register_processor("limited", limited)
    p.register_processor("together", together)
    p.set_limits("limited", max_concurrency=1)
    limited_ids = [await p.submit_task(create_task("limited")) for _ in range(3)]
    together_ids = [await p.submit_task(create_task("together")) for _ in range(4)]
    results = await wait_all(p, together_ids)
    assert [r.result for r in results] == ["met"] * 4
    assert len(limited_started) == 1
    metrics = await p.get_performance_metrics()
    assert metrics["limits"]["limited"] == {"running": 1, "waiting": 2}
    release.set()
    assert all(r.status is TaskStatus.COMPLETED for r in await wait_all(p, limited_ids))


async def test_memory_intensive_tasks_never_overlap(make_processor: Factory) -> None:
    p = await make_processor(max_workers=4, max_memory_intensive=1, min_free_memory_mb=0)
    count = Concurrency()
    light: list[str] = []

    async def heavy(task: ProcessingTask) -> None:
        count.enter()
        await asyncio.sleep(0.02)
        count.leave()

    async def small(task: ProcessingTask) -> None:
        light.append(task.id)

    p.register_processor("heavy", heavy)
    p.register_processor("small", small)
    ids = [await p.submit_task(create_task("heavy", memory_intensive=True)) for _ in range(4)]
    small_id = await p.submit_task(create_task("small"))
    await p.wait_for_task(small_id, timeout=5.0)
    results = await wait_all(p, ids)
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    assert count.peak == 1
    assert light == [small_id]


async def test_changing_limits_while_a_task_runs_does_not_stall_the_type(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=4)
    gate = Gate()
    p.register_processor("limited", gate)
    p.set_limits("limited", max_concurrency=1)
    first = await p.submit_task(create_task("limited"))
    await gate.started.wait()
    p.set_limits("limited", max_concurrency=1, rate=100)  # e.g. add a rate limit
    gate.release.set()
    await p.wait_for_task(first, timeout=5.0)
    second = await p.submit_task(create_task("limited"))
    try:
        result = await p.wait_for_task(second, timeout=1.0)  # TimeoutError: stuck parked
    finally:
        await p.shutdown(timeout=0.1)
    assert result.status is TaskStatus.COMPLETED


async def test_memory_intensive_tasks_wait_while_free_memory_is_below_the_floor(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=2, min_free_memory_mb=1e12)  # more than any machine
    ran: list[str] = []

    async def work(task: ProcessingTask) -> None:
        ran.append(task.id)

    p.register_processor("work", work)
    heavy = await p.submit_task(create_task("work", memory_intensive=True))
    light = await p.submit_task(create_task("work"))
    await p.wait_for_task(light, timeout=5.0)
    with pytest.raises(TimeoutError):
        await p.wait_for_task(heavy, timeout=0.1)
    assert await p.get_task_status(heavy) is TaskStatus.PENDING
    memory = (await p.get_performance_metrics())["memory_intensive"]
    assert memory["running"] == 0 and memory["waiting"] == 1
    assert await p.cancel_task(heavy) is True
    assert ran == [light]


async def test_set_limits_rejects_bad_values(make_processor: Factory) -> None:
    p = await make_processor()
    with pytest.raises(InvalidArgumentError, match="max_concurrency"):
        p.set_limits("x", max_concurrency=0)
    with pytest.raises(InvalidArgumentError, match="rate"):
        p.set_limits("x", rate=-1)
    with pytest.raises(InvalidArgumentError, match="per"):
        p.set_limits("x", rate=1, per=0)
    with pytest.raises(InvalidArgumentError, match="rate"):
        p.set_limits("x", rate="5")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_concurrency"):
        p.set_limits("x", max_concurrency=2.5)  # type: ignore[arg-type]
