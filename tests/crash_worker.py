"""A processor on a durable store, run by tests/test_stores_crash.py (SQLite) and
tests/pg_worker.py (PostgreSQL), and killed with SIGKILL.

    python tests/crash_worker.py STORE_URL ACCEPTED_LOG COUNT SEED

Submits tasks ``t00000`` .. in batches, with priorities and dependencies drawn from SEED,
and appends the index after each batch to ACCEPTED_LOG once ``submit_tasks`` has returned
(unbuffered, so the log never claims more than was accepted). Run again, it recovers the
store, submits what is left, waits for every task and shuts down.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

from async_processor import (
    AdvancedAsyncProcessor,
    NonRetryableError,
    ProcessingTask,
    TaskPriority,
)

BATCH = 50


def task_id(index: int) -> str:
    return f"t{index:05d}"


def plan(count: int, seed: int) -> list[ProcessingTask]:
    """The same tasks for the same arguments: priorities, a few planned failures, and
    dependencies on up to two of the 200 tasks before."""
    rng = random.Random(seed)
    tasks = []
    for index in range(count):
        depends_on: list[str] = []
        if index >= 10 and rng.random() < 0.3:
            picks = {rng.randrange(max(0, index - 200), index) for _ in range(rng.randint(1, 2))}
            depends_on = [task_id(i) for i in sorted(picks)]
        tasks.append(
            ProcessingTask(
                "crash.double",
                {"n": index, "fail": rng.random() < 0.01},
                rng.choice(list(TaskPriority)),
                depends_on=depends_on,
                id=task_id(index),
            )
        )
    return tasks


async def double(task: ProcessingTask) -> int:
    """Check the dependencies' results arrived, then return 2n (or fail as planned)."""
    await asyncio.sleep(0.002)
    for dep in task.depends_on:
        if task.dependency_results.get(dep) != int(dep[1:]) * 2:
            raise NonRetryableError(f"dependency {dep}'s result is missing")
    if task.payload["fail"]:
        raise NonRetryableError("planned failure")
    n: int = task.payload["n"]
    return n * 2


def make_processor(store: str, max_workers: int = 16) -> AdvancedAsyncProcessor:
    processor = AdvancedAsyncProcessor(
        max_workers=max_workers,
        max_thread_workers=0,
        max_process_workers=0,
        queue_size=100_000,
        enable_monitoring=False,
        builtin_processors=False,
        store=store,
    )
    processor.register_processor("crash.double", double)
    return processor


def logged(log_path: str) -> int:
    """How many tasks the log says were accepted."""
    if not os.path.exists(log_path):
        return 0
    with open(log_path) as log:
        lines = log.read().split()
    return int(lines[-1]) if lines else 0


async def main(store: str, log_path: str, count: int, seed: int) -> None:
    tasks = plan(count, seed)
    processor = make_processor(store)
    await processor.start()
    done = logged(log_path)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        while done < count:
            batch = tasks[done : done + BATCH]
            if batch[0].id not in processor.task_manager:  # else accepted just before a kill
                await processor.submit_tasks(batch)
            done += len(batch)
            os.write(fd, f"{done}\n".encode())
            await asyncio.sleep(0.002)  # let tasks run while submitting, as a service would
    finally:
        os.close(fd)
    print(f"submitted {count}; waiting", flush=True)
    results: list[Any] = await asyncio.gather(*(processor.wait_for_task(task.id) for task in tasks))
    print(f"all {len(results)} ended", flush=True)
    await processor.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
