"""PerformanceMonitor: nearest-rank percentiles, counts, success rate, throughput, snapshots."""

from __future__ import annotations

import json
import time

import pytest

from async_processor import PerformanceMonitor, TaskStatus
from async_processor.monitor import BUCKETS, Histogram, percentiles


def test_percentiles_nearest_rank() -> None:
    assert percentiles(range(1, 101)) == {"p50": 50, "p95": 95, "p99": 99}
    assert percentiles(range(1, 11)) == {"p50": 5, "p95": 10, "p99": 10}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert percentiles([3, 1, 2]) == {"p50": 2, "p95": 3, "p99": 3}
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    assert percentiles(range(1, 1001), points=(1, 50, 100)) == {"p1": 10, "p50": 500, "p100": 1000}


def ended(
    monitor: PerformanceMonitor,
    type_name: str,
    priority: str,
    status: TaskStatus,
    exec_time: float | None,
) -> None:
    monitor.task_ended(monitor.breakdowns(type_name, priority), status, exec_time)


def test_counts_and_success_rate_exclude_cancellations() -> None:
    monitor = PerformanceMonitor()
    assert monitor.tasks_processed == 0
    assert monitor.success_rate == 100.0  # nothing ran to an outcome yet
    for _ in range(3):
        ended(monitor, "text", "HIGH", TaskStatus.COMPLETED, 0.2)
    ended(monitor, "text", "LOW", TaskStatus.FAILED, 0.4)
    for _ in range(5):
        ended(monitor, "audio", "LOW", TaskStatus.CANCELLED, None)
    assert monitor.tasks_processed == 9
    assert monitor.success_rate == 75.0
    ended(monitor, "audio", "LOW", TaskStatus.TIMEOUT, 1.0)
    assert monitor.success_rate == 60.0
    snap = monitor.snapshot()
    assert snap["tasks_by_status"] == {"completed": 3, "failed": 1, "cancelled": 5, "timeout": 1}
    assert snap["average_execution_time"] == pytest.approx((0.6 + 0.4 + 1.0) / 5)
    assert snap["by_type"]["text"]["counts"] == {
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
        "timeout": 0,
    }
    assert snap["by_priority"]["LOW"]["counts"]["cancelled"] == 5
    assert snap["by_type"]["text"]["execution_time"] == {"p50": 0.2, "p95": 0.4, "p99": 0.4}


def test_queue_wait_percentiles_and_retries() -> None:
    monitor = PerformanceMonitor()
    pair = monitor.breakdowns("text", "NORMAL")
    assert monitor.breakdowns("text", "NORMAL") is pair
    for wait in (0.1, 0.2, 0.3, 0.4):
        monitor.task_started(pair, wait, 0.0)
    monitor.task_retried(pair, 0.05)
    monitor.task_retried(pair, 0.05)
    snap = monitor.snapshot()
    assert snap["by_type"]["text"]["queue_wait"] == {"p50": 0.2, "p95": 0.4, "p99": 0.4}
    assert snap["by_priority"]["NORMAL"]["queue_wait"]["p50"] == 0.2
    assert snap["retries"] == 2
    assert snap["by_type"]["text"]["retries"] == 2


def test_throughput() -> None:
    monitor = PerformanceMonitor()
    assert monitor.throughput() == 0.0
    monitor.started = time.monotonic() - 30.0  # as if it had been up for 30 s
    for _ in range(300):
        ended(monitor, "x", "NORMAL", TaskStatus.COMPLETED, 0.0)
    assert monitor.throughput() == pytest.approx(10.0, rel=0.01)
    monitor.started = time.monotonic() - 600.0  # the window is the last minute
    assert monitor.throughput() == pytest.approx(5.0, rel=0.01)


def test_snapshot_keys() -> None:
    monitor = PerformanceMonitor()
    ended(monitor, "x", "NORMAL", TaskStatus.COMPLETED, 0.1)
    monitor.record_loop_lag(0.002)
    monitor.record_loop_lag(0.001)
    snap = monitor.snapshot()
    assert set(snap) == {
        "tasks_processed",
        "tasks_by_status",
        "success_rate",
        "average_execution_time",
        "current_throughput",
        "retries",
        "uptime_seconds",
        "peak_memory_usage_mb",
        "memory_usage_mb",
        "histograms",
        "event_loop_lag",
        "by_type",
        "by_priority",
    }
    assert snap["event_loop_lag"]["current_s"] == 0.001
    assert snap["event_loop_lag"]["max_s"] == 0.002
    assert snap["uptime_seconds"] >= 0
    assert snap["peak_memory_usage_mb"] > 1 and snap["memory_usage_mb"] > 1
    assert set(snap["by_type"]["x"]) == {"counts", "queue_wait", "execution_time", "retries"}
    json.dumps(snap)


def test_profiling_adds_a_profile() -> None:
    plain = PerformanceMonitor()
    ended(plain, "x", "NORMAL", TaskStatus.COMPLETED, 0.1)
    assert "profile" not in plain.snapshot()

    monitor = PerformanceMonitor(profiling=True)
    pair = monitor.breakdowns("x", "NORMAL")
    monitor.task_started(pair, 0.25, 1.5)
    monitor.task_retried(pair, 0.75)
    monitor.task_ended(pair, TaskStatus.COMPLETED, 2.0)
    assert monitor.snapshot()["profile"] == {
        "x": {
            "waiting_on_dependencies_s": 1.5,
            "queued_s": 0.25,
            "running_s": 2.0,
            "retry_backoff_s": 0.75,
        }
    }


def test_disabled_keeps_only_the_health_counters() -> None:
    monitor = PerformanceMonitor(enabled=False)
    pair = monitor.breakdowns("x", "NORMAL")
    monitor.task_started(pair, 0.5, 0.0)
    monitor.task_ended(pair, TaskStatus.FAILED, 0.1)
    monitor.task_ended(pair, TaskStatus.COMPLETED, 0.1)
    assert monitor.tasks_processed == 2
    assert monitor.success_rate == 50.0
    snap = monitor.snapshot()
    assert snap["by_type"]["x"]["counts"]["completed"] == 0
    assert snap["by_type"]["x"]["queue_wait"]["p50"] == 0.0


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    histogram = Histogram()
    for seconds in (0.0001, 0.0005, 0.0006, 0.3, 61.0, 0.3):
        histogram.observe(seconds)
    snap = histogram.snapshot()
    buckets = dict(snap["buckets"])
    assert [bound for bound, _ in snap["buckets"]] == list(BUCKETS)
    assert buckets[0.0005] == 2  # an upper bound is inclusive ("le")
    assert buckets[0.001] == 3
    assert buckets[0.25] == 3
    assert buckets[0.5] == 5
    assert buckets[60.0] == 5  # 61 s falls only in +Inf, which is the count
    assert snap["count"] == 6
    assert snap["sum"] == pytest.approx(0.0001 + 0.0005 + 0.0006 + 0.6 + 61.0)


def test_histograms_per_type_and_priority() -> None:
    monitor = PerformanceMonitor(enabled=False)  # histograms are kept even then
    pair = monitor.breakdowns("x", "HIGH")
    monitor.task_started(pair, 0.002, 0.0)
    monitor.task_ended(pair, TaskStatus.COMPLETED, 0.04)
    monitor.task_ended(monitor.breakdowns("x", "LOW"), TaskStatus.CANCELLED, None)
    high, low = monitor.histograms()
    assert (high["task_type"], high["priority"]) == ("x", "HIGH")
    assert high["queue_wait"]["count"] == 1
    assert high["run_time"]["count"] == 1
    assert dict(high["run_time"]["buckets"])[0.05] == 1
    assert dict(high["run_time"]["buckets"])[0.025] == 0
    assert low["run_time"]["count"] == 0  # it never ran
    assert json.loads(json.dumps(monitor.snapshot(), allow_nan=False))["histograms"][0] == high
