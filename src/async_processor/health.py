"""What the health check judges, and how: :class:`HealthLimits`, :func:`judge` (no I/O).

Each problem found is a *reason*; the status is the worst of them: ``unhealthy`` when the
processor cannot run tasks (stopped, a worker coroutine died, a pool failed to start or
has no usable slot, the store does not answer), ``degraded`` when it runs them badly (a
long queue, a low success rate over the recent window, a late event loop, threads left
running abandoned tasks), ``healthy`` otherwise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["UNHEALTHY_REASONS", "HealthLimits", "Observed", "judge"]

#: The reasons that make the processor unhealthy; every other reason degrades it.
UNHEALTHY_REASONS = frozenset(
    {"processor_stopped", "worker_died", "pool_failed", "pool_unavailable", "store_unavailable"}
)

#: Slot states in which a worker cannot take a task.
_UNUSABLE = frozenset({"abandoned", "restarting", "stopped"})


@dataclass(frozen=True, slots=True)
class HealthLimits:
    """The processor's ``health_*`` arguments."""

    #: Seconds of recent outcomes the success rate is computed over.
    window: float = 300.0
    #: Fewest outcomes (completed, failed, timed out) in the window before judging the rate.
    min_tasks: int = 10
    max_queue: int = 1000
    min_success_rate: float = 95.0
    #: Seconds late the event loop may run a timer.
    max_loop_lag: float = 1.0


@dataclass(frozen=True, slots=True)
class Observed:
    """What the processor saw, besides its metrics snapshot."""

    running: bool
    #: Completed, and failed or timed out, over the window.
    recent: tuple[int, int]
    #: (reason, detail) of each lane whose workers or pool broke.
    lanes: list[tuple[str, str]]
    #: What is wrong with the store, or None.
    store: str | None


def judge(metrics: dict[str, Any], observed: Observed, limits: HealthLimits) -> dict[str, Any]:
    """``{"status", "reason", "reasons", "metrics"}``: ``reason`` is the first (worst) of
    ``reasons``, None when healthy; ``metrics["health"]`` holds what was seen per reason
    (``details``) and the window's counts (``recent``)."""
    found = _problems(metrics, observed, limits)
    ok, bad = observed.recent
    ordered = sorted(found, key=lambda reason: reason not in UNHEALTHY_REASONS)
    if not ordered:
        status = "healthy"
    elif ordered[0] in UNHEALTHY_REASONS:
        status = "unhealthy"
    else:
        status = "degraded"
    metrics["health"] = {
        "details": {reason: found[reason] for reason in ordered},
        "recent": {
            "window_s": limits.window,
            "completed": ok,
            "failed": bad,
            "success_rate": 100.0 * ok / (ok + bad) if ok + bad else 100.0,
        },
    }
    return {
        "status": status,
        "reason": ordered[0] if ordered else None,
        "reasons": ordered,
        "metrics": metrics,
    }


def _problems(metrics: dict[str, Any], observed: Observed, limits: HealthLimits) -> dict[str, str]:
    """Each reason found, with what was seen."""
    if not observed.running:  # what else is seen of a stopped processor is its past
        return {"processor_stopped": "not started, or shutting down"}
    found: dict[str, str] = {}
    for reason, detail in observed.lanes:
        found[reason] = f"{found[reason]}; {detail}" if reason in found else detail
    if observed.store is not None:
        found["store_unavailable"] = observed.store
    found.update(_worker_problems(metrics.get("worker_stats", {})))
    if metrics["queue_size"] > limits.max_queue:
        found["high_queue_size"] = f"{metrics['queue_size']} tasks wait (> {limits.max_queue})"
    ok, bad = observed.recent
    if ok + bad >= limits.min_tasks:
        rate = 100.0 * ok / (ok + bad)
        if rate < limits.min_success_rate:
            found["low_success_rate"] = (
                f"{rate:.1f}% of the last {ok + bad} outcomes in {limits.window:g}s succeeded "
                f"(< {limits.min_success_rate:g}%)"
            )
    lag = metrics.get("event_loop_lag", {}).get("current_s", 0.0)
    if lag > limits.max_loop_lag:
        found["event_loop_lag"] = f"the event loop ran a timer {lag:.3f}s late"
    return found


def _worker_problems(workers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Threads left running abandoned tasks; a lane with no usable slot."""
    found: dict[str, str] = {}
    slots: Counter[str] = Counter()
    unusable: Counter[str] = Counter()
    abandoned = 0
    for worker in workers.values():
        slots[worker["context"]] += 1
        if worker["status"] in _UNUSABLE:
            unusable[worker["context"]] += 1
        abandoned += worker["status"] == "abandoned"
    if abandoned:
        found["abandoned_threads"] = (
            f"{abandoned} slot(s) wait for a thread still running a cancelled or timed-out task"
        )
    dead = [lane for lane, n in slots.items() if unusable[lane] == n]
    if dead:
        found["pool_unavailable"] = "no usable slot in the " + ", ".join(dead) + " lane"
    return found
