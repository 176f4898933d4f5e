"""Backpressure without I/O: how much room a submission needs, and whom to shed for it.

``queue_size`` bounds the tasks that wait. Within it, each level less urgent than
``NORMAL`` leaves a share of the queue (``priority_reserve``) to the levels above it, so a
flood of background work cannot lock urgent work out. A task of each level takes a place
only while fewer tasks than this wait:

=========  ==================================  =========================
level      room                                queue_size=1000, 0.1
=========  ==================================  =========================
CRITICAL   ``queue_size``                      1000
HIGH       ``queue_size``                      1000
NORMAL     ``queue_size``                      1000
LOW        ``queue_size * (1 - reserve)``      900
BATCH      ``queue_size * (1 - 2 * reserve)``  800
=========  ==================================  =========================

``NORMAL``, the default level, keeps the whole queue: a program that never sets a
priority sees no change. The processor carries out what these functions decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .errors import InvalidArgumentError
from .lifecycle import TaskStatus
from .task import ProcessingTask, TaskPriority

if TYPE_CHECKING:
    from .task_manager import TaskRecord

__all__ = ["band_limits", "check_reserve", "choose_victims", "excess"]

_NORMAL = TaskPriority.NORMAL.value


def check_reserve(reserve: object) -> float:
    """Validate ``priority_reserve``: a share of the queue from 0 up to (not incl.) 0.5."""
    if isinstance(reserve, bool) or not isinstance(reserve, int | float) or not 0 <= reserve < 0.5:
        raise InvalidArgumentError(
            f"priority_reserve must be a share of queue_size from 0 to below 0.5 (each level "
            f"below NORMAL leaves that share to the levels above it), got {reserve!r}"
        )
    return float(reserve)


def band_limits(queue_size: int, reserve: float) -> list[int]:
    """How many tasks may wait when one of each level (the index) takes a place."""
    limits = [queue_size] * (len(TaskPriority) + 1)
    for level in TaskPriority:
        below_normal = max(0, level.value - _NORMAL)
        limits[level.value] = queue_size - math.floor(reserve * queue_size * below_normal)
    return limits


def excess(waiting: int, limits: Sequence[int], priorities: Iterable[int]) -> int:
    """How many waiting tasks are one too many for the incoming ``priorities``.

    The least urgent newcomers take their places first, so each is checked against the
    room its own level may use; 0 or less means everything fits.
    """
    ordered = sorted(priorities, reverse=True)
    return max(
        (waiting + offset - limits[p] for offset, p in enumerate(ordered, start=1)),
        default=waiting - max(limits),
    )


def choose_victims(
    records: Mapping[str, TaskRecord], incoming: Sequence[ProcessingTask], count: int
) -> list[TaskRecord] | None:
    """The ``count`` waiting tasks to shed for ``incoming``, or None if there are too few.

    Only tasks strictly less urgent than every newcomer, never one that a newcomer waits on
    (directly or not): least urgent first, newest first among equals, tasks that others
    depend on last.
    """
    priority = max(task.priority.value for task in incoming)
    needed = _dependency_closure(records, incoming)
    victims = sorted(
        (
            r
            for r in records.values()
            if r.status is TaskStatus.PENDING and r.priority > priority and r.id not in needed
        ),
        key=lambda r: (r.dependents is not None, -r.priority, -r.submitted_at),
    )
    return victims[:count] if len(victims) >= count else None


def _dependency_closure(
    records: Mapping[str, TaskRecord], tasks: Sequence[ProcessingTask]
) -> set[str]:
    """Ids of every waiting task that ``tasks`` transitively depend on."""
    needed: set[str] = set()
    stack = [dep for task in tasks for dep in task.depends_on]
    while stack:
        task_id = stack.pop()
        if task_id not in needed and task_id in records:
            needed.add(task_id)
            stack.extend(records[task_id].task.depends_on)
    return needed
