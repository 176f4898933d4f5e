"""Our library (``async_processor``) in every workload.

Task functions are module level so the process lane can send them by reference (the
children find this module through ``PYTHONPATH``, which ``run.py`` sets).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from harness import (
    NOOP_SMALL,
    WORKERS,
    Bench,
    Ctx,
    MiB,
    Record,
    children_peak_rss_mb,
    latency_result,
    measure,
    memory_sizes,
    per_task,
    priority_sizes,
    process_sizes,
    result,
    rss_bytes,
    task_count,
)

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingTask,
    TaskPriority,
    TaskStatus,
    create_processor,
    create_task,
)

# ------------------------------------------------------------------ task functions


async def noop(task: ProcessingTask) -> int:
    value: int = task.payload["i"]
    return value


async def link(task: ProcessingTask) -> int:
    """Chain link: the previous link's value + 1 (0 for the first)."""
    deps = task.dependency_results
    previous: int = next(iter(deps.values())) if deps else 0
    return previous + 1


async def total(task: ProcessingTask) -> int:
    """Fan-in sink: the sum of every leaf's value."""
    return sum(task.dependency_results.values())


async def block(task: ProcessingTask) -> int:
    """Occupies a worker: meets the trial's barrier once running, then waits for the gate."""
    entered: asyncio.Barrier = task.payload["entered"]
    gate: asyncio.Event = task.payload["gate"]
    await entered.wait()
    await gate.wait()
    return 0


async def stamp(task: ProcessingTask) -> float:
    """Records when it started."""
    return time.perf_counter()


def cpu_tiny(task: ProcessingTask) -> int:
    return sum(range(100))


def payload_nbytes(task: ProcessingTask) -> int:
    data = task.payload["data"]
    return int(getattr(data, "nbytes", None) or len(data))


# ------------------------------------------------------------------ helpers


async def _processor(**kwargs: Any) -> AdvancedAsyncProcessor:
    kwargs.setdefault("max_process_workers", 0)
    p = await create_processor(**kwargs)
    p.register_processor("noop", noop)
    p.register_processor("link", link)
    p.register_processor("total", total)
    p.register_processor("block", block)
    p.register_processor("stamp", stamp)
    p.register_processor("cpu", cpu_tiny)
    p.register_processor("nbytes", payload_nbytes)
    return p


async def _submit_wait(p: AdvancedAsyncProcessor, tasks: list[ProcessingTask]) -> int:
    """Submit every task, then wait for each; the sum of their values."""
    for t in tasks:
        await p.submit_task(t)
    checksum = 0
    for t in tasks:
        r = await p.wait_for_task(t.id)
        if r.status is not TaskStatus.COMPLETED:
            raise RuntimeError(f"task {t.id} ended {r.status.value}: {r.error}")
        checksum += r.result
    return checksum


# ------------------------------------------------------------------ workloads


async def bench_noop(ctx: Ctx) -> list[Record]:
    """Create, submit and wait for n no-op tasks; also times each of the three phases.

    Two sizes, each on a fresh processor: ``NOOP_SMALL`` tasks (few enough that the cyclic
    GC rarely runs a full collection) and the headline N.
    """
    small = await _noop_case(ctx, NOOP_SMALL, max(ctx.repeats, 5), f"n={NOOP_SMALL:,}")
    main = await _noop_case(ctx, task_count("noop", ctx.system, ctx.quick), ctx.repeats, "")
    return [main, small]


async def _noop_case(ctx: Ctx, n: int, repeats: int, case: str) -> Record:
    p = await _processor(queue_size=n + 1_000)
    phases: list[tuple[float, float, float]] = []

    async def body(k: int) -> int:
        t0 = time.perf_counter()
        tasks = [create_task("noop", {"i": i}) for i in range(k)]
        t1 = time.perf_counter()
        for t in tasks:
            await p.submit_task(t)
        t2 = time.perf_counter()
        checksum = 0
        for t in tasks:  # the first wait runs every task; the rest find results ready
            checksum += (await p.wait_for_task(t.id)).result
        phases.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
        return checksum

    try:
        runs = await measure(body, n, min(n, 1_000), repeats, n * (n - 1) // 2)
    finally:
        await p.shutdown()
    timed = phases[1:]
    phase_us = {
        name: statistics.median(ph[i] for ph in timed) / n * 1e6
        for i, name in enumerate(("create_task", "submit_task", "run_and_wait"))
    }
    return per_task(ctx, case, n, runs, phases_us=phase_us)


async def bench_chain(ctx: Ctx) -> list[Record]:
    n = task_count("chain", ctx.system, ctx.quick)
    p = await _processor(queue_size=n + 1_000)

    async def body(k: int) -> int:
        t = create_task("link")
        await p.submit_task(t)
        for _ in range(k - 1):
            t = create_task("link", depends_on=[t.id])
            await p.submit_task(t)
        r = await p.wait_for_task(t.id)
        return int(r.result)

    try:
        runs = await measure(body, n, min(n, 1_000), ctx.repeats, n)
    finally:
        await p.shutdown()
    return [per_task(ctx, "", n, runs)]


async def bench_fanin(ctx: Ctx) -> list[Record]:
    n = task_count("fanin", ctx.system, ctx.quick)
    p = await _processor(queue_size=n + 1_000)

    async def body(k: int) -> int:
        leaves = [create_task("noop", {"i": i}) for i in range(k)]
        for t in leaves:
            await p.submit_task(t)
        sink = create_task("total", depends_on=[t.id for t in leaves])
        await p.submit_task(sink)
        r = await p.wait_for_task(sink.id)
        return int(r.result)

    try:
        runs = await measure(body, n, min(n, 1_000), ctx.repeats, n * (n - 1) // 2)
    finally:
        await p.shutdown()
    # n leaves + 1 sink
    return [per_task(ctx, "", n + 1, runs)]


async def bench_priority(ctx: Ctx) -> list[Record]:
    """Both workers blocked, N BATCH tasks queued; how soon does a CRITICAL one start?"""
    out = []
    for n in priority_sizes(ctx.system, ctx.quick):
        # BATCH work may fill 80% of queue_size (priority_reserve): room for all N of it
        p = await _processor(
            max_workers=WORKERS,
            queue_size=2 * n + 100,
            max_results=2 * n + 100,
            max_thread_workers=0,
        )
        latencies: list[float] = []
        fills: list[float] = []
        drains: list[float] = []
        try:
            await _priority_trial(p, min(n, 1_000))  # warm-up
            for _ in range(ctx.trials):
                gc.collect()
                latency, fill, drain = await _priority_trial(p, n)
                latencies.append(latency * 1e3)
                fills.append(fill)
                drains.append(drain)
        finally:
            await p.shutdown()
        out.append(
            latency_result(
                ctx,
                n,
                latencies,
                queue_fill_s=statistics.median(fills),
                drain_s=statistics.median(drains),
                max_ms=max(latencies),
            )
        )
    return out


async def _priority_trial(p: AdvancedAsyncProcessor, n: int) -> tuple[float, float, float]:
    gate, entered = asyncio.Event(), asyncio.Barrier(WORKERS + 1)
    blockers = [
        create_task("block", {"gate": gate, "entered": entered}, TaskPriority.CRITICAL)
        for _ in range(WORKERS)
    ]
    for t in blockers:
        await p.submit_task(t)
    await entered.wait()  # both workers are running a blocker
    filled = time.perf_counter()
    lows = [create_task("noop", {"i": i}, TaskPriority.BATCH) for i in range(n)]
    for t in lows:
        await p.submit_task(t)
    filled = time.perf_counter() - filled
    critical = create_task("stamp", None, TaskPriority.CRITICAL)
    submitted = time.perf_counter()
    await p.submit_task(critical)
    gate.set()
    started = (await p.wait_for_task(critical.id)).result
    for t in lows:
        await p.wait_for_task(t.id)
    drain = time.perf_counter() - submitted
    for t in blockers:
        await p.wait_for_task(t.id)
    return started - submitted, filled, drain


async def bench_process(ctx: Ctx) -> list[Record]:
    import numpy as np

    n_cpu, n_big = process_sizes(ctx.system, ctx.quick)
    p = await _processor(
        max_process_workers=WORKERS, max_thread_workers=0, queue_size=max(n_cpu, n_big) + 100
    )
    data = bytes(range(256)) * (MiB // 256)
    array = np.arange(MiB // 8, dtype=np.float64)
    out = []

    def runner(
        ttype: str, payload: Callable[[int], dict[str, Any]]
    ) -> Callable[[int], Awaitable[int]]:
        async def body(k: int) -> int:
            tasks = [create_task(ttype, payload(i), cpu_intensive=True) for i in range(k)]
            return await _submit_wait(p, tasks)

        return body

    try:
        cases: list[tuple[str, str, Callable[[int], dict[str, Any]], int, int]] = [
            ("cpu", "cpu", lambda i: {}, n_cpu, 4950),
            ("bytes 1 MiB", "nbytes", lambda i: {"data": data}, n_big, MiB),
            ("numpy 1 MiB", "nbytes", lambda i: {"data": array}, n_big, MiB),
        ]
        for case, ttype, payload, n, each in cases:
            runs = await measure(runner(ttype, payload), n, min(n, 200), ctx.repeats, n * each)
            out.append(per_task(ctx, case, n, runs, start_method="forkserver"))
    finally:
        await p.shutdown()
    for r in out:
        r["extra"]["children_peak_rss_mb"] = children_peak_rss_mb()
    return out


async def bench_memory(ctx: Ctx) -> list[Record]:
    """RSS across many no-op tasks with the default retention limits, and bytes per result."""
    sz = memory_sizes(ctx.quick)
    kwargs: dict[str, Any] = {"queue_size": sz.batch + 100}
    if sz.max_results != 100_000:  # the default
        kwargs["max_results"] = sz.max_results
    p = await _processor(**kwargs)
    done = 0

    async def batch(k: int) -> None:
        nonlocal done
        tasks = [create_task("noop", {"i": i}) for i in range(done, done + k)]
        await _submit_wait(p, tasks)
        done += k

    samples: list[list[float]] = []
    try:
        await batch(1_000)  # warm-up
        gc.collect()
        baseline = rss_bytes()
        retained_base = (await p.get_performance_metrics())["retained_results"]
        samples.append([0, baseline / MiB, retained_base, sys.getallocatedblocks()])
        started = time.perf_counter()
        ran = 0
        while ran < sz.total:
            await batch(sz.batch)
            ran += sz.batch
            if ran % sz.every == 0:
                retained = (await p.get_performance_metrics())["retained_results"]
                samples.append([ran, rss_bytes() / MiB, retained, sys.getallocatedblocks()])
        elapsed = time.perf_counter() - started
    finally:
        await p.shutdown()

    fill = next(s for s in samples if s[0] >= sz.max_results)
    after = [s for s in samples if s[0] >= fill[0]]
    growth_max = (max(s[1] for s in after) - fill[1]) / fill[1] * 100
    growth_end = (samples[-1][1] - fill[1]) / fill[1] * 100
    # From one window after the fill on, the result store is in its steady state (its
    # table has been rebuilt at least once with evictions).
    settled = next((s for s in samples if s[0] >= 2 * sz.max_results), samples[-1])
    growth_settled = (samples[-1][1] - settled[1]) / settled[1] * 100
    rss_per_result = (fill[1] - baseline / MiB) * MiB / max(1, fill[2] - retained_base)
    out = [
        result(
            ctx,
            "rss growth after window",
            n=sz.total,
            metric="growth_pct",
            value=growth_max,
            unit="%",
            samples=samples,
            max_results=sz.max_results,
            growth_end_pct=growth_end,
            growth_after_second_window_pct=growth_settled,
            blocks_growth_pct=(samples[-1][3] - fill[3]) / fill[3] * 100,
            rss_at_fill_mb=fill[1],
            rss_end_mb=samples[-1][1],
            baseline_mb=baseline / MiB,
            us_per_task=elapsed / sz.total * 1e6,
        )
    ]
    traced = await _traced_bytes_per_result(sz.traced)
    out.append(
        result(
            ctx,
            "bytes per retained result",
            n=sz.traced,
            metric="bytes_per_result",
            value=traced,
            unit="B",
            rss_delta_bytes_per_result=rss_per_result,
        )
    )
    return out


async def _traced_bytes_per_result(count: int) -> float:
    """Python heap per retained result: tracemalloc before and after ``count`` tasks."""
    p = await _processor(queue_size=10_100, max_results=count)
    try:
        warm = [create_task("noop", {"i": i}) for i in range(1_000)]
        await _submit_wait(p, warm)
        del warm
        retained_before = (await p.get_performance_metrics())["retained_results"]
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for start in range(0, count, 10_000):
            tasks = [create_task("noop", {"i": i}) for i in range(start, start + 10_000)]
            await _submit_wait(p, tasks)
        del tasks
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        retained = (await p.get_performance_metrics())["retained_results"]
    finally:
        await p.shutdown()
    return float(used / max(1, retained - retained_before))


BENCHES: dict[str, Bench] = {
    "noop": bench_noop,
    "chain": bench_chain,
    "fanin": bench_fanin,
    "priority": bench_priority,
    "process": bench_process,
    "memory": bench_memory,
}
