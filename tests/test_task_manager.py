"""TaskManager: batch checks, topological order, the graph, endings, listeners (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from async_processor import (
    DependencyCycleError,
    DependencyNotFoundError,
    DuplicateTaskError,
    ProcessingTask,
    TaskManager,
    TaskNotFoundError,
    TaskPriority,
    TaskResult,
    TaskStatus,
    create_task,
)
from async_processor.task_manager import EXPIRED, TaskRecord


def fn(task: ProcessingTask) -> None:
    return None


def task(name: str, *deps: str, **fields: Any) -> ProcessingTask:
    return create_task("x", id=name, depends_on=list(deps), **fields)


def add(manager: TaskManager, *tasks: ProcessingTask) -> list[TaskRecord]:
    """Check and add a batch; the records come back in the order given."""
    added = {t.id: manager.add(t, fn, "async") for t in manager.order_batch(tasks)}
    return [added[t.id] for t in tasks]


def run(manager: TaskManager, record: TaskRecord, status: TaskStatus, value: Any = None) -> Any:
    manager.transition(record, TaskStatus.RUNNING)
    return manager.finish(record, status, value, None if status is TaskStatus.COMPLETED else "boom")


# ------------------------------------------------------------ order_batch


def test_duplicates_in_a_batch_and_known_ids_are_refused() -> None:
    manager = TaskManager()
    with pytest.raises(DuplicateTaskError, match="'a'"):
        manager.order_batch([task("a"), task("b"), task("a")])
    add(manager, task("a"))
    with pytest.raises(DuplicateTaskError, match="'a' was already submitted"):
        manager.order_batch([task("a")])
    with pytest.raises(DuplicateTaskError):
        manager.check(task("a"))


def test_unknown_dependencies_are_refused_naming_both_tasks() -> None:
    manager = TaskManager()
    with pytest.raises(DependencyNotFoundError) as raised:
        manager.order_batch([task("a"), task("b", "a", "ghost")])
    assert "task b depends on 'ghost'" in str(raised.value)
    with pytest.raises(DependencyNotFoundError, match="'ghost'"):
        manager.check(task("c", "ghost"))
    assert not manager.records


@pytest.mark.parametrize(
    ("batch", "named"),
    [
        ([task("solo", "solo")], ["solo"]),
        ([task("a", "b"), task("b", "a")], ["a", "b"]),
        ([task("a", "c"), task("b", "a"), task("c", "b")], ["a", "b", "c"]),
        ([task("ok"), task("p", "q", "ok"), task("q", "p")], ["p", "q"]),
    ],
    ids=["length 1", "length 2", "length 3", "beside a fine task"],
)
def test_cycles_are_refused_naming_the_tasks(batch: list[ProcessingTask], named: list[str]) -> None:
    manager = TaskManager()
    with pytest.raises(DependencyCycleError) as raised:
        manager.order_batch(batch)
    message = str(raised.value)
    for name in named:
        assert name in message
    if len(named) > 1:
        assert "nothing of this batch was submitted" in message
    assert "ok" not in message.replace("ok,", "")  # the fine task is not blamed
    assert not manager.records


def test_topological_order() -> None:
    manager = TaskManager()
    add(manager, task("known"))
    batch = [
        task("reply", "emotion", "transcript"),
        task("emotion", "transcript", "known"),
        task("transcript"),
        task("log", "reply"),
        task("free"),
    ]
    ordered = [t.id for t in manager.order_batch(batch)]
    assert sorted(ordered) == sorted(t.id for t in batch)
    position = {name: i for i, name in enumerate(ordered)}
    for t in batch:
        for dep in t.depends_on:
            if dep in position:
                assert position[dep] < position[t.id], (dep, t.id)


# ------------------------------------------------------------ the graph


def test_add_links_dependencies_and_ready_tasks() -> None:
    manager = TaskManager()
    a, b, c = add(manager, task("a"), task("b", "a"), task("c", "a", "b"))
    assert (a.waiting, b.waiting, c.waiting) == (0, 1, 2)
    assert a.dependents == [b, c] and b.dependents == [c]
    assert manager.waiting == 3
    assert manager.waiting_by_priority[TaskPriority.NORMAL] == 3
    assert "a" in manager and "zzz" not in manager


async def test_get_ready_tasks() -> None:
    manager = TaskManager()
    a, _, c = add(manager, task("a"), task("b", "a"), task("c"))
    assert await manager.get_ready_tasks() == ["a", "c"]
    manager.transition(c, TaskStatus.RUNNING)
    assert await manager.get_ready_tasks() == ["a"]
    run(manager, a, TaskStatus.COMPLETED)
    assert await manager.get_ready_tasks() == ["b"]


def test_lift_priority_is_transitive_and_only_lifts() -> None:
    manager = TaskManager()
    low, mid, urgent_dep = add(
        manager,
        task("low", priority=TaskPriority.BATCH),
        task("mid", "low", priority=TaskPriority.NORMAL),
        task("already", priority=TaskPriority.CRITICAL),
    )
    (reply,) = add(manager, task("reply", "mid", "already", priority=TaskPriority.HIGH))
    lifted = manager.lift_priority(reply)
    assert {r.id for r in lifted} == {"mid", "low"}
    assert (low.priority, mid.priority, urgent_dep.priority) == (2, 2, 1)
    assert low.task.priority is TaskPriority.BATCH  # the task itself is unchanged
    assert manager.lift_priority(reply) == []


def test_lift_priority_skips_running_dependencies() -> None:
    manager = TaskManager()
    (dep,) = add(manager, task("dep", priority=TaskPriority.LOW))
    manager.transition(dep, TaskStatus.RUNNING)
    (top,) = add(manager, task("top", "dep", priority=TaskPriority.CRITICAL))
    assert manager.lift_priority(top) == []
    assert dep.priority == TaskPriority.LOW.value


def test_tighten_deadlines_is_transitive() -> None:
    manager = TaskManager()
    far, near_already, mid = add(
        manager,
        task("far", deadline=5_000.0),
        task("near", deadline=100.0),
        task("mid", "far"),
    )
    (top,) = add(manager, task("top", "mid", "near", deadline=1_000.0))
    changed = manager.tighten_deadlines(top)
    assert {r.id for r in changed} == {"mid", "far"}
    assert (far.deadline, mid.deadline, near_already.deadline) == (1_000.0, 1_000.0, 100.0)
    assert far.task.deadline == 5_000.0
    (no_deadline,) = add(manager, task("none", "far"))
    assert manager.tighten_deadlines(no_deadline) == []


# ------------------------------------------------------------ endings


def test_completed_dependency_releases_dependents_with_its_result() -> None:
    manager = TaskManager()
    a, b, c = add(manager, task("a"), task("b", "a"), task("c", "a", "b"))
    result, ready, doomed = run(manager, a, TaskStatus.COMPLETED, {"text": "hi"})
    assert isinstance(result, TaskResult)
    assert (result.task_id, result.status, result.result) == (
        "a",
        TaskStatus.COMPLETED,
        {"text": "hi"},
    )
    assert result.attempts == 0 and result.completed_at is not None
    assert ready == [b] and doomed == []
    assert b.task.dependency_results == {"a": {"text": "hi"}}
    assert c.waiting == 1
    _, ready, _ = run(manager, b, TaskStatus.COMPLETED, 2)
    assert ready == [c]
    assert c.task.dependency_results == {"a": {"text": "hi"}, "b": 2}
    assert "a" not in manager.records
    assert manager.result("a") is result
    assert manager.status("a") is TaskStatus.COMPLETED


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.CANCELLED])
def test_bad_ending_dooms_dependents(status: TaskStatus) -> None:
    manager = TaskManager()
    a, b, other = add(manager, task("a"), task("b", "a"), task("other"))
    _, ready, doomed = run(manager, a, status)
    assert ready == [] and doomed == [b]
    assert b.doom == (TaskStatus.CANCELLED, f"dependency a ended {status.value}: boom")
    assert other.doom is None and other.status is TaskStatus.PENDING


def test_expired_dependency_dooms_dependents_to_timeout() -> None:
    manager = TaskManager()
    a, b = add(manager, task("a"), task("b", "a"))
    manager.finish(a, TaskStatus.TIMEOUT, error="expired in the queue", expired=True)
    assert b.doom == (TaskStatus.TIMEOUT, "dependency a ended timeout: expired in the queue")


def test_dependency_expired_before_add_dooms_like_one_expired_after() -> None:
    # Regression: a dependent added after the expiry ended CANCELLED, one added before TIMEOUT.
    manager = TaskManager()
    a, early = add(manager, task("a"), task("early", "a"))
    manager.finish(a, TaskStatus.TIMEOUT, error="expired in the queue", expired=True)
    (late,) = add(manager, task("late", "a"))
    assert early.doom is not None and late.doom is not None
    assert early.doom[0] is TaskStatus.TIMEOUT
    assert late.doom[0] is TaskStatus.TIMEOUT


def test_allow_failure_puts_the_task_result_into_dependency_results() -> None:
    manager = TaskManager()
    a, b = add(manager, task("a"), task("b", "a", allow_failure=True))
    result, ready, doomed = run(manager, a, TaskStatus.FAILED)
    assert ready == [b] and doomed == []
    assert b.doom is None
    assert b.task.dependency_results == {"a": result}
    assert b.task.dependency_results["a"].error == "boom"


def test_dependency_completed_before_add_counts_as_met() -> None:
    manager = TaskManager()
    (a,) = add(manager, task("a"))
    run(manager, a, TaskStatus.COMPLETED, 41)
    (b,) = add(manager, task("b", "a"))
    assert b.waiting == 0 and b.doom is None
    assert b.task.dependency_results == {"a": 41}
    assert manager.order_batch([task("c", "a")])  # known, so not refused


def test_dependency_failed_before_add_dooms_at_once() -> None:
    manager = TaskManager()
    (a,) = add(manager, task("a"))
    run(manager, a, TaskStatus.FAILED)
    (b,) = add(manager, task("b", "a"))
    assert b.doom is not None and b.doom[0] is TaskStatus.CANCELLED


def test_unknown_ids_raise() -> None:
    manager = TaskManager()
    with pytest.raises(TaskNotFoundError, match="'nope'"):
        manager.status("nope")
    with pytest.raises(TaskNotFoundError):
        manager.result("nope")
    add(manager, task("a"))
    assert manager.result("a") is None  # known, not ended


def test_transition_listeners_see_every_change() -> None:
    manager = TaskManager()
    seen: list[tuple[str, TaskStatus, TaskStatus]] = []
    manager.listeners.append(lambda record, old, new: seen.append((record.id, old, new)))
    a, b = add(manager, task("a"), task("b", "a"))
    run(manager, a, TaskStatus.COMPLETED)
    manager.transition(b, TaskStatus.RUNNING)
    manager.transition(b, TaskStatus.PENDING)  # a retry
    assert seen == [
        ("a", TaskStatus.PENDING, TaskStatus.PENDING),  # accepted
        ("b", TaskStatus.PENDING, TaskStatus.PENDING),
        ("a", TaskStatus.PENDING, TaskStatus.RUNNING),
        ("a", TaskStatus.RUNNING, TaskStatus.COMPLETED),
        ("b", TaskStatus.PENDING, TaskStatus.RUNNING),
        ("b", TaskStatus.RUNNING, TaskStatus.PENDING),
    ]


def test_a_forbidden_transition_changes_nothing() -> None:
    from async_processor import InvalidTransitionError

    manager = TaskManager()
    seen: list[object] = []
    manager.listeners.append(lambda *args: seen.append(args))
    (a,) = add(manager, task("a"))
    seen.clear()
    with pytest.raises(InvalidTransitionError):
        manager.transition(a, TaskStatus.COMPLETED)
    assert a.status is TaskStatus.PENDING
    assert seen == []


def test_results_are_bounded() -> None:
    manager = TaskManager(max_results=2)
    records = add(manager, task("a"), task("b"), task("c"))
    for record in records:
        run(manager, record, TaskStatus.COMPLETED)
    with pytest.raises(TaskNotFoundError, match="evicted"):
        manager.status("a")
    assert manager.status("c") is TaskStatus.COMPLETED
    assert manager.results.evicted == 1


# ------------------------------------------------------------ end(): the cascade, decided here


def test_end_cascades_down_the_graph_only() -> None:
    manager = TaskManager()
    a, _, _, d, free = add(
        manager, task("a"), task("b", "a"), task("c", "b"), task("d", "a", "free"), task("free")
    )
    manager.transition(a, TaskStatus.RUNNING)
    endings = manager.end(a, TaskStatus.FAILED, error="boom", execution_time=0.5)
    assert [e.record.id for e in endings] == ["a", "d", "b", "c"]
    assert [e.result.status for e in endings] == [TaskStatus.FAILED] + [TaskStatus.CANCELLED] * 3
    assert endings[0].execution_time == 0.5
    assert all(e.execution_time is None for e in endings[1:])  # they never ran
    assert endings[2].result.error == "dependency a ended failed: boom"
    assert endings[3].result.error is not None and "dependency b ended cancelled" in (
        endings[3].result.error
    )
    assert list(manager.records) == ["free"] and free.dependents == [d]


def test_end_after_an_expiry_times_the_dependents_out() -> None:
    manager = TaskManager()
    a, _ = add(manager, task("a"), task("b", "a"))
    endings = manager.end(a, TaskStatus.TIMEOUT, error=f"{EXPIRED}: gone", expired=True)
    assert [(e.record.id, e.result.status) for e in endings] == [
        ("a", TaskStatus.TIMEOUT),
        ("b", TaskStatus.TIMEOUT),
    ]


def test_end_releases_ready_dependents_as_instructions() -> None:
    manager = TaskManager()
    a, b, c = add(manager, task("a"), task("b", "a"), task("c", "a", "b"))
    manager.transition(a, TaskStatus.RUNNING)
    (ending,) = manager.end(a, TaskStatus.COMPLETED, 7, execution_time=0.1)
    assert ending.ready == [b] and ending.relaxed == []
    assert c.waiting == 1 and c.task.dependency_results == {"a": 7}


def test_a_dependent_that_ends_early_gives_its_deadline_back() -> None:
    manager = TaskManager()
    far, near = 4_000_000_000.0, 3_000_000_000.0
    dep, waiter = add(manager, task("dep", deadline=far), task("waiter", "dep", deadline=near))
    manager.tighten_deadlines(waiter)
    assert dep.deadline == near
    (ending,) = manager.end(waiter, TaskStatus.CANCELLED, error="cancelled")
    assert ending.relaxed == [dep] and dep.deadline == far


def test_a_dependent_past_its_deadline_leaves_it() -> None:
    manager = TaskManager()
    dep, waiter = add(manager, task("dep"), task("waiter", "dep", deadline=1.0))  # long past
    manager.tighten_deadlines(waiter)
    (ending,) = manager.end(waiter, TaskStatus.CANCELLED, error="cancelled")
    assert ending.relaxed == [] and dep.deadline == 1.0
