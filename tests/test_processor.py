"""AdvancedAsyncProcessor over a real event loop and real threads, without mocks.

Tasks are held in place with events (an async "gate" processor occupying the only worker,
or a thread waiting on a ``threading.Event``), never with sleeps; short sleeps appear only
inside processors, or where the behaviour under test is itself about time (aging, TTLs,
rate limits, deadlines).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from typing import Any

import pytest
from processor_helpers import (
    BATCH,
    CRITICAL,
    HIGH,
    LOW,
    NORMAL,
    Factory,
    ThreadGate,
    hold_worker,
    named,
    recorder,
    wait_all,
)

from async_processor import (
    AdvancedAsyncProcessor,
    DependencyNotFoundError,
    InvalidArgumentError,
    InvalidTaskError,
    ProcessingTask,
    ProcessingType,
    ProcessorNotRunningError,
    TaskNotFoundError,
    TaskStatus,
    UnknownTaskTypeError,
    create_processor,
    create_task,
)

# --------------------------------------------------------------------------- priority


async def test_equal_priorities_run_in_submission_order_even_if_released_later(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    p.register_processor("prep", lambda task: "prepared")  # a thread task
    gate, _ = await hold_worker(p)
    prep = create_task("prep")
    first = named("first", depends_on=[prep.id])  # submitted first, ready only after prep
    await p.submit_tasks([prep, first])
    second = named("second")  # submitted later, ready at once
    await p.submit_task(second)
    assert (await p.wait_for_task(prep.id, timeout=5.0)).status is TaskStatus.COMPLETED
    assert first.id in await p.task_manager.get_ready_tasks()
    gate.release.set()
    await wait_all(p, [first.id, second.id])
    assert order == ["first", "second"]


async def test_priority_most_urgent_first_and_fifo_among_equals(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1, aging_interval=None)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    plan = [
        ("low-1", LOW),
        ("normal-1", NORMAL),
        ("critical-1", CRITICAL),
        ("high-1", HIGH),
        ("normal-2", NORMAL),
        ("batch-1", BATCH),
        ("critical-2", CRITICAL),
        ("high-2", HIGH),
        ("low-2", LOW),
    ]
    ids = [await p.submit_task(named(name, prio)) for name, prio in plan]
    assert order == []
    gate.release.set()
    await wait_all(p, ids)
    assert order == [
        "critical-1",
        "critical-2",
        "high-1",
        "high-2",
        "normal-1",
        "normal-2",
        "low-1",
        "low-2",
        "batch-1",
    ]


# --------------------------------------------------------------------------- aging


async def test_aging_promotes_long_waiting_batch_but_never_above_critical(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1, aging_interval=0.05)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    ids = [await p.submit_task(named("old-batch", BATCH))]
    await asyncio.sleep(0.3)  # six aging intervals: the BATCH task is worth HIGH by now
    ids.append(await p.submit_task(named("fresh-normal", NORMAL)))
    ids.append(await p.submit_task(named("fresh-critical", CRITICAL)))
    gate.release.set()
    await wait_all(p, ids)
    assert order == ["fresh-critical", "old-batch", "fresh-normal"]


async def test_aging_keeps_older_high_ahead_of_equally_old_batch(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1, aging_interval=0.05)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    ids = [await p.submit_task(named("old-batch", BATCH))]
    ids.append(await p.submit_task(named("old-high", HIGH)))
    await asyncio.sleep(0.3)
    ids.append(await p.submit_task(named("fresh-critical", CRITICAL)))
    ids.append(await p.submit_task(named("fresh-low", LOW)))
    gate.release.set()
    await wait_all(p, ids)
    assert order == ["fresh-critical", "old-high", "old-batch", "fresh-low"]


async def test_without_aging_batch_waits_behind_normal(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1, aging_interval=None)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    ids = [await p.submit_task(named("old-batch", BATCH))]
    await asyncio.sleep(0.1)
    ids.append(await p.submit_task(named("fresh-normal", NORMAL)))
    gate.release.set()
    await wait_all(p, ids)
    assert order == ["fresh-normal", "old-batch"]


# --------------------------------------------------------------------------- inheritance


async def test_priority_inheritance_lifts_low_dependency_of_critical_task(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1, aging_interval=None)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    normal_1 = named("normal-1", NORMAL)
    normal_2 = named("normal-2", NORMAL)
    low = named("low-transcription", LOW)
    reply = named("critical-reply", CRITICAL, depends_on=[low.id])
    ids = [await p.submit_task(t) for t in (normal_1, normal_2, low, reply)]
    gate.release.set()
    await wait_all(p, ids)
    assert order == ["low-transcription", "critical-reply", "normal-1", "normal-2"]


async def test_priority_inheritance_is_transitive_through_a_chain(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1, aging_interval=None)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    first = named("batch-first", BATCH)
    second = named("low-second", LOW, depends_on=[first.id])
    top = named("critical-top", CRITICAL, depends_on=[second.id])
    others = [named(f"normal-{i}", NORMAL) for i in range(3)] + [named("high", HIGH)]
    ids = [await p.submit_task(t) for t in (*others, first, second, top)]
    gate.release.set()
    await wait_all(p, ids)
    assert order == [
        "batch-first",
        "low-second",
        "critical-top",
        "high",
        "normal-0",
        "normal-1",
        "normal-2",
    ]


# --------------------------------------------------------------------------- lifecycle


async def test_submit_before_start_is_refused_with_advice() -> None:
    p = AdvancedAsyncProcessor(max_process_workers=0)
    p.register_processor("rec", recorder([]))
    with pytest.raises(ProcessorNotRunningError, match=r"start\(\)"):
        await p.submit_task(named("early"))
    with pytest.raises(ProcessorNotRunningError):
        await p.submit_tasks([named("early")])
    assert p.running is False and p._running is False
    await p.shutdown()


async def test_submit_after_shutdown_is_refused(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    assert p.running is True and p._running is True
    await p.shutdown()
    assert p.running is False
    with pytest.raises(ProcessorNotRunningError, match="shut down"):
        await p.submit_task(named("late"))
    with pytest.raises(ProcessorNotRunningError, match="shut down"):
        await p.start()


async def test_start_twice_and_shutdown_twice_are_fine(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    await p.start()
    task_id = await p.submit_task(named("x"))
    await p.wait_for_task(task_id, timeout=5.0)
    await p.shutdown()
    await p.shutdown()
    assert p.running is False


async def test_submit_during_shutdown_is_refused_while_running_work_finishes(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1)
    p.register_processor("rec", recorder([]))
    gate, gate_id = await hold_worker(p)
    stopping = asyncio.ensure_future(p.shutdown(timeout=10.0))
    await asyncio.sleep(0)  # let shutdown() begin
    assert p.running is False
    with pytest.raises(ProcessorNotRunningError, match="shutting down"):
        await p.submit_task(named("too-late"))
    gate.release.set()
    await stopping
    assert await p.get_task_status(gate_id) is TaskStatus.COMPLETED


async def test_concurrent_shutdown_calls_all_wait_for_the_end() -> None:
    before = set(threading.enumerate())
    p = AdvancedAsyncProcessor(max_workers=1, max_thread_workers=1, max_process_workers=0)
    await p.start()
    slow = ThreadGate()
    p.register_processor("slow", slow)
    task_id = await p.submit_task(create_task("slow"))
    await slow.started.wait()
    first = asyncio.ensure_future(p.shutdown(timeout=10.0))
    second = asyncio.ensure_future(p.shutdown(timeout=10.0))
    await asyncio.sleep(0)
    assert not second.done()  # the second call waits for the first to finish
    slow.release.set()
    await second
    assert await p.get_task_status(task_id) is TaskStatus.COMPLETED
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []
    await first


async def test_concurrent_start_creates_one_set_of_workers() -> None:
    p = AdvancedAsyncProcessor(max_workers=2, max_thread_workers=1, max_process_workers=0)
    try:
        await asyncio.gather(p.start(), p.start())
        names = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("async-")]
        assert sorted(names) == [
            "async-processor async-0",
            "async-processor async-1",
            "async-processor thread-0",
        ]
    finally:
        await p.shutdown()
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("async-processor")] == []


async def test_create_processor_builds_a_started_processor() -> None:
    p = await create_processor(max_workers=2, max_process_workers=0)
    try:
        assert p.running
        p.register_processor("rec", recorder([]))
        task_id = await p.submit_task(named("x"))
        assert (await p.wait_for_task(task_id, timeout=5.0)).result == "x"
    finally:
        await p.shutdown()


async def test_shutdown_lets_queued_work_finish(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []

    async def step(task: ProcessingTask) -> None:
        await asyncio.sleep(0.01)
        order.append(task.payload["name"])

    p.register_processor("step", step)
    ids = [await p.submit_task(create_task("step", {"name": f"s{i}"})) for i in range(5)]
    await p.shutdown(timeout=10.0)
    assert order == [f"s{i}" for i in range(5)]
    for task_id in ids:
        assert await p.get_task_status(task_id) is TaskStatus.COMPLETED


async def test_shutdown_timeout_cancels_the_rest_and_leaves_nothing_running() -> None:
    before = set(threading.enumerate())
    p = AdvancedAsyncProcessor(max_workers=1, max_thread_workers=1, max_process_workers=0)
    await p.start()
    loop = asyncio.get_running_loop()
    thread_started = asyncio.Event()
    async_started = asyncio.Event()

    def polite(task: ProcessingTask) -> str:
        loop.call_soon_threadsafe(thread_started.set)
        give_up = time.monotonic() + 10.0
        while not task.cancel_requested and time.monotonic() < give_up:
            time.sleep(0.005)
        return "stopped"

    async def forever(task: ProcessingTask) -> None:
        async_started.set()
        await asyncio.Event().wait()

    p.register_processor("polite", polite)
    p.register_processor("forever", forever)
    running_thread = await p.submit_task(create_task("polite"))
    queued_thread = await p.submit_task(create_task("polite"))
    running_async = await p.submit_task(create_task("forever"))
    queued_async = await p.submit_task(create_task("forever"))
    await thread_started.wait()
    await async_started.wait()
    await p.shutdown(timeout=0.2)  # returns although "forever" never would
    for task_id in (running_thread, queued_thread, running_async, queued_async):
        result = await p.get_task_result(task_id)
        assert result is not None
        assert result.status is TaskStatus.CANCELLED
        assert result.error is not None and "shut down" in result.error
    assert not p.task_manager.records
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []
    workers = [t for t in asyncio.all_tasks() if t.get_name().startswith("async-processor")]
    assert workers == []
    metrics = await p.get_performance_metrics()
    assert all(w["status"] == "stopped" for w in metrics["worker_stats"].values())


async def test_shutdown_of_a_never_started_processor() -> None:
    p = AdvancedAsyncProcessor(max_process_workers=0)
    await p.shutdown()
    assert p.running is False
    with pytest.raises(ProcessorNotRunningError):
        await p.submit_task(create_task("x"))


# --------------------------------------------------------------------------- retention


async def test_results_expire_after_result_ttl(make_processor: Factory) -> None:
    p = await make_processor(result_ttl=0.3)
    p.register_processor("rec", recorder([]))
    task_id = await p.submit_task(named("short-lived"))
    assert (await p.wait_for_task(task_id, timeout=5.0)).status is TaskStatus.COMPLETED
    assert await p.get_task_status(task_id) is TaskStatus.COMPLETED
    await asyncio.sleep(0.4)  # the TTL is what is under test
    with pytest.raises(TaskNotFoundError, match="evicted"):
        await p.get_task_status(task_id)
    with pytest.raises(TaskNotFoundError):
        await p.wait_for_task(task_id)
    with pytest.raises(TaskNotFoundError):
        await p.get_task_result(task_id)


async def test_max_results_keeps_only_the_latest(make_processor: Factory) -> None:
    p = await make_processor(max_results=10)
    p.register_processor("rec", recorder([]))
    ids = []
    for i in range(15):
        task_id = await p.submit_task(named(f"r{i}"))
        await p.wait_for_task(task_id, timeout=5.0)
        ids.append(task_id)
    for task_id in ids[:5]:
        with pytest.raises(TaskNotFoundError):
            await p.get_task_status(task_id)
    for task_id in ids[5:]:
        assert await p.get_task_status(task_id) is TaskStatus.COMPLETED
    metrics = await p.get_performance_metrics()
    assert metrics["retained_results"] == 10
    assert metrics["results_evicted"] == 5
    # an evicted id is unknown, so a new task may depend on it no longer
    with pytest.raises(DependencyNotFoundError):
        await p.submit_task(named("late", depends_on=[ids[0]]))


# --------------------------------------------------------------------------- metrics, health


async def test_metrics_after_a_mixed_run(make_processor: Factory) -> None:
    p = await make_processor(max_workers=2)
    calls: dict[str, int] = {}

    async def mixed(task: ProcessingTask) -> str:
        mode: str = task.payload["mode"]
        calls[task.id] = calls.get(task.id, 0) + 1
        if mode == "fail":
            raise ValueError("nope")
        if mode == "slow":
            await asyncio.sleep(5)
        if mode == "flaky" and calls[task.id] == 1:
            raise ValueError("once")
        await asyncio.sleep(0.005)
        return mode

    p.register_processor("mixed", mixed)
    p.register_processor("other", lambda task: "sync")
    tasks = [
        create_task("mixed", {"mode": "ok"}, NORMAL),
        create_task("mixed", {"mode": "ok"}, NORMAL),
        create_task("mixed", {"mode": "flaky"}, NORMAL, max_retries=1),
        create_task("mixed", {"mode": "fail"}, HIGH),
        create_task("mixed", {"mode": "slow"}, LOW, timeout=0.05),
        create_task("other", {}, NORMAL),
    ]
    gate, gate_id = await hold_worker(p)
    cancelled = create_task("mixed", {"mode": "ok"}, BATCH, depends_on=[gate_id])
    await p.submit_task(cancelled)
    await p.cancel_task(cancelled.id)
    gate.release.set()
    await p.submit_tasks(tasks)
    await wait_all(p, [t.id for t in tasks])

    m = await p.get_performance_metrics()
    for key in (
        "tasks_processed",
        "success_rate",
        "average_execution_time",
        "current_throughput",
        "queue_size",
        "running_tasks",
        "worker_stats",
        "uptime_seconds",
        "peak_memory_usage_mb",
        "by_type",
        "by_priority",
        "event_loop_lag",
        "retries",
    ):
        assert key in m, key
    assert m["tasks_processed"] == 8  # 6 + the gate + the cancelled one
    assert m["tasks_by_status"] == {"completed": 5, "failed": 1, "cancelled": 1, "timeout": 1}
    assert m["success_rate"] == pytest.approx(100.0 * 5 / 7)
    assert m["average_execution_time"] > 0
    assert m["current_throughput"] > 0
    assert m["queue_size"] == 0
    assert m["running_tasks"] == 0
    assert m["uptime_seconds"] > 0
    assert m["peak_memory_usage_mb"] > 0
    assert m["retries"] == 1
    assert "profile" not in m

    worker_stats = m["worker_stats"]
    assert {"async-0", "async-1", "thread-0"} <= set(worker_stats)
    for stats in worker_stats.values():
        assert {"tasks_processed", "status", "total_execution_time"} <= set(stats)
        # a worker that has just finished may not have gone back to "idle" yet
        assert stats["status"] in ("idle", "busy")
        assert stats["current_task"] is None
        assert stats["total_execution_time"] >= 0
    # one count per attempt: 2 ok + 2 flaky + fail + slow + gate on the loop, 1 on a thread
    async_runs = sum(s["tasks_processed"] for w, s in worker_stats.items() if w.startswith("a"))
    assert async_runs == 7
    thread_runs = sum(s["tasks_processed"] for w, s in worker_stats.items() if w.startswith("t"))
    assert thread_runs == 1

    mixed_stats = m["by_type"]["mixed"]
    assert mixed_stats["counts"] == {"completed": 3, "failed": 1, "cancelled": 1, "timeout": 1}
    assert mixed_stats["retries"] == 1
    for section in ("queue_wait", "execution_time"):
        pct = mixed_stats[section]
        assert set(pct) == {"p50", "p95", "p99"}
        assert 0 <= pct["p50"] <= pct["p95"] <= pct["p99"]
    assert m["by_type"]["other"]["counts"]["completed"] == 1
    by_priority = m["by_priority"]
    assert by_priority["NORMAL"]["counts"]["completed"] == 4
    assert by_priority["HIGH"]["counts"]["failed"] == 1
    assert by_priority["LOW"]["counts"]["timeout"] == 1
    assert by_priority["BATCH"]["counts"]["cancelled"] == 1
    assert by_priority["CRITICAL"]["counts"]["completed"] == 1
    for stats in by_priority.values():
        assert set(stats["execution_time"]) == {"p50", "p95", "p99"}

    lag = m["event_loop_lag"]
    assert {"current_s", "max_s", "p50", "p95", "p99"} <= set(lag)
    assert lag["current_s"] >= 0 and lag["max_s"] >= 0


async def test_profiling_adds_a_per_type_profile(make_processor: Factory) -> None:
    p = await make_processor(enable_profiling=True)
    p.register_processor("rec", recorder([]))
    first = named("first")
    second = named("second", depends_on=[first.id])
    await p.submit_tasks([first, second])
    await wait_all(p, [first.id, second.id])
    profile = (await p.get_performance_metrics())["profile"]
    assert set(profile["rec"]) == {
        "waiting_on_dependencies_s",
        "queued_s",
        "running_s",
        "retry_backoff_s",
    }
    assert all(v >= 0 for v in profile["rec"].values())


async def test_health_check_healthy(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    await p.wait_for_task(await p.submit_task(named("x")), timeout=5.0)
    health = await p.health_check()
    assert health["status"] == "healthy"
    assert health["reason"] is None
    assert health["metrics"]["tasks_processed"] == 1


async def test_health_check_degraded_on_high_queue(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1, health_max_queue=2)
    p.register_processor("rec", recorder([]))
    gate, _ = await hold_worker(p)
    ids = [await p.submit_task(named(f"q{i}")) for i in range(3)]
    health = await p.health_check()
    assert health["status"] == "degraded"
    assert health["reason"] == "high_queue_size"
    assert health["metrics"]["queue_size"] == 3
    gate.release.set()
    await wait_all(p, ids)
    assert (await p.health_check())["status"] == "healthy"


async def test_health_check_unhealthy_when_stopped(make_processor: Factory) -> None:
    p = await make_processor()
    await p.shutdown()
    health = await p.health_check()
    assert health["status"] == "unhealthy"
    assert health["reason"] == "processor_stopped"
    assert "metrics" in health
    never_started = AdvancedAsyncProcessor(max_process_workers=0)
    assert (await never_started.health_check())["status"] == "unhealthy"


# --------------------------------------------------------------------------- contextvars

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="unset")


async def test_contextvars_are_visible_in_thread_and_async_tasks(make_processor: Factory) -> None:
    p = await make_processor()

    def in_thread(task: ProcessingTask) -> tuple[str, str]:
        return REQUEST_ID.get(), threading.current_thread().name

    async def on_loop(task: ProcessingTask) -> str:
        return REQUEST_ID.get()

    p.register_processor("thread", in_thread)
    p.register_processor("loop", on_loop)
    token = REQUEST_ID.set("req-42")
    try:
        thread_id = await p.submit_task(create_task("thread"))
        loop_id = await p.submit_task(create_task("loop"))
    finally:
        REQUEST_ID.reset(token)
    value, thread_name = (await p.wait_for_task(thread_id, timeout=5.0)).result
    assert value == "req-42"
    assert thread_name != threading.current_thread().name
    assert (await p.wait_for_task(loop_id, timeout=5.0)).result == "req-42"
    # a task submitted without the value set sees the default
    plain = await p.submit_task(create_task("thread"))
    assert (await p.wait_for_task(plain, timeout=5.0)).result[0] == "unset"


async def test_sync_processor_never_blocks_the_loop(make_processor: Factory) -> None:
    p = await make_processor()

    entered, release = threading.Event(), threading.Event()

    def sleepy(task: ProcessingTask) -> str:
        entered.set()
        release.wait(30.0)
        return "slept"

    p.register_processor("sleepy", sleepy)
    task_id = await p.submit_task(create_task("sleepy"))
    assert await asyncio.to_thread(entered.wait, 30.0)
    # the function is blocked inside, and the loop still runs this coroutine
    for _ in range(5):
        await asyncio.sleep(0)
    assert await p.get_task_status(task_id) is TaskStatus.RUNNING
    release.set()
    result = await p.wait_for_task(task_id, timeout=5.0)
    assert result.result == "slept"
    assert result.worker_id == "thread-0"


async def test_sync_processor_returning_a_coroutine_fails_with_advice(
    make_processor: Factory,
) -> None:
    p = await make_processor()

    async def actual(task: ProcessingTask) -> int:
        return 1

    p.register_processor("wrapped", lambda task: actual(task))
    task_id = await p.submit_task(create_task("wrapped"))
    result = await p.wait_for_task(task_id, timeout=5.0)
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and "async def" in result.error


# --------------------------------------------------------------------------- waiting


async def test_wait_for_ended_task_returns_at_once(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    task_id = await p.submit_task(named("x"))
    first = await p.wait_for_task(task_id, timeout=5.0)
    again = await p.wait_for_task(task_id, timeout=0)
    assert again.status is TaskStatus.COMPLETED
    assert again.result == first.result == "x"
    assert again.worker_id == "async-0"
    assert (await p.get_task_result(task_id)) is again


async def test_wait_timeout_raises_and_task_goes_on(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1)
    gate, gate_id = await hold_worker(p)
    with pytest.raises(asyncio.TimeoutError):
        await p.wait_for_task(gate_id, timeout=0.05)
    assert await p.get_task_status(gate_id) is TaskStatus.RUNNING
    assert await p.get_task_result(gate_id) is None
    gate.release.set()
    result = await p.wait_for_task(gate_id, timeout=5.0)
    assert result.status is TaskStatus.COMPLETED and result.result == "gate"


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan")])
async def test_wait_with_negative_timeout_is_refused(make_processor: Factory, bad: float) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    task_id = await p.submit_task(named("x"))
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await p.wait_for_task(task_id, timeout=bad)
    await p.wait_for_task(task_id, timeout=5.0)


async def test_wait_for_unknown_task_raises(make_processor: Factory) -> None:
    p = await make_processor()
    with pytest.raises(TaskNotFoundError):
        await p.wait_for_task("nobody")
    with pytest.raises(TaskNotFoundError):
        await p.get_task_status("nobody")
    with pytest.raises(TaskNotFoundError):
        await p.get_task_result("nobody")


async def test_many_concurrent_waiters_all_get_the_result(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1)
    gate, gate_id = await hold_worker(p)
    waiters = [asyncio.ensure_future(p.wait_for_task(gate_id)) for _ in range(100)]
    timed_out = [asyncio.ensure_future(p.wait_for_task(gate_id, timeout=0.01)) for _ in range(5)]
    outcomes = await asyncio.gather(*timed_out, return_exceptions=True)
    assert all(isinstance(o, TimeoutError) for o in outcomes)
    gate.release.set()
    results = await asyncio.gather(*waiters)
    assert all(r is results[0] for r in results)
    assert results[0].status is TaskStatus.COMPLETED and results[0].result == "gate"


# --------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_workers": 0}, "max_workers"),
        ({"max_workers": 2.5}, "max_workers"),
        ({"max_workers": True}, "max_workers"),
        ({"max_workers": "4"}, "max_workers"),
        ({"max_thread_workers": -1}, "max_thread_workers"),
        ({"max_process_workers": -1}, "max_process_workers"),
        ({"queue_size": 0}, "queue_size"),
        ({"max_results": -1}, "max_results"),
        ({"max_memory_intensive": 0}, "max_memory_intensive"),
        ({"aging_interval": 0}, "aging_interval"),
        ({"aging_interval": -5.0}, "aging_interval"),
        ({"result_ttl": -1}, "result_ttl"),
        ({"overload_policy": "drop"}, "overload_policy"),
        ({"health_max_queue": -1}, "health_max_queue"),
        ({"health_min_success_rate": 101}, "health_min_success_rate"),
        ({"health_min_success_rate": "95"}, "health_min_success_rate"),
        ({"min_free_memory_mb": -1}, "min_free_memory_mb"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=name):
        AdvancedAsyncProcessor(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"result_ttl": "3600"}, "result_ttl"), ({"aging_interval": "10"}, "aging_interval")],
)
def test_constructor_rejects_non_numeric_durations(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=name):
        AdvancedAsyncProcessor(max_process_workers=0, **kwargs)


def test_register_processor_rejects_non_callable_and_bad_type() -> None:
    p = AdvancedAsyncProcessor(max_process_workers=0)
    with pytest.raises(InvalidArgumentError, match="callable"):
        p.register_processor("x", "not a function")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="task_type"):
        p.register_processor("", lambda task: None)
    with pytest.raises(InvalidArgumentError, match="task_type"):
        p.register_processor(42, lambda task: None)  # type: ignore[arg-type]


async def test_unknown_task_type_lists_registered_types(make_processor: Factory) -> None:
    p = await make_processor(builtin_processors=False)
    p.register_processor("alpha", lambda task: 1)
    p.register_processor(ProcessingType.TEXT_ANALYSIS, lambda task: 2)
    task = create_task("gamma")
    with pytest.raises(UnknownTaskTypeError) as info:
        await p.submit_task(task)
    message = str(info.value)
    assert "'gamma'" in message
    assert "alpha" in message and "text_analysis" in message
    assert "register_processor" in message
    with pytest.raises(TaskNotFoundError):
        await p.get_task_status(task.id)
    good = create_task("alpha")
    with pytest.raises(UnknownTaskTypeError):
        await p.submit_tasks([good, create_task("gamma")])
    with pytest.raises(UnknownTaskTypeError, match="ai_response"):
        await p.submit_task(create_task(ProcessingType.AI_RESPONSE))
    with pytest.raises(TaskNotFoundError):
        await p.get_task_status(good.id)  # nothing of a refused batch is kept


async def test_custom_task_needs_a_processor_in_its_payload(make_processor: Factory) -> None:
    p = await make_processor()
    with pytest.raises(InvalidTaskError, match=r"payload\['processor'\]"):
        await p.submit_task(create_task(ProcessingType.CUSTOM, {"x": 1}))
    with pytest.raises(InvalidTaskError, match=r"payload\['processor'\]"):
        await p.submit_task(create_task(ProcessingType.CUSTOM, {"processor": "nope"}))

    async def double(payload: dict[str, Any]) -> int:
        return int(payload["x"]) * 2

    def triple(payload: dict[str, Any]) -> int:
        return int(payload["x"]) * 3

    a = await p.submit_task(create_task(ProcessingType.CUSTOM, {"processor": double, "x": 4}))
    b = await p.submit_task(create_task(ProcessingType.CUSTOM, {"processor": triple, "x": 4}))
    ra, rb = await wait_all(p, [a, b])
    assert (ra.result, rb.result) == (8, 12)
    assert ra.worker_id is not None and ra.worker_id.startswith("async-")
    assert rb.worker_id is not None and rb.worker_id.startswith("thread-")


async def test_submit_rejects_non_task(make_processor: Factory) -> None:
    p = await make_processor()
    with pytest.raises(InvalidTaskError, match="ProcessingTask"):
        await p.submit_task({"task_type": "x"})  # type: ignore[arg-type]


async def test_duplicate_task_id_is_refused(make_processor: Factory) -> None:
    from async_processor import DuplicateTaskError

    p = await make_processor()
    p.register_processor("rec", recorder([]))
    task = named("x")
    await p.submit_task(task)
    with pytest.raises(DuplicateTaskError, match=task.id):
        await p.submit_task(task)
    await p.wait_for_task(task.id, timeout=5.0)
    with pytest.raises(DuplicateTaskError):
        await p.submit_task(task)


async def test_cpu_intensive_task_without_process_pool_is_refused(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_process_workers=0)
    p.register_processor("sync", lambda task: 1)
    with pytest.raises(InvalidTaskError, match="max_process_workers"):
        await p.submit_task(create_task("sync", cpu_intensive=True))


async def test_sync_task_without_thread_pool_is_refused(make_processor: Factory) -> None:
    p = await make_processor(max_thread_workers=0)
    p.register_processor("sync", lambda task: 1)
    with pytest.raises(InvalidTaskError, match="max_thread_workers"):
        await p.submit_task(create_task("sync"))


# --------------------------------------------------------------------------- logging

SECRET = "hunter2-child-home-address-7f3a"


async def test_payload_contents_are_never_logged(
    make_processor: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="async_processor")
    p = await make_processor(max_workers=2)
    calls: dict[str, int] = {}

    async def touchy(task: ProcessingTask) -> str:
        calls[task.id] = calls.get(task.id, 0) + 1
        mode = task.payload["mode"]
        if mode == "retry" and calls[task.id] == 1:
            raise ValueError("transient")
        if mode == "fail":
            raise ValueError("permanent")
        if mode == "slow":
            await asyncio.sleep(5)
        return "done"

    p.register_processor("touchy", touchy)
    tasks = [
        create_task("touchy", {"mode": mode, "secret": SECRET}, tags={"t"}, **extra)
        for mode, extra in (
            ("ok", {}),
            ("retry", {"max_retries": 1}),
            ("fail", {}),
            ("slow", {"timeout": 0.03}),
        )
    ]
    await p.submit_tasks(tasks)
    await wait_all(p, [t.id for t in tasks])
    await p.shutdown()
    assert caplog.records
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)
    text = caplog.text
    for task in tasks:
        assert task.id in text
