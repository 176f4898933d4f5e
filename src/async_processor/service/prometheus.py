"""``GET /metrics``: the processor's metrics in the Prometheus text format.

A custom collector turns one ``get_performance_metrics()`` snapshot into metric families;
each app has its own registry (never the global one), so several apps can live in one
process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["MetricsExporter"]

_P = "async_processor"
_QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        if not m:
            return
        yield from _task_counters(m)
        yield from _queue_and_workers(m)
        yield from _latencies(m)
        yield from _process_gauges(m)


def _task_counters(m: dict[str, Any]) -> Iterator[Metric]:
    """Ended tasks by type, priority and status, and retries."""
    by_type: dict[str, Any] = m.get("by_type", {})
    by_priority: dict[str, Any] = m.get("by_priority", {})
    tasks = CounterMetricFamily(
        f"{_P}_tasks", "Tasks ended, by type and status", labels=["task_type", "status"]
    )
    for name, b in by_type.items():
        for status, n in b["counts"].items():
            tasks.add_metric([name, status], n)
    yield tasks
    prio = CounterMetricFamily(
        f"{_P}_tasks_by_priority",
        "Tasks ended, by submitted priority and status",
        labels=["priority", "status"],
    )
    for name, b in by_priority.items():
        for status, n in b["counts"].items():
            prio.add_metric([name, status], n)
    yield prio
    statuses = CounterMetricFamily(f"{_P}_tasks_ended", "Tasks ended, by status", labels=["status"])
    for status, n in m.get("tasks_by_status", {}).items():
        statuses.add_metric([status], n)
    yield statuses
    retries = CounterMetricFamily(f"{_P}_retries", "Retried attempts", labels=["task_type"])
    for name, b in by_type.items():
        retries.add_metric([name], b["retries"])
    yield retries


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


def _latencies(m: dict[str, Any]) -> Iterator[Metric]:
    """Run time and queue wait quantiles per task type."""
    by_type: dict[str, Any] = m.get("by_type", {})
    yield _summary(
        f"{_P}_execution_seconds",
        "Run time of recent attempts (quantiles over a sliding window)",
        by_type,
        "execution_time",
        m.get("profile"),
    )
    yield _summary(
        f"{_P}_queue_wait_seconds",
        "Time from ready to started of recent tasks (sliding window)",
        by_type,
        "queue_wait",
        None,
    )


def _process_gauges(m: dict[str, Any]) -> Iterator[Metric]:
    """Rates, uptime, memory, loop lag and evictions."""
    for key, name, doc in (
        ("success_rate", "success_rate_percent", "Completed among tasks that ran to an end"),
        (
            "current_throughput",
            "throughput_tasks_per_second",
            "Tasks ended per second, last minute",
        ),
        (
            "average_execution_time",
            "average_execution_seconds",
            "Mean run time of all attempts",
        ),
        ("uptime_seconds", "uptime_seconds", "Seconds since the processor was created"),
        ("retained_results", "retained_results", "Ended results kept in memory"),
    ):
        if key in m:
            yield GaugeMetricFamily(f"{_P}_{name}", doc, value=float(m[key]))
    if "memory_usage_mb" in m:
        yield GaugeMetricFamily(
            f"{_P}_resident_memory_bytes",
            "Resident memory of the service process",
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


def _summary(
    name: str, doc: str, by_type: dict[str, Any], key: str, profile: dict[str, Any] | None
) -> Metric:
    """Quantiles per type; ``_count`` and ``_sum`` too when profiling gives the total."""
    family = Metric(name, doc, "summary")
    for task_type, b in by_type.items():
        for point, quantile in _QUANTILES:
            family.add_sample(name, {"task_type": task_type, "quantile": quantile}, b[key][point])
        if profile is not None and task_type in profile:
            counts = b["counts"]
            ran = counts["completed"] + counts["failed"] + counts["timeout"]
            family.add_sample(f"{name}_count", {"task_type": task_type}, ran)
            family.add_sample(
                f"{name}_sum", {"task_type": task_type}, profile[task_type]["running_s"]
            )
    return family


class MetricsExporter:
    """Renders a metrics snapshot with its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)

    def render(self, metrics: dict[str, Any]) -> bytes:
        self._collector.metrics = metrics
        try:
            return generate_latest(self.registry)
        finally:
            self._collector.metrics = {}
