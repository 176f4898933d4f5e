"""Waiting for many tasks: ``wait_for_tasks`` in order, ``as_completed`` as they end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingTask,
    TaskNotFoundError,
    TaskStatus,
    create_task,
)


class Gates:
    """Tasks of type "gated" end when the test opens their gate (payload "gate")."""

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = {}

    def __getitem__(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    async def run(self, task: ProcessingTask) -> Any:
        await self[task.payload["gate"]].wait()
        if task.payload.get("fail"):
            raise ValueError(task.payload["gate"])
        return task.payload["gate"]


@pytest.fixture
async def gated() -> Any:
    gates = Gates()
    processor = AdvancedAsyncProcessor(
        max_thread_workers=0,
        max_process_workers=0,
        builtin_processors=False,
        enable_monitoring=False,
        processors={"gated": gates.run},
    )
    async with processor:
        yield processor, gates
        await processor.shutdown(timeout=0.1)  # cancels what a test left waiting


async def submit(processor: AdvancedAsyncProcessor, gate: str, **fields: Any) -> str:
    payload = {"gate": gate, "fail": fields.pop("fail", False)}
    return await processor.submit_task(create_task("gated", payload, max_retries=0, **fields))


async def test_wait_for_tasks_returns_results_in_the_given_order(gated: Any) -> None:
    processor, gates = gated
    ids = [await submit(processor, name) for name in ("a", "b", "c")]
    bad = await submit(processor, "d", fail=True)
    gates["c"].set()
    done_first = await processor.wait_for_task(ids[2])
    waiting = asyncio.create_task(processor.wait_for_tasks([*ids, bad, ids[0]]))
    for name in ("d", "b", "a"):
        gates[name].set()
    results = await waiting
    assert [r.task_id for r in results] == [*ids, bad, ids[0]]
    assert [r.result for r in results] == ["a", "b", "c", None, "a"]
    assert results[2] is done_first  # already ended: the kept result
    assert results[3].status is TaskStatus.FAILED  # whatever the status
    assert await processor.wait_for_tasks([]) == []


async def test_wait_for_tasks_timeout_leaves_the_tasks_running(gated: Any) -> None:
    processor, gates = gated
    first, second = await submit(processor, "x"), await submit(processor, "y")
    gates["x"].set()
    with pytest.raises(asyncio.TimeoutError):
        await processor.wait_for_tasks([first, second], timeout=0.05)
    assert processor.task_manager.records[second].waiters == []  # its waiter taken back
    gates["y"].set()
    results = await processor.wait_for_tasks([first, second])
    assert [r.status for r in results] == [TaskStatus.COMPLETED] * 2


async def test_as_completed_yields_in_the_order_tasks_end(gated: Any) -> None:
    processor, gates = gated
    ids = {name: await submit(processor, name) for name in ("a", "b", "c")}
    gates["b"].set()
    await processor.wait_for_task(ids["b"])
    seen: list[Any] = []
    async for result in processor.as_completed([ids["a"], ids["b"], ids["c"]]):
        seen.append(result.result)
        if result.result == "b":  # already ended: first
            gates["c"].set()
        elif result.result == "c":
            gates["a"].set()
    assert seen == ["b", "c", "a"]


async def test_as_completed_timeout_and_leaving_early(gated: Any) -> None:
    processor, gates = gated
    quick, slow = await submit(processor, "q"), await submit(processor, "s")
    gates["q"].set()
    iterator = processor.as_completed([quick, slow], timeout=0.1)
    assert (await anext(iterator)).task_id == quick
    with pytest.raises(asyncio.TimeoutError):
        await anext(iterator)
    iterator = processor.as_completed([slow, slow])
    gates["s"].set()
    first = await anext(iterator)
    await iterator.aclose()  # stops waiting for the second; nothing is left behind
    assert first.task_id == slow


async def test_bad_ids_are_refused_before_waiting(gated: Any) -> None:
    processor, _ = gated
    task_id = await submit(processor, "z")
    with pytest.raises(TaskNotFoundError):
        await processor.wait_for_tasks([task_id, "nope"])
    assert processor.task_manager.records[task_id].waiters is None  # none was added
    with pytest.raises(InvalidArgumentError, match="single string"):
        await processor.wait_for_tasks(task_id)
    with pytest.raises(InvalidArgumentError, match="must be a string, got 3"):
        await processor.wait_for_tasks([3])
    with pytest.raises(InvalidArgumentError, match="iterable of task ids, got int"):
        await processor.wait_for_tasks(7)
    with pytest.raises(TaskNotFoundError):
        await anext(processor.as_completed(["nope"]))
    with pytest.raises(InvalidArgumentError, match="timeout must be"):
        await processor.wait_for_tasks([task_id], timeout=-1)
