"""The process lane on the local process pool against the same lane on a Dask cluster.

Run: ``python benchmarks/bench_dask.py [--quick]``

Both run through :class:`AdvancedAsyncProcessor` with two slots: ``max_process_workers=2``
(forkserver processes) and ``cluster=`` a ``distributed.LocalCluster`` with two worker
processes of one thread each, started in this run. Every figure is the median of
``REPEATS`` runs of a batch submitted at once and awaited to the last result.

* cpu: ``N_CPU`` tasks of a pure-Python loop of about 20 ms (calibrated here): throughput
  in tasks/s (the ideal with two slots is 2 / task time).
* tiny: ``N_TINY`` tasks that add one to a number: wall time per task in microseconds,
  the per-task overhead of the lane (two in flight).
* 1 MiB: ``N_BIG`` tasks that each get the same 1 MiB ``bytes`` payload and return its
  length: the process pool copies it through shared memory every time, Dask scatters it
  once and refers to it.

A third row runs the same cluster with four slots (``DaskExecutor(capacity=4)`` passed as
``process_executor``): two tasks wait at Dask behind the two running ones, hiding its
round-trip latency.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

from async_processor import AdvancedAsyncProcessor
from async_processor.executors.dask import DaskExecutor
from async_processor.task import ProcessingTask

REPEATS = 3
LOOP_TARGET = 0.020


def spin(task: ProcessingTask) -> int:
    """A pure-Python CPU loop of ``payload["n"]`` iterations."""
    total = 0
    for i in range(int(task.payload["n"])):
        total += i * i % 7
    return total


def tiny(task: ProcessingTask) -> int:
    return int(task.payload["x"]) + 1


def size(task: ProcessingTask) -> int:
    return len(task.payload["data"])


def calibrate() -> int:
    """Iterations of :func:`spin` that take about ``LOOP_TARGET`` seconds here."""
    n = 100_000
    task = ProcessingTask("spin", {"n": n})
    started = time.perf_counter()
    spin(task)
    return max(1000, int(n * LOOP_TARGET / (time.perf_counter() - started)))


async def batch(processor: AdvancedAsyncProcessor, tasks: list[ProcessingTask]) -> float:
    started = time.perf_counter()
    ids = await processor.submit_tasks(tasks)
    for task_id in ids:
        result = await processor.wait_for_task(task_id, timeout=300)
        assert result.status.value == "completed", result
    return time.perf_counter() - started


async def measure(
    lane: dict[str, Any], n_cpu: int, n_tiny: int, n_big: int, loops: int
) -> dict[str, float]:
    processor = AdvancedAsyncProcessor(builtin_processors=False, queue_size=10_000, **lane)
    for name, fn in (("spin", spin), ("tiny", tiny), ("size", size)):
        processor.register_processor(name, fn)
    await processor.start()
    data = os.urandom(1 << 20)

    def cpu_tasks() -> list[ProcessingTask]:
        return [ProcessingTask("spin", {"n": loops}, cpu_intensive=True) for _ in range(n_cpu)]

    def tiny_tasks() -> list[ProcessingTask]:
        return [ProcessingTask("tiny", {"x": i}, cpu_intensive=True) for i in range(n_tiny)]

    def big_tasks() -> list[ProcessingTask]:
        return [ProcessingTask("size", {"data": data}, cpu_intensive=True) for _ in range(n_big)]

    try:
        await batch(processor, tiny_tasks()[:20])  # warm up the lane
        cpu = [await batch(processor, cpu_tasks()) for _ in range(REPEATS)]
        small = [await batch(processor, tiny_tasks()) for _ in range(REPEATS)]
        big = [await batch(processor, big_tasks()) for _ in range(REPEATS)]
    finally:
        await processor.shutdown()
    return {
        "cpu_tasks_per_s": n_cpu / statistics.median(cpu),
        "tiny_us_per_task": statistics.median(small) / n_tiny * 1e6,
        "big_ms_per_task": statistics.median(big) / n_big * 1e3,
    }


def main() -> None:
    import dask
    import distributed

    quick = "--quick" in sys.argv
    n_cpu, n_tiny, n_big = (20, 100, 20) if quick else (100, 1000, 100)
    loops = calibrate()
    started = time.perf_counter()
    spin(ProcessingTask("spin", {"n": loops}))
    task_ms = (time.perf_counter() - started) * 1e3
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        local_cluster: Any = distributed.LocalCluster  # untyped
        cluster = local_cluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: 8787 may be taken (warns)
            silence_logs=40,
        )
    try:
        rows = {
            "process pool (2 processes)": asyncio.run(
                measure({"max_process_workers": 2}, n_cpu, n_tiny, n_big, loops)
            ),
            "Dask LocalCluster (2 workers x 1 thread)": asyncio.run(
                measure({"cluster": cluster.scheduler_address}, n_cpu, n_tiny, n_big, loops)
            ),
            "same Dask cluster, DaskExecutor(capacity=4)": asyncio.run(
                measure(
                    {"process_executor": DaskExecutor(cluster.scheduler_address, capacity=4)},
                    n_cpu,
                    n_tiny,
                    n_big,
                    loops,
                )
            ),
        }
    finally:
        cluster.close()
    print(f"cpu task: {task_ms:.1f} ms of pure Python here; ideal 2 slots: {2e3 / task_ms:.0f}/s")
    print(f"cpu x{n_cpu}, tiny x{n_tiny}, 1 MiB x{n_big}; median of {REPEATS} runs\n")
    print("| lane | cpu tasks/s | tiny: us per task | same 1 MiB payload: ms per task |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(
            f"| {name} | {row['cpu_tasks_per_s']:.1f} | {row['tiny_us_per_task']:.0f} "
            f"| {row['big_ms_per_task']:.2f} |"
        )


if __name__ == "__main__":
    main()
