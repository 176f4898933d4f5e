"""AdvancedAsyncProcessor with its real process pool (``cpu_intensive=True`` tasks).

Small pools (one or two worker processes); task functions live in ``process_tasks`` so a
forkserver child can import them by name.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import process_tasks as pt
import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    TaskNotFoundError,
    TaskStatus,
    UnsendableTaskError,
    create_task,
)
from async_processor.executors.process import ProcessExecutor


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` disappears within ``within`` seconds.

    A killed child is reaped by its parent (the forkserver) asynchronously, and nothing
    signals this process when that happens, so this polls.
    """
    give_up = time.monotonic() + within
    while pid_alive(pid):
        if time.monotonic() > give_up:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.fixture
async def processor() -> AsyncIterator[AdvancedAsyncProcessor]:
    p = AdvancedAsyncProcessor(max_workers=2, max_thread_workers=1, max_process_workers=1)
    await p.start()
    p.register_processor("pid", pt.get_pid)
    p.register_processor("exit", pt.exit_hard)
    p.register_processor("hang", pt.hang)
    p.register_processor("hang_signalled", pt.hang_signalled)
    p.register_processor("add", pt.add_to_dependencies)
    p.register_processor("tenant", pt.read_tenant)
    try:
        yield p
    finally:
        await p.shutdown(timeout=5.0)


async def process_pid(p: AdvancedAsyncProcessor) -> int:
    """The pid of the (single) worker process, from a task run in it."""
    task_id = await p.submit_task(create_task("pid", cpu_intensive=True))
    result = await p.wait_for_task(task_id, timeout=60.0)
    assert result.status is TaskStatus.COMPLETED, result.error
    pid: int = result.result
    return pid


class StartSignal:
    """A FIFO that a ``hang_signalled`` task writes its process's pid into once it runs.

    The read end is non-blocking and watched by the event loop, so the test learns that
    the function really started in a worker process without polling.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "started.fifo"
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    async def pid(self, within: float = 30.0) -> int:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        done: Callable[[], None] = lambda: None if ready.done() else ready.set_result(None)  # noqa: E731
        loop.add_reader(self._fd, done)
        try:
            async with asyncio.timeout(within):
                await ready
        finally:
            loop.remove_reader(self._fd)
        return int(os.read(self._fd, 64))

    def close(self) -> None:
        os.close(self._fd)


@pytest.fixture
def start_signal(tmp_path: Path) -> Iterator[StartSignal]:
    signal = StartSignal(tmp_path)
    try:
        yield signal
    finally:
        signal.close()


async def test_cpu_intensive_task_runs_in_a_worker_process(
    processor: AdvancedAsyncProcessor,
) -> None:
    task_id = await processor.submit_task(create_task("pid", cpu_intensive=True))
    result = await processor.wait_for_task(task_id, timeout=60.0)
    assert result.status is TaskStatus.COMPLETED
    assert result.result != os.getpid()
    assert result.worker_id is not None and result.worker_id.startswith("process-")
    # the same function without the hint runs on a thread of this process
    thread_id = await processor.submit_task(create_task("pid"))
    thread_result = await processor.wait_for_task(thread_id, timeout=10.0)
    assert thread_result.result == os.getpid()
    assert thread_result.worker_id == "thread-0"
    metrics = await processor.get_performance_metrics()
    assert metrics["worker_stats"]["process-0"]["tasks_processed"] == 1
    assert metrics["worker_stats"]["process-0"]["context"] == "process"


async def test_crashed_worker_fails_its_task_and_the_next_task_works(
    processor: AdvancedAsyncProcessor,
) -> None:
    before = await process_pid(processor)
    crash = await processor.submit_task(create_task("exit", cpu_intensive=True))
    result = await processor.wait_for_task(crash, timeout=30.0)
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert "WorkerCrashedError" in result.error
    assert "exit code 3" in result.error
    after = await process_pid(processor)
    assert after != before
    stats = (await processor.get_performance_metrics())["executors"]["process"]
    assert stats["crashes"] == 1
    assert stats["restarts"] >= 1


async def test_process_task_past_its_timeout_is_killed_and_replaced(
    processor: AdvancedAsyncProcessor, start_signal: StartSignal
) -> None:
    task = create_task(
        "hang_signalled", {"fifo": str(start_signal.path)}, cpu_intensive=True, timeout=1.0
    )
    await processor.submit_task(task)
    victim = await start_signal.pid()
    assert victim != os.getpid()
    result = await processor.wait_for_task(task.id, timeout=30.0)  # it hangs for 60 s
    assert result.status is TaskStatus.TIMEOUT
    assert result.error is not None and "timed out" in result.error
    assert await gone(victim), f"worker process {victim} is still alive after the timeout"
    replacement = await process_pid(processor)
    assert replacement != victim
    stats = (await processor.get_performance_metrics())["executors"]["process"]
    assert stats["restarts"] >= 1
    assert stats["crashes"] == 0


async def test_process_task_cancelled_while_running_is_killed(
    processor: AdvancedAsyncProcessor, start_signal: StartSignal
) -> None:
    task = create_task(
        "hang_signalled", {"fifo": str(start_signal.path)}, cpu_intensive=True, max_retries=2
    )
    await processor.submit_task(task)
    victim = await start_signal.pid()
    assert await processor.cancel_task(task.id) is True
    result = await processor.wait_for_task(task.id, timeout=30.0)  # it hangs for 60 s
    assert result.status is TaskStatus.CANCELLED
    assert result.attempts == 1  # never retried
    assert await gone(victim), f"worker process {victim} is still alive after cancellation"
    replacement = await process_pid(processor)
    assert replacement != victim
    assert (await processor.get_performance_metrics())["executors"]["process"]["restarts"] >= 1


async def test_unpicklable_payload_is_refused_at_submit(
    processor: AdvancedAsyncProcessor,
) -> None:
    task = create_task("pid", {"fine": 1, "lock": threading.Lock()}, cpu_intensive=True)
    with pytest.raises(UnsendableTaskError) as info:
        await processor.submit_task(task)
    message = str(info.value)
    assert "'lock'" in message
    assert task.id in message
    with pytest.raises(TaskNotFoundError):
        await processor.get_task_status(task.id)
    # the same payload is fine for the thread pool
    thread_task = create_task("pid", {"lock": threading.Lock()})
    await processor.submit_task(thread_task)
    assert (await processor.wait_for_task(thread_task.id, timeout=10.0)).result == os.getpid()


async def test_lambda_processor_runs_in_a_process_with_cloudpickle(
    processor: AdvancedAsyncProcessor,
) -> None:
    pytest.importorskip("cloudpickle")
    processor.register_processor("lambda", lambda task: (task.payload["x"] * 2, os.getpid()))
    task_id = await processor.submit_task(create_task("lambda", {"x": 21}, cpu_intensive=True))
    result = await processor.wait_for_task(task_id, timeout=60.0)
    assert result.status is TaskStatus.COMPLETED, result.error
    value, pid = result.result
    assert value == 42
    assert pid != os.getpid()


class _LockedProcessor:
    """A processor that no pickler can send: it holds a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, task: Any) -> int:
        with self.lock:
            return 1


async def test_unpicklable_processor_is_refused_at_submit(
    processor: AdvancedAsyncProcessor,
) -> None:
    processor.register_processor("locked", _LockedProcessor())
    task = create_task("locked", cpu_intensive=True)
    with pytest.raises(UnsendableTaskError) as info:
        await processor.submit_task(task)
    assert "_LockedProcessor" in str(info.value)
    with pytest.raises(TaskNotFoundError):
        await processor.get_task_status(task.id)
    # a thread needs no pickling: the same processor runs there
    thread_task = create_task("locked")
    await processor.submit_task(thread_task)
    assert (await processor.wait_for_task(thread_task.id, timeout=10.0)).result == 1


async def test_dependency_results_reach_a_process_task(
    processor: AdvancedAsyncProcessor,
) -> None:
    async def source(task: Any) -> dict[str, int]:
        return {"v": int(task.payload["v"])}

    processor.register_processor("source", source)
    a = create_task("source", {"v": 5})
    b = create_task("source", {"v": 7})
    total = create_task("add", {"x": 100}, cpu_intensive=True, depends_on=[a.id, b.id])
    await processor.submit_tasks([total, b, a])
    result = await processor.wait_for_task(total.id, timeout=60.0)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.result == 112


async def test_unpicklable_dependency_result_fails_the_process_task_clearly(
    processor: AdvancedAsyncProcessor,
) -> None:
    async def locked(task: Any) -> dict[str, Any]:
        return {"v": threading.Lock()}

    processor.register_processor("locked", locked)
    source = create_task("locked")
    consumer = create_task("add", cpu_intensive=True, depends_on=[source.id])
    await processor.submit_tasks([source, consumer])
    result = await processor.wait_for_task(consumer.id, timeout=30.0)
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert "UnsendableTaskError" in result.error
    assert "dependency_results" in result.error and source.id in result.error
    assert await process_pid(processor) != os.getpid()  # the pool goes on


async def test_contextvars_reach_a_process_task(processor: AdvancedAsyncProcessor) -> None:
    token = pt.TENANT.set("tenant-7")
    try:
        task_id = await processor.submit_task(create_task("tenant", cpu_intensive=True))
    finally:
        pt.TENANT.reset(token)
    result = await processor.wait_for_task(task_id, timeout=60.0)
    assert result.status is TaskStatus.COMPLETED, result.error
    value, pid = result.result
    assert value == "tenant-7"
    assert pid != os.getpid()


async def test_shutdown_leaves_no_worker_process(start_signal: StartSignal) -> None:
    p = AdvancedAsyncProcessor(max_workers=1, max_thread_workers=0, max_process_workers=2)
    await p.start()
    p.register_processor("pid", pt.get_pid)
    p.register_processor("hang_signalled", pt.hang_signalled)
    ids = [await p.submit_task(create_task("pid", cpu_intensive=True)) for _ in range(4)]
    pids = {(await p.wait_for_task(i, timeout=60.0)).result for i in ids}
    hung = create_task("hang_signalled", {"fifo": str(start_signal.path)}, cpu_intensive=True)
    await p.submit_task(hung)
    pids.add(await start_signal.pid())
    await p.shutdown(timeout=0.3)  # the hung task would run 60 s: it was killed
    result = await p.get_task_result(hung.id)
    assert result is not None and result.status is TaskStatus.CANCELLED
    for pid in pids:
        assert await gone(pid), f"worker process {pid} is still alive after shutdown"


class SlowStartingPool(ProcessExecutor):
    """A process pool whose start-up waits for the test: slow on purpose, on any machine."""

    def __init__(self) -> None:
        super().__init__(1)
        self.starting = asyncio.Event()
        self.proceed = asyncio.Event()

    async def start(self) -> None:
        self.starting.set()
        await self.proceed.wait()
        await super().start()


async def test_pool_start_up_does_not_count_against_the_first_task_timeout() -> None:
    timeout = 0.5
    pool = SlowStartingPool()
    p = AdvancedAsyncProcessor(max_workers=1, max_thread_workers=0, process_executor=pool)
    await p.start()
    try:
        p.register_processor("truth", bool)  # a builtin: nothing for the child to import
        task_id = await p.submit_task(create_task("truth", cpu_intensive=True, timeout=timeout))
        await pool.starting.wait()
        # The start-up outlasts the timeout: had it counted, the task would end now.
        await asyncio.sleep(2 * timeout)
        assert await p.get_task_status(task_id) is TaskStatus.RUNNING
        pool.proceed.set()
        result = await p.wait_for_task(task_id, timeout=60.0)
        assert result.status is TaskStatus.COMPLETED, result.error
        assert result.result is True
    finally:
        pool.proceed.set()
        await p.shutdown()
