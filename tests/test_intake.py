"""Intake through a processor: the queue's room, shedding under overload_policy="shed"
(real event loop, no mocks)."""

from __future__ import annotations

import pytest
from processor_helpers import (
    CRITICAL,
    HIGH,
    LOW,
    NORMAL,
    Factory,
    hold_worker,
    named,
    recorder,
    wait_all,
)

from async_processor import (
    QueueFullError,
    TaskNotFoundError,
    TaskStatus,
)

# --------------------------------------------------------------------------- backpressure


async def test_queue_full_raises_helpful_error_and_loses_nothing(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1, queue_size=3)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    ids = [await p.submit_task(named(f"t{i}")) for i in range(3)]
    extra = named("extra")
    with pytest.raises(QueueFullError) as info:
        await p.submit_task(extra)
    message = str(info.value)
    assert "queue_size" in message and "3" in message
    assert "shed" in message  # says what to do
    batch = [named("b1"), named("b2")]
    with pytest.raises(QueueFullError):
        await p.submit_tasks(batch)
    for refused in batch:
        with pytest.raises(TaskNotFoundError):
            await p.get_task_status(refused.id)
    with pytest.raises(TaskNotFoundError):
        await p.get_task_status(extra.id)
    gate.release.set()
    results = await wait_all(p, ids)
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    assert order == ["t0", "t1", "t2"]


async def test_shed_policy_admits_critical_by_shedding_least_urgent(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1, queue_size=3, overload_policy="shed")
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    low_old = named("low-old", LOW)
    normal = named("normal", NORMAL)
    low_new = named("low-new", LOW)
    for t in (low_old, normal, low_new):
        await p.submit_task(t)
    critical = named("critical", CRITICAL)
    await p.submit_task(critical)  # no error: room was made
    shed = await p.wait_for_task(low_new.id, timeout=0)
    assert shed.status is TaskStatus.CANCELLED
    assert shed.error is not None and "overload" in shed.error
    assert await p.get_task_status(low_old.id) is TaskStatus.PENDING
    gate.release.set()
    results = await wait_all(p, [critical.id, normal.id, low_old.id])
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    assert order == ["critical", "normal", "low-old"]


async def test_shed_policy_still_refuses_when_nothing_is_less_urgent(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1, queue_size=2, overload_policy="shed")
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    ids = [await p.submit_task(named(f"high-{i}", HIGH)) for i in range(2)]
    with pytest.raises(QueueFullError, match="queue_size"):
        await p.submit_task(named("another-high", HIGH))
    with pytest.raises(QueueFullError):
        await p.submit_task(named("a-low", LOW))
    gate.release.set()
    results = await wait_all(p, ids)
    assert all(r.status is TaskStatus.COMPLETED for r in results)


async def test_shed_policy_never_sheds_a_dependency_of_the_newcomer(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1, queue_size=2, overload_policy="shed")
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    transcription = named("low-transcription", LOW)
    await p.submit_task(transcription)
    await p.submit_task(named("normal", NORMAL))
    reply = named("critical-reply", CRITICAL, depends_on=[transcription.id])
    await p.submit_task(reply)  # the CRITICAL reply lifts its LOW dependency to CRITICAL
    gate.release.set()
    result = await p.wait_for_task(reply.id, timeout=5.0)
    assert result.status is TaskStatus.COMPLETED, result.error
