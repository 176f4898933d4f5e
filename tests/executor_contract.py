"""The executor conformance suite: what every off-loop executor must do.

A test module subclasses :class:`ExecutorContract` (as ``Test...``) and defines a
``new_executor`` fixture returning a function that builds a fresh, unstarted executor with
two slots. The task functions below live here, at module level, so worker processes (local
or Dask) import them by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import process_functions as pf
import pytest

from async_processor import AdvancedAsyncProcessor, TaskEvent
from async_processor.errors import WorkerCrashedError
from async_processor.executors.base import Executor
from async_processor.lifecycle import TaskStatus
from async_processor.task import ProcessingTask, TaskPriority

NewExecutor = Callable[[], Executor]


def stamp(task: ProcessingTask) -> float:
    """Return when it started, after sleeping ``payload["seconds"]``."""
    started = time.time()
    time.sleep(float(task.payload.get("seconds", 0.0)))
    return started


def square(task: ProcessingTask) -> int:
    return int(task.payload["x"]) ** 2


def sum_dependencies(task: ProcessingTask) -> int:
    return sum(int(value) for value in task.dependency_results.values())


def make_task(**payload: object) -> ProcessingTask:
    return ProcessingTask("custom", dict(payload))


async def wait_idle(executor: Executor, slot: int) -> None:
    await executor.release(slot)
    assert executor.slot_state(slot) == "idle"


class ExecutorContract:
    """Tests every executor passes; subclass with a ``new_executor`` fixture."""

    #: The lane the executor serves in a processor ("thread" or "process").
    lane = "process"

    @pytest.fixture
    async def executor(self, new_executor: NewExecutor) -> AsyncIterator[Executor]:
        ex = new_executor()
        await ex.start()
        try:
            yield ex
        finally:
            await ex.shutdown()

    async def test_result_comes_back(self, executor: Executor) -> None:
        assert executor.capacity == 2
        assert await executor.run(0, pf.add_one, make_task(x=41)) == 42
        assert await executor.run(1, pf.add_one, make_task(x=1)) == 2
        assert executor.slot_state(0) == executor.slot_state(1) == "idle"

    async def test_exception_comes_back_with_its_type(self, executor: Executor) -> None:
        with pytest.raises(ValueError, match="bad input 5"):
            await executor.run(0, pf.fail_value_error, make_task(x=5))
        assert await executor.run(0, pf.add_one, make_task(x=1)) == 2

    async def test_timeout_frees_the_slot(self, executor: Executor) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(executor.run(0, pf.sleep_then_pid, make_task(seconds=1.5)), 0.3)
        await wait_idle(executor, 0)
        assert await executor.run(0, pf.add_one, make_task(x=2)) == 3

    async def test_cancel_stops_waiting_at_once(self, executor: Executor, tmp_path: Path) -> None:
        folder = str(tmp_path)
        running = asyncio.ensure_future(
            executor.run(1, pf.wait_for_release, make_task(folder=folder))
        )
        await asyncio.sleep(0)
        assert executor.slot_state(1) == "busy"
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        # the function waits for "release", which does not exist yet: nobody waited for it
        assert not (tmp_path / "done").exists()
        (tmp_path / "release").touch()  # a thread, or a Dask worker, may now finish it
        await wait_idle(executor, 1)
        assert await executor.run(1, pf.add_one, make_task(x=3)) == 4

    async def test_large_bytes_round_trip(self, executor: Executor) -> None:
        data = os.urandom(1 << 20)
        digest = hashlib.sha256(data).hexdigest()
        assert await executor.run(0, pf.describe_data, make_task(data=data)) == (
            "bytes",
            len(data),
            digest,
        )
        assert await executor.run(1, pf.echo_data, make_task(data=data)) == data

    async def test_priority_order_when_saturated(self, new_executor: NewExecutor) -> None:
        """Through the processor: with every slot busy, HIGH tasks start before LOW ones."""
        executor = new_executor()
        processor = AdvancedAsyncProcessor(
            builtin_processors=False,
            aging_interval=None,
            thread_executor=executor if self.lane == "thread" else None,
            process_executor=executor if self.lane == "process" else None,
            max_process_workers=2 if self.lane == "process" else 0,
        )
        processor.register_processor("stamp", stamp)
        await processor.start()
        busy = asyncio.Event()
        running: set[str] = set()

        def on_event(event: TaskEvent) -> None:
            if event.status is TaskStatus.RUNNING:
                running.add(event.task_id)
                if len(running) == 2:
                    busy.set()

        processor.add_listener(on_event)
        try:
            ids = []
            for priority, seconds in [(TaskPriority.NORMAL, 0.6)] * 2 + [
                (TaskPriority.LOW, 0.1),
                (TaskPriority.LOW, 0.1),
                (TaskPriority.HIGH, 0.1),
                (TaskPriority.HIGH, 0.1),
            ]:
                task = ProcessingTask(
                    "stamp",
                    {"seconds": seconds},
                    priority=priority,
                    cpu_intensive=self.lane == "process",
                )
                ids.append(await processor.submit_task(task))
                if len(ids) == 2:
                    await busy.wait()  # both slots have taken a NORMAL task
            results = [await processor.wait_for_task(i, timeout=30) for i in ids]
        finally:
            await processor.shutdown()
        assert all(r.status is TaskStatus.COMPLETED for r in results), results
        low = [r.result for r in results[2:4]]
        high = [r.result for r in results[4:6]]
        assert max(high) <= min(low)


class WorkerDeathContract:
    """For executors whose workers can die alone (processes, Dask workers; a thread cannot:
    os._exit would end the whole process), used beside :class:`ExecutorContract`."""

    async def test_killed_worker_fails_clearly_and_the_executor_keeps_working(
        self, executor: Executor
    ) -> None:
        task = make_task()
        with pytest.raises(WorkerCrashedError, match=r"died") as info:
            await executor.run(0, pf.exit_3, task)
        assert task.id in str(info.value)
        await wait_idle(executor, 0)
        assert await executor.run(0, pf.add_one, make_task(x=9)) == 10
        assert executor.statistics()["crashes"] == 1
