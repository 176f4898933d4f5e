"""Admission limits: per-type concurrency and token-bucket rate, and the memory budget."""

from __future__ import annotations

from typing import Any

import pytest

from async_processor import InvalidArgumentError
from async_processor.limits import MemoryBudget, TypeLimit, available_memory_mb
from async_processor.ready_queue import ReadyQueue


def limit(
    max_concurrency: int | None = None, rate: float | None = None, per: float = 1.0
) -> TypeLimit:
    return TypeLimit(max_concurrency, rate, per, None, now=0.0)


def test_concurrency() -> None:
    lim = limit(max_concurrency=2)
    assert lim.has_room(0.0) and not lim.saturated
    lim.acquire(0.0)
    assert lim.has_room(0.0)
    lim.acquire(0.0)
    assert not lim.has_room(0.0) and not lim.has_room(1e9)
    assert lim.saturated and lim.running == 2
    lim.release()
    assert lim.has_room(0.0) and not lim.saturated
    assert lim.next_token_in(0.0) is None  # not rate-limited


def test_unlimited() -> None:
    lim = limit()
    for _ in range(1000):
        assert lim.has_room(0.0)
        lim.acquire(0.0)
    assert not lim.saturated


def test_token_bucket_burst_then_refill() -> None:
    lim = limit(rate=2, per=1.0)  # 2 starts per second, a burst of 2 after a quiet spell
    assert lim.has_room(0.0)
    lim.acquire(0.0)
    lim.acquire(0.0)
    assert not lim.has_room(0.0)
    assert lim.next_token_in(0.0) == pytest.approx(0.5)
    assert lim.next_token_in(0.25) == pytest.approx(0.25)
    assert not lim.has_room(0.4)
    assert lim.has_room(0.5)
    assert lim.next_token_in(0.5) is None
    lim.acquire(0.5)
    assert not lim.has_room(0.5)
    # A long quiet spell refills the bucket to its size, not beyond.
    assert lim.has_room(100.0)
    lim.acquire(100.0)
    lim.acquire(100.0)
    assert not lim.has_room(100.0)


def test_rate_per_longer_period() -> None:
    lim = limit(rate=3, per=60.0)  # 3 starts a minute
    for _ in range(3):
        assert lim.has_room(0.0)
        lim.acquire(0.0)
    assert not lim.has_room(0.0)
    assert lim.next_token_in(0.0) == pytest.approx(20.0)
    assert not lim.has_room(19.9)
    assert lim.has_room(20.0)


def test_concurrency_and_rate_together() -> None:
    lim = limit(max_concurrency=1, rate=10)
    lim.acquire(0.0)
    assert not lim.has_room(5.0)  # tokens galore, but the slot is taken
    lim.release()
    assert lim.has_room(5.0)


def test_rate_below_one_per_period_still_admits() -> None:
    # Regression: the bucket held only `rate` (< 1) tokens, so no task ever started.
    lim = limit(rate=0.5, per=1.0)  # one start every 2 seconds
    assert lim.has_room(0.0)
    lim.acquire(0.0)
    assert not lim.has_room(1.9)
    assert lim.next_token_in(1.0) == pytest.approx(1.0)
    assert lim.has_room(2.0)
    lim.acquire(2.0)
    assert not lim.has_room(3.9)
    assert lim.has_room(1000.0)
    lim.acquire(1000.0)
    assert not lim.has_room(1000.0)  # a quiet spell still earns a single start


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"rate": 0}, "rate"),
        ({"rate": -2}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"rate": 1, "per": 0}, "per"),
        ({"rate": 1, "per": -1}, "per"),
        ({"rate": 1, "per": True}, "per"),
    ],
)
def test_bad_arguments(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        limit(**arguments)


def test_memory_budget_max_concurrent() -> None:
    budget = MemoryBudget(max_concurrent=2, min_free_mb=0, parked=ReadyQueue(None))
    assert not budget.memory_low()
    assert budget.try_acquire() and budget.try_acquire()
    assert budget.saturated
    assert not budget.try_acquire()
    assert budget.running == 2
    budget.release()
    assert not budget.saturated
    assert budget.try_acquire()


def test_memory_budget_min_free_mb() -> None:
    plenty = available_memory_mb()
    starved = MemoryBudget(max_concurrent=5, min_free_mb=plenty * 1000, parked=ReadyQueue(None))
    assert starved.memory_low()
    assert not starved.try_acquire()
    assert starved.running == 0
    fine = MemoryBudget(max_concurrent=5, min_free_mb=1, parked=ReadyQueue(None))
    assert not fine.memory_low()
    assert fine.try_acquire()


def test_available_memory() -> None:
    mb = available_memory_mb()
    assert isinstance(mb, float)
    assert mb > 0
