"""The processor's front-door conveniences of issue 13: ``async with``, ``processors=``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingTask,
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
    processor = AdvancedAsyncProcessor(
        max_thread_workers=0, max_process_workers=0, processors={"text_processing": echo}
    )
    assert processor._processors["text_processing"][0] is echo


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
