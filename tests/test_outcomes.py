"""How an attempt is judged (outcome_of), without an event loop; the carrying out of
outcomes (retries, endings, cascades, deadlines) is tested through the processor in
test_processor.py."""

from __future__ import annotations

from async_processor import (
    InvalidTaskError,
    NonRetryableError,
    TaskManager,
    TaskStatus,
    create_task,
)
from async_processor.outcomes import AttemptOutcome, outcome_of
from async_processor.task_manager import TaskRecord


def running(**fields: object) -> TaskRecord:
    manager = TaskManager()
    record = manager.add(create_task("x", **fields), lambda task: None, "async")  # type: ignore[arg-type]
    manager.transition(record, TaskStatus.RUNNING)
    record.attempts = 2
    return record


def test_a_value_completes() -> None:
    assert outcome_of(running(), 42, None, False) == AttemptOutcome(TaskStatus.COMPLETED, 42)


def test_a_timeout_may_be_retried_and_says_which_attempt() -> None:
    outcome = outcome_of(running(timeout=1.5), None, None, True)
    assert outcome == AttemptOutcome(
        TaskStatus.TIMEOUT, error="timed out after 1.5s (attempt 2)", retryable=True
    )


def test_a_failure_may_be_retried_unless_it_says_otherwise() -> None:
    retry = outcome_of(running(), None, ValueError("bad"), False)
    assert retry == AttemptOutcome(TaskStatus.FAILED, error="ValueError: bad", retryable=True)
    for final in (NonRetryableError("no"), InvalidTaskError("wrong")):
        outcome = outcome_of(running(), None, final, False)
        assert outcome.status is TaskStatus.FAILED and not outcome.retryable


def test_a_cancellation_wins_and_is_never_retried() -> None:
    record = running()
    record.cancel_reason = "cancelled by cancel_task()"
    outcome = outcome_of(record, None, ValueError("late"), True)
    assert outcome == AttemptOutcome(TaskStatus.CANCELLED, error="cancelled by cancel_task()")
