"""DaskExecutor on a real LocalCluster with two worker processes (one thread each).

The cluster is module-scoped and synchronous (its scheduler runs on its own loop thread),
so each test's event loop opens its own asynchronous client to it. The scheduler is made
with ``allowed-failures=0`` (a task whose worker dies fails at once, and the processor
decides about retries) and ``worker-saturation=1.0`` (no task is sent to a busy worker
ahead of time, so queued tasks wait at the scheduler in priority order).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import executor_contract as ec
import process_functions as pf
import pytest
from executor_contract import ExecutorContract, NewExecutor, WorkerDeathContract, make_task
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_helpers import task_spans

from async_processor import AdvancedAsyncProcessor
from async_processor.errors import InvalidArgumentError, UnsendableTaskError
from async_processor.executors import dask as dask_module
from async_processor.executors.dask import DaskExecutor, dask_priority
from async_processor.lifecycle import TaskStatus
from async_processor.task import ProcessingTask, TaskPriority

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    settings = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: 8787 may be taken (warns)
            silence_logs=50,
        )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
async def client(address: str) -> AsyncIterator[Any]:
    async with distributed.Client(address, asynchronous=True, set_as_default=False) as c:
        await c.wait_for_workers(2, timeout=30)
        yield c


async def wait_until_workers_idle(client: Any) -> None:
    """Wait for threads still finishing cancelled tasks (Dask cannot stop them): the
    scheduler counts such a worker as free and would queue new tasks on it in order."""

    def executing(dask_worker: Any) -> int:
        return len(dask_worker.state.executing)

    for _ in range(100):
        if not any((await client.run(executing)).values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the Dask workers stayed busy")


class TestDaskExecutorContract(ExecutorContract, WorkerDeathContract):
    """The shared executor suite (tests/executor_contract.py), also run on the process pool."""

    @pytest.fixture
    def new_executor(self, client: Any) -> NewExecutor:
        return lambda: DaskExecutor(client)


@pytest.fixture
async def executor(client: Any) -> AsyncIterator[DaskExecutor]:
    ex = DaskExecutor(client)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()


# ---------------------------------------------------------------- connecting


async def test_address_gives_capacity_and_own_client_closed_at_shutdown(
    address: str, client: Any
) -> None:
    ex = DaskExecutor(address)
    assert ex.capacity == 2  # the cluster's total threads
    assert ex.name == "dask"
    assert ex.slot_state(0) == "stopped"
    with pytest.raises(RuntimeError, match="start"):
        await ex.run(0, pf.add_one, make_task(x=1))
    await ex.start()
    own = ex.client
    assert own is not client
    assert await ex.run(1, pf.add_one, make_task(x=1)) == 2
    await ex.shutdown()
    assert own.status == "closed"
    await ex.shutdown()  # safe twice
    with pytest.raises(RuntimeError, match="shut down"):
        await ex.start()


async def test_given_client_is_never_closed(client: Any) -> None:
    ex = DaskExecutor(client, capacity=5)
    assert ex.capacity == 5
    await ex.start()
    assert await ex.run(4, pf.add_one, make_task(x=0)) == 1
    await ex.shutdown()
    assert client.status == "running"
    assert await client.submit(sum, [1, 2]) == 3


async def test_bad_arguments_are_refused(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (42, "", None):
        with pytest.raises(ValueError, match="cluster must be"):
            DaskExecutor(bad)
    for capacity in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="capacity"):
            DaskExecutor(address, capacity=capacity)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scatter_threshold"):
        DaskExecutor(address, capacity=1, scatter_threshold=0)
    resources: Any
    for resources in ({"embed": {}}, {"embed": {"GPU": 0}}, {"embed": {"GPU": "one"}}, [1]):
        with pytest.raises(ValueError, match="resources"):
            DaskExecutor(address, capacity=1, resources=resources)
    with pytest.raises(IndexError):
        DaskExecutor(address, capacity=1).slot_state(1)
    monkeypatch.setattr(dask_module, "_PROBE_TIMEOUT", 1.0)
    with pytest.raises(ConnectionError, match=r"cannot reach the Dask scheduler.*capacity="):
        DaskExecutor("tcp://127.0.0.1:9")


def test_synchronous_client_is_refused(address: str) -> None:
    with (
        distributed.Client(address, set_as_default=False) as sync_client,
        pytest.raises(ValueError, match="asynchronous"),
    ):
        DaskExecutor(sync_client)


# ---------------------------------------------------------------- priorities and resources


def test_priorities_map_to_dask_priorities() -> None:
    order = [dask_priority(ProcessingTask("t", priority=p)) for p in TaskPriority]
    assert order == [5, 4, 3, 2, 1]  # CRITICAL first: Dask runs higher priorities first


async def test_dask_runs_higher_priority_first_when_the_cluster_is_saturated(
    client: Any,
) -> None:
    """More tasks in flight than threads (a shared cluster): the queue runs HIGH first.

    Dask hands its first few tasks of a group straight to the workers and queues a group's
    tasks at the scheduler only once the group is larger than twice the thread count, so
    five blockers fill both workers and start the scheduler's queue.
    """
    await wait_until_workers_idle(client)
    ex = DaskExecutor(client, capacity=9)
    await ex.start()
    try:
        blockers = [
            asyncio.ensure_future(ex.run(slot, ec.stamp, make_task(seconds=0.5)))
            for slot in range(5)
        ]
        await asyncio.sleep(0.3)
        waiting = []
        for slot, priority in (
            (5, TaskPriority.LOW),
            (6, TaskPriority.LOW),
            (7, TaskPriority.HIGH),
            (8, TaskPriority.HIGH),
        ):
            task = ProcessingTask("custom", {"seconds": 0.05}, priority=priority)
            waiting.append(asyncio.ensure_future(ex.run(slot, ec.stamp, task)))
            await asyncio.sleep(0.05)
        low_a, low_b, high_a, high_b = await asyncio.gather(*waiting)
        await asyncio.gather(*blockers)
    finally:
        await ex.shutdown()
    assert max(high_a, high_b) <= min(low_a, low_b)


async def test_resources_per_task_type_reach_the_scheduler(client: Any) -> None:
    ex = DaskExecutor(client, capacity=2, resources={"gpu-job": {"GPU": 1}})
    await ex.start()
    try:
        # no worker has a GPU: the task waits for one; a type without resources runs
        job = asyncio.ensure_future(ex.run(0, pf.add_one, ProcessingTask("gpu-job", {"x": 1})))
        await asyncio.sleep(0.3)

        def restrictions(dask_scheduler: Any) -> list[Any]:
            return [ts.resource_restrictions for ts in dask_scheduler.tasks.values()]

        assert {"GPU": 1} in await client.run_on_scheduler(restrictions)
        assert await ex.run(1, pf.add_one, make_task(x=1)) == 2
        assert not job.done()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    finally:
        await ex.shutdown()
    assert ex.statistics()["cancelled"] == 1


# ---------------------------------------------------------------- cancellation


async def test_cancelling_the_run_cancels_the_dask_future(
    executor: DaskExecutor, client: Any
) -> None:
    running = asyncio.ensure_future(executor.run(0, pf.sleep_then_pid, make_task(seconds=2)))
    await asyncio.sleep(0.3)
    assert any("_run_remote" in str(key) for key in client.futures)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    def dask_states(dask_scheduler: Any) -> list[str]:
        return [ts.state for key, ts in dask_scheduler.tasks.items() if "_run_remote" in key]

    for _ in range(50):
        if not await client.run_on_scheduler(dask_states):
            break
        await asyncio.sleep(0.05)
    assert await client.run_on_scheduler(dask_states) == []  # forgotten by the scheduler
    assert executor.statistics()["cancelled"] == 1
    assert executor.slot_state(0) == "idle"


# ---------------------------------------------------------------- large payloads


async def test_same_bytes_are_scattered_once_across_tasks_and_retries(
    client: Any,
) -> None:
    data = os.urandom(1 << 20)
    processor = AdvancedAsyncProcessor(cluster=client, builtin_processors=False)
    processor.register_processor("describe", pf.describe_data)
    processor.register_processor("fail", pf.fail_value_error)
    await processor.start()
    try:
        ids = [
            await processor.submit_task(
                ProcessingTask("describe", {"data": data}, cpu_intensive=True)
            )
            for _ in range(3)
        ]
        failing = await processor.submit_task(
            ProcessingTask("fail", {"data": data, "x": 1}, cpu_intensive=True, max_retries=2)
        )
        results = [await processor.wait_for_task(i, timeout=30) for i in ids]
        failed = await processor.wait_for_task(failing, timeout=30)
        stats = (await processor.get_performance_metrics())["executors"]["process"]
    finally:
        await processor.shutdown()
    expected = ("bytes", len(data), hashlib.sha256(data).hexdigest())
    assert [tuple(r.result) for r in results] == [expected] * 3
    assert failed.status is TaskStatus.FAILED
    assert stats["submitted"] == 6  # 3 tasks + 3 attempts of the failing one
    assert stats["scattered"] == 1
    assert stats["scattered_bytes"] == len(data)
    assert stats["scatter_hits"] == 5


async def test_buffer_types_survive_scattering(executor: DaskExecutor) -> None:
    np = pytest.importorskip("numpy")
    blob = bytearray(os.urandom(300_000))
    assert await executor.run(0, pf.describe_data, make_task(data=blob)) == (
        "bytearray",
        len(blob),
        hashlib.sha256(blob).hexdigest(),
    )
    view = memoryview(array.array("d", range(50_000)))
    assert await executor.run(0, pf.describe_view, make_task(view=view)) == (
        "memoryview",
        "d",
        (50_000,),
        view.nbytes,
    )
    values = np.arange(200_000, dtype=np.float64).reshape(400, 500)
    info = await executor.run(1, pf.describe_array, make_task(array=np.asfortranarray(values)))
    assert info == ("numpy.ndarray", "<f8", (400, 500), float(values.sum()), True)
    task = make_task()
    task.dependency_results = {"upstream": bytes(100_000), "small": 1}
    assert await executor.run(1, pf.dependency_keys, task) == ["small", "upstream"]
    assert executor.statistics()["scattered"] == 4
    small = os.urandom(1000)  # under the threshold: sent inline
    assert (await executor.run(0, pf.describe_data, make_task(data=small)))[1] == 1000
    assert executor.statistics()["scattered"] == 4


async def test_scatter_cache_is_bounded(client: Any) -> None:
    ex = DaskExecutor(client, capacity=1, scatter_cache_bytes=150_000)
    await ex.start()
    try:
        for _ in range(3):
            await ex.run(0, pf.describe_data, make_task(data=os.urandom(100_000)))
        assert ex.statistics()["scatter_cached_bytes"] == 100_000
    finally:
        await ex.shutdown()


# ---------------------------------------------------------------- sendability


async def test_check_sendable(executor: DaskExecutor) -> None:
    executor.check_sendable(pf.add_one, make_task(x=1, data=b"abc"))
    executor.check_sendable(lambda task: 1, make_task())  # cloudpickle sends lambdas
    with pytest.raises(UnsendableTaskError, match=r"payload\['lock'\]"):
        executor.check_sendable(pf.add_one, make_task(x=1, lock=threading.Lock()))

    def holds_lock(task: ProcessingTask) -> object:
        return lock

    lock = threading.Lock()
    with pytest.raises(UnsendableTaskError, match="holds_lock"):
        executor.check_sendable(holds_lock, make_task())
    assert await executor.run(0, lambda task: task.payload["x"] * 2, make_task(x=21)) == 42


# ---------------------------------------------------------------- through the processor


async def test_processor_runs_cpu_tasks_with_dependencies_on_the_cluster(address: str) -> None:
    processor = AdvancedAsyncProcessor(cluster=address, builtin_processors=False)
    processor.register_processor("square", ec.square)
    processor.register_processor("total", ec.sum_dependencies)
    processor.register_processor("pid", pf.get_pid)
    await processor.start()
    try:
        squares = [
            await processor.submit_task(ProcessingTask("square", {"x": x}, cpu_intensive=True))
            for x in range(1, 5)
        ]
        total = await processor.submit_task(
            ProcessingTask(
                "total", depends_on=squares, cpu_intensive=True, priority=TaskPriority.HIGH
            )
        )
        pid = await processor.submit_task(ProcessingTask("pid", cpu_intensive=True))
        result = await processor.wait_for_task(total, timeout=30)
        worker_pid = (await processor.wait_for_task(pid, timeout=30)).result
        metrics = await processor.get_performance_metrics()
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED
    assert result.result == 1 + 4 + 9 + 16
    assert worker_pid != os.getpid()  # ran in a Dask worker process
    assert sorted(w for w in metrics["worker_stats"] if w.startswith("process")) == [
        "process-0",
        "process-1",
    ]


async def test_processor_refuses_bad_cluster_arguments(client: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="cluster must be"):
        AdvancedAsyncProcessor(cluster=42)
    with pytest.raises(InvalidArgumentError, match="not both"):
        AdvancedAsyncProcessor(cluster=client, process_executor=DaskExecutor(client))
    with pytest.raises(InvalidArgumentError, match="needs cluster="):
        AdvancedAsyncProcessor(cluster_resources={"embed": {"GPU": 1}})
    with pytest.raises(InvalidArgumentError, match="resources"):
        AdvancedAsyncProcessor(cluster=client, cluster_resources={"embed": {"GPU": -1}})


async def test_a_failure_on_the_cluster_keeps_its_type_and_chained_traceback(
    address: str,
) -> None:
    processor = AdvancedAsyncProcessor(
        cluster=address, builtin_processors=False, processors={"parse": pf.fail_with_cause}
    )
    async with processor:
        task_id = await processor.submit_task(
            ProcessingTask("parse", {"secret": "words"}, cpu_intensive=True, max_retries=0)
        )
        result = await processor.wait_for_task(task_id, timeout=30)
    assert result.status is TaskStatus.FAILED
    assert result.worker_id is not None and result.worker_id.startswith("process")
    assert result.error_type == "ValueError"
    assert result.traceback is not None
    assert "KeyError: 'text'" in result.traceback  # the cause, raised in the Dask worker
    assert 'task.payload["text"]' in result.traceback
    assert result.traceback.rstrip().endswith("ValueError: the payload has no text")


async def test_a_dask_attempt_is_a_span_child_of_the_submitters(
    client: Any, spans: InMemorySpanExporter
) -> None:
    processor = AdvancedAsyncProcessor(cluster=client, builtin_processors=False)
    processor.register_processor("pid", pf.get_pid)
    await processor.start()
    try:
        task = ProcessingTask("pid", cpu_intensive=True)
        with trace.get_tracer("tests").start_as_current_span("request") as request:
            await processor.submit_task(task)
        result = await processor.wait_for_task(task.id, timeout=60)
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED, result.error
    (span,) = task_spans(spans)
    assert span.name == "async_processor.task pid"
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert dict(span.attributes or {})["async_processor.task.status"] == "completed"
