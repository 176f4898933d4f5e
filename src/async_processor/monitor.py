"""Counters and latency samples, read as snapshots (exporters pull; nothing is pushed).

Per task, the scheduler makes a few O(1) calls here: appends to bounded sample windows,
counter increments and one bisect per histogram observation. Percentiles and cumulative
bucket counts are computed only when someone asks for a snapshot.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import resource
import time
from collections import deque
from typing import Any

from .lifecycle import TaskStatus

__all__ = ["BUCKETS", "Histogram", "PerformanceMonitor", "percentiles"]

_STATUSES = tuple(s for s in TaskStatus if s.is_terminal)

#: Seconds between two measurements of the event-loop lag.
_PROBE_EVERY = 0.5

#: Upper bounds (seconds) of the queue-wait and run-time histogram buckets: from half a
#: millisecond (a no-op on the loop) to a minute (a long generation); +Inf is implied.
BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def percentiles(samples: Any, points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` as ``{"p50": ..., ...}``; zeros when empty."""
    ordered = sorted(samples)
    if not ordered:
        return {f"p{p}": 0.0 for p in points}
    n = len(ordered)
    return {f"p{p}": ordered[max(0, math.ceil(p / 100 * n) - 1)] for p in points}


class _Breakdown:
    """Counts and latency windows for one task type or one priority."""

    __slots__ = (
        "backoff",
        "counts",
        "dependency_wait",
        "exec_time",
        "queue_wait",
        "retries",
        "total_exec",
        "total_queue",
    )

    def __init__(self, window: int) -> None:
        self.counts = dict.fromkeys(_STATUSES, 0)
        self.queue_wait: deque[float] = deque(maxlen=window)
        self.exec_time: deque[float] = deque(maxlen=window)
        self.retries = 0
        self.total_queue = 0.0
        self.total_exec = 0.0
        self.dependency_wait = 0.0
        self.backoff = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": {status.value: n for status, n in self.counts.items()},
            "queue_wait": percentiles(self.queue_wait),
            "execution_time": percentiles(self.exec_time),
            "retries": self.retries,
        }

    def profile(self) -> dict[str, float]:
        return {
            "waiting_on_dependencies_s": round(self.dependency_wait, 6),
            "queued_s": round(self.total_queue, 6),
            "running_s": round(self.total_exec, 6),
            "retry_backoff_s": round(self.backoff, 6),
        }


class Histogram:
    """Counts of observations per bucket of :data:`BUCKETS` (one bisect each), their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": [[upper bound, cumulative count], ...], "sum", "count"}``; the
        +Inf bucket is ``count`` (left out, so that the snapshot stays plain JSON)."""
        cumulative: list[list[float]] = []
        total = 0
        for bound, n in zip(BUCKETS, self.counts, strict=False):
            total += n
            cumulative.append([bound, total])
        return {"buckets": cumulative, "sum": self.sum, "count": total + self.counts[-1]}


class _Histograms:
    """Queue wait and run time of one (task type, priority) pair."""

    __slots__ = ("queue_wait", "run_time")

    def __init__(self) -> None:
        self.queue_wait = Histogram()
        self.run_time = Histogram()


Breakdowns = tuple[_Breakdown, _Breakdown, _Histograms]


class PerformanceMonitor:
    """What the processor has done: counts by status, latencies, throughput, loop lag.

    ``enabled=False`` keeps only the counters the health check needs; ``profiling=True``
    adds a per-type breakdown of where time went.
    """

    def __init__(self, enabled: bool = True, profiling: bool = False, window: int = 2048) -> None:
        self.enabled = enabled
        self.profiling = profiling
        self._window = window
        self.started = time.monotonic()
        self.counts = dict.fromkeys(_STATUSES, 0)
        self.total_exec = 0.0
        self.ran = 0
        self.retries = 0
        self.by_type: dict[str, _Breakdown] = {}
        self.by_priority: dict[str, _Breakdown] = {}
        self._pairs: dict[tuple[str, str], Breakdowns] = {}
        self._second = 0
        self._per_second: deque[tuple[int, int]] = deque(maxlen=61)
        self._this_second = 0
        #: Seconds of recent outcomes the health check judges (the processor sets it).
        self.recent_window = 300.0
        #: (second, completed, failed or timed out) of past seconds within recent_window.
        self._recent: deque[tuple[int, int, int]] = deque()
        self._ok_now = self._bad_now = 0
        self.loop_lag = 0.0
        self.loop_lag_max = 0.0
        self._lags: deque[float] = deque(maxlen=window)
        self._probe: asyncio.TimerHandle | None = None

    def breakdowns(self, type_name: str, priority: str) -> Breakdowns:
        """The (per type, per priority) pair a task's events are counted in."""
        pair = self._pairs.get((type_name, priority))
        if pair is None:
            by_type = self.by_type.get(type_name)
            if by_type is None:
                by_type = self.by_type[type_name] = _Breakdown(self._window)
            by_priority = self.by_priority.get(priority)
            if by_priority is None:
                by_priority = self.by_priority[priority] = _Breakdown(self._window)
            pair = self._pairs[(type_name, priority)] = (by_type, by_priority, _Histograms())
        return pair

    def task_started(self, pair: Breakdowns, queue_wait: float, dependency_wait: float) -> None:
        by_type, by_priority, histograms = pair
        histograms.queue_wait.observe(queue_wait)
        if not self.enabled:
            return
        by_type.queue_wait.append(queue_wait)
        by_priority.queue_wait.append(queue_wait)
        if self.profiling:
            by_type.total_queue += queue_wait
            by_type.dependency_wait += dependency_wait

    def task_retried(self, pair: Breakdowns, backoff: float) -> None:
        self.retries += 1
        by_type, by_priority, _ = pair
        by_type.retries += 1
        by_priority.retries += 1
        by_type.backoff += backoff

    def task_ended(self, pair: Breakdowns, status: TaskStatus, exec_time: float | None) -> None:
        """Count an ended task; ``exec_time`` is None when it never ran."""
        self.counts[status] += 1
        by_type, by_priority, histograms = pair
        if exec_time is not None:
            self.ran += 1
            self.total_exec += exec_time
            histograms.run_time.observe(exec_time)
        second = int(time.monotonic())
        if second != self._second:
            self._next_second(second)
        self._this_second += 1
        if status is TaskStatus.COMPLETED:
            self._ok_now += 1
        elif status is not TaskStatus.CANCELLED:
            self._bad_now += 1
        if not self.enabled:
            return
        by_type.counts[status] += 1
        by_priority.counts[status] += 1
        if exec_time is not None:
            by_type.exec_time.append(exec_time)
            by_priority.exec_time.append(exec_time)
            by_type.total_exec += exec_time

    def _next_second(self, second: int) -> None:
        """Close the per-second tallies of the second that ended; forget the too old."""
        if self._this_second:
            self._per_second.append((self._second, self._this_second))
        if self._ok_now or self._bad_now:
            self._recent.append((self._second, self._ok_now, self._bad_now))
        self._second, self._this_second = second, 0
        self._ok_now = self._bad_now = 0
        recent, oldest = self._recent, second - self.recent_window
        while recent and recent[0][0] < oldest:
            recent.popleft()

    def recent_outcomes(self) -> tuple[int, int]:
        """(completed, failed or timed out) over the last ``recent_window`` seconds."""
        oldest = int(time.monotonic()) - self.recent_window
        ok = bad = 0
        for second, completed, failed in self._recent:
            if second >= oldest:
                ok += completed
                bad += failed
        if self._second >= oldest:
            ok += self._ok_now
            bad += self._bad_now
        return ok, bad

    def histograms(self) -> list[dict[str, Any]]:
        """Per (task type, priority): cumulative ``queue_wait`` and ``run_time`` buckets."""
        return [
            {
                "task_type": type_name,
                "priority": priority,
                "queue_wait": histograms.queue_wait.snapshot(),
                "run_time": histograms.run_time.snapshot(),
            }
            for (type_name, priority), (_, _, histograms) in sorted(self._pairs.items())
        ]

    def record_loop_lag(self, lag: float) -> None:
        self.loop_lag = lag
        self.loop_lag_max = max(self.loop_lag_max, lag)
        self._lags.append(lag)

    def probe_loop_lag(self, loop: asyncio.AbstractEventLoop) -> None:
        """Measure, every half second, how late ``loop`` runs a timer: its lag."""
        due = loop.time() + _PROBE_EVERY

        def probe() -> None:
            nonlocal due
            now = loop.time()
            self.record_loop_lag(max(0.0, now - due))
            due = now + _PROBE_EVERY
            self._probe = loop.call_at(due, probe)

        self._probe = loop.call_at(due, probe)

    def stop_probe(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    @property
    def tasks_processed(self) -> int:
        return sum(self.counts.values())

    @property
    def success_rate(self) -> float:
        """Completed as a percentage of tasks that ran to an outcome (cancellations excluded)."""
        counts = self.counts
        done = counts[TaskStatus.COMPLETED]
        outcomes = done + counts[TaskStatus.FAILED] + counts[TaskStatus.TIMEOUT]
        return 100.0 * done / outcomes if outcomes else 100.0

    def throughput(self) -> float:
        """Tasks ended per second over the last minute (or the uptime, if shorter)."""
        now = time.monotonic()
        second = int(now)
        window = min(60.0, max(now - self.started, 1e-9))
        total = sum(n for s, n in self._per_second if s >= second - 60)
        if self._second >= second - 60:
            total += self._this_second
        return total / window

    def snapshot(self) -> dict[str, Any]:
        """The monitor's part of ``get_performance_metrics()``."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        snapshot: dict[str, Any] = {
            "tasks_processed": self.tasks_processed,
            "tasks_by_status": {status.value: n for status, n in self.counts.items()},
            "success_rate": self.success_rate,
            "average_execution_time": self.total_exec / self.ran if self.ran else 0.0,
            "current_throughput": self.throughput(),
            "retries": self.retries,
            "uptime_seconds": time.monotonic() - self.started,
            "peak_memory_usage_mb": usage.ru_maxrss / 1024,
            "memory_usage_mb": _current_rss_mb(),
            "event_loop_lag": {
                "current_s": self.loop_lag,
                "max_s": self.loop_lag_max,
                **percentiles(self._lags),
            },
            "by_type": {name: b.snapshot() for name, b in sorted(self.by_type.items())},
            "by_priority": {name: b.snapshot() for name, b in sorted(self.by_priority.items())},
            "histograms": self.histograms(),
        }
        if self.profiling:
            snapshot["profile"] = {name: b.profile() for name, b in sorted(self.by_type.items())}
        return snapshot


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / (1024 * 1024)
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
