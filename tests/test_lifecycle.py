"""The lifecycle table: every pair of statuses is allowed iff it is in TRANSITIONS."""

from __future__ import annotations

import itertools
import json

import pytest

from async_processor import InvalidTransitionError, TaskStatus
from async_processor.lifecycle import TERMINAL_STATUSES, TRANSITIONS, check_transition

S = TaskStatus

#: The lifecycle diagram of lifecycle.py, written out independently.
EXPECTED = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.TIMEOUT),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.TIMEOUT),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.PENDING),  # a retry
}

PAIRS = list(itertools.product(TaskStatus, repeat=2))


def test_the_table_is_the_diagram() -> None:
    assert set(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(
    ("start", "finish"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS]
)
def test_every_pair(start: TaskStatus, finish: TaskStatus) -> None:
    if (start, finish) in TRANSITIONS:
        check_transition("t-1", start, finish)
    else:
        with pytest.raises(InvalidTransitionError) as raised:
            check_transition("t-1", start, finish)
        message = str(raised.value)
        assert f"task t-1: {start.value} -> {finish.value} is not an allowed transition" in message
        assert "bug" in message


def test_terminal_statuses() -> None:
    assert {S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMEOUT} == TERMINAL_STATUSES
    assert [s for s in TaskStatus if s.is_terminal] == [
        S.COMPLETED,
        S.FAILED,
        S.CANCELLED,
        S.TIMEOUT,
    ]
    assert not S.PENDING.is_terminal and not S.RUNNING.is_terminal


def test_nothing_leaves_a_terminal_status() -> None:
    assert not any(start in TERMINAL_STATUSES for start, _ in TRANSITIONS)


def test_every_status_is_reachable_from_pending() -> None:
    reached = {S.PENDING}
    frontier = [S.PENDING]
    while frontier:
        current = frontier.pop()
        for start, finish in TRANSITIONS:
            if start is current and finish not in reached:
                reached.add(finish)
                frontier.append(finish)
    assert reached == set(TaskStatus)


def test_status_values_serialise_as_they_are() -> None:
    assert json.dumps([S.COMPLETED, S.TIMEOUT]) == '["completed", "timeout"]'
    assert {s.value for s in TaskStatus} == {s.name.lower() for s in TaskStatus}
