"""The public read and event API: TaskView snapshots, tasks() paging, dependents(),
add_listener() with TaskEvent. The bookkeeping half runs without an event loop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingTask,
    TaskEvent,
    TaskManager,
    TaskNotFoundError,
    TaskPriority,
    TaskStatus,
    TaskView,
    create_task,
)
from async_processor.task_manager import TaskRecord


def fn(task: ProcessingTask) -> None:
    return None


def task(name: str, *deps: str, **fields: Any) -> ProcessingTask:
    return create_task("x", id=name, depends_on=list(deps), **fields)


def add(manager: TaskManager, *tasks: ProcessingTask) -> list[TaskRecord]:
    added = {t.id: manager.add(t, fn, "async") for t in manager.order_batch(tasks)}
    return [added[t.id] for t in tasks]


def end(manager: TaskManager, record: TaskRecord, status: TaskStatus, value: Any = None) -> None:
    manager.transition(record, TaskStatus.RUNNING)
    error = None if status is TaskStatus.COMPLETED else "boom"
    manager.finish(record, status, value, error)


# -- views from the bookkeeping (no event loop) ------------------------------------------


def test_a_view_of_a_waiting_task_shows_submitted_and_effective_priority() -> None:
    manager = TaskManager()
    _, high = add(
        manager,
        task("low", priority=TaskPriority.LOW, deadline=4_000_000_000.0, tags={"t"}),
        task("high", "low", priority=TaskPriority.HIGH, deadline=3_000_000_000.0),
    )
    manager.lift_priority(high)
    manager.tighten_deadlines(high)
    view = manager.view("low")
    assert view.task_id == "low" and view.task_type == "x"
    assert view.status is TaskStatus.PENDING
    assert view.priority is TaskPriority.LOW
    assert view.effective_priority is TaskPriority.HIGH
    assert view.deadline == 4_000_000_000.0
    assert view.effective_deadline == 3_000_000_000.0
    assert view.dependents == ("high",)
    assert view.depends_on == ()
    assert view.tags == {"t"}
    assert (view.attempts, view.error, view.started_at, view.completed_at) == (0, None, None, None)
    assert manager.view("high").depends_on == ("low",)
    assert not hasattr(view, "payload")


def test_a_view_is_a_frozen_snapshot() -> None:
    manager = TaskManager()
    (record,) = add(manager, task("a"))
    view = manager.view("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.status = TaskStatus.RUNNING  # type: ignore[misc]
    manager.transition(record, TaskStatus.RUNNING)
    assert view.status is TaskStatus.PENDING
    assert manager.view("a").status is TaskStatus.RUNNING


def test_an_ended_task_keeps_its_place_in_the_graph() -> None:
    manager = TaskManager()
    a, _ = add(manager, task("a", priority=TaskPriority.LOW), task("b", "a"))
    end(manager, a, TaskStatus.FAILED)
    view = manager.view("a")
    assert view.status is TaskStatus.FAILED
    assert view.error == "boom"
    assert view.attempts == 0 and view.completed_at is not None
    assert view.dependents == ("b",)
    assert manager.dependents("a") == ["b"]
    assert manager.view("b").status is TaskStatus.PENDING  # doomed, ended by the processor


def test_a_task_submitted_after_its_dependency_ended_counts_as_a_dependent() -> None:
    manager = TaskManager()
    (a,) = add(manager, task("a"))
    end(manager, a, TaskStatus.COMPLETED, 1)
    add(manager, task("b", "a"))
    add(manager, task("c", "a"))
    assert manager.dependents("a") == ["b", "c"]
    assert manager.view("a").dependents == ("b", "c")


def test_an_ended_task_without_a_graph_keeps_its_deadline_and_seq() -> None:
    """A task with only a deadline is kept with it; a bare one still has its seq."""
    manager = TaskManager()
    timed, bare = add(manager, task("timed", deadline=4_000_000_000.0), task("bare"))
    end(manager, timed, TaskStatus.COMPLETED)
    end(manager, bare, TaskStatus.COMPLETED)
    view = manager.view("timed")
    assert view.deadline == view.effective_deadline == 4_000_000_000.0
    assert (view.seq, manager.view("bare").seq) == (timed.seq, bare.seq)
    assert manager.view("bare").deadline is None
    assert [v.task_id for v in manager.views(after="timed")] == ["bare"]


def test_unknown_ids_are_refused() -> None:
    manager = TaskManager()
    with pytest.raises(TaskNotFoundError):
        manager.view("nope")
    with pytest.raises(TaskNotFoundError):
        manager.dependents("nope")
    with pytest.raises(TaskNotFoundError):
        manager.views(after="nope")


def test_views_list_live_and_ended_tasks_in_submission_order_and_page() -> None:
    manager = TaskManager()
    records = add(manager, *(task(f"t{i}") for i in range(7)))
    for i in (5, 1, 3):  # end in another order than submitted
        end(manager, records[i], TaskStatus.COMPLETED)
    ids = [v.task_id for v in manager.views()]
    assert ids == [f"t{i}" for i in range(7)]
    first = manager.views(limit=3)
    second = manager.views(limit=3, after=first[-1].task_id)
    third = manager.views(limit=3, after=second[-1].task_id)
    assert [v.task_id for v in first + second + third] == ids
    assert len(third) == 1
    newest = manager.views(limit=4, newest_first=True)
    assert [v.task_id for v in newest] == ["t6", "t5", "t4", "t3"]
    rest = manager.views(newest_first=True, after="t3")
    assert [v.task_id for v in rest] == ["t2", "t1", "t0"]


def test_views_filter_by_status_type_priority_and_tags() -> None:
    manager = TaskManager()
    a, _, _, d = add(
        manager,
        task("a", priority=TaskPriority.HIGH, tags={"kid", "voice"}),
        task("b", priority=TaskPriority.HIGH),
        create_task("y", id="c", priority=TaskPriority.LOW, tags={"kid"}),
        task("d"),
    )
    end(manager, a, TaskStatus.COMPLETED)
    end(manager, d, TaskStatus.FAILED)

    def ids(**filters: Any) -> list[str]:
        return [v.task_id for v in manager.views(**filters)]

    assert ids(status=TaskStatus.COMPLETED) == ["a"]
    assert ids(status=TaskStatus.PENDING) == ["b", "c"]
    assert ids(task_type="y") == ["c"]
    assert ids(priority=TaskPriority.HIGH) == ["a", "b"]
    assert ids(tags=["kid"]) == ["a", "c"]
    assert ids(tags=["kid", "voice"]) == ["a"]
    assert ids(status=TaskStatus.FAILED, task_type="x") == ["d"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "limit must be a positive int"),
        ({"limit": True}, "limit must be a positive int"),
        ({"status": "pending"}, "status must be a TaskStatus"),
        ({"priority": 1}, "priority must be a TaskPriority"),
        ({"task_type": 3}, "task_type must be a str"),
        ({"tags": "kid"}, "tags must be a list of strings"),
    ],
)
def test_views_refuse_bad_filters(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        TaskManager().views(**filters)


def test_events_carry_previous_status_and_effective_priority() -> None:
    manager = TaskManager()
    events: list[TaskEvent] = []
    remove = manager.add_listener(events.append)
    (a,) = add(manager, task("a", priority=TaskPriority.LOW))
    end(manager, a, TaskStatus.COMPLETED)
    assert [(e.status, e.previous_status) for e in events] == [
        (TaskStatus.PENDING, None),
        (TaskStatus.RUNNING, TaskStatus.PENDING),
        (TaskStatus.COMPLETED, TaskStatus.RUNNING),
    ]
    assert {(e.task_id, e.task_type, e.priority) for e in events} == {("a", "x", TaskPriority.LOW)}
    remove()
    remove()  # a second call does nothing
    add(manager, task("b"))
    assert len(events) == 3
    assert manager.listeners == []  # no cost once the last listener is gone


def test_an_ending_event_comes_once_the_result_is_kept() -> None:
    manager = TaskManager()
    seen: list[TaskView] = []

    def on_event(event: TaskEvent) -> None:
        if event.status.is_terminal:
            seen.append(manager.view(event.task_id))

    manager.add_listener(on_event)
    (a,) = add(manager, task("a"))
    end(manager, a, TaskStatus.FAILED)
    assert [(v.status, v.error) for v in seen] == [(TaskStatus.FAILED, "boom")]


def test_a_listener_must_be_callable() -> None:
    with pytest.raises(InvalidArgumentError, match="listener must be callable"):
        TaskManager().add_listener(42)  # type: ignore[arg-type]


# -- through the processor ---------------------------------------------------------------


@pytest.fixture
async def processor() -> AsyncIterator[AdvancedAsyncProcessor]:
    proc = AdvancedAsyncProcessor(
        max_workers=1, max_thread_workers=0, max_process_workers=0, builtin_processors=False
    )
    await proc.start()
    yield proc
    await proc.shutdown(5.0)


async def test_the_processor_shows_a_running_task_and_its_waiting_dependent(
    processor: AdvancedAsyncProcessor,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def gate(task: ProcessingTask) -> str:
        started.set()
        await release.wait()
        return "done"

    processor.register_processor("gate", gate)
    events: list[TaskEvent] = []
    remove = processor.add_listener(events.append)
    first = create_task("gate", priority=TaskPriority.LOW)
    second = create_task("gate", priority=TaskPriority.HIGH, depends_on=[first.id])
    await processor.submit_tasks([first, second])
    await started.wait()
    running = processor.view(first.id)
    assert running.status is TaskStatus.RUNNING
    assert running.worker_id == "async-0" and running.attempts == 1
    assert running.started_at is not None
    assert running.effective_priority is TaskPriority.HIGH
    assert processor.dependents(first.id) == [second.id]
    assert [v.task_id for v in processor.tasks(status=TaskStatus.PENDING)] == [second.id]
    release.set()
    result = await processor.wait_for_task(second.id, timeout=10.0)
    assert result.status is TaskStatus.COMPLETED
    remove()
    assert [v.status for v in processor.tasks()] == [TaskStatus.COMPLETED] * 2
    assert [(e.task_id, e.status) for e in events if e.status.is_terminal] == [
        (first.id, TaskStatus.COMPLETED),
        (second.id, TaskStatus.COMPLETED),
    ]
