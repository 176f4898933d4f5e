"""RetainedResults: results kept for a TTL and up to a count, oldest out first (explicit `now`)."""

from __future__ import annotations

import sys

from async_processor import TaskResult, TaskStatus
from async_processor.retention import EndedTask, RetainedResults


def ended(task_id: str, at: float) -> TaskResult:
    return TaskResult(task_id, TaskStatus.COMPLETED, result=task_id, completed_at=at)


def test_kept_within_ttl_and_dropped_after() -> None:
    store = RetainedResults(ttl=10.0, max_results=100)
    first = ended("a", 100.0)
    store.add(first, now=100.0)
    assert store.get("a", now=105.0) is first
    assert store.get("a", now=110.0) is first  # exactly the TTL: still kept
    assert "a" in store and len(store) == 1
    assert store.get("a", now=110.01) is None
    assert "a" not in store and len(store) == 0
    assert store.evicted == 1


def test_expire_drops_every_result_past_its_ttl_oldest_first() -> None:
    store = RetainedResults(ttl=10.0, max_results=100)
    for i, at in enumerate([0.0, 1.0, 2.0, 9.0]):
        store.add(ended(f"t{i}", at), now=at)
    store.expire(now=11.5)
    assert [r.task_id for r in store.values()] == ["t2", "t3"]
    assert store.evicted == 2
    store.expire(now=19.5)
    assert len(store) == 0 and store.evicted == 4


def test_adding_expires_old_results() -> None:
    store = RetainedResults(ttl=5.0, max_results=100)
    store.add(ended("old", 0.0), now=0.0)
    store.add(ended("new", 20.0), now=20.0)
    assert "old" not in store and "new" in store
    assert store.evicted == 1


def test_max_results_evicts_oldest_first() -> None:
    store = RetainedResults(ttl=3600.0, max_results=3)
    for i in range(5):
        store.add(ended(f"t{i}", float(i)), now=float(i))
    assert [r.task_id for r in store.values()] == ["t2", "t3", "t4"]
    assert store.evicted == 2
    assert store.get("t0", now=5.0) is None
    assert store.get("t4", now=5.0) is not None


def test_max_results_zero_keeps_nothing() -> None:
    store = RetainedResults(ttl=3600.0, max_results=0)
    store.add(ended("a", 0.0), now=0.0)
    assert len(store) == 0 and store.evicted == 1


def test_unknown_id() -> None:
    store = RetainedResults(ttl=1.0, max_results=1)
    assert store.get("nope", now=0.0) is None
    assert "nope" not in store
    assert store.evicted == 0


def test_memory_stays_flat_under_endless_load() -> None:
    store = RetainedResults(ttl=1.0, max_results=1000)
    for i in range(50_000):
        store.add(ended(f"t{i}", i * 0.001), now=i * 0.001)
    assert len(store) <= 1001
    assert store.evicted == 50_000 - len(store)


def test_churn_keeps_every_result_and_the_shards_compact() -> None:
    """Dropped results leave deleted slots in a shard's table; the shard is rebuilt
    before they pile up, so a store under churn is no bigger than one filled afresh."""
    store = RetainedResults(ttl=3600.0, max_results=20_000)
    for i in range(60_000):
        store.add(ended(f"t{i}", i * 0.001), now=i * 0.001)
    kept = [f"t{i}" for i in range(40_000, 60_000)]
    assert [r.task_id for r in store.values()] == kept
    assert all(store.get(task_id, now=60.0) is not None for task_id in kept)
    fresh = RetainedResults(ttl=3600.0, max_results=20_000)
    for task_id in kept:
        fresh.add(ended(task_id, 0.0), now=0.0)
    size = sum(sys.getsizeof(shard) for shard in store._shards)
    # Measured over hash seeds 1-5: 1.35-1.49 with rebuilds, 1.85-2.11 without.
    assert size <= 1.7 * sum(sys.getsizeof(shard) for shard in fresh._shards)


def test_a_result_without_a_graph_is_kept_bare_until_a_dependent_needs_its_place() -> None:
    store = RetainedResults(ttl=3600.0, max_results=100)
    result = ended("a", 0.0)
    store.add(result, now=0.0)
    assert store.entries() == [result]  # no EndedTask beside it
    transient = store.ended("a", now=0.0)
    assert transient is not None and transient.result is result
    assert transient.dependents is None and transient.depends_on == ()
    place = store.place("a", now=0.0)
    assert place is not None
    place.dependents = ["b"]
    again = store.ended("a", now=0.0)
    assert again is place and again.dependents == ["b"]
    assert store.get("a", now=0.0) is result
    assert store.place("nope", now=0.0) is None


def test_a_kept_result_with_its_graph_is_found_whole() -> None:
    store = RetainedResults(ttl=3600.0, max_results=100)
    result = ended("b", 0.0)
    store.keep(EndedTask(result, ["a"], None, 5.0, 4.0, 1), now=0.0)
    kept = store.ended("b", now=0.0)
    assert kept is not None and kept.depends_on == ["a"]
    assert (kept.deadline, kept.effective_deadline, kept.priority) == (5.0, 4.0, 1)
    assert store.get("b", now=0.0) is result
    assert store.values() == [result]
