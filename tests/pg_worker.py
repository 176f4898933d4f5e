"""Processors on a PostgreSQL store, run by tests/test_stores_postgres.py (and killed there).

    python tests/pg_worker.py crash URL ACCEPTED_LOG COUNT SEED
    python tests/pg_worker.py share URL RAN_LOG

``crash``: tests/crash_worker.py's run (same plan, same log) on a PostgreSQL store, with a
fixed owner id, so a restart takes its tasks back at once. ``share``: runs ``share.job``
tasks other processors left in the store, appending each task's id to RAN_LOG as it
starts (unbuffered), until the store holds no unfinished task.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg

from async_processor import NonRetryableError, ProcessingTask

sys.path.insert(0, os.path.dirname(__file__))
from crash_worker import main as crash
from crash_worker import make_processor


def share_job(log_fd: int | None) -> Any:
    async def job(task: ProcessingTask) -> int:
        """Log the id, check the dependencies' results, return 2n."""
        if log_fd is not None:
            os.write(log_fd, f"{task.id}\n".encode())
        await asyncio.sleep(0.03)
        for dep in task.depends_on:
            if task.dependency_results.get(dep) != int(dep[1:]) * 2:
                raise NonRetryableError(f"dependency {dep}'s result is missing")
        n: int = task.payload["n"]
        return n * 2

    return job


async def share(url: str, log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    processor = make_processor(url)
    processor.register_processor("share.job", share_job(fd))
    await processor.start()
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        for _ in range(600):  # a minute at most
            if not await conn.fetchval("SELECT count(*) FROM ap_tasks WHERE ended_at IS NULL"):
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
        await processor.shutdown()
        os.close(fd)


if __name__ == "__main__":
    if sys.argv[1] == "crash":
        asyncio.run(crash(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        asyncio.run(share(sys.argv[2], sys.argv[3]))
