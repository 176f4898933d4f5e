"""Shedding victims under overload_policy="shed", chosen without an event loop (the priority
bands are tested with a processor in tests/security/test_flood.py)."""

from __future__ import annotations

from typing import Any

from async_processor import TaskManager, TaskPriority, TaskStatus, create_task
from async_processor.overload import choose_victims
from async_processor.task_manager import TaskRecord


def add(manager: TaskManager, name: str, priority: TaskPriority, *deps: str) -> TaskRecord:
    task = create_task("x", id=name, priority=priority, depends_on=list(deps))
    return manager.add(task, lambda t: None, "async")


def newcomer(priority: TaskPriority, *deps: str, **fields: Any) -> Any:
    return create_task("x", priority=priority, depends_on=list(deps), **fields)


def test_least_urgent_newest_first_and_depended_on_last() -> None:
    manager = TaskManager()
    add(manager, "low-old", TaskPriority.LOW)
    add(manager, "batch-needed", TaskPriority.BATCH)
    add(manager, "batch-child", TaskPriority.BATCH, "batch-needed")
    add(manager, "low-new", TaskPriority.LOW)
    add(manager, "normal", TaskPriority.NORMAL)
    victims = choose_victims(manager.records, [newcomer(TaskPriority.HIGH)], 5)
    assert victims is not None
    assert [v.id for v in victims] == [
        "batch-child",
        "low-new",
        "low-old",
        "normal",
        "batch-needed",  # others depend on it: last, however little urgent
    ]
    assert choose_victims(manager.records, [newcomer(TaskPriority.HIGH)], 6) is None


def test_only_strictly_less_urgent_and_never_what_a_newcomer_waits_on() -> None:
    manager = TaskManager()
    add(manager, "transcript", TaskPriority.LOW)
    add(manager, "emotion", TaskPriority.LOW, "transcript")
    add(manager, "same", TaskPriority.HIGH)
    reply = newcomer(TaskPriority.HIGH, "emotion")
    assert choose_victims(manager.records, [reply], 1) is None
    add(manager, "spare", TaskPriority.BATCH)
    victims = choose_victims(manager.records, [reply], 1)
    assert victims is not None and [v.id for v in victims] == ["spare"]


def test_running_tasks_are_never_shed() -> None:
    manager = TaskManager()
    busy = add(manager, "busy", TaskPriority.BATCH)
    manager.transition(busy, TaskStatus.RUNNING)
    assert choose_victims(manager.records, [newcomer(TaskPriority.CRITICAL)], 1) is None
