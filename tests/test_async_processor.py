"""The test file the guide's Testing section names.

    python -m pytest \
        test_async_processor.py::TestAdvancedAsyncProcessor::test_submit_and_process_task -v
    python -m pytest test_async_processor.py::TestPerformance -v
    python -m pytest test_async_processor.py -v

``TestPerformance`` checks behaviour under load (everything completes, counters add up,
priority order holds); it never asserts speed. Speed is measured in ``benchmarks/``.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    DependencyCycleError,
    DependencyNotFoundError,
    DuplicateTaskError,
    InvalidArgumentError,
    InvalidTaskError,
    ProcessingTask,
    ProcessorNotRunningError,
    QueueFullError,
    TaskNotFoundError,
    TaskPriority,
    TaskStatus,
    UnknownTaskTypeError,
    create_processor,
    create_task,
)


async def double(task: ProcessingTask) -> int:
    return int(task.payload["x"]) * 2


async def noop(task: ProcessingTask) -> None:
    return None


class Gate:
    """A processor that blocks until opened, and tells when it has started."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.opened = asyncio.Event()

    async def __call__(self, task: ProcessingTask) -> str:
        self.started.set()
        await self.opened.wait()
        return "opened"


@pytest.fixture
async def processor() -> AsyncIterator[AdvancedAsyncProcessor]:
    proc = await create_processor(max_workers=2, max_thread_workers=2, max_process_workers=0)
    proc.register_processor("double", double)
    proc.register_processor("noop", noop)
    try:
        yield proc
    finally:
        await proc.shutdown()


async def started_gate(proc: AdvancedAsyncProcessor) -> tuple[Gate, str]:
    gate = Gate()
    proc.register_processor("gate", gate)
    task_id = await proc.submit_task(create_task("gate"))
    await asyncio.wait_for(gate.started.wait(), 10.0)
    return gate, task_id


class TestAdvancedAsyncProcessor:
    async def test_submit_and_process_task(self, processor: AdvancedAsyncProcessor) -> None:
        task = create_task("double", {"x": 21}, TaskPriority.HIGH)
        task_id = await processor.submit_task(task)
        assert task_id == task.id
        result = await processor.wait_for_task(task_id, timeout=10.0)
        assert result.task_id == task.id
        assert result.status is TaskStatus.COMPLETED
        assert result.result == 42
        assert result.error is None
        assert result.attempts == 1
        assert result.priority is TaskPriority.HIGH
        assert result.task_type == "double"
        assert result.started_at is not None and result.completed_at is not None
        assert task.created_at <= result.started_at <= result.completed_at
        assert result.execution_time >= 0
        assert result.worker_id in {"async-0", "async-1"}

    async def test_result_to_dict_is_json(self, processor: AdvancedAsyncProcessor) -> None:
        async def audio(task: ProcessingTask) -> dict[str, Any]:
            return {"audio_data": b"\x00\x01", "sample_rate": 16000}

        processor.register_processor("audio", audio)
        task = create_task("audio", priority="low", tags={"b", "a"})
        result = await processor.wait_for_task(await processor.submit_task(task), timeout=10.0)
        data = json.loads(json.dumps(result.to_dict()))
        assert data["task_id"] == task.id
        assert data["status"] == "completed"
        assert data["priority"] == 4
        assert data["tags"] == ["a", "b"]
        assert data["result"] == {"audio_data": {"$bytes": "AAE="}, "sample_rate": 16000}
        assert data["attempts"] == 1 and data["worker_id"].startswith("async-")

    async def test_status_goes_pending_running_completed(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        gate, blocker = await started_gate(processor)
        waiting = await processor.submit_task(create_task("noop", depends_on=[blocker]))
        assert await processor.get_task_status(blocker) is TaskStatus.RUNNING
        assert await processor.get_task_status(waiting) is TaskStatus.PENDING
        gate.opened.set()
        await processor.wait_for_task(waiting, timeout=10.0)
        assert await processor.get_task_status(blocker) is TaskStatus.COMPLETED
        assert await processor.get_task_status(waiting) is TaskStatus.COMPLETED

    async def test_result_is_none_until_the_task_ends(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        gate, blocker = await started_gate(processor)
        assert await processor.get_task_result(blocker) is None
        gate.opened.set()
        await processor.wait_for_task(blocker, timeout=10.0)
        result = await processor.get_task_result(blocker)
        assert result is not None and result.result == "opened"
        # Asking again for an ended task returns the kept result.
        assert await processor.wait_for_task(blocker) is result

    async def test_wait_timeout_raises_and_the_task_goes_on(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        gate, blocker = await started_gate(processor)
        with pytest.raises(asyncio.TimeoutError):
            await processor.wait_for_task(blocker, timeout=0.02)
        assert await processor.get_task_status(blocker) is TaskStatus.RUNNING
        gate.opened.set()
        result = await processor.wait_for_task(blocker, timeout=10.0)
        assert result.status is TaskStatus.COMPLETED

    async def test_wait_timeout_must_be_a_non_negative_number(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        task_id = await processor.submit_task(create_task("noop"))
        for bad in (-1, True, float("nan")):
            with pytest.raises(InvalidArgumentError, match="timeout"):
                await processor.wait_for_task(task_id, timeout=bad)

    async def test_unknown_ids_raise_task_not_found(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        for call in (
            processor.get_task_status,
            processor.get_task_result,
            processor.wait_for_task,
            processor.cancel_task,
        ):
            with pytest.raises(TaskNotFoundError, match=r"'nope'.*never submitted"):
                await call("nope")

    async def test_cancel_pending_running_and_ended(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        _, blocker = await started_gate(processor)
        pending = await processor.submit_task(create_task("noop", depends_on=[blocker]))
        assert await processor.cancel_task(pending) is True
        assert await processor.get_task_status(pending) is TaskStatus.CANCELLED
        assert await processor.cancel_task(blocker) is True
        result = await processor.get_task_result(blocker)
        assert result is not None and result.status is TaskStatus.CANCELLED
        assert result.attempts == 1
        assert await processor.cancel_task(blocker) is False
        done = await processor.submit_task(create_task("noop"))
        await processor.wait_for_task(done, timeout=10.0)
        assert await processor.cancel_task(done) is False
        assert await processor.get_task_status(done) is TaskStatus.COMPLETED

    async def test_cancelled_thread_task_ends_at_once_and_sees_cancel_requested(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        entered = threading.Event()
        noticed = threading.Event()

        def polls(task: ProcessingTask) -> str:
            entered.set()
            for _ in range(1000):
                if task.cancel_requested:
                    noticed.set()
                    return "stopped early"
                time.sleep(0.005)
            return "ran to the end"

        processor.register_processor("polls", polls)
        task_id = await processor.submit_task(create_task("polls"))
        await asyncio.to_thread(entered.wait, 10.0)
        assert await processor.cancel_task(task_id) is True
        result = await processor.wait_for_task(task_id, timeout=1.0)
        assert result.status is TaskStatus.CANCELLED
        assert result.result is None  # the late result is discarded
        assert await asyncio.to_thread(noticed.wait, 10.0)

    async def test_failed_dependency_cancels_dependents_unless_allow_failure(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        async def broken(task: ProcessingTask) -> None:
            raise ValueError("no audio")

        async def report(task: ProcessingTask) -> dict[str, Any]:
            return dict(task.dependency_results)

        processor.register_processor("broken", broken)
        processor.register_processor("report", report)
        bad = create_task("broken")
        strict = create_task("report", depends_on=[bad.id])
        tolerant = create_task("report", depends_on=[bad.id], allow_failure=True)
        await processor.submit_tasks([bad, strict, tolerant])
        strict_result = await processor.wait_for_task(strict.id, timeout=10.0)
        tolerant_result = await processor.wait_for_task(tolerant.id, timeout=10.0)
        assert strict_result.status is TaskStatus.CANCELLED
        assert strict_result.error == f"dependency {bad.id} ended failed: ValueError: no audio"
        assert tolerant_result.status is TaskStatus.COMPLETED
        seen = tolerant_result.result[bad.id]
        assert seen.status is TaskStatus.FAILED and seen.error == "ValueError: no audio"

    async def test_priority_inheritance_lifts_a_waiting_dependency(self) -> None:
        proc = await create_processor(max_workers=1, max_process_workers=0, aging_interval=None)
        order: list[str] = []

        async def record(task: ProcessingTask) -> None:
            order.append(task.payload["name"])

        proc.register_processor("record", record)
        try:
            gate, _ = await started_gate(proc)
            normal = [
                await proc.submit_task(create_task("record", {"name": name}, TaskPriority.NORMAL))
                for name in ("n1", "n2")
            ]
            low = create_task("record", {"name": "transcribe"}, TaskPriority.LOW)
            await proc.submit_task(low)
            reply = create_task(
                "record", {"name": "reply"}, TaskPriority.CRITICAL, depends_on=[low.id]
            )
            await proc.submit_task(reply)
            gate.opened.set()
            for task_id in [reply.id, *normal]:
                await proc.wait_for_task(task_id, timeout=10.0)
        finally:
            await proc.shutdown()
        assert order == ["transcribe", "reply", "n1", "n2"]

    async def test_deadline_expires_in_the_queue_with_dependents(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        gate, blocker = await started_gate(processor)
        expiring = create_task("noop", depends_on=[blocker], deadline=time.time() + 0.05)
        await processor.submit_task(expiring)
        dependent = await processor.submit_task(create_task("noop", depends_on=[expiring.id]))
        first = await processor.wait_for_task(expiring.id, timeout=10.0)
        second = await processor.wait_for_task(dependent, timeout=10.0)
        assert first.status is TaskStatus.TIMEOUT
        assert first.error is not None and "expired in the queue" in first.error
        assert first.attempts == 0
        assert second.status is TaskStatus.TIMEOUT
        gate.opened.set()

    async def test_shutdown_refuses_new_submits(self) -> None:
        proc = AdvancedAsyncProcessor(max_workers=1, max_process_workers=0)
        proc.register_processor("noop", noop)
        with pytest.raises(ProcessorNotRunningError, match="has not been started"):
            await proc.submit_task(create_task("noop"))
        await proc.start()
        await proc.start()  # starting a running processor does nothing
        assert proc.running and proc._running
        await proc.shutdown()
        assert not proc.running and not proc._running
        with pytest.raises(ProcessorNotRunningError, match="was shut down"):
            await proc.submit_task(create_task("noop"))
        with pytest.raises(ProcessorNotRunningError, match="was shut down"):
            await proc.submit_tasks([create_task("noop")])
        with pytest.raises(ProcessorNotRunningError):
            await proc.start()
        await proc.shutdown()  # twice is harmless

    async def test_shutdown_lets_queued_work_finish_then_cancels_the_rest(self) -> None:
        proc = await create_processor(max_workers=1, max_process_workers=0)
        proc.register_processor("noop", noop)
        gate = Gate()
        proc.register_processor("gate", gate)
        queued = [await proc.submit_task(create_task("noop")) for _ in range(3)]
        stuck = await proc.submit_task(create_task("gate"))
        await proc.shutdown(timeout=0.2)
        statuses = [await proc.get_task_status(i) for i in queued]
        assert statuses == [TaskStatus.COMPLETED] * 3
        result = await proc.get_task_result(stuck)
        assert result is not None and result.status is TaskStatus.CANCELLED
        assert result.error is not None and "shut down" in result.error
        metrics = await proc.get_performance_metrics()
        assert {s["status"] for s in metrics["worker_stats"].values()} == {"stopped"}

    async def test_a_second_shutdown_waits_for_the_first(self) -> None:
        # Regression: a second call returned at once while the first was still stopping.
        proc = await create_processor(max_workers=1, max_process_workers=0)

        async def slow(task: ProcessingTask) -> str:
            await asyncio.sleep(0.2)
            return "done"

        proc.register_processor("slow", slow)
        task_id = await proc.submit_task(create_task("slow"))
        await asyncio.sleep(0.01)
        first = asyncio.create_task(proc.shutdown())
        await asyncio.sleep(0)
        try:
            await proc.shutdown()  # e.g. the guide's `finally: await processor.shutdown()`
            # After shutdown() returns, nothing of the processor runs any more.
            assert (await proc.get_task_status(task_id)).is_terminal
        finally:
            await first

    async def test_refusals_keep_nothing(self, processor: AdvancedAsyncProcessor) -> None:
        task = create_task("noop")
        await processor.submit_task(task)
        with pytest.raises(DuplicateTaskError, match=task.id):
            await processor.submit_task(task)
        with pytest.raises(UnknownTaskTypeError, match=r"'mystery'.*register_processor"):
            await processor.submit_task(create_task("mystery"))
        with pytest.raises(InvalidTaskError, match="ProcessingTask"):
            await processor.submit_task({"task_type": "noop"})  # type: ignore[arg-type]
        a = create_task("noop")
        b = create_task("noop", depends_on=[a.id])
        a.depends_on = [b.id]
        fine = create_task("noop")
        with pytest.raises(DependencyCycleError):
            await processor.submit_tasks([fine, a, b])
        with pytest.raises(DependencyNotFoundError, match="'ghost'"):
            await processor.submit_tasks(
                [create_task("noop"), create_task("noop", depends_on=["ghost"])]
            )
        for refused in (fine, a, b):
            with pytest.raises(TaskNotFoundError):
                await processor.get_task_status(refused.id)

    async def test_cpu_task_without_a_process_pool_is_refused(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        def crunch(task: ProcessingTask) -> int:
            return 1

        processor.register_processor("crunch", crunch)
        with pytest.raises(InvalidTaskError, match="max_process_workers=0"):
            await processor.submit_task(create_task("crunch", cpu_intensive=True))

    async def test_submit_tasks_accepts_a_batch_in_any_order(
        self, processor: AdvancedAsyncProcessor
    ) -> None:
        first = create_task("double", {"x": 1})
        second = create_task("double", {"x": 2}, depends_on=[first.id])
        third = create_task("double", {"x": 3}, depends_on=[second.id, first.id])
        ids = await processor.submit_tasks([third, second, first])
        assert ids == [third.id, second.id, first.id]
        results = [await processor.wait_for_task(i, timeout=10.0) for i in ids]
        assert [r.result for r in results] == [6, 4, 2]
        assert results[0].started_at is not None and results[1].completed_at is not None
        assert results[1].completed_at <= results[0].started_at

    async def test_queue_full_is_refused(self) -> None:
        proc = await create_processor(max_workers=1, queue_size=3, max_process_workers=0)
        proc.register_processor("noop", noop)
        try:
            _, blocker = await started_gate(proc)
            for _ in range(3):
                await proc.submit_task(create_task("noop", depends_on=[blocker]))
            with pytest.raises(QueueFullError, match="queue_size is 3"):
                await proc.submit_task(create_task("noop"))
            with pytest.raises(QueueFullError):
                await proc.submit_tasks([create_task("noop")])
        finally:
            await proc.shutdown(timeout=0.1)

    async def test_evicted_results_are_unknown(self) -> None:
        proc = await create_processor(max_workers=1, max_results=2, max_process_workers=0)
        proc.register_processor("noop", noop)
        try:
            ids = [await proc.submit_task(create_task("noop")) for _ in range(3)]
            for task_id in ids:
                await proc.wait_for_task(task_id, timeout=10.0)
            with pytest.raises(TaskNotFoundError, match="evicted"):
                await proc.get_task_status(ids[0])
            assert await proc.get_task_status(ids[2]) is TaskStatus.COMPLETED
            metrics = await proc.get_performance_metrics()
            assert metrics["results_evicted"] == 1
            assert metrics["retained_results"] == 2
            with pytest.raises(DependencyNotFoundError):
                await proc.submit_task(create_task("noop", depends_on=[ids[0]]))
        finally:
            await proc.shutdown()

    async def test_dependency_past_its_ttl_is_refused_atomically(self) -> None:
        # Regression: TaskNotFoundError mid-batch, with the batch's first tasks already kept.
        proc = await create_processor(max_workers=1, max_process_workers=0, result_ttl=0.05)
        proc.register_processor("noop", noop)
        try:
            old = await proc.submit_task(create_task("noop"))
            await proc.wait_for_task(old, timeout=10.0)
            await asyncio.sleep(0.1)  # past its TTL; nothing has evicted it yet
            fresh = create_task("noop")
            late = create_task("noop", depends_on=[old])
            with pytest.raises(DependencyNotFoundError):
                await proc.submit_tasks([fresh, late])
            with pytest.raises(TaskNotFoundError):
                await proc.get_task_status(fresh.id)  # nothing of the batch is kept
        finally:
            await proc.shutdown()


class TestPerformance:
    async def test_ten_thousand_noop_tasks_all_complete(self) -> None:
        n = 10_000
        proc = await create_processor(max_workers=8, queue_size=n, max_process_workers=0)
        proc.register_processor("noop", noop)
        try:
            ids = [await proc.submit_task(create_task("noop")) for _ in range(n)]
            results = [await proc.wait_for_task(i, timeout=60.0) for i in ids]
            metrics = await proc.get_performance_metrics()
        finally:
            await proc.shutdown()
        assert all(r.status is TaskStatus.COMPLETED for r in results)
        assert len({r.task_id for r in results}) == n
        assert metrics["tasks_processed"] == n
        assert metrics["tasks_by_status"]["completed"] == n
        assert metrics["success_rate"] == 100.0
        assert metrics["queue_size"] == 0 and metrics["running_tasks"] == 0
        assert sum(s["tasks_processed"] for s in metrics["worker_stats"].values()) == n
        assert metrics["by_type"]["noop"]["counts"]["completed"] == n
        assert metrics["current_throughput"] > 0

    async def test_thousand_thread_tasks_all_complete(self) -> None:
        n = 1000
        proc = await create_processor(max_workers=1, max_thread_workers=4, max_process_workers=0)

        def square(task: ProcessingTask) -> int:
            return int(task.payload["x"]) ** 2

        proc.register_processor("square", square)
        try:
            ids = await proc.submit_tasks(create_task("square", {"x": i}) for i in range(n))
            results = [await proc.wait_for_task(i, timeout=60.0) for i in ids]
            metrics = await proc.get_performance_metrics()
        finally:
            await proc.shutdown()
        assert [r.result for r in results] == [i * i for i in range(n)]
        assert {r.worker_id.split("-")[0] for r in results if r.worker_id} == {"thread"}
        assert metrics["tasks_processed"] == n

    async def test_priority_order_under_load(self) -> None:
        proc = await create_processor(
            max_workers=1, queue_size=2000, max_process_workers=0, aging_interval=None
        )
        order: list[tuple[int, int]] = []

        async def record(task: ProcessingTask) -> None:
            order.append((task.priority.value, task.payload["seq"]))

        proc.register_processor("record", record)
        rng = random.Random(7)
        priorities = [rng.choice(list(TaskPriority)) for _ in range(1500)]
        try:
            gate, _ = await started_gate(proc)
            ids = [
                await proc.submit_task(create_task("record", {"seq": seq}, priority))
                for seq, priority in enumerate(priorities)
            ]
            gate.opened.set()
            for task_id in ids:
                await proc.wait_for_task(task_id, timeout=60.0)
        finally:
            await proc.shutdown()
        # Most urgent first; equal priorities in submission order.
        assert order == sorted((p.value, seq) for seq, p in enumerate(priorities))

    async def test_dependency_chains_under_load(self) -> None:
        proc = await create_processor(max_workers=8, queue_size=5000, max_process_workers=0)

        async def add_up(task: ProcessingTask) -> int:
            return int(task.payload["x"]) + int(sum(task.dependency_results.values()))

        proc.register_processor("add", add_up)
        tasks: list[ProcessingTask] = []
        for chain in range(100):
            previous: ProcessingTask | None = None
            for _ in range(20):
                deps = [previous.id] if previous else []
                previous = create_task("add", {"x": chain}, depends_on=deps)
                tasks.append(previous)
        random.Random(3).shuffle(tasks)
        try:
            await proc.submit_tasks(tasks)
            results = {t.id: await proc.wait_for_task(t.id, timeout=60.0) for t in tasks}
        finally:
            await proc.shutdown()
        ends = [r.result for r in results.values() if r.status is TaskStatus.COMPLETED]
        assert len(ends) == 2000
        # Each link adds its chain number to the previous link's total: the last is 20 * chain.
        assert sorted(ends)[-1] == 20 * 99
        assert sum(ends) == sum(chain * k for chain in range(100) for k in range(1, 21))
