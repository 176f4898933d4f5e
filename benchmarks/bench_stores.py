"""Benchmark: throughput and per-task overhead of the task stores.

Run: ``python benchmarks/bench_stores.py [--quick]``

Each store runs the same work, in one process, one after the other: N tasks of an
``async def`` processor that returns at once (so the figures are the scheduler's and the
store's cost, not the work's), with 16 loop workers. Two ways to submit:

* batch: ``submit_tasks`` of 100 tasks at a time (one commit per batch with SQLite);
* single: ``submit_task`` one at a time (one commit per task with SQLite).

Each figure is the median of 3 runs of N tasks, from the first submit until every task
has ended (its result journalled and committed, for SQLite). ``overhead`` is the extra
wall time per task over the memory store. The SQLite files live in a temporary folder on
the same disk as the system's ``/tmp``. The PostgreSQL row uses the server at
``$ASYNC_PROCESSOR_TEST_POSTGRES_URL`` or else a throwaway local cluster (the tests'
``postgres_cluster``, default settings: fsync on), a new database per run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from async_processor import AdvancedAsyncProcessor, ProcessingTask

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "processors"))
from servers import postgres_cluster

STORES = ["memory", "sqlite (synchronous=NORMAL)", "sqlite (synchronous=FULL)", "postgresql"]


async def noop(task: ProcessingTask) -> int:
    return 1


async def fresh_database(server: str, name: str) -> str:
    """A new, empty database on the server; its URL."""
    import asyncpg

    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + "/" + name


async def url(store: str, folder: str, run: int, server: str) -> str:
    if store == "memory":
        return "memory"
    if store == "postgresql":
        return await fresh_database(server, f"ap_bench_{run}")
    sync = "FULL" if "FULL" in store else "NORMAL"
    return f"sqlite:///{folder}/bench-{sync}-{run}.db?synchronous={sync}"


async def one_run(store_url: str, count: int, batch: bool) -> float:
    processor = AdvancedAsyncProcessor(
        max_workers=16,
        max_thread_workers=0,
        max_process_workers=0,
        queue_size=count,
        enable_monitoring=False,
        builtin_processors=False,
        store=store_url,
    )
    processor.register_processor("noop", noop)
    await processor.start()
    tasks = [ProcessingTask("noop", {"n": i, "blob": b"\x00" * 64}) for i in range(count)]
    started = time.perf_counter()
    if batch:
        for i in range(0, count, 100):
            await processor.submit_tasks(tasks[i : i + 100])
    else:
        for task in tasks:
            await processor.submit_task(task)
    for task in tasks:
        await processor.wait_for_task(task.id)
    await processor.shutdown()  # writes the last buffered results
    return time.perf_counter() - started


async def main(quick: bool) -> None:
    count = 2_000 if quick else 20_000
    print(f"{count} tasks a run, median of 3 runs; python {sys.version.split()[0]}")
    print("| store | submit | tasks/s | us/task | overhead us/task |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder, postgres_cluster() as server:
        for batch in (True, False):
            base = 0.0
            for store in STORES:
                times = []
                for run in range(3):
                    times.append(await one_run(await url(store, folder, run, server), count, batch))
                    for name in os.listdir(folder):
                        os.remove(os.path.join(folder, name))
                per_task = statistics.median(times) / count * 1e6
                if store == "memory":
                    base = per_task
                print(
                    f"| {store} | {'batch of 100' if batch else 'single'} | "
                    f"{1e6 / per_task:,.0f} | {per_task:.1f} | {per_task - base:+.1f} |"
                )


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))
