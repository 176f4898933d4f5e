"""The peers and baselines: raw asyncio, aiojobs, concurrent.futures, Dask, Ray.

Each function mirrors the matching one in ``systems_ours.py`` as closely as the system
allows; where it cannot, the docstring says what differs. Dask, Ray, aiojobs and numpy are
imported inside the functions, so importing this module costs nothing (Ray and Dask worker
processes import it to find the task functions).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import secrets
import statistics
import threading
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from harness import (
    NOOP_SMALL,
    WORKDIR,
    WORKERS,
    Bench,
    Body,
    Ctx,
    MiB,
    Record,
    children_peak_rss_mb,
    latency_result,
    measure,
    per_task,
    priority_sizes,
    process_sizes,
    result,
    task_count,
)

# ------------------------------------------------------------------ task bodies (picklable)


async def anoop(i: int) -> int:
    return i


def noop(i: int) -> int:
    return i


def inc(x: int) -> int:
    return x + 1


def add_all(*values: int) -> int:
    return sum(values)


def cpu_tiny() -> int:
    return sum(range(100))


def payload_nbytes(data: Any) -> int:
    return int(getattr(data, "nbytes", None) or len(data))


def stamp() -> float:
    return time.perf_counter()


def _payloads() -> list[tuple[str, Any]]:
    import numpy as np

    return [
        ("bytes 1 MiB", bytes(range(256)) * (MiB // 256)),
        ("numpy 1 MiB", np.arange(MiB // 8, dtype=np.float64)),
    ]


# ------------------------------------------------------------------ raw asyncio


async def asyncio_noop(ctx: Ctx) -> list[Record]:
    """``asyncio.create_task`` for every coroutine, then one ``gather``."""

    async def body(k: int) -> int:
        return sum(await asyncio.gather(*[asyncio.create_task(anoop(i)) for i in range(k)]))

    return await _noop_cases(ctx, body)


async def _noop_cases(ctx: Ctx, body: Body) -> list[Record]:
    """The headline N, and ``NOOP_SMALL`` tasks (as in systems_ours.bench_noop)."""
    out = []
    for n, repeats, case in (
        (NOOP_SMALL, max(ctx.repeats, 5), f"n={NOOP_SMALL:,}"),
        (task_count("noop", ctx.system, ctx.quick), ctx.repeats, ""),
    ):
        gc.collect()
        runs = await measure(body, n, min(n, 1_000), repeats, n * (n - 1) // 2)
        out.append(per_task(ctx, case, n, runs))
    return out[::-1]


async def _link(previous: asyncio.Task[int] | None) -> int:
    return (0 if previous is None else await previous) + 1


async def asyncio_chain(ctx: Ctx) -> list[Record]:
    """Each task awaits the previous task."""
    n = task_count("chain", ctx.system, ctx.quick)

    async def body(k: int) -> int:
        t: asyncio.Task[int] | None = None
        for _ in range(k):
            t = asyncio.create_task(_link(t))
        assert t is not None
        return await t

    runs = await measure(body, n, min(n, 1_000), ctx.repeats, n)
    return [per_task(ctx, "", n, runs)]


async def _sink(leaves: list[asyncio.Task[int]]) -> int:
    return sum(await asyncio.gather(*leaves))


async def asyncio_fanin(ctx: Ctx) -> list[Record]:
    """Leaves as tasks, a sink task that gathers them."""
    n = task_count("fanin", ctx.system, ctx.quick)

    async def body(k: int) -> int:
        leaves = [asyncio.create_task(anoop(i)) for i in range(k)]
        return await asyncio.create_task(_sink(leaves))

    runs = await measure(body, n, min(n, 1_000), ctx.repeats, n * (n - 1) // 2)
    return [per_task(ctx, "", n + 1, runs)]


async def asyncio_priority(ctx: Ctx) -> list[Record]:
    """The floor: an ``asyncio.PriorityQueue`` and two consumer coroutines.

    Both consumers first take a blocker that waits on an Event; N BATCH (5) items are
    queued, then one CRITICAL (1) item; the Event is set right after it is queued.
    """
    out = []
    for n in priority_sizes(ctx.system, ctx.quick):
        latencies: list[float] = []
        drains: list[float] = []
        await _pq_trial(min(n, 1_000))
        for _ in range(ctx.trials):
            gc.collect()
            latency, drain = await _pq_trial(n)
            latencies.append(latency * 1e3)
            drains.append(drain)
        out.append(
            latency_result(
                ctx,
                n,
                latencies,
                drain_s=statistics.median(drains),
                max_ms=max(latencies),
            )
        )
    return out


async def _pq_trial(n: int) -> tuple[float, float]:
    queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
    gate, entered = asyncio.Event(), asyncio.Barrier(WORKERS + 1)
    started: list[float] = []

    async def consumer() -> None:
        while True:
            _, _, kind = await queue.get()
            if kind == "stamp":
                started.append(time.perf_counter())
            elif kind == "block":
                await entered.wait()
                await gate.wait()
            queue.task_done()

    consumers = [asyncio.create_task(consumer()) for _ in range(WORKERS)]
    seq = 0
    for _ in range(WORKERS):
        queue.put_nowait((1, seq, "block"))
        seq += 1
    await entered.wait()  # both consumers hold a blocker
    for _ in range(n):
        queue.put_nowait((5, seq, "noop"))
        seq += 1
    submitted = time.perf_counter()
    queue.put_nowait((1, seq, "stamp"))
    gate.set()
    await queue.join()
    drain = time.perf_counter() - submitted
    for c in consumers:
        c.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    return started[0] - submitted, drain


async def asyncio_process(ctx: Ctx) -> list[Record]:
    """``loop.run_in_executor(ProcessPoolExecutor(2), ...)`` for every task, then gather."""
    n_cpu, n_big = process_sizes(ctx.system, ctx.quick)
    loop = asyncio.get_running_loop()
    out = []
    with ProcessPoolExecutor(WORKERS) as pool:

        async def cpu(k: int) -> int:
            futs = [loop.run_in_executor(pool, cpu_tiny) for _ in range(k)]
            return sum(await asyncio.gather(*futs))

        runs = await measure(cpu, n_cpu, min(n_cpu, 200), ctx.repeats, n_cpu * 4950)
        out.append(per_task(ctx, "cpu", n_cpu, runs))
        for case, data in _payloads():

            async def big(k: int, data: Any = data) -> int:
                futs = [loop.run_in_executor(pool, payload_nbytes, data) for _ in range(k)]
                return sum(await asyncio.gather(*futs))

            runs = await measure(big, n_big, min(n_big, 50), ctx.repeats, n_big * MiB)
            out.append(per_task(ctx, case, n_big, runs))
    return out


# ------------------------------------------------------------------ aiojobs


def _scheduler() -> Any:
    import aiojobs

    return aiojobs.Scheduler(limit=None, pending_limit=0, wait_timeout=None)


async def aiojobs_noop(ctx: Ctx) -> list[Record]:
    """``spawn`` every coroutine (no limit), then ``wait()`` each job."""
    scheduler = _scheduler()

    async def body(k: int) -> int:
        jobs = [await scheduler.spawn(anoop(i)) for i in range(k)]
        return sum([await job.wait() for job in jobs])

    try:
        return await _noop_cases(ctx, body)
    finally:
        await scheduler.close()


async def _job_link(previous: Any) -> int:
    return (0 if previous is None else await previous.wait()) + 1


async def aiojobs_chain(ctx: Ctx) -> list[Record]:
    """aiojobs has no dependencies: each job awaits the previous job's ``wait()``."""
    n = task_count("chain", ctx.system, ctx.quick)
    scheduler = _scheduler()

    async def body(k: int) -> int:
        job = None
        for _ in range(k):
            job = await scheduler.spawn(_job_link(job))
        assert job is not None
        value: int = await job.wait()
        return value

    try:
        runs = await measure(body, n, min(n, 1_000), ctx.repeats, n)
    finally:
        await scheduler.close()
    return [per_task(ctx, "", n, runs)]


async def _job_sink(jobs: list[Any]) -> int:
    return sum([await job.wait() for job in jobs])


async def aiojobs_fanin(ctx: Ctx) -> list[Record]:
    """Leaf jobs, then a sink job that waits for each."""
    n = task_count("fanin", ctx.system, ctx.quick)
    scheduler = _scheduler()

    async def body(k: int) -> int:
        leaves = [await scheduler.spawn(anoop(i)) for i in range(k)]
        sink = await scheduler.spawn(_job_sink(leaves))
        value: int = await sink.wait()
        return value

    try:
        runs = await measure(body, n, min(n, 1_000), ctx.repeats, n * (n - 1) // 2)
    finally:
        await scheduler.close()
    return [per_task(ctx, "", n + 1, runs)]


# ------------------------------------------------------------------ concurrent.futures


async def futures_process(ctx: Ctx) -> list[Record]:
    """Bare ``ProcessPoolExecutor(2)`` (fork): submit every task, then every ``result()``."""
    n_cpu, n_big = process_sizes(ctx.system, ctx.quick)
    out = []
    with ProcessPoolExecutor(WORKERS) as pool:

        async def cpu(k: int) -> int:
            futs = [pool.submit(cpu_tiny) for _ in range(k)]
            return sum(f.result() for f in futs)

        runs = await measure(cpu, n_cpu, min(n_cpu, 200), ctx.repeats, n_cpu * 4950)
        out.append(per_task(ctx, "cpu", n_cpu, runs, start_method="fork"))
        for case, data in _payloads():

            async def big(k: int, data: Any = data) -> int:
                futs: list[Future[int]] = [pool.submit(payload_nbytes, data) for _ in range(k)]
                return sum(f.result() for f in futs)

            runs = await measure(big, n_big, min(n_big, 50), ctx.repeats, n_big * MiB)
            out.append(per_task(ctx, case, n_big, runs, start_method="fork"))
    for r in out:
        r["extra"]["children_peak_rss_mb"] = children_peak_rss_mb()
    return out


# ------------------------------------------------------------------ Dask


@contextlib.asynccontextmanager
async def _dask(processes: bool = False) -> Any:
    """An in-process ``LocalCluster`` (1 worker x 2 threads) or 2 single-thread processes."""
    distributed: Any = importlib.import_module("distributed")  # untyped when installed

    warnings.filterwarnings("ignore")
    kw: dict[str, Any] = {
        "processes": processes,
        "asynchronous": True,
        "dashboard_address": ":0",  # a free port: 8787 may be taken (warns)
        "silence_logs": logging.ERROR,
    }
    if processes:
        kw.update(n_workers=WORKERS, threads_per_worker=1, host="127.0.0.1")
    else:
        kw.update(n_workers=1, threads_per_worker=WORKERS)
    cluster: Any = await distributed.LocalCluster(**kw)
    client: Any = await distributed.Client(cluster, asynchronous=True)
    try:
        yield client
    finally:
        await client.close()
        await cluster.close()


async def dask_noop(ctx: Ctx) -> list[Record]:
    """``client.submit(async no-op, pure=False)`` per task, then ``gather``."""
    n = task_count("noop", ctx.system, ctx.quick)
    async with _dask() as c:

        async def body(k: int) -> int:
            futs = [c.submit(anoop, i, pure=False) for i in range(k)]
            return sum(await c.gather(futs))

        runs = await measure(body, n, min(n, 100), ctx.repeats, n * (n - 1) // 2)
    return [per_task(ctx, "", n, runs)]


async def dask_chain(ctx: Ctx) -> list[Record]:
    """Futures as arguments: ``submit(inc, previous_future)``."""
    n = task_count("chain", ctx.system, ctx.quick)
    async with _dask() as c:

        async def body(k: int) -> int:
            f = c.submit(inc, 0, pure=False)
            for _ in range(k - 1):
                f = c.submit(inc, f, pure=False)
            value: int = await f
            return value

        runs = await measure(body, n, min(n, 100), ctx.repeats, n)
    return [per_task(ctx, "", n, runs)]


async def dask_fanin(ctx: Ctx) -> list[Record]:
    """Leaf futures, then ``submit(add_all, *leaves)``."""
    n = task_count("fanin", ctx.system, ctx.quick)
    async with _dask() as c:

        async def body(k: int) -> int:
            leaves = [c.submit(noop, i, pure=False) for i in range(k)]
            value: int = await c.submit(add_all, *leaves, pure=False)
            return value

        runs = await measure(body, n, min(n, 100), ctx.repeats, n * (n - 1) // 2)
    return [per_task(ctx, "", n + 1, runs)]


class _Gate:
    """Blocks Dask's worker threads (same process: processes=False) until set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Barrier(WORKERS + 1)


_GATES: dict[int, _Gate] = {}


def dask_block(trial: int) -> int:
    gate = _GATES[trial]
    gate.entered.wait(600)
    gate.release.wait(600)
    return 0


#: Longest one Dask priority trial may take before the rest of its sizes are given up.
DASK_TRIAL_CAP_S = 60.0


async def dask_priority(ctx: Ctx) -> list[Record]:
    """Both worker threads blocked, N futures with ``priority=-1`` submitted, then one with
    ``priority=100`` (Dask: higher runs first); the gate opens right after. The remaining
    low futures are cancelled once the urgent one has started (no drain is measured).
    A trial over ``DASK_TRIAL_CAP_S`` is reported as capped and larger N are skipped.
    """
    out: list[Record] = []
    sizes = priority_sizes(ctx.system, ctx.quick)
    capped = False
    async with _dask() as c:
        await _dask_trial(c, 100, DASK_TRIAL_CAP_S)  # warm-up
        for n in sizes:
            if capped:
                out.append(_capped(ctx, n, f"skipped: a smaller N exceeded {DASK_TRIAL_CAP_S:g}s"))
                continue
            trials = ctx.repeats if n <= 5_000 else 1
            latencies: list[float] = []
            for _ in range(trials):
                gc.collect()
                latency = await _dask_trial(c, n, DASK_TRIAL_CAP_S)
                if latency is None:
                    capped = True
                    break
                latencies.append(latency * 1e3)
            if capped:
                out.append(
                    _capped(ctx, n, f"the urgent task had not started after {DASK_TRIAL_CAP_S:g}s")
                )
                continue
            out.append(
                latency_result(
                    ctx,
                    n,
                    latencies,
                    trials=trials,
                )
            )
    return out


def _capped(ctx: Ctx, n: int, note: str) -> Record:
    r = result(ctx, f"N={n}", n=n, metric="latency_ms", value=None, unit="ms", note=note)
    r["status"] = "capped"
    return r


async def _dask_trial(c: Any, n: int, cap: float) -> float | None:
    trial = len(_GATES)
    gate = _GATES[trial] = _Gate()
    blockers = [c.submit(dask_block, trial, pure=False, priority=1_000) for _ in range(WORKERS)]
    deadline = time.monotonic() + cap
    await asyncio.to_thread(gate.entered.wait, cap)  # both worker threads are blocked
    lows = [c.submit(noop, i, pure=False, priority=-1) for i in range(n)]
    submitted = time.perf_counter()
    urgent = c.submit(stamp, pure=False, priority=100)
    gate.release.set()
    latency: float | None
    try:
        started = await asyncio.wait_for(urgent, max(1.0, deadline - time.monotonic()))
        latency = started - submitted
    except TimeoutError:
        latency = None
    await c.cancel([*lows, urgent])
    await c.gather(blockers)
    return latency


async def dask_process(ctx: Ctx) -> list[Record]:
    """``LocalCluster(processes=True)``: 2 worker processes x 1 thread over 127.0.0.1."""
    n_cpu, n_big = process_sizes(ctx.system, ctx.quick)
    out = []
    async with _dask(processes=True) as c:

        async def cpu(k: int) -> int:
            return sum(await c.gather([c.submit(cpu_tiny, pure=False) for _ in range(k)]))

        runs = await measure(cpu, n_cpu, min(n_cpu, 50), ctx.repeats, n_cpu * 4950)
        out.append(per_task(ctx, "cpu", n_cpu, runs, cluster="processes=True"))
        for case, data in _payloads():

            async def big(k: int, data: Any = data) -> int:
                futs = [c.submit(payload_nbytes, data, pure=False) for _ in range(k)]
                return sum(await c.gather(futs))

            runs = await measure(big, n_big, min(n_big, 10), ctx.repeats, n_big * MiB)
            out.append(per_task(ctx, case, n_big, runs, cluster="processes=True"))
    return out


# ------------------------------------------------------------------ Ray


@contextlib.contextmanager
def _ray() -> Any:
    """``ray.init(num_cpus=2)`` on this machine only, its files under ``WORKDIR/ray``."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # token in memory, not ~/.ray
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    warnings.filterwarnings("ignore")
    import ray

    tmp = os.path.join(WORKDIR, "ray")
    os.makedirs(tmp, exist_ok=True)
    ray.init(
        num_cpus=WORKERS,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        _temp_dir=tmp,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


async def ray_noop(ctx: Ctx) -> list[Record]:
    """``f.remote(i)`` per task (sync function: Ray tasks run in worker processes), ``ray.get``."""
    n = task_count("noop", ctx.system, ctx.quick)
    with _ray() as ray:
        f = ray.remote(noop)

        async def body(k: int) -> int:
            return sum(ray.get([f.remote(i) for i in range(k)]))

        runs = await measure(body, n, min(n, 100), ctx.repeats, n * (n - 1) // 2)
    return [per_task(ctx, "", n, runs)]


async def ray_chain(ctx: Ctx) -> list[Record]:
    """ObjectRefs as arguments: ``inc.remote(previous_ref)``."""
    n = task_count("chain", ctx.system, ctx.quick)
    with _ray() as ray:
        f = ray.remote(inc)

        async def body(k: int) -> int:
            r = f.remote(0)
            for _ in range(k - 1):
                r = f.remote(r)
            value: int = ray.get(r)
            return value

        runs = await measure(body, n, min(n, 100), ctx.repeats, n)
    return [per_task(ctx, "", n, runs)]


async def ray_fanin(ctx: Ctx) -> list[Record]:
    """Leaf refs, then ``add_all.remote(*leaves)``."""
    n = task_count("fanin", ctx.system, ctx.quick)
    with _ray() as ray:
        leaf, sink = ray.remote(noop), ray.remote(add_all)

        async def body(k: int) -> int:
            value: int = ray.get(sink.remote(*[leaf.remote(i) for i in range(k)]))
            return value

        runs = await measure(body, n, min(n, 100), ctx.repeats, n * (n - 1) // 2)
    return [per_task(ctx, "", n + 1, runs)]


async def ray_process(ctx: Ctx) -> list[Record]:
    """Ray tasks are processes; arguments over 100 KiB go through its shared object store."""
    n_cpu, n_big = process_sizes(ctx.system, ctx.quick)
    out = []
    with _ray() as ray:
        cpu_f, big_f = ray.remote(cpu_tiny), ray.remote(payload_nbytes)

        async def cpu(k: int) -> int:
            return sum(ray.get([cpu_f.remote() for _ in range(k)]))

        runs = await measure(cpu, n_cpu, min(n_cpu, 100), ctx.repeats, n_cpu * 4950)
        out.append(per_task(ctx, "cpu", n_cpu, runs))
        for case, data in _payloads():

            async def big(k: int, data: Any = data) -> int:
                return sum(ray.get([big_f.remote(data) for _ in range(k)]))

            runs = await measure(big, n_big, min(n_big, 10), ctx.repeats, n_big * MiB)
            out.append(per_task(ctx, case, n_big, runs))
    return out


BENCHES: dict[str, dict[str, Bench]] = {
    "asyncio": {
        "noop": asyncio_noop,
        "chain": asyncio_chain,
        "fanin": asyncio_fanin,
        "priority": asyncio_priority,
        "process": asyncio_process,
    },
    "aiojobs": {"noop": aiojobs_noop, "chain": aiojobs_chain, "fanin": aiojobs_fanin},
    "concurrent.futures": {"process": futures_process},
    "dask": {
        "noop": dask_noop,
        "chain": dask_chain,
        "fanin": dask_fanin,
        "priority": dask_priority,
        "process": dask_process,
    },
    "ray": {"noop": ray_noop, "chain": ray_chain, "fanin": ray_fanin, "process": ray_process},
}
