"""Micro benchmark: ProcessExecutor against a bare ``concurrent.futures.ProcessPoolExecutor``.

Run: ``python benchmarks/bench_process_pool.py [--quick]``

Both pools have 2 worker processes started with ``forkserver``; every figure is the median
of several runs, in microseconds per task.

* tiny, 2 streams: ProcessExecutor with both slots kept busy by two concurrent streams of
  sequential ``run()`` calls (how the scheduler drives it), against ProcessPoolExecutor
  submit-all-then-results (its best case: the call queue is batched and prefetched).
* tiny, sequential: one task at a time, submit -> result, for each.
* 1 MiB, sequential: one 1 MiB ``bytes`` payload round trip at a time; the function
  returns ``len(data)``. ProcessExecutor moves it through its slot's reused shared-memory
  segment, ProcessPoolExecutor pickles it through its pipe.
* 1 MiB, 2 streams: the same payload with both workers busy (ProcessPoolExecutor:
  submit all, then results).

A second table isolates the shared-memory path: the same 1 MiB sequential round trip
through ProcessExecutor with shared memory, and with it switched off (a huge
``shm_threshold``, so the payload is pickled through the pipe like any other pool does).

On a 2-vCPU VM the 1 MiB figures are bimodal from one process pair to the next (which
vCPUs the parent and the child land on): expect roughly 150 or 280 us for ours.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor

from async_processor.executors.process import ProcessExecutor
from async_processor.task import ProcessingTask

WORKERS = 2


def tiny_task(task: ProcessingTask) -> int:
    return int(task.payload["x"]) + 1


def tiny_raw(x: int) -> int:
    return x + 1


def payload_len(task: ProcessingTask) -> int:
    return len(task.payload["data"])


def payload_len_raw(data: bytes) -> int:
    return len(data)


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def bench_executor(
    n_tiny: int, n_big: int, repeats: int, shm_threshold: int = 64 * 1024
) -> dict[str, float]:
    ex = ProcessExecutor(WORKERS, shm_threshold=shm_threshold)
    await ex.start()
    data = os.urandom(1 << 20)
    big = ProcessingTask("custom", {"data": data})
    results: dict[str, list[float]] = {}

    async def timed(key: str, n: int, body: Callable[[], Awaitable[None]]) -> None:
        started = time.perf_counter()
        await body()
        results.setdefault(key, []).append((time.perf_counter() - started) / n)

    async def tiny_stream(slot: int, count: int) -> None:
        for i in range(count):
            await ex.run(slot, tiny_task, ProcessingTask("custom", {"x": i}))

    async def big_stream(slot: int, count: int) -> None:
        for _ in range(count):
            await ex.run(slot, payload_len, big)

    async def tiny_two() -> None:
        await asyncio.gather(*(tiny_stream(s, n_tiny // WORKERS) for s in range(WORKERS)))

    async def tiny_seq() -> None:
        await tiny_stream(0, n_tiny // 2)

    async def big_seq() -> None:
        await big_stream(0, n_big)

    async def big_two() -> None:
        await asyncio.gather(*(big_stream(s, n_big // WORKERS) for s in range(WORKERS)))

    try:
        await tiny_two()  # warm up: imports, segments, allocator
        await big_two()
        for _ in range(repeats):
            await timed("tiny, 2 streams", n_tiny, tiny_two)
            await timed("tiny, sequential", n_tiny // 2, tiny_seq)
            await timed("1 MiB, sequential", n_big, big_seq)
            await timed("1 MiB, 2 streams", n_big, big_two)
    finally:
        await ex.shutdown()
    return {key: median_us(values) for key, values in results.items()}


def bench_pool(n_tiny: int, n_big: int, repeats: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("forkserver")
    data = os.urandom(1 << 20)
    results: dict[str, list[float]] = {}
    with ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool:

        def tiny_two() -> None:
            futures = [pool.submit(tiny_raw, i) for i in range(n_tiny)]
            for future in futures:
                future.result()

        def tiny_seq() -> None:
            for i in range(n_tiny // 2):
                pool.submit(tiny_raw, i).result()

        def big_seq() -> None:
            for _ in range(n_big):
                pool.submit(payload_len_raw, data).result()

        def big_two() -> None:
            futures = [pool.submit(payload_len_raw, data) for _ in range(n_big)]
            for future in futures:
                future.result()

        tiny_two()
        big_two()
        runs: list[tuple[str, int, Callable[[], None]]] = [
            ("tiny, 2 streams", n_tiny, tiny_two),
            ("tiny, sequential", n_tiny // 2, tiny_seq),
            ("1 MiB, sequential", n_big, big_seq),
            ("1 MiB, 2 streams", n_big, big_two),
        ]
        for _ in range(repeats):
            for key, n, body in runs:
                started = time.perf_counter()
                body()
                results.setdefault(key, []).append((time.perf_counter() - started) / n)
    return {key: median_us(values) for key, values in results.items()}


def main() -> None:
    quick = "--quick" in sys.argv
    n_tiny, n_big, repeats = (1000, 100, 3) if quick else (4000, 400, 5)
    ours = asyncio.run(bench_executor(n_tiny, n_big, repeats))
    no_shm = asyncio.run(bench_executor(n_tiny // 4, n_big, repeats, shm_threshold=1 << 40))
    theirs = bench_pool(n_tiny, n_big, repeats)
    print(
        f"ProcessExecutor vs ProcessPoolExecutor, {WORKERS} workers, forkserver, "
        f"median of {repeats} runs (tiny n={n_tiny}, 1 MiB n={n_big}), {os.cpu_count()} CPUs"
    )
    print()
    print("| workload | ProcessExecutor µs/task | ProcessPoolExecutor µs/task | speed-up |")
    print("|---|---:|---:|---:|")
    for key, value in ours.items():
        other = theirs[key]
        print(f"| {key} | {value:.1f} | {other:.1f} | {other / value:.2f}x |")
    print()
    print(
        "| 1 MiB bytes through ProcessExecutor | shared memory µs/task | pipe µs/task | speed-up |"
    )
    print("|---|---:|---:|---:|")
    for key in ("1 MiB, sequential", "1 MiB, 2 streams"):
        shm, pipe = ours[key], no_shm[key]
        print(f"| {key} | {shm:.1f} | {pipe:.1f} | {pipe / shm:.2f}x |")


if __name__ == "__main__":
    main()
