"""ThreadExecutor on its own: one thread per slot, abandonment that keeps capacity honest."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from executor_contract import ExecutorContract, NewExecutor

from async_processor import ProcessingTask, create_task
from async_processor.executors.thread import ThreadExecutor

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture
async def executor() -> AsyncIterator[ThreadExecutor]:
    pool = ThreadExecutor(2, thread_name_prefix="test-thread")
    await pool.start()
    yield pool
    await pool.shutdown(timeout=2.0)


class TestThreadExecutorContract(ExecutorContract):
    """The shared executor suite (tests/executor_contract.py), as the process pool and
    Dask run it."""

    lane = "thread"

    @pytest.fixture
    def new_executor(self) -> NewExecutor:
        return lambda: ThreadExecutor(2)


def task(**payload: Any) -> ProcessingTask:
    return create_task("t", payload)


async def test_runs_off_the_loop_thread_and_returns_the_value(executor: ThreadExecutor) -> None:
    def where(t: ProcessingTask) -> tuple[str, int]:
        return threading.current_thread().name, t.payload["x"] * 2

    name, value = await executor.run(1, where, task(x=21))
    assert name == "test-thread-1"
    assert value == 42
    assert executor.slot_state(1) == "idle"


async def test_exception_reaches_the_caller_with_its_type(executor: ThreadExecutor) -> None:
    def fail(t: ProcessingTask) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await executor.run(0, fail, task())


async def test_a_function_returning_a_coroutine_is_refused_with_advice(
    executor: ThreadExecutor,
) -> None:
    async def body() -> int:
        return 1

    def sneaky(t: ProcessingTask) -> Any:
        return body()

    with pytest.raises(TypeError, match="async def"):
        await executor.run(0, sneaky, task())


async def test_callers_contextvars_are_copied_into_the_thread(executor: ThreadExecutor) -> None:
    request_id.set("req-7")
    assert await executor.run(0, lambda t: request_id.get(), task()) == "req-7"


async def test_cancelled_run_abandons_the_slot_until_the_thread_returns(
    executor: ThreadExecutor,
) -> None:
    started = threading.Event()
    release = threading.Event()
    seen: list[bool] = []

    def blocking(t: ProcessingTask) -> str:
        started.set()
        release.wait(5.0)
        seen.append(t.cancel_requested)
        return "late"

    job = task()
    run = asyncio.ensure_future(executor.run(0, blocking, job))
    await asyncio.to_thread(started.wait, 5.0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # telling the function to stop is the processor's business: the executor never
    # changes the task (issue 16)
    assert job.cancel_requested is False
    assert executor.slot_state(0) == "abandoned"
    assert executor.statistics() == {"busy": 1, "abandoned": 1, "abandoned_total": 1}
    freed = asyncio.ensure_future(executor.release(0))
    await asyncio.sleep(0.05)
    assert not freed.done()  # capacity is not given back while the thread still runs
    release.set()
    await asyncio.wait_for(freed, 5.0)
    assert executor.slot_state(0) == "idle"
    assert seen == [False]  # nobody told it here; through a processor it sees True
    assert await executor.run(0, lambda t: "next", task()) == "next"


async def test_shutdown_stops_idle_threads_and_logs_a_stuck_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ThreadExecutor(2, thread_name_prefix="stuck-test")
    await pool.start()
    release = threading.Event()
    started = threading.Event()

    def stuck(t: ProcessingTask) -> None:
        started.set()
        release.wait(10.0)

    run = asyncio.ensure_future(pool.run(0, stuck, task()))
    await asyncio.to_thread(started.wait, 5.0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    with caplog.at_level(logging.WARNING, logger="async_processor"):
        await pool.shutdown(timeout=0.2)
    assert "stuck-test-0" in caplog.text
    assert "stuck-test-1" not in caplog.text
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("stuck-test"):
            thread.join(5.0)
    assert not [t for t in threading.enumerate() if t.name.startswith("stuck-test")]
