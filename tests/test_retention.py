"""RetainedResults: results kept for a TTL and up to a count, oldest out first (explicit `now`)."""

from __future__ import annotations

from async_processor import TaskResult, TaskStatus
from async_processor.retention import RetainedResults


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
