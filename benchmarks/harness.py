"""Shared pieces of the benchmark suite: sizes, the support matrix, timing and memory probes.

Imported by ``run.py`` (the parent, which must stay light: no Dask, Ray or numpy here) and
by the per-system modules ``systems_ours.py`` and ``systems_peers.py`` (the children).
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

#: Workloads in the order they run and are reported.
WORKLOADS = ("noop", "chain", "fanin", "priority", "process", "memory")

#: Systems in column order; ``async_processor`` is ours.
#: One mebibyte, the payload size of the process benchmarks.
MiB = 1 << 20

OURS = "async_processor"
SYSTEMS = (OURS, "asyncio", "aiojobs", "concurrent.futures", "dask", "ray")

#: Stdlib baselines the targets are ratios against; kept under ``--no-peers``.
BASELINES = frozenset({"asyncio", "concurrent.futures"})

#: The module a system needs; a system whose module cannot be found is reported as skipped.
MODULES: dict[str, str] = {
    OURS: "async_processor",
    "asyncio": "asyncio",
    "aiojobs": "aiojobs",
    "concurrent.futures": "concurrent.futures",
    "dask": "distributed",
    "ray": "ray",
}

#: The system each workload's ratios are taken against (the "x" in every cell).
REFERENCE: dict[str, str] = {
    "noop": "asyncio",
    "chain": "asyncio",
    "fanin": "asyncio",
    "priority": "asyncio",
    "process": "concurrent.futures",
    "memory": OURS,
}

#: workload -> system -> None (runs) or the reason it is not applicable.
SUPPORT: dict[str, dict[str, str | None]] = {
    "noop": {
        OURS: None,
        "asyncio": None,
        "aiojobs": None,
        "concurrent.futures": "not comparable: a thread pool runs no coroutines",
        "dask": None,
        "ray": None,
    },
    "chain": {
        OURS: None,
        "asyncio": None,
        "aiojobs": None,
        "concurrent.futures": "no dependency support",
        "dask": None,
        "ray": None,
    },
    "fanin": {
        OURS: None,
        "asyncio": None,
        "aiojobs": None,
        "concurrent.futures": "no dependency support",
        "dask": None,
        "ray": None,
    },
    "priority": {
        OURS: None,
        "asyncio": None,
        "aiojobs": "no priorities",
        "concurrent.futures": "executors are FIFO (no priorities)",
        "dask": None,
        "ray": "Ray core tasks have no priority",
    },
    "process": {
        OURS: None,
        "asyncio": None,
        "aiojobs": "runs coroutines only (no process pool)",
        "concurrent.futures": None,
        "dask": None,
        "ray": None,
    },
    "memory": {
        OURS: None,
        "asyncio": "measures our result retention only",
        "aiojobs": "measures our result retention only",
        "concurrent.futures": "measures our result retention only",
        "dask": "measures our result retention only",
        "ray": "measures our result retention only",
    },
}

#: Pool size everywhere: our async lane for the priority test, thread/process pools, Dask
#: threads or worker processes, Ray ``num_cpus``.
WORKERS = 2

#: Scratch directory for side effects (Ray's session files).
WORKDIR = "/tmp/async-processor-bench"

_SLOW = frozenset({"dask", "ray"})


#: The second, smaller noop size (in-process systems): GC-light, one batch of this many.
NOOP_SMALL = 10_000


def task_count(workload: str, system: str, quick: bool) -> int:
    """Tasks per timed run for the per-task workloads (noop, chain, fanin)."""
    if system in _SLOW:
        table = {
            "noop": (5_000, 1_000),
            "chain": (2_000 if system == "ray" else 1_000, 300),
            "fanin": (2_000, 500),
        }
    else:
        table = {"noop": (100_000, 50_000), "chain": (100_000, 50_000), "fanin": (100_000, 50_000)}
    full, small = table[workload]
    return small if quick else full


def priority_sizes(system: str, quick: bool) -> list[int]:
    """How many BATCH tasks are queued ahead of the CRITICAL one."""
    if system == "dask":
        return [1_000, 5_000] if quick else [1_000, 5_000, 20_000]
    return [1_000, 10_000, 100_000]


def process_sizes(system: str, quick: bool) -> tuple[int, int]:
    """(tiny CPU tasks, 1 MiB payload tasks) per timed run."""
    if system in _SLOW:
        return (300, 50) if quick else (1_000, 100)
    return (1_000, 100) if quick else (2_000, 200)


@dataclass(frozen=True)
class MemorySizes:
    total: int  # tasks run in all
    batch: int  # submitted, then waited, at a time
    every: int  # RSS sample interval in tasks
    max_results: int  # retention limit (the window)
    traced: int  # results retained for the tracemalloc measurement


def memory_sizes(quick: bool) -> MemorySizes:
    if quick:
        return MemorySizes(300_000, 10_000, 50_000, 50_000, 50_000)
    return MemorySizes(1_000_000, 10_000, 100_000, 100_000, 100_000)


@dataclass(frozen=True)
class Ctx:
    """What a child needs to know about the run."""

    system: str
    workload: str
    quick: bool
    repeats: int

    @property
    def trials(self) -> int:
        """Trials of the priority latency test (a median needs a few)."""
        return max(self.repeats, 5)


Record = dict[str, Any]
Body = Callable[[int], Awaitable[int]]
#: One workload of one system, run by the child: ``asyncio.run(bench(ctx))``.
Bench = Callable[[Ctx], Coroutine[Any, Any, list[Record]]]


def result(
    ctx: Ctx,
    case: str,
    *,
    n: int,
    metric: str,
    value: float | None,
    unit: str,
    runs: list[float] | None = None,
    **extra: Any,
) -> Record:
    """One measured cell."""
    return {
        "kind": "result",
        "system": ctx.system,
        "workload": ctx.workload,
        "case": case,
        "status": "ok",
        "n": n,
        "metric": metric,
        "value": value,
        "unit": unit,
        "runs": runs or [],
        "extra": extra,
    }


def latency_result(ctx: Ctx, n: int, latencies_ms: list[float], **extra: Any) -> Record:
    """The cell of one priority case: the median start latency (ms) with N queued."""
    return result(
        ctx,
        f"N={n}",
        n=n,
        metric="latency_ms",
        value=statistics.median(latencies_ms),
        unit="ms",
        runs=latencies_ms,
        **extra,
    )


async def measure(body: Body, n: int, warmup: int, repeats: int, expected: int) -> list[float]:
    """Warm up with ``warmup`` tasks, then time ``repeats`` runs of ``n`` tasks.

    ``body(n)`` runs ``n`` tasks and returns a checksum; a wrong checksum raises. The heap
    is collected before each timed run so garbage of the previous one is not billed to it.
    """
    await body(warmup)
    runs = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        got = await body(n)
        runs.append(time.perf_counter() - started)
        if got != expected:
            raise AssertionError(f"checksum {got} != expected {expected}")
    return runs


def per_task(ctx: Ctx, case: str, n: int, runs: list[float], **extra: Any) -> Record:
    """A per-task cell: median wall time of a run divided by its tasks, in microseconds."""
    us = statistics.median(runs) / n * 1e6
    return result(
        ctx,
        case,
        n=n,
        metric="us_per_task",
        value=us,
        unit="us/task",
        runs=runs,
        tasks_per_s=1e6 / us,
        spread=(max(runs) - min(runs)) / statistics.median(runs),
        **extra,
    )


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size now, from ``/proc/self/statm`` (second field, in pages)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_rss_mb() -> float:
    """This process's peak RSS (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
