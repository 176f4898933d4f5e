"""Where attempts and tasks end, through a processor: deadlines, the dependency cascade,
cancellation, timeouts and retries (real event loop and threads, no mocks). The I/O-free
judging of an attempt is tested first, without a loop."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from processor_helpers import (
    Factory,
    ThreadGate,
    hold_worker,
    named,
    recorder,
    wait_all,
)

from async_processor import (
    DependencyCycleError,
    DependencyNotFoundError,
    InvalidTaskError,
    NonRetryableError,
    ProcessingTask,
    TaskManager,
    TaskNotFoundError,
    TaskResult,
    TaskStatus,
    create_task,
)
from async_processor.outcomes import AttemptOutcome, describe_failure, outcome_of
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
        TaskStatus.TIMEOUT,
        error="timed out after 1.5s (attempt 2)",
        retryable=True,
        error_class=TimeoutError,
    )


def test_a_failure_may_be_retried_unless_it_says_otherwise() -> None:
    retry = outcome_of(running(), None, ValueError("bad"), False)
    assert retry == AttemptOutcome(
        TaskStatus.FAILED,
        error="ValueError: bad",
        retryable=True,
        failure=("ValueError", "ValueError: bad\n"),  # never raised: no frames
        error_class=ValueError,
    )
    for final in (NonRetryableError("no"), InvalidTaskError("wrong")):
        outcome = outcome_of(running(), None, final, False)
        assert outcome.status is TaskStatus.FAILED and not outcome.retryable


def test_a_cancellation_wins_and_is_never_retried() -> None:
    record = running()
    record.cancel_reason = "cancelled by cancel_task()"
    outcome = outcome_of(record, None, ValueError("late"), True)
    assert outcome == AttemptOutcome(TaskStatus.CANCELLED, error="cancelled by cancel_task()")


# --------------------------------------------------------------------------- deadlines


async def test_deadline_passing_in_queue_ends_timeout_without_running(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    task = named("late", deadline=time.time() + 0.1)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.TIMEOUT
    assert result.error is not None and "expired in the queue" in result.error
    assert result.attempts == 0
    assert result.started_at is None
    gate.release.set()
    ok = await p.submit_task(named("after"))
    await p.wait_for_task(ok, timeout=5.0)
    assert order == ["after"]


async def test_dependency_inherits_earlier_deadline_of_its_dependent(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    dependency = named("dependency", deadline=time.time() + 60.0)
    dependent = named("dependent", depends_on=[dependency.id], deadline=time.time() + 0.15)
    await p.submit_tasks([dependency, dependent])
    dep_result = await p.wait_for_task(dependency.id, timeout=5.0)
    top_result = await p.wait_for_task(dependent.id, timeout=5.0)
    assert dep_result.status is TaskStatus.TIMEOUT
    assert dep_result.error is not None
    assert "expired in the queue" in dep_result.error
    assert "inherited" in dep_result.error
    assert top_result.status is TaskStatus.TIMEOUT
    gate.release.set()
    assert order == []


async def test_inherited_deadline_goes_away_with_the_dependent_that_set_it(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    dependency = named("dependency")
    hurried = named("hurried", depends_on=[dependency.id], deadline=time.time() + 0.1)
    patient = named("patient", depends_on=[dependency.id])
    await p.submit_tasks([dependency, hurried, patient])
    assert await p.cancel_task(hurried.id) is True
    await asyncio.sleep(0.2)  # past the cancelled task's deadline
    gate.release.set()
    results = await wait_all(p, [dependency.id, patient.id])
    assert [r.status for r in results] == [TaskStatus.COMPLETED] * 2, results[0].error
    assert order == ["dependency", "patient"]


async def test_dependency_chain_meets_an_inherited_deadline_when_there_is_time(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    dependency = named("dependency")
    dependent = named("dependent", depends_on=[dependency.id], deadline=time.time() + 30.0)
    await p.submit_tasks([dependency, dependent])
    results = await wait_all(p, [dependency.id, dependent.id])
    assert [r.status for r in results] == [TaskStatus.COMPLETED] * 2
    assert order == ["dependency", "dependent"]


async def test_deadline_already_past_at_submit_ends_timeout(make_processor: Factory) -> None:
    p = await make_processor()
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    task = named("too-late", deadline=time.time() - 1.0)
    dependent = named("dependent", depends_on=[task.id])
    assert await p.submit_task(task) == task.id
    await p.submit_task(dependent)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.TIMEOUT
    assert result.error is not None and "expired in the queue" in result.error
    dep_result = await p.wait_for_task(dependent.id, timeout=5.0)
    assert dep_result.status is TaskStatus.TIMEOUT
    assert dep_result.error is not None and task.id in dep_result.error
    # a dependent submitted after the expiry ends the same way
    late = named("late-dependent", depends_on=[task.id])
    await p.submit_task(late)
    late_result = await p.wait_for_task(late.id, timeout=5.0)
    assert late_result.status is TaskStatus.TIMEOUT
    assert late_result.error is not None and task.id in late_result.error
    assert order == []


async def test_aware_datetime_deadline(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    plus_five = timezone(timedelta(hours=5))
    far = datetime.now(plus_five) + timedelta(seconds=60)
    fine = named("fine", deadline=far)
    assert fine.deadline == pytest.approx(far.timestamp())
    await p.submit_task(fine)
    assert (await p.wait_for_task(fine.id, timeout=5.0)).status is TaskStatus.COMPLETED

    gate, _ = await hold_worker(p)
    soon = datetime.now(UTC) + timedelta(seconds=0.1)
    late = named("late", deadline=soon)
    await p.submit_task(late)
    result = await p.wait_for_task(late.id, timeout=5.0)
    assert result.status is TaskStatus.TIMEOUT
    assert result.completed_at is not None and result.completed_at >= soon.timestamp()
    gate.release.set()
    assert order == ["fine"]


def test_naive_datetime_deadline_is_refused() -> None:
    with pytest.raises(InvalidTaskError, match="aware datetime"):
        create_task("rec", deadline=datetime.now() + timedelta(seconds=5))


# --------------------------------------------------------------------------- dependencies


async def test_dependency_results_are_passed_to_dependent(make_processor: Factory) -> None:
    p = await make_processor()

    async def value(task: ProcessingTask) -> Any:
        return task.payload["value"]

    async def combine(task: ProcessingTask) -> dict[str, Any]:
        return dict(task.dependency_results)

    p.register_processor("value", value)
    p.register_processor("combine", combine)
    a = create_task("value", {"value": 1})
    b = create_task("value", {"value": {"text": "hi"}})
    c = create_task("combine", depends_on=[a.id, b.id])
    await p.submit_tasks([a, b, c])
    result = await p.wait_for_task(c.id, timeout=5.0)
    assert result.status is TaskStatus.COMPLETED
    assert result.result == {a.id: 1, b.id: {"text": "hi"}}


async def test_failed_dependency_cancels_transitive_dependents_only(
    make_processor: Factory,
) -> None:
    p = await make_processor()
    ran: list[str] = []

    async def work(task: ProcessingTask) -> str:
        ran.append(task.payload["name"])
        if task.payload.get("fail"):
            raise ValueError("broken input")
        return "ok"

    p.register_processor("work", work)
    root = create_task("work", {"name": "root", "fail": True})
    child = create_task("work", {"name": "child"}, depends_on=[root.id])
    grandchild = create_task("work", {"name": "grandchild"}, depends_on=[child.id])
    unrelated = create_task("work", {"name": "unrelated"})
    await p.submit_tasks([root, child, grandchild, unrelated])
    r_root, r_child, r_grand, r_unrel = await wait_all(
        p, [root.id, child.id, grandchild.id, unrelated.id]
    )
    assert r_root.status is TaskStatus.FAILED
    assert r_root.error is not None and "ValueError: broken input" in r_root.error
    assert r_child.status is TaskStatus.CANCELLED
    assert r_child.error is not None
    assert root.id in r_child.error and "failed" in r_child.error
    assert r_grand.status is TaskStatus.CANCELLED
    assert r_grand.error is not None
    assert child.id in r_grand.error and "cancelled" in r_grand.error
    assert r_unrel.status is TaskStatus.COMPLETED
    assert sorted(ran) == ["root", "unrelated"]


async def test_allow_failure_runs_and_sees_the_failed_result(make_processor: Factory) -> None:
    p = await make_processor()

    async def fail(task: ProcessingTask) -> None:
        raise RuntimeError("no audio")

    async def look(task: ProcessingTask) -> Any:
        return task.dependency_results

    p.register_processor("fail", fail)
    p.register_processor("look", look)
    bad = create_task("fail")
    tolerant = create_task("look", depends_on=[bad.id], allow_failure=True)
    await p.submit_tasks([bad, tolerant])
    result = await p.wait_for_task(tolerant.id, timeout=5.0)
    assert result.status is TaskStatus.COMPLETED
    seen = result.result[bad.id]
    assert isinstance(seen, TaskResult)
    assert seen.status is TaskStatus.FAILED
    assert seen.error is not None and "no audio" in seen.error


async def test_dependency_already_completed_counts_as_met(make_processor: Factory) -> None:
    p = await make_processor()
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    first = named("first")
    await p.submit_task(first)
    assert (await p.wait_for_task(first.id, timeout=5.0)).status is TaskStatus.COMPLETED
    second = named("second", depends_on=[first.id])
    await p.submit_task(second)
    result = await p.wait_for_task(second.id, timeout=5.0)
    assert result.status is TaskStatus.COMPLETED
    assert second.dependency_results == {first.id: "first"}
    assert order == ["first", "second"]


async def test_submit_tasks_accepts_a_batch_in_reverse_order(make_processor: Factory) -> None:
    p = await make_processor(max_workers=3)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    a = named("a")
    b = named("b", depends_on=[a.id])
    c = named("c", depends_on=[b.id])
    d = named("d", depends_on=[a.id, c.id])
    ids = await p.submit_tasks([d, c, b, a])
    assert ids == [d.id, c.id, b.id, a.id]
    results = await wait_all(p, ids)
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    assert order == ["a", "b", "c", "d"]


async def test_cycle_in_batch_is_refused_and_nothing_kept(make_processor: Factory) -> None:
    p = await make_processor()
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    fine = named("fine")
    x = create_task("rec", {"name": "x"}, id="cycle-x", depends_on=["cycle-y"])
    y = create_task("rec", {"name": "y"}, id="cycle-y", depends_on=["cycle-z"])
    z = create_task("rec", {"name": "z"}, id="cycle-z", depends_on=["cycle-x"])
    tail = named("tail", depends_on=[fine.id])
    with pytest.raises(DependencyCycleError, match="cycle") as info:
        await p.submit_tasks([fine, x, y, z, tail])
    assert "cycle-x" in str(info.value)
    for task in (fine, x, y, z, tail):
        with pytest.raises(TaskNotFoundError):
            await p.get_task_status(task.id)
    metrics = await p.get_performance_metrics()
    assert metrics["queue_size"] == 0
    # the refused ids are free: the good part of the batch can be submitted again
    await p.submit_tasks([tail, fine])
    await wait_all(p, [fine.id, tail.id])
    assert order == ["fine", "tail"]


async def test_self_dependency_is_a_cycle(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    selfish = create_task("rec", {"name": "s"}, id="selfish", depends_on=["selfish"])
    with pytest.raises(DependencyCycleError):
        await p.submit_tasks([selfish])
    with pytest.raises(TaskNotFoundError):
        await p.get_task_status("selfish")


async def test_unknown_dependency_is_refused(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    orphan = named("orphan", depends_on=["no-such-task"])
    with pytest.raises(DependencyNotFoundError, match="no-such-task"):
        await p.submit_task(orphan)
    with pytest.raises(DependencyNotFoundError, match="no-such-task"):
        await p.submit_tasks([named("fine"), orphan])
    with pytest.raises(TaskNotFoundError):
        await p.get_task_status(orphan.id)
    assert (await p.get_performance_metrics())["queue_size"] == 0


# --------------------------------------------------------------------------- cancellation


async def test_cancel_pending_task_cancels_its_dependents(make_processor: Factory) -> None:
    p = await make_processor(max_workers=1)
    order: list[str] = []
    p.register_processor("rec", recorder(order))
    gate, _ = await hold_worker(p)
    target = named("target")
    dependent = named("dependent", depends_on=[target.id])
    bystander = named("bystander")
    await p.submit_tasks([target, dependent, bystander])
    assert await p.cancel_task(target.id) is True
    assert await p.get_task_status(target.id) is TaskStatus.CANCELLED
    dep = await p.wait_for_task(dependent.id, timeout=0)
    assert dep.status is TaskStatus.CANCELLED
    assert dep.error is not None and target.id in dep.error and "cancelled" in dep.error
    gate.release.set()
    assert (await p.wait_for_task(bystander.id, timeout=5.0)).status is TaskStatus.COMPLETED
    assert order == ["bystander"]


async def test_cancel_running_async_task_delivers_cancelled_error(
    make_processor: Factory,
) -> None:
    p = await make_processor()
    started = asyncio.Event()
    saw_cancel: list[str] = []

    async def forever(task: ProcessingTask) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.append(task.id)
            raise

    p.register_processor("forever", forever)
    task = create_task("forever", max_retries=3)
    dependent = create_task("forever", depends_on=[task.id])
    await p.submit_tasks([task, dependent])
    await started.wait()
    assert await p.get_task_status(task.id) is TaskStatus.RUNNING
    assert await p.cancel_task(task.id) is True
    assert saw_cancel == [task.id]
    result = await p.wait_for_task(task.id, timeout=1.0)
    assert result.status is TaskStatus.CANCELLED
    assert result.attempts == 1  # cancellation is never retried
    assert result.error is not None and "cancel" in result.error
    assert (await p.wait_for_task(dependent.id, timeout=1.0)).status is TaskStatus.CANCELLED


async def test_cancel_running_thread_task_abandons_slot_until_function_returns(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_thread_workers=1)
    slow = ThreadGate()
    p.register_processor("slow", slow)
    p.register_processor("quick", lambda task: "quick")
    task = create_task("slow")
    quick = create_task("quick")
    await p.submit_task(task)
    try:
        await slow.started.wait()
        assert await p.cancel_task(task.id) is True
        result = await p.wait_for_task(task.id, timeout=30.0)
        assert result.status is TaskStatus.CANCELLED
        assert task.cancel_requested is True
        assert not slow.returned.is_set()  # ended at once, not when the thread returns
        metrics = await p.get_performance_metrics()
        assert metrics["worker_stats"]["thread-0"]["status"] == "abandoned"
        assert metrics["executors"]["thread"]["abandoned"] == 1
        # the slot is still held by the abandoned thread: capacity does not lie
        await p.submit_task(quick)
        with pytest.raises(TimeoutError):
            await p.wait_for_task(quick.id, timeout=0.1)
        assert await p.get_task_status(quick.id) is TaskStatus.PENDING
    finally:
        slow.release.set()
    assert (await p.wait_for_task(quick.id, timeout=5.0)).status is TaskStatus.COMPLETED
    assert slow.cancel_seen == [True]
    late = await p.get_task_result(task.id)
    assert late is not None
    assert late.status is TaskStatus.CANCELLED and late.result is None  # late result discarded
    metrics = await p.get_performance_metrics()
    assert metrics["executors"]["thread"]["abandoned"] == 0
    assert metrics["executors"]["thread"]["abandoned_total"] == 1


async def test_cancel_ended_task_returns_false(make_processor: Factory) -> None:
    p = await make_processor()
    p.register_processor("rec", recorder([]))
    task = named("done")
    await p.submit_task(task)
    await p.wait_for_task(task.id, timeout=5.0)
    assert await p.cancel_task(task.id) is False
    assert await p.get_task_status(task.id) is TaskStatus.COMPLETED


async def test_cancel_unknown_task_raises(make_processor: Factory) -> None:
    p = await make_processor()
    with pytest.raises(TaskNotFoundError, match="no-such-id"):
        await p.cancel_task("no-such-id")


# --------------------------------------------------------------------------- timeouts, retries


async def test_async_timeout_ends_timeout(make_processor: Factory) -> None:
    p = await make_processor()

    async def sleepy(task: ProcessingTask) -> None:
        await asyncio.sleep(10)

    p.register_processor("sleepy", sleepy)
    task = create_task("sleepy", timeout=0.05)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.TIMEOUT
    assert result.error is not None and "timed out" in result.error
    assert result.attempts == 1


async def test_thread_overrun_times_out_at_once_while_thread_is_abandoned(
    make_processor: Factory,
) -> None:
    p = await make_processor(max_thread_workers=1)
    slow = ThreadGate()
    p.register_processor("slow", slow)
    task = create_task("slow", timeout=0.1)
    try:
        await p.submit_task(task)
        result = await p.wait_for_task(task.id, timeout=30.0)
        assert result.status is TaskStatus.TIMEOUT
        assert not slow.returned.is_set()  # ended at its timeout, not when the thread returns
        assert task.cancel_requested is True
        metrics = await p.get_performance_metrics()
        assert metrics["worker_stats"]["thread-0"]["status"] == "abandoned"
        assert metrics["executors"]["thread"]["abandoned"] == 1
    finally:
        slow.release.set()
    follow = create_task("slow")
    await p.submit_task(follow)
    assert (await p.wait_for_task(follow.id, timeout=5.0)).result == "late"
    assert (await p.get_task_result(task.id)) is not None
    assert (await p.get_task_status(task.id)) is TaskStatus.TIMEOUT


async def test_retry_until_success(make_processor: Factory) -> None:
    p = await make_processor()
    calls: list[int] = []

    async def flaky(task: ProcessingTask) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"flake {len(calls)}")
        return "finally"

    p.register_processor("flaky", flaky)
    task = create_task("flaky", max_retries=3)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.COMPLETED
    assert result.result == "finally"
    assert result.attempts == 3
    assert len(calls) == 3
    metrics = await p.get_performance_metrics()
    assert metrics["retries"] == 2
    assert metrics["by_type"]["flaky"]["retries"] == 2


async def test_non_retryable_error_fails_at_once(make_processor: Factory) -> None:
    p = await make_processor()
    calls: list[int] = []

    class BadInputError(NonRetryableError):
        pass

    async def refuse(task: ProcessingTask) -> None:
        calls.append(1)
        raise BadInputError("the audio is empty")

    p.register_processor("refuse", refuse)
    task = create_task("refuse", max_retries=5)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.FAILED
    assert result.attempts == 1
    assert result.error is not None and "the audio is empty" in result.error
    assert len(calls) == 1


async def test_retries_exhausted_fail_with_last_error(make_processor: Factory) -> None:
    p = await make_processor()
    calls: list[int] = []

    def always(task: ProcessingTask) -> None:  # in the thread pool
        calls.append(1)
        raise RuntimeError(f"boom {len(calls)}")

    p.register_processor("always", always)
    task = create_task("always", max_retries=2)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.FAILED
    assert result.attempts == 3
    assert result.error is not None and "boom 3" in result.error
    assert len(calls) == 3


async def test_timeouts_are_retried_and_timeout_is_per_attempt(make_processor: Factory) -> None:
    p = await make_processor()
    calls: list[int] = []

    async def slow_then_fast(task: ProcessingTask) -> int:
        calls.append(1)
        if len(calls) < 3:
            await asyncio.Event().wait()  # hangs until its timeout
        return len(calls)

    p.register_processor("sf", slow_then_fast)
    task = create_task("sf", timeout=0.5, max_retries=2)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=30.0)
    assert result.status is TaskStatus.COMPLETED
    assert result.result == 3
    assert result.attempts == 3
    # the last attempt's own time: it completed, so it ran less than its timeout, while
    # the two before it ran a whole timeout each
    assert result.execution_time < 0.5


async def test_timeout_retries_exhausted_end_timeout(make_processor: Factory) -> None:
    p = await make_processor()

    async def sleepy(task: ProcessingTask) -> None:
        await asyncio.sleep(10)

    p.register_processor("sleepy", sleepy)
    task = create_task("sleepy", timeout=0.03, max_retries=1)
    await p.submit_task(task)
    result = await p.wait_for_task(task.id, timeout=5.0)
    assert result.status is TaskStatus.TIMEOUT
    assert result.attempts == 2


async def test_cancellation_is_never_retried(make_processor: Factory) -> None:
    p = await make_processor(max_thread_workers=1)
    slow = ThreadGate()
    p.register_processor("slow", slow)
    task = create_task("slow", max_retries=4)
    try:
        await p.submit_task(task)
        await slow.started.wait()
        assert await p.cancel_task(task.id) is True
        result = await p.wait_for_task(task.id, timeout=1.0)
        assert result.status is TaskStatus.CANCELLED
        assert result.attempts == 1
    finally:
        slow.release.set()
    follow = create_task("slow")
    await p.submit_task(follow)
    await p.wait_for_task(follow.id, timeout=5.0)
    assert len(slow.cancel_seen) == 2  # the cancelled task ran once, the follower once
    assert (await p.get_performance_metrics())["retries"] == 0


class LocalError(Exception):
    pass


def test_describe_failure_names_the_class_and_formats_the_chain() -> None:
    payload: dict[str, str] = {}
    try:
        try:
            payload["text"]
        except KeyError as exc:
            raise LocalError("no text") from exc
    except LocalError as exc:
        error_type, text = describe_failure(exc)
    assert error_type == f"{__name__}.LocalError"
    assert text.startswith("Traceback (most recent call last):")
    assert "KeyError: 'text'" in text and "direct cause" in text
    assert text.rstrip().endswith("LocalError: no text")
    assert describe_failure(KeyError("k"))[0] == "KeyError"  # builtins: no module
