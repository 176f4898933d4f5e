"""The processor's front-door conveniences of issue 13: ``async with``, ``processors=``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import process_functions as pf
import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    InvalidTaskError,
    NonRetryableError,
    ProcessingTask,
    RetryPolicy,
    TaskResult,
    TaskStatus,
    UnknownTaskTypeError,
    create_processor,
    create_task,
)


def make(**kwargs: Any) -> AdvancedAsyncProcessor:
    return AdvancedAsyncProcessor(
        max_thread_workers=0,
        max_process_workers=0,
        builtin_processors=False,
        enable_monitoring=False,
        **kwargs,
    )


async def echo(task: ProcessingTask) -> Any:
    return task.payload.get("value")


async def test_async_with_starts_and_shuts_down() -> None:
    processor = make(processors={"echo": echo})
    assert not processor.running
    async with processor as entered:
        assert entered is processor
        assert processor.running
        task_id = await processor.submit_task(create_task("echo", {"value": 3}))
        assert (await processor.wait_for_task(task_id)).result == 3
    assert not processor.running
    assert processor._state.value == "stopped"


async def test_async_with_shuts_down_when_the_block_raises() -> None:
    processor = make()
    with pytest.raises(RuntimeError, match="boom"):
        async with processor:
            raise RuntimeError("boom")
    assert processor._state.value == "stopped"


async def test_async_with_a_started_processor_does_not_start_it_again() -> None:
    processor = await create_processor(
        max_thread_workers=0, max_process_workers=0, builtin_processors=False
    )
    workers = [len(lane.workers) for lane in processor._lane_map.values()]
    async with processor as entered:
        assert entered is processor
        assert [len(lane.workers) for lane in processor._lane_map.values()] == workers
    assert not processor.running


async def test_async_with_await_create_processor() -> None:
    async with await create_processor(
        max_thread_workers=0, max_process_workers=0, processors={"echo": echo}
    ) as processor:
        task_id = await processor.submit_task(create_task("echo", {"value": "hi"}))
        assert (await processor.wait_for_task(task_id)).result == "hi"
    assert not processor.running


async def test_processors_replace_the_builtins() -> None:
    async with AdvancedAsyncProcessor(
        max_thread_workers=0, max_process_workers=0, processors={"text_analysis": echo}
    ) as processor:
        task = create_task("text_analysis", {"value": "mine, not the built-in"})
        result = await processor.wait_for_task(await processor.submit_task(task))
    assert result.result == "mine, not the built-in"


def test_processors_must_be_a_mapping() -> None:
    with pytest.raises(InvalidArgumentError, match=r"processors must be a mapping.*got list"):
        make(processors=[echo])


async def test_processors_are_registered_before_recovery(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'tasks.db'}"
    release = asyncio.Event()

    async def hang(task: ProcessingTask) -> None:
        await release.wait()

    first = make(store=store, processors={"mystery": hang})
    await first.start()
    await first.submit_task(ProcessingTask("mystery", id="m1", payload={"value": 7}))
    await first.shutdown(timeout=0.05)  # cancelled in memory; unfinished in the store
    with pytest.raises(UnknownTaskTypeError, match="cannot recover task m1"):
        await make(store=store).start()
    async with await create_processor(
        max_thread_workers=0, max_process_workers=0, store=store, processors={"mystery": echo}
    ) as second:
        result = await second.wait_for_task("m1", timeout=30)
    assert result.status is TaskStatus.COMPLETED
    assert result.result == 7


# -- error_type and traceback -------------------------------------------------------------


async def fail_with_cause_async(task: ProcessingTask) -> None:
    pf.fail_with_cause(task)


@pytest.mark.parametrize("lane", ["async", "thread", "process"])
async def test_a_failure_keeps_its_type_and_chained_traceback(
    lane: str, caplog: pytest.LogCaptureFixture
) -> None:
    fn = fail_with_cause_async if lane == "async" else pf.fail_with_cause
    processor = AdvancedAsyncProcessor(
        max_thread_workers=1,
        max_process_workers=1,
        builtin_processors=False,
        enable_monitoring=False,
        processors={"parse": fn},
    )
    payload = {"secret": "a child's words"}
    task = create_task("parse", payload, max_retries=0, cpu_intensive=lane == "process")
    with caplog.at_level(logging.DEBUG, logger="async_processor"):
        async with processor:
            result = await processor.wait_for_task(await processor.submit_task(task))
    assert result.status is TaskStatus.FAILED
    assert result.worker_id is not None and result.worker_id.startswith(lane)
    assert result.error == "ValueError: the payload has no text"
    assert result.error_type == "ValueError"
    assert result.traceback is not None
    assert "KeyError: 'text'" in result.traceback  # the cause
    assert "direct cause" in result.traceback
    assert 'task.payload["text"]' in result.traceback  # the line in the processor
    assert result.traceback.rstrip().endswith("ValueError: the payload has no text")
    assert result.to_dict()["error_type"] == "ValueError"
    assert result.to_dict()["traceback"] == result.traceback
    ended = [r for r in caplog.records if task.id in r.getMessage() and "failed" in r.getMessage()]
    assert ended and ended[-1].levelno == logging.WARNING
    assert "KeyError: 'text'" in ended[-1].getMessage()
    assert all("a child's words" not in r.getMessage() for r in caplog.records)


class BadInput(NonRetryableError):
    """A user's error class, named by its module and qualified name."""


async def refuse(task: ProcessingTask) -> None:
    raise BadInput("no audio")


async def test_error_type_is_module_qualified_for_user_classes() -> None:
    async with make(processors={"refuse": refuse}) as processor:
        result = await processor.wait_for_task(
            await processor.submit_task(create_task("refuse", max_retries=3))
        )
    assert result.attempts == 1  # NonRetryableError: not retried
    assert result.error_type == f"{__name__}.BadInput"
    assert result.traceback is not None and "in refuse" in result.traceback


async def test_retried_failure_then_success_keeps_no_error_type() -> None:
    calls = 0

    async def flaky(task: ProcessingTask) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("reset")
        return "ok"

    fast = RetryPolicy(base_delay=0.001, max_delay=0.001)
    async with make(processors={"flaky": flaky}, retry_policy=fast) as processor:
        result = await processor.wait_for_task(
            await processor.submit_task(create_task("flaky", max_retries=1))
        )
    assert (result.status, result.attempts) == (TaskStatus.COMPLETED, 2)
    assert (result.error_type, result.traceback) == (None, None)


async def test_other_endings_have_no_error_type() -> None:
    async def slow(task: ProcessingTask) -> None:
        await asyncio.Event().wait()

    async with make(processors={"slow": slow, "fail": fail_with_cause_async}) as processor:
        timed = await processor.submit_task(create_task("slow", timeout=0.01, max_retries=0))
        failed = await processor.submit_task(create_task("fail", max_retries=0))
        child = await processor.submit_task(create_task("slow", depends_on=[failed]))
        results = [await processor.wait_for_task(i) for i in (timed, failed, child)]
    assert [r.status for r in results] == [
        TaskStatus.TIMEOUT,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ]
    assert [r.error_type for r in results] == [None, "ValueError", None]
    assert results[0].traceback is None and results[2].traceback is None


# -- per-task retry policy ------------------------------------------------------------------


class Failing:
    """Raises the given exceptions in turn, then returns "done"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, task: ProcessingTask) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


FAST = RetryPolicy(base_delay=0.001, max_delay=0.001)


async def run_one(fn: Failing, **fields: Any) -> TaskResult:
    async with make(processors={"work": fn}, retry_policy=FAST) as processor:
        task_id = await processor.submit_task(create_task("work", **fields))
        return await processor.wait_for_task(task_id, timeout=30)


async def test_a_programming_error_is_not_retried_by_default() -> None:
    fn = Failing(KeyError("text"))
    result = await run_one(fn, max_retries=3)
    assert (result.status, result.attempts, fn.calls) == (TaskStatus.FAILED, 1, 1)
    assert result.error_type == "KeyError"


async def test_other_failures_are_retried_by_default() -> None:
    fn = Failing(ConnectionError("reset"), ValueError("odd"))
    result = await run_one(fn, max_retries=3)
    assert (result.status, result.attempts, result.result) == (TaskStatus.COMPLETED, 3, "done")


async def test_per_task_retry_on_retries_only_what_it_names() -> None:
    named = RetryPolicy(base_delay=0.001, max_delay=0.001, retry_on=(ConnectionError, KeyError))
    fn = Failing(KeyError("cache"), ConnectionError("reset"), ValueError("bad"))
    result = await run_one(fn, max_retries=5, retry=named)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 3)  # ValueError: final
    assert result.error_type == "ValueError"


async def test_per_task_retry_replaces_the_processor_policy() -> None:
    fn = Failing(ConnectionError("reset"))
    never = RetryPolicy(base_delay=0.001, max_delay=0.001, retry_on=(TimeoutError,))
    result = await run_one(fn, max_retries=3, retry=never)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 1)


async def test_non_retryable_and_timeouts_under_retry_on() -> None:
    everything = RetryPolicy(base_delay=0.001, max_delay=0.001, retry_on=(BaseException,))
    fn = Failing(NonRetryableError("no"))
    result = await run_one(fn, max_retries=3, retry=everything)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 1)  # always final

    async def slow(task: ProcessingTask) -> None:
        await asyncio.Event().wait()

    only_connection = RetryPolicy(base_delay=0.001, max_delay=0.001, retry_on=(ConnectionError,))
    async with make(processors={"slow": slow}) as processor:
        ids = [
            await processor.submit_task(
                create_task("slow", timeout=0.01, max_retries=1, retry=policy)
            )
            for policy in (only_connection, everything)
        ]
        results = await processor.wait_for_tasks(ids, timeout=30)
    assert [(r.status, r.attempts) for r in results] == [
        (TaskStatus.TIMEOUT, 1),  # a timeout is TimeoutError: not named, not retried
        (TaskStatus.TIMEOUT, 2),
    ]


def test_retry_must_be_a_policy() -> None:
    with pytest.raises(InvalidTaskError, match="retry must be a RetryPolicy"):
        create_task("work", retry=3)


async def test_per_task_retry_survives_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'tasks.db'}"

    async def hang(task: ProcessingTask) -> None:
        await asyncio.Event().wait()

    policy = RetryPolicy(base_delay=0.001, max_delay=0.001, retry_on=(ConnectionError,))
    async with make(store=store, processors={"work": hang}) as first:
        await first.submit_task(create_task("work", id="r1", max_retries=3, retry=policy))
        await first.shutdown(timeout=0.05)
    fn = Failing(ConnectionError("reset"), ConnectionError("again"))
    async with make(store=store, processors={"work": fn}) as second:
        assert second.task_manager.records["r1"].task.retry == policy
        result = await second.wait_for_task("r1", timeout=30)
    assert (result.status, result.result, fn.calls) == (TaskStatus.COMPLETED, "done", 3)


async def test_an_exception_that_cannot_travel_back_keeps_its_class_name() -> None:
    processor = AdvancedAsyncProcessor(
        max_thread_workers=0,
        max_process_workers=1,
        builtin_processors=False,
        enable_monitoring=False,
        processors={"stubborn": pf.fail_stubborn},
    )
    async with processor:
        task = create_task("stubborn", max_retries=0, cpu_intensive=True)
        result = await processor.wait_for_task(await processor.submit_task(task), timeout=60)
    assert result.status is TaskStatus.FAILED
    assert result.error_type == "process_functions.StubbornError"
    assert result.traceback is not None and "in fail_stubborn" in result.traceback
