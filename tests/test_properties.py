"""Property tests: random task graphs through a real processor, checked against invariants.

Each example builds a random DAG (edges only from earlier to later tasks), gives every
task a random priority and a random fate (complete, raise, raise NonRetryableError, run
past its timeout, be cancelled while running or before it starts, or carry a deadline
that has already passed), submits it (one batch in shuffled order, or one by one in
topological order) and runs it to the end on a real event loop, on the loop or on
threads. A transition listener records every status change; the invariants are then
checked on that log:

* a task starts only after every dependency ended COMPLETED (any ending with
  ``allow_failure``), and receives each dependency's result;
* every task has exactly one terminal transition, its last one, and its status never
  changes afterwards;
* a task whose dependency did not complete (without ``allow_failure``) never runs and ends
  CANCELLED or TIMEOUT, naming a dependency that ended badly;
* with one worker, every start takes the most urgent ready task (inherited priority);
* after shutdown no worker of the processor is left and no record is kept.

Submission and the cancellations "before start" happen without yielding to the event
loop, so nothing runs until the whole graph is in place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from async_processor import (
    AdvancedAsyncProcessor,
    NonRetryableError,
    ProcessingTask,
    RetryPolicy,
    TaskPriority,
    TaskResult,
    TaskStatus,
    create_task,
)
from async_processor.task_manager import TaskRecord

TERMINAL = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMEOUT}
NOT_RUN = {TaskStatus.CANCELLED, TaskStatus.TIMEOUT}

# "complete" is listed several times so that most graphs have long completed chains.
OUTCOMES = (
    "complete",
    "complete",
    "complete",
    "complete",
    "raise",
    "non_retryable",
    "timeout",
    "cancel_running",
    "cancel_before",
    "past_deadline",
)
TIMEOUT = 0.03


@dataclass(frozen=True)
class Spec:
    priority: TaskPriority
    deps: tuple[int, ...]
    outcome: str
    allow_failure: bool
    retries: int


@dataclass(frozen=True)
class Scenario:
    specs: tuple[Spec, ...]
    lane: str  # "async" or "thread"
    workers: int
    batch: bool
    order: tuple[int, ...]  # submission order of the batch (ignored one by one)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(min_value=1, max_value=30))
    specs = []
    for i in range(n):
        deps: list[int] = []
        if i:
            deps = draw(
                st.lists(st.integers(0, i - 1), max_size=min(i, 3), unique=True).map(sorted)
            )
        specs.append(
            Spec(
                priority=draw(st.sampled_from(list(TaskPriority))),
                deps=tuple(deps),
                outcome=draw(st.sampled_from(OUTCOMES)),
                allow_failure=bool(deps) and draw(st.sampled_from([False, False, False, True])),
                retries=draw(st.integers(0, 1)),
            )
        )
    return Scenario(
        specs=tuple(specs),
        lane=draw(st.sampled_from(["async", "thread"])),
        workers=draw(st.sampled_from([1, 1, 3])),
        batch=draw(st.booleans()),
        order=tuple(draw(st.permutations(range(n)))),
    )


@dataclass
class Run:
    """What one scenario did."""

    ids: list[str]
    results: list[TaskResult]
    log: list[tuple[str, TaskStatus, TaskStatus]]
    runs: dict[str, int]
    dependency_keys: dict[str, list[set[str]]] = field(default_factory=dict)
    final_status: list[TaskStatus] = field(default_factory=list)
    leftover_workers: list[str] = field(default_factory=list)
    leftover_records: int = 0


async def execute(scenario: Scenario) -> Run:
    specs = scenario.specs
    processor = AdvancedAsyncProcessor(
        max_workers=scenario.workers if scenario.lane == "async" else 1,
        max_thread_workers=scenario.workers if scenario.lane == "thread" else 0,
        max_process_workers=0,
        aging_interval=None,
        retry_policy=RetryPolicy(base_delay=0.001, max_delay=0.005),
    )
    await processor.start()
    loop = asyncio.get_running_loop()
    log: list[tuple[str, TaskStatus, TaskStatus]] = []

    def listen(record: TaskRecord, old: TaskStatus, new: TaskStatus) -> None:
        log.append((record.task.id, old, new))

    processor.task_manager.listeners.append(listen)
    runs: dict[str, int] = {}
    dependency_keys: dict[str, list[set[str]]] = {}
    background: list[asyncio.Task[bool]] = []
    from_threads: list[Future[bool]] = []

    def note(task: ProcessingTask) -> str:
        runs[task.id] = runs.get(task.id, 0) + 1
        dependency_keys.setdefault(task.id, []).append(set(task.dependency_results))
        outcome: str = task.payload["outcome"]
        if outcome == "raise":
            raise RuntimeError(f"task {task.payload['i']} failed")
        if outcome == "non_retryable":
            raise NonRetryableError(f"task {task.payload['i']} refused")
        return outcome

    async def on_loop(task: ProcessingTask) -> int:
        outcome = note(task)
        if outcome == "cancel_running":
            background.append(loop.create_task(processor.cancel_task(task.id)))
            await asyncio.sleep(10)
        elif outcome == "timeout":
            await asyncio.sleep(10)
        i: int = task.payload["i"]
        return i

    def on_thread(task: ProcessingTask) -> int:
        outcome = note(task)
        if outcome == "cancel_running":
            from_threads.append(
                asyncio.run_coroutine_threadsafe(processor.cancel_task(task.id), loop)
            )
        if outcome in ("cancel_running", "timeout"):
            give_up = time.monotonic() + 10
            while not task.cancel_requested and time.monotonic() < give_up:
                time.sleep(0.002)
        i: int = task.payload["i"]
        return i

    processor.register_processor("prop", on_loop if scenario.lane == "async" else on_thread)

    tasks: list[ProcessingTask] = []
    for i, spec in enumerate(specs):
        fields: dict[str, Any] = {
            "depends_on": [tasks[d].id for d in spec.deps],
            "allow_failure": spec.allow_failure,
            "max_retries": spec.retries,
        }
        if spec.outcome == "timeout":
            fields["timeout"] = TIMEOUT
        if spec.outcome == "past_deadline":
            fields["deadline"] = time.time() - 1.0
        tasks.append(
            create_task("prop", {"i": i, "outcome": spec.outcome}, spec.priority, **fields)
        )
    ids = [t.id for t in tasks]

    # Nothing below yields to the loop until the first wait: no task can start before
    # the whole graph is submitted and the "before start" cancellations are done.
    if scenario.batch:
        assert await processor.submit_tasks([tasks[i] for i in scenario.order]) == [
            ids[i] for i in scenario.order
        ]
    else:
        for task in tasks:
            await processor.submit_task(task)
    for i, spec in enumerate(specs):
        if spec.outcome == "cancel_before":
            await processor.cancel_task(ids[i])
    assert all(new is TaskStatus.PENDING or new in NOT_RUN for _, _, new in log)

    results = await asyncio.gather(*(processor.wait_for_task(i, timeout=30.0) for i in ids))
    manager = processor.task_manager
    # the waiting counters the metrics read agree with the records, at rest
    assert manager.waiting == sum(
        1 for r in manager.records.values() if r.status is TaskStatus.PENDING
    )
    assert manager.waiting == sum(manager.waiting_by_priority)
    await asyncio.gather(*background)
    for fut in from_threads:
        await asyncio.wrap_future(fut)
    await processor.shutdown(timeout=5.0)
    run = Run(ids=ids, results=list(results), log=log, runs=runs, dependency_keys=dependency_keys)
    run.final_status = [await processor.get_task_status(i) for i in ids]
    run.leftover_workers = [
        t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("async-processor")
    ]
    run.leftover_records = len(manager.records)
    assert manager.waiting == 0
    assert manager.waiting_by_priority == [0] * len(manager.waiting_by_priority)
    return run


def transitive_dependents(specs: tuple[Spec, ...]) -> list[set[int]]:
    """For each task, every task that depends on it, directly or not."""
    direct: list[set[int]] = [set() for _ in specs]
    for i, spec in enumerate(specs):
        for d in spec.deps:
            direct[d].add(i)
    closure: list[set[int]] = [set() for _ in specs]
    for i in reversed(range(len(specs))):  # dependents have higher indices
        for j in direct[i]:
            closure[i] |= {j} | closure[j]
    return closure


def check(scenario: Scenario, run: Run) -> None:
    specs = scenario.specs
    ids = run.ids
    index = {task_id: i for i, task_id in enumerate(ids)}
    dependents = transitive_dependents(specs)
    effective = [
        min([specs[i].priority.value] + [specs[j].priority.value for j in dependents[i]])
        for i in range(len(specs))
    ]
    deadline_doomed = [
        specs[i].outcome == "past_deadline"
        or any(specs[j].outcome == "past_deadline" for j in dependents[i])
        for i in range(len(specs))
    ]

    # ---- one terminal transition each, the last one; status never changes afterwards
    terminal_at: dict[int, int] = {}
    first_start: dict[int, int] = {}
    for k, (task_id, old, new) in enumerate(run.log):
        i = index[task_id]
        assert i not in terminal_at, f"task {i} changed after its terminal status: {old}->{new}"
        if new in TERMINAL:
            terminal_at[i] = k
        if new is TaskStatus.RUNNING:
            first_start.setdefault(i, k)
    assert set(terminal_at) == set(range(len(specs)))
    for i, result in enumerate(run.results):
        assert result.status in TERMINAL
        assert result.status is run.log[terminal_at[i]][2]
        assert run.final_status[i] is result.status

    for i, spec in enumerate(specs):
        result = run.results[i]
        ran = ids[i] in run.runs
        assert ran == (i in first_start), i
        dep_statuses = {d: run.results[d].status for d in spec.deps}
        bad_deps = [d for d, s in dep_statuses.items() if s is not TaskStatus.COMPLETED]

        # ---- never before all dependencies ended (COMPLETED unless allow_failure)
        if ran:
            for d in spec.deps:
                assert terminal_at[d] < first_start[i], (i, d)
            if not spec.allow_failure:
                assert not bad_deps, (i, bad_deps)
            for keys in run.dependency_keys[ids[i]]:
                assert keys == {ids[d] for d in spec.deps}
        else:
            assert result.status in NOT_RUN, (i, result.status, result.error)
            assert result.attempts == 0

        # ---- dependents of a task that did not complete never run
        if bad_deps and not spec.allow_failure:
            assert not ran
            assert result.status in NOT_RUN
            if spec.outcome != "cancel_before" and not deadline_doomed[i]:
                assert result.error is not None
                assert any(ids[d] in result.error for d in bad_deps), (i, result.error)

        # ---- tasks that cannot run never run
        if spec.outcome == "cancel_before":
            assert not ran and result.status is TaskStatus.CANCELLED
        if deadline_doomed[i]:
            assert not ran and result.status in NOT_RUN, (i, result.status)
        if spec.outcome == "past_deadline" and not bad_deps:
            assert result.status is TaskStatus.TIMEOUT
            assert result.error is not None and "expired in the queue" in result.error

        # ---- tasks that ran end as their processor made them end
        if ran:
            expected = {
                "complete": (TaskStatus.COMPLETED, 1),
                "raise": (TaskStatus.FAILED, spec.retries + 1),
                "non_retryable": (TaskStatus.FAILED, 1),
                "timeout": (TaskStatus.TIMEOUT, spec.retries + 1),
                "cancel_running": (TaskStatus.CANCELLED, 1),
            }[spec.outcome]
            assert (result.status, result.attempts) == expected, (i, result.error)
            assert run.runs[ids[i]] == expected[1]
            if result.status is TaskStatus.COMPLETED:
                assert result.result == i

    # ---- one worker: each start takes the most urgent ready task
    if scenario.workers == 1:
        status: dict[int, TaskStatus] = {}
        backoff: set[int] = set()
        for task_id, old, new in run.log:
            i = index[task_id]
            if new is TaskStatus.RUNNING:
                for u, u_status in status.items():
                    if (
                        u == i
                        or u_status is not TaskStatus.PENDING
                        or u in backoff
                        or deadline_doomed[u]
                    ):
                        continue
                    ready = all(
                        status.get(d) in TERMINAL
                        and (specs[u].allow_failure or status[d] is TaskStatus.COMPLETED)
                        for d in specs[u].deps
                    )
                    if ready:
                        assert effective[u] >= effective[i], (
                            f"task {i} (priority {effective[i]}) started while task {u} "
                            f"(priority {effective[u]}) was ready"
                        )
                backoff.discard(i)
            if old is TaskStatus.RUNNING and new is TaskStatus.PENDING:
                backoff.add(i)
            status[i] = new

    # ---- nothing left after shutdown
    assert run.leftover_workers == []
    assert run.leftover_records == 0


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_random_task_graphs_keep_the_invariants(scenario: Scenario) -> None:
    event(f"{scenario.lane} lane, {scenario.workers} worker(s)")
    event(f"tasks: {(len(scenario.specs) + 9) // 10 * 10} or fewer")
    run = asyncio.run(execute(scenario))
    ran = sum(1 for i in run.ids if i in run.runs)
    event(f"ran: {'none' if not ran else 'some' if ran < len(run.ids) else 'all'}")
    check(scenario, run)


def _chain(*outcomes: str, allow_last: bool = False) -> Scenario:
    specs = tuple(
        Spec(
            TaskPriority.NORMAL,
            (i - 1,) if i else (),
            outcome,
            allow_last and i == len(outcomes) - 1,
            0,
        )
        for i, outcome in enumerate(outcomes)
    )
    return Scenario(specs, "async", 1, True, tuple(reversed(range(len(specs)))))


CHAINS: list[Callable[[], Scenario]] = [
    lambda: _chain("complete", "complete", "complete"),
    lambda: _chain("raise", "complete", "complete"),
    lambda: _chain("complete", "past_deadline", "complete"),
    lambda: _chain("complete", "complete", "past_deadline"),
    lambda: _chain("timeout", "complete", allow_last=True),
    lambda: _chain("cancel_before", "complete"),
]


def test_fixed_chains_keep_the_invariants() -> None:
    """A few hand-picked graphs, so the interesting cases run on every test run."""
    for make in CHAINS:
        scenario = make()
        check(scenario, asyncio.run(execute(scenario)))
