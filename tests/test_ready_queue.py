"""ReadyQueue: most urgent first, FIFO among equals, CRITICAL always first, aging, lazy removal.

Records carry an explicit ``submitted_at``, so aging is tested without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from async_processor.ready_queue import ReadyQueue

CRITICAL, HIGH, NORMAL, LOW, BATCH = 1, 2, 3, 4, 5
INTERVAL = 10.0


@dataclass(eq=False)
class Rec:
    name: str
    priority: int
    submitted_at: float = 0.0
    entry: list[Any] | None = field(default=None, repr=False)
    queue: ReadyQueue | None = field(default=None, repr=False)


def drain(queue: ReadyQueue) -> list[str]:
    names = []
    while (record := queue.pop()) is not None:
        names.append(record.name)
    return names


@pytest.mark.parametrize("aging", [None, INTERVAL])
def test_most_urgent_first(aging: float | None) -> None:
    queue = ReadyQueue(aging)
    for name, priority in [("normal", NORMAL), ("batch", BATCH), ("high", HIGH), ("low", LOW)]:
        queue.push(Rec(name, priority, submitted_at=100.0))
    queue.push(Rec("critical", CRITICAL, submitted_at=100.0))
    assert drain(queue) == ["critical", "high", "normal", "low", "batch"]


@pytest.mark.parametrize("aging", [None, INTERVAL])
def test_fifo_among_equals(aging: float | None) -> None:
    queue = ReadyQueue(aging)
    for i in range(20):
        queue.push(Rec(f"n{i}", NORMAL, submitted_at=5.0))
        queue.push(Rec(f"c{i}", CRITICAL, submitted_at=5.0))
    assert drain(queue) == [f"c{i}" for i in range(20)] + [f"n{i}" for i in range(20)]


def test_fifo_without_aging_ignores_ready_time() -> None:
    queue = ReadyQueue(None)
    queue.push(Rec("first", LOW, submitted_at=500.0))
    queue.push(Rec("second", LOW, submitted_at=0.0))
    queue.push(Rec("urgent", HIGH, submitted_at=900.0))
    assert drain(queue) == ["urgent", "first", "second"]


def test_critical_always_first_even_against_long_aged_work() -> None:
    queue = ReadyQueue(INTERVAL)
    queue.push(Rec("ancient batch", BATCH, submitted_at=0.0))
    queue.push(Rec("ancient high", HIGH, submitted_at=0.0))
    queue.push(Rec("fresh critical", CRITICAL, submitted_at=1_000_000.0))
    assert drain(queue) == ["fresh critical", "ancient high", "ancient batch"]


def test_aging_one_interval_is_worth_one_level() -> None:
    # Waiting three intervals takes BATCH (5) to HIGH (2): an exact tie, broken by arrival.
    queue = ReadyQueue(INTERVAL)
    queue.push(Rec("fresh high", HIGH, submitted_at=3 * INTERVAL))
    queue.push(Rec("batch waited 3", BATCH, submitted_at=0.0))
    assert drain(queue) == ["fresh high", "batch waited 3"]

    queue.push(Rec("batch waited 3", BATCH, submitted_at=0.0))
    queue.push(Rec("fresh high", HIGH, submitted_at=3 * INTERVAL))
    assert drain(queue) == ["batch waited 3", "fresh high"]


def test_batch_that_waited_four_intervals_goes_before_a_fresh_high() -> None:
    queue = ReadyQueue(INTERVAL)
    queue.push(Rec("fresh high", HIGH, submitted_at=4 * INTERVAL))
    queue.push(Rec("fresh normal", NORMAL, submitted_at=4 * INTERVAL))
    queue.push(Rec("batch waited 4", BATCH, submitted_at=0.0))
    assert drain(queue) == ["batch waited 4", "fresh high", "fresh normal"]


def test_batch_that_waited_less_yields_to_high() -> None:
    queue = ReadyQueue(INTERVAL)
    queue.push(Rec("batch waited 2.9", BATCH, submitted_at=0.0))
    queue.push(Rec("fresh high", HIGH, submitted_at=2.9 * INTERVAL))
    queue.push(Rec("fresh low", LOW, submitted_at=2.9 * INTERVAL))
    assert drain(queue) == ["fresh high", "batch waited 2.9", "fresh low"]


def test_aged_work_is_never_above_high() -> None:
    # However long it waited, aged work never overtakes CRITICAL; CRITICAL is never aged.
    queue = ReadyQueue(INTERVAL)
    for waited in (10, 100, 10_000):
        queue.push(Rec(f"batch waited {waited}", BATCH, submitted_at=-waited * INTERVAL))
    queue.push(Rec("critical", CRITICAL, submitted_at=1e9))
    queue.push(Rec("critical 2", CRITICAL, submitted_at=0.0))
    assert drain(queue)[:2] == ["critical", "critical 2"]


def test_len_peek_remove_and_requeue() -> None:
    queue = ReadyQueue(None)
    a, b, c = Rec("a", NORMAL), Rec("b", LOW), Rec("c", NORMAL)
    for record in (a, b, c):
        queue.push(record)
    assert len(queue) == 3
    assert a.queue is queue and a.entry is not None
    queue.remove(a)  # lazy: blanked in the heap, skipped on pop
    assert a.queue is None and a.entry is None
    assert len(queue) == 2
    b.priority = CRITICAL  # lifted
    queue.requeue(b)
    assert len(queue) == 2
    assert drain(queue) == ["b", "c"]
    assert len(queue) == 0
    assert queue.pop() is None
    assert b.queue is None and b.entry is None


def test_a_removed_record_can_be_pushed_again() -> None:
    queue = ReadyQueue(INTERVAL)
    record = Rec("r", LOW, submitted_at=1.0)
    queue.push(record)
    queue.remove(record)
    queue.push(record)
    assert len(queue) == 1
    assert drain(queue) == ["r"]


def test_pop_skips_removed_entries() -> None:
    queue = ReadyQueue(None)
    first, second = Rec("first", CRITICAL), Rec("second", HIGH)
    queue.push(first)
    queue.push(second)
    queue.remove(first)
    assert queue.pop() is second
