"""ProcessExecutor with real worker processes (forkserver), no mocks."""

from __future__ import annotations

import array
import asyncio
import hashlib
import os
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import process_functions as pf
import pytest
from executor_contract import ExecutorContract, NewExecutor, WorkerDeathContract

from async_processor.errors import (
    NonRetryableError,
    UnsendableTaskError,
    WorkerCrashedError,
)
from async_processor.executors.process import ProcessExecutor, RemoteTraceback, messages, segments
from async_processor.executors.process.segments import SEGMENT_PREFIX
from async_processor.task import ProcessingTask

SHM_DIR = Path("/dev/shm")


def make_task(**payload: object) -> ProcessingTask:
    return ProcessingTask("custom", dict(payload))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def our_segments() -> list[str]:
    prefix = f"{SEGMENT_PREFIX}{os.getpid()}_"
    return sorted(p.name for p in SHM_DIR.iterdir() if p.name.startswith(prefix))


@pytest.fixture
async def executor() -> AsyncIterator[ProcessExecutor]:
    ex = ProcessExecutor(2)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()


class TestProcessExecutorContract(ExecutorContract, WorkerDeathContract):
    """The shared executor suite (tests/executor_contract.py), also run against Dask."""

    @pytest.fixture
    def new_executor(self) -> NewExecutor:
        return lambda: ProcessExecutor(2)


# ---------------------------------------------------------------- values and errors


async def test_value_comes_back(executor: ProcessExecutor) -> None:
    assert executor.name == "process"
    assert executor.capacity == 2
    assert await executor.run(0, pf.add_one, make_task(x=41)) == 42
    assert await executor.run(1, pf.add_one, make_task(x=1)) == 2
    assert executor.slot_state(0) == "idle"


async def test_default_dependency_results_and_filled_ones_travel(
    executor: ProcessExecutor,
) -> None:
    task = make_task()
    assert await executor.run(0, pf.dependency_keys, task) == []
    task.dependency_results = {"b": 2, "a": 1}
    assert await executor.run(0, pf.dependency_keys, task) == ["a", "b"]


async def test_exception_comes_back_with_its_type(executor: ProcessExecutor) -> None:
    with pytest.raises(ValueError, match="bad input 5") as info:
        await executor.run(0, pf.fail_value_error, make_task(x=5))
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "fail_value_error" in str(cause)
    assert await executor.run(0, pf.add_one, make_task(x=1)) == 2  # the worker survived


async def test_non_retryable_subclass_is_preserved(executor: ProcessExecutor) -> None:
    with pytest.raises(pf.InputRejectedError, match="the audio is empty") as info:
        await executor.run(0, pf.fail_non_retryable, make_task())
    assert isinstance(info.value, NonRetryableError)


async def test_exception_that_cannot_be_rebuilt_becomes_runtime_error(
    executor: ProcessExecutor,
) -> None:
    with pytest.raises(RuntimeError) as info:
        await executor.run(0, pf.fail_stubborn, make_task())
    text = str(info.value)
    assert "StubbornError" in text
    assert "code 7: does not round-trip" in text
    assert "fail_stubborn" in text  # the remote traceback
    with pytest.raises(NonRetryableError, match="StubbornFatalError"):
        await executor.run(0, pf.fail_stubborn_fatal, make_task())


# ---------------------------------------------------------------- crashes and cancellation


async def test_os_exit_raises_worker_crashed_and_slot_recovers(
    executor: ProcessExecutor,
) -> None:
    pid = await executor.run(0, pf.get_pid, make_task())
    task = make_task()
    with pytest.raises(WorkerCrashedError, match="exit code 3") as info:
        await executor.run(0, pf.exit_3, task)
    message = str(info.value)
    assert task.id in message
    assert str(pid) in message
    await executor.release(0)
    assert executor.slot_state(0) == "idle"
    new_pid = await executor.run(0, pf.get_pid, make_task())
    assert new_pid != pid
    assert await executor.run(0, pf.add_one, make_task(x=1)) == 2
    assert executor.statistics() == {"restarts": 1, "crashes": 1}


async def test_segfault_raises_worker_crashed(executor: ProcessExecutor) -> None:
    with pytest.raises(WorkerCrashedError, match="SIGSEGV"):
        await executor.run(1, pf.segfault, make_task())
    assert await executor.run(1, pf.add_one, make_task(x=2)) == 3


async def test_cancelled_task_kills_the_child_and_a_replacement_works(
    executor: ProcessExecutor,
) -> None:
    pid = await executor.run(0, pf.get_pid, make_task())
    with pytest.raises(TimeoutError):  # the function sleeps 60 s: it is killed, not awaited
        await asyncio.wait_for(executor.run(0, pf.sleep_then_pid, make_task(seconds=60)), 0.5)
    assert executor.slot_state(0) in {"restarting", "idle"}
    await executor.release(0)
    assert executor.slot_state(0) == "idle"
    assert not pid_alive(pid)
    assert executor.statistics()["restarts"] == 1
    assert executor.statistics()["crashes"] == 0
    new_pid = await executor.run(0, pf.get_pid, make_task())
    assert new_pid != pid
    assert await executor.run(1, pf.add_one, make_task(x=0)) == 1  # the other slot untouched


async def test_idle_child_killed_from_outside_is_replaced(executor: ProcessExecutor) -> None:
    pid = await executor.run(1, pf.get_pid, make_task())
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        if executor.statistics()["crashes"]:
            break
        await asyncio.sleep(0.01)
    await executor.release(1)
    assert executor.statistics() == {"restarts": 1, "crashes": 1}
    assert await executor.run(1, pf.get_pid, make_task()) != pid


async def test_slots_run_in_parallel_and_report_busy(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    # each child waits for the other to arrive: run one after the other, neither could
    def meet(me: str, other: str) -> ProcessingTask:
        return make_task(folder=str(tmp_path), me=me, other=other)

    first = asyncio.ensure_future(executor.run(0, pf.rendezvous, meet("a", "b")))
    second = asyncio.ensure_future(executor.run(1, pf.rendezvous, meet("b", "a")))
    await asyncio.sleep(0)
    assert executor.slot_state(0) == "busy"
    assert executor.slot_state(1) == "busy"
    pids = await asyncio.gather(first, second)
    assert pids[0] != pids[1]
    assert executor.slot_state(0) == executor.slot_state(1) == "idle"


# ---------------------------------------------------------------- sendability


async def test_check_sendable_names_the_unpicklable_payload_key(
    executor: ProcessExecutor,
) -> None:
    executor.check_sendable(pf.add_one, make_task(x=1, data=b"abc"))  # fine
    with pytest.raises(UnsendableTaskError, match=r"payload\['lock'\]") as info:
        executor.check_sendable(pf.add_one, make_task(x=1, lock=threading.Lock()))
    assert "pass the data differently" in str(info.value)
    nested = make_task(config={"retries": 3, "guards": [1, threading.Lock()]})
    with pytest.raises(UnsendableTaskError, match=r"payload\['config'\]\['guards'\]\[1\]"):
        executor.check_sendable(pf.add_one, nested)
    with pytest.raises(UnsendableTaskError, match=r"payload\['lock'\]"):
        await executor.run(0, pf.add_one, make_task(x=1, lock=threading.Lock()))
    assert executor.slot_state(0) == "idle"


async def test_lambda_is_refused_without_cloudpickle(
    executor: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "load_cloudpickle", lambda: None)
    with pytest.raises(UnsendableTaskError, match="lambda") as info:
        executor.check_sendable(lambda task: 1, make_task())
    message = str(info.value)
    assert "module level" in message
    assert "async-processor[process]" in message
    with pytest.raises(UnsendableTaskError):
        await executor.run(0, lambda task: 1, make_task())


async def test_unpicklable_function_in_the_payload_is_named(
    executor: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "load_cloudpickle", lambda: None)
    task = make_task(processor=lambda payload: payload)
    with pytest.raises(UnsendableTaskError, match=r"payload\['processor'\]") as info:
        executor.check_sendable(pf.add_one, task)
    assert "async-processor[process]" in str(info.value)


async def test_lambda_runs_with_cloudpickle(executor: ProcessExecutor) -> None:
    pytest.importorskip("cloudpickle")
    offset = 100

    def nested(task: ProcessingTask) -> int:
        return int(task.payload["x"]) + offset

    executor.check_sendable(lambda task: task.payload["x"] * 2, make_task(x=1))
    assert await executor.run(0, lambda task: task.payload["x"] * 2, make_task(x=21)) == 42
    assert await executor.run(1, nested, make_task(x=1)) == 101
    # a payload only cloudpickle can send (a lambda inside the payload)
    task = make_task(callback=lambda value: value + 1, x=1)
    executor.check_sendable(pf.add_one, task)
    assert await executor.run(0, pf.add_one, task) == 2


# ---------------------------------------------------------------- large data


async def test_one_mib_bytes_arrive_intact_through_shared_memory(
    executor: ProcessExecutor,
) -> None:
    data = os.urandom(1 << 20)
    kind, size, digest = await executor.run(0, pf.describe_data, make_task(data=data))
    assert (kind, size, digest) == ("bytes", len(data), hashlib.sha256(data).hexdigest())
    assert len(our_segments()) == 1  # the payload went through the slot's segment
    # the segment is reused, not recreated, for the next payload of the same size
    other = os.urandom(1 << 20)
    result = await executor.run(0, pf.describe_data, make_task(data=other))
    assert result[2] == hashlib.sha256(other).hexdigest()
    assert len(our_segments()) == 1


async def test_bytearray_and_memoryview_keep_their_types(executor: ProcessExecutor) -> None:
    blob = bytearray(os.urandom(300_000))
    kind, size, digest = await executor.run(1, pf.describe_data, make_task(data=blob))
    assert (kind, size, digest) == ("bytearray", len(blob), hashlib.sha256(blob).hexdigest())
    doubles = array.array("d", range(50_000))
    view = memoryview(doubles)
    assert await executor.run(1, pf.describe_view, make_task(view=view)) == (
        "memoryview",
        "d",
        (50_000,),
        view.nbytes,
    )
    small = memoryview(b"tiny")
    assert await executor.run(1, pf.describe_view, make_task(view=small)) == (
        "memoryview",
        "B",
        (4,),
        4,
    )


async def test_numpy_array_arrives_as_ndarray(executor: ProcessExecutor) -> None:
    np = pytest.importorskip("numpy")
    values = np.arange(200_000, dtype=np.float64).reshape(400, 500)
    assert values.nbytes >= 64 * 1024
    info = await executor.run(0, pf.describe_array, make_task(array=values))
    assert info == ("numpy.ndarray", "<f8", (400, 500), float(values.sum()), False)
    fortran = np.asfortranarray(values)
    info = await executor.run(0, pf.describe_array, make_task(array=fortran))
    assert info == ("numpy.ndarray", "<f8", (400, 500), float(values.sum()), True)
    back = await executor.run(0, pf.echo_data, make_task(data=values))
    assert isinstance(back, np.ndarray)
    assert np.array_equal(back, values)
    small = np.arange(10, dtype=np.int32)
    assert np.array_equal(await executor.run(0, pf.echo_data, make_task(data=small)), small)


async def test_large_results_come_back_intact(executor: ProcessExecutor) -> None:
    size = 3 * 1024 * 1024 + 17
    expected = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    # no segment yet: the first large result travels through the pipe ...
    assert our_segments() == []
    assert await executor.run(1, pf.make_bytes, make_task(size=size)) == expected
    # ... and the next one through a segment sized for it
    assert await executor.run(1, pf.make_bytes, make_task(size=size)) == expected
    assert len(our_segments()) == 1
    data = os.urandom(1 << 20)
    assert await executor.run(1, pf.echo_data, make_task(data=data)) == data


async def test_large_container_payload(executor: ProcessExecutor) -> None:
    items = list(range(300_000))
    assert await executor.run(0, pf.sum_items, make_task(items=items)) == sum(items)
    text = "ünïcode " * 20_000
    assert await executor.run(0, pf.echo_data, make_task(data=text)) == text


async def test_oversized_segment_shrinks_after_a_run_of_small_messages(
    executor: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "_SHRINK_ABOVE", 2 << 20)
    monkeypatch.setattr(segments, "_SHRINK_AFTER", 3)
    big = os.urandom(4 << 20)
    assert (await executor.run(0, pf.describe_data, make_task(data=big)))[1] == len(big)
    [large] = our_segments()
    large_size = (SHM_DIR / large).stat().st_size
    small = os.urandom(100_000)
    for _ in range(3):
        assert (await executor.run(0, pf.describe_data, make_task(data=small)))[1] == len(small)
    [smaller] = our_segments()
    assert smaller != large
    assert (SHM_DIR / smaller).stat().st_size < large_size


# ---------------------------------------------------------------- context and lifecycle


async def test_module_level_context_var_reaches_the_child(executor: ProcessExecutor) -> None:
    assert await executor.run(0, pf.read_request_id, make_task()) == "unset"
    token = pf.REQUEST_ID.set("req-42")
    try:
        assert await executor.run(0, pf.read_request_id, make_task()) == "req-42"
    finally:
        pf.REQUEST_ID.reset(token)
    # the child sets it in a fresh context per task: nothing leaks into the next task
    assert await executor.run(0, pf.read_request_id, make_task()) == "unset"


async def test_shutdown_stops_every_child_and_unlinks_segments() -> None:
    ex = ProcessExecutor(2)
    await ex.start()
    pids = [await ex.run(slot, pf.get_pid, make_task(data=os.urandom(200_000))) for slot in (0, 1)]
    assert len(our_segments()) == 2
    assert all(pid_alive(pid) for pid in pids)
    await ex.shutdown()
    assert not any(pid_alive(pid) for pid in pids)
    assert our_segments() == []
    assert ex.slot_state(0) == ex.slot_state(1) == "stopped"
    await ex.shutdown()  # safe twice
    with pytest.raises(RuntimeError):
        await ex.run(0, pf.add_one, make_task(x=1))


async def test_shutdown_kills_a_busy_child() -> None:
    ex = ProcessExecutor(1)
    await ex.start()
    running = asyncio.ensure_future(ex.run(0, pf.sleep_then_pid, make_task(seconds=60)))
    await asyncio.sleep(0.2)
    pid = ex._workers[0].pid
    assert pid is not None
    await ex.shutdown()
    assert not pid_alive(pid)
    with pytest.raises(WorkerCrashedError, match="shut down"):
        await running


async def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ProcessExecutor(0)
    with pytest.raises(ValueError, match="start_method"):
        ProcessExecutor(1, start_method="teleport")
    ex = ProcessExecutor(1)
    with pytest.raises(RuntimeError, match="start"):
        await ex.run(0, pf.add_one, make_task(x=1))
    with pytest.raises(IndexError):
        ex.slot_state(1)
    await ex.shutdown()
