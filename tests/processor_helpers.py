"""What the processor tests share: priorities, a factory type, gates that hold a worker,
recorders. The ``make_processor`` fixture lives in conftest.py.

Tasks are held in place with events (an async "gate" processor occupying the only worker,
or a thread waiting on a ``threading.Event``), never with sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingTask,
    RetryPolicy,
    TaskPriority,
    TaskResult,
    create_task,
)

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)

CRITICAL = TaskPriority.CRITICAL
HIGH = TaskPriority.HIGH
NORMAL = TaskPriority.NORMAL
LOW = TaskPriority.LOW
BATCH = TaskPriority.BATCH


class Factory(Protocol):
    def __call__(self, **kwargs: Any) -> Awaitable[AdvancedAsyncProcessor]: ...


class Gate:
    """An async processor that occupies its worker until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, task: ProcessingTask) -> str:
        self.started.set()
        await self.release.wait()
        return "gate"


async def hold_worker(processor: AdvancedAsyncProcessor) -> tuple[Gate, str]:
    """Occupy the (only) async worker with a gate task; return the gate and its id."""
    gate = Gate()
    processor.register_processor("gate", gate)
    task_id = await processor.submit_task(create_task("gate", priority=CRITICAL))
    await gate.started.wait()
    return gate, task_id


class ThreadGate:
    """A sync processor (thread pool) that blocks until released, then returns "late"."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = asyncio.Event()
        self.release = threading.Event()
        self.returned = threading.Event()
        self.cancel_seen: list[bool] = []

    def __call__(self, task: ProcessingTask) -> str:
        self.loop.call_soon_threadsafe(self.started.set)
        self.release.wait(10.0)
        self.cancel_seen.append(task.cancel_requested)
        self.returned.set()
        return "late"


def recorder(order: list[str]) -> Callable[[ProcessingTask], Awaitable[str]]:
    """An async processor that appends ``payload["name"]`` to ``order`` and returns it."""

    async def run(task: ProcessingTask) -> str:
        name: str = task.payload["name"]
        order.append(name)
        return name

    return run


def named(name: str, priority: TaskPriority = NORMAL, **fields: Any) -> ProcessingTask:
    return create_task("rec", {"name": name}, priority, **fields)


async def wait_all(processor: AdvancedAsyncProcessor, ids: list[str]) -> list[TaskResult]:
    return [await processor.wait_for_task(task_id, timeout=10.0) for task_id in ids]
