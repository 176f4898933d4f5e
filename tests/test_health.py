"""health.py and health_check(): every reason, on a real processor (and a real store)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from processor_helpers import Factory, ThreadGate

from async_processor import AdvancedAsyncProcessor, ProcessingTask, create_task
from async_processor.errors import InvalidArgumentError
from async_processor.executors.thread import ThreadExecutor
from async_processor.health import HealthLimits, Observed, judge
from async_processor.lifecycle import TaskStatus
from async_processor.monitor import PerformanceMonitor
from async_processor.stores.sqlite import SqliteStore


async def fail(task: ProcessingTask) -> None:
    raise ValueError("the model file is missing")


async def succeed(task: ProcessingTask) -> str:
    return "ok"


async def run(processor: object, task_type: str, n: int) -> None:
    from async_processor import AdvancedAsyncProcessor

    assert isinstance(processor, AdvancedAsyncProcessor)
    for _ in range(n):
        await processor.wait_for_task(await processor.submit_task(create_task(task_type)), 5.0)


async def test_low_success_rate_needs_enough_recent_outcomes(make_processor: Factory) -> None:
    p = await make_processor(health_min_tasks=4, health_min_success_rate=90.0)
    p.register_processor("fail", fail)
    p.register_processor("ok", succeed)
    await run(p, "ok", 1)
    await run(p, "fail", 1)
    health = await p.health_check()
    assert (health["status"], health["reasons"]) == ("healthy", [])  # 2 outcomes: too few
    assert health["metrics"]["health"]["recent"] == {
        "window_s": 300.0,
        "completed": 1,
        "failed": 1,
        "success_rate": 50.0,
    }
    await run(p, "fail", 2)
    health = await p.health_check()
    assert (health["status"], health["reason"]) == ("degraded", "low_success_rate")
    assert (
        "25.0% of the last 4 outcomes" in health["metrics"]["health"]["details"]["low_success_rate"]
    )


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    monitor = PerformanceMonitor()
    monitor.recent_window = 60.0
    pair = monitor.breakdowns("x", "NORMAL")
    monitor.task_ended(pair, TaskStatus.FAILED, 0.1)
    monitor.task_ended(pair, TaskStatus.CANCELLED, None)  # neither success nor failure
    assert monitor.recent_outcomes() == (0, 1)
    now = int(time.monotonic())
    monitor._second = now - 61  # as if that failure had ended 61 s ago
    monitor.task_ended(pair, TaskStatus.COMPLETED, 0.1)
    assert monitor.recent_outcomes() == (1, 0)
    assert monitor.success_rate == 50.0  # the all-time rate still counts it


async def test_event_loop_lag(make_processor: Factory) -> None:
    p = await make_processor(health_max_loop_lag=0.2)
    p.monitor.record_loop_lag(0.5)  # what the probe records after a 0.5 s stall
    health = await p.health_check()
    assert (health["status"], health["reasons"]) == ("degraded", ["event_loop_lag"])
    p.monitor.record_loop_lag(0.001)
    assert (await p.health_check())["status"] == "healthy"


async def test_a_closed_store_is_unhealthy(make_processor: Factory, tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "tasks.db"))
    p = await make_processor(store=store)
    assert (await p.health_check())["status"] == "healthy"
    store.close()
    health = await p.health_check()
    assert (health["status"], health["reason"]) == ("unhealthy", "store_unavailable")
    assert "is not open" in health["metrics"]["health"]["details"]["store_unavailable"]


async def test_abandoned_threads_and_a_pool_without_a_usable_slot(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_thread_workers=1)
    gate = ThreadGate()
    p.register_processor("stuck", gate)
    task = create_task("stuck", timeout=0.05, max_retries=0)
    result = await p.wait_for_task(await p.submit_task(task), 5.0)
    assert result.status is TaskStatus.TIMEOUT  # its thread still runs it
    health = await p.health_check()
    assert health["status"] == "unhealthy"
    assert health["reasons"] == ["pool_unavailable", "abandoned_threads"]
    assert "thread lane" in health["metrics"]["health"]["details"]["pool_unavailable"]
    gate.release.set()
    await asyncio.to_thread(gate.returned.wait, 5.0)
    for _ in range(100):  # the worker takes its slot back within a few loop iterations
        if (await p.health_check())["status"] == "healthy":
            break
        await asyncio.sleep(0.01)
    assert (await p.health_check())["reasons"] == []


class _UnstartableExecutor(ThreadExecutor):
    """A pool whose start fails, as when the system refuses new threads."""

    async def start(self) -> None:
        raise RuntimeError("can't start new thread")


async def test_a_pool_that_failed_to_start(make_processor: Factory) -> None:
    p = await make_processor(thread_executor=_UnstartableExecutor(1))
    p.register_processor("sync", lambda task: "never")
    result = await p.wait_for_task(await p.submit_task(create_task("sync", max_retries=0)), 5.0)
    assert result.status is TaskStatus.FAILED
    health = await p.health_check()
    assert (health["status"], health["reason"]) == ("unhealthy", "pool_failed")
    assert "can't start new thread" in health["metrics"]["health"]["details"]["pool_failed"]


async def test_a_worker_that_died(make_processor: Factory) -> None:
    p = await make_processor(max_workers=2)
    handle = p._lanes.lanes["async"].workers[0].handle  # as if a bug had killed it
    assert handle is not None
    handle.cancel()
    await asyncio.gather(handle, return_exceptions=True)
    health = await p.health_check()
    assert (health["status"], health["reasons"]) == ("unhealthy", ["worker_died"])


def test_the_worst_reason_comes_first() -> None:
    metrics = {"queue_size": 5, "worker_stats": {}, "event_loop_lag": {"current_s": 0.0}}
    observed = Observed(True, (0, 0), [], "the database does not answer")
    health = judge(metrics, observed, HealthLimits(max_queue=1))
    assert health["reasons"] == ["store_unavailable", "high_queue_size"]
    assert health["status"] == "unhealthy"
    assert health["metrics"]["health"]["details"]["store_unavailable"] == (
        "the database does not answer"
    )
    assert judge(metrics, observed, HealthLimits(max_queue=10))["reasons"] == ["store_unavailable"]


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"health_window": 0}, "health_window"),
        ({"health_window": "300"}, "health_window"),
        ({"health_min_tasks": 0}, "health_min_tasks"),
        ({"health_max_loop_lag": -1.0}, "health_max_loop_lag"),
    ],
)
def test_bad_health_arguments_are_refused(arguments: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=name):
        AdvancedAsyncProcessor(max_process_workers=0, **arguments)


async def test_after_shutdown_only_the_stop_is_reported(make_processor: Factory) -> None:
    p = await make_processor(max_thread_workers=1)
    await p.shutdown()
    health = await p.health_check()
    assert (health["status"], health["reasons"]) == ("unhealthy", ["processor_stopped"])
