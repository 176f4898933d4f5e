"""The processor's metrics for Prometheus (extra ``prometheus`` or ``service``).

:func:`register` adds a custom collector to a registry; at every scrape it reads one
snapshot of the processor (``metrics_snapshot()``) and turns it into metric families:
histograms of queue wait and run time per task type and priority (cumulative buckets, so
they sum across replicas), counters of ended tasks by status, and the gauges (queue,
running tasks, workers, loop lag, memory). The HTTP service's ``/metrics`` renders the same
families (:func:`metric_families`).

    from prometheus_client import start_http_server
    from async_processor.prometheus import register

    register(processor)  # the default registry
    start_http_server(9000)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .processor import AdvancedAsyncProcessor

__all__ = ["ProcessorCollector", "metric_families", "register"]

_P = "async_processor"

#: Longest a scrape from another thread waits for the processor's loop to take a snapshot.
_SCRAPE_TIMEOUT = 5.0


class ProcessorCollector(Collector):
    """Reads a processor's snapshot at each scrape (see the module docstring)."""

    def __init__(self, processor: AdvancedAsyncProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(_snapshot(self.processor))


def register(
    processor: AdvancedAsyncProcessor, registry: CollectorRegistry | None = None
) -> ProcessorCollector:
    """Export ``processor``'s metrics from ``registry`` (the default registry if None).

    Returns the collector (``registry.unregister(collector)`` removes it).
    """
    collector = ProcessorCollector(processor)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


def _snapshot(processor: AdvancedAsyncProcessor) -> dict[str, Any]:
    """The snapshot, taken on the processor's loop when a scrape comes from another thread
    (an exporter's HTTP thread), so that it never reads counters half-way through a change."""
    loop = processor._loop  # set by start()
    if loop is None or loop.is_closed() or not loop.is_running():
        return processor.metrics_snapshot()
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        return processor.metrics_snapshot()
    future = asyncio.run_coroutine_threadsafe(processor.get_performance_metrics(), loop)
    return future.result(_SCRAPE_TIMEOUT)


def metric_families(m: dict[str, Any]) -> Iterator[Metric]:
    """Every family, from one ``get_performance_metrics()`` snapshot."""
    yield from _task_counters(m)
    yield from _histograms(m)
    yield from _queue_and_workers(m)
    yield from _process_gauges(m)


def _task_counters(m: dict[str, Any]) -> Iterator[Metric]:
    """Ended tasks by status (and by type, by priority), and retries."""
    statuses = CounterMetricFamily(f"{_P}_tasks_ended", "Tasks ended, by status", labels=["status"])
    for status, n in m.get("tasks_by_status", {}).items():
        statuses.add_metric([status], n)
    yield statuses
    for key, name, doc, label in (
        ("by_type", "tasks", "Tasks ended, by type and status", "task_type"),
        ("by_priority", "tasks_by_priority", "Tasks ended, by priority and status", "priority"),
    ):
        family = CounterMetricFamily(f"{_P}_{name}", doc, labels=[label, "status"])
        for value, breakdown in m.get(key, {}).items():
            for status, n in breakdown["counts"].items():
                family.add_metric([value, status], n)
        yield family
    retries = CounterMetricFamily(f"{_P}_retries", "Retried attempts", labels=["task_type"])
    for name, breakdown in m.get("by_type", {}).items():
        retries.add_metric([name], breakdown["retries"])
    yield retries


def _histograms(m: dict[str, Any]) -> Iterator[Metric]:
    """Queue wait and run time, cumulative buckets per task type and priority."""
    for key, name, doc in (
        ("queue_wait", "task_queue_wait_seconds", "Time from ready to first start"),
        ("run_time", "task_run_seconds", "Run time of a task's last attempt"),
    ):
        family = HistogramMetricFamily(f"{_P}_{name}", doc, labels=["task_type", "priority"])
        for pair in m.get("histograms", []):
            histogram = pair[key]
            buckets = [(repr(float(bound)), n) for bound, n in histogram["buckets"]]
            buckets.append(("+Inf", histogram["count"]))
            family.add_metric(
                [pair["task_type"], pair["priority"]], buckets, sum_value=histogram["sum"]
            )
        yield family


def _queue_and_workers(m: dict[str, Any]) -> Iterator[Metric]:
    """What waits, what runs, and the worker slots' states."""
    depth = GaugeMetricFamily(
        f"{_P}_queue_depth", "Tasks waiting, by effective priority", labels=["priority"]
    )
    for name, n in m.get("queued_by_priority", {}).items():
        depth.add_metric([name], n)
    yield depth
    yield GaugeMetricFamily(f"{_P}_queue_size", "Tasks waiting", value=m["queue_size"])
    yield GaugeMetricFamily(f"{_P}_running_tasks", "Tasks running", value=m["running_tasks"])
    states: Counter[tuple[str, str]] = Counter()
    for worker in m.get("worker_stats", {}).values():
        states[(worker["context"], worker["status"])] += 1
    workers = GaugeMetricFamily(
        f"{_P}_workers", "Worker slots, by context and state", labels=["context", "state"]
    )
    for (context, state), n in sorted(states.items()):
        workers.add_metric([context, state], n)
    yield workers


_GAUGES = (
    ("success_rate", "success_rate_percent", "Completed among tasks that ran to an end"),
    ("current_throughput", "throughput_tasks_per_second", "Tasks ended per second, last minute"),
    ("average_execution_time", "average_execution_seconds", "Mean run time of all attempts"),
    ("uptime_seconds", "uptime_seconds", "Seconds since the processor was created"),
    ("retained_results", "retained_results", "Ended results kept in memory"),
)


def _process_gauges(m: dict[str, Any]) -> Iterator[Metric]:
    """Rates, uptime, memory, loop lag and evictions."""
    for key, name, doc in _GAUGES:
        if key in m:
            yield GaugeMetricFamily(f"{_P}_{name}", doc, value=float(m[key]))
    if "memory_usage_mb" in m:
        yield GaugeMetricFamily(
            f"{_P}_resident_memory_bytes",
            "Resident memory of the process",
            value=m["memory_usage_mb"] * 1024 * 1024,
        )
    lag = m.get("event_loop_lag")
    if lag:
        yield GaugeMetricFamily(
            f"{_P}_event_loop_lag_seconds", "Latest event-loop lag", value=lag["current_s"]
        )
    evicted = CounterMetricFamily(f"{_P}_results_evicted", "Results dropped by TTL or max_results")
    evicted.add_metric([], m.get("results_evicted", 0))
    yield evicted
