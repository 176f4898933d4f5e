"""The SQLite store through the processor: journalling, recovery, retention, idempotency,
and bad files (corrupt, truncated, foreign, locked, full)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import textwrap
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

pytest.importorskip("msgpack")

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingTask,
    ProcessingType,
    TaskNotFoundError,
    TaskPriority,
    TaskStatus,
    UnknownTaskTypeError,
)
from async_processor.stores import (
    MemoryStore,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    UnstorableTaskError,
)


def make(db: Path | str, **kwargs: Any) -> AdvancedAsyncProcessor:
    store = db if isinstance(db, str) else f"sqlite:///{db}"
    return AdvancedAsyncProcessor(
        max_thread_workers=0,
        max_process_workers=0,
        builtin_processors=False,
        enable_monitoring=False,
        store=store,
        **kwargs,
    )


async def echo(task: ProcessingTask) -> Any:
    return task.payload.get("value")


def rows(db: Path | sqlite3.Connection) -> dict[str, tuple[str, int]]:
    """Each task's status and attempts; from a closed store's file, or an open store's
    own connection (an open store holds its file exclusively)."""
    query = "SELECT id, status, attempts FROM ap_tasks"
    if isinstance(db, sqlite3.Connection):
        assert not db.in_transaction  # what it shows is committed
        return {i: (s, a) for i, s, a in db.execute(query)}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {i: (s, a) for i, s, a in conn.execute(query)}


def connection(processor: AdvancedAsyncProcessor) -> sqlite3.Connection:
    conn = processor._store._conn  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    return conn


async def test_memory_store_is_the_default_and_journals_nothing() -> None:
    processor = AdvancedAsyncProcessor(max_process_workers=0, builtin_processors=False)
    assert isinstance(processor._store, MemoryStore)
    assert processor.task_manager.listeners == []


async def test_accepted_task_is_on_disk_when_submit_returns(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    gate = asyncio.Event()

    async def held(task: ProcessingTask) -> str:
        await gate.wait()
        return "done"

    processor = make(db)
    processor.register_processor("held", held)
    await processor.start()
    task_id = await processor.submit_task(ProcessingTask("held", {"b": b"\x00\x01"}))
    assert rows(connection(processor))[task_id] == ("pending", 0)
    await asyncio.sleep(0.01)
    assert rows(connection(processor))[task_id] == ("running", 0)  # attempts before this one
    gate.set()
    result = await processor.wait_for_task(task_id)
    await asyncio.sleep(0.01)
    assert rows(connection(processor))[task_id] == ("completed", 1)
    assert result.result == "done"
    await processor.shutdown()
    assert rows(db)[task_id] == ("completed", 1)


async def test_unstorable_task_is_refused_and_nothing_kept(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    processor = make(db)
    await processor.start()
    task = ProcessingTask(ProcessingType.CUSTOM, {"processor": echo})
    with pytest.raises(UnstorableTaskError, match="register_processor"):
        await processor.submit_task(task)
    batch = [ProcessingTask("x"), ProcessingTask("x", {"o": object()})]
    processor.register_processor("x", echo)
    with pytest.raises(UnstorableTaskError):
        await processor.submit_tasks(batch)
    assert task.id not in processor.task_manager
    assert not processor.task_manager.records
    await processor.shutdown()
    assert rows(db) == {}


async def test_recovery_keeps_dependencies_priorities_and_attempts(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    order: list[str] = []

    async def blocked(task: ProcessingTask) -> None:
        await asyncio.Event().wait()

    async def record(task: ProcessingTask) -> dict[str, Any]:
        order.append(task.id)
        return dict(task.dependency_results)

    first = make(db, max_workers=1)
    first.register_processor("gate", blocked)
    first.register_processor("rec", record)
    await first.start()
    gate = ProcessingTask("gate", priority=TaskPriority.CRITICAL, id="g")
    await first.submit_task(gate)
    await asyncio.sleep(0.01)  # the only worker is now stuck in the gate
    a = ProcessingTask("rec", priority=TaskPriority.BATCH, id="a", max_retries=2)
    b = ProcessingTask("rec", priority=TaskPriority.LOW, id="b", depends_on=["a"])
    c = ProcessingTask("rec", priority=TaskPriority.CRITICAL, id="c", depends_on=["b"])
    d = ProcessingTask("rec", priority=TaskPriority.HIGH, id="d")
    e = ProcessingTask("rec", priority=TaskPriority.NORMAL, id="e", tags={"t"}, timeout=5)
    await first.submit_tasks([c, b, a])
    await first.submit_tasks([e, d])
    await first.shutdown(timeout=0.1)  # cancels them in memory; the store keeps them
    assert rows(db)["g"] == ("running", 0)

    second = make(db, max_workers=1)
    second.register_processor("gate", record)
    second.register_processor("rec", record)
    await second.start()
    records = second.task_manager.records
    assert {r: records[r].priority for r in "abcde"} == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}
    assert (records["b"].waiting, records["c"].waiting) == (1, 1)
    assert records["g"].attempts == 1
    assert records["a"].task.max_retries == 2 and records["e"].task.tags == {"t"}
    results = {i: await second.wait_for_task(i, timeout=5) for i in "gabcde"}
    assert order == ["g", "a", "b", "c", "d", "e"]
    assert results["g"].attempts == 2  # one before the restart, one after
    assert results["c"].result == {"b": {"a": {}}}
    await second.shutdown()


async def test_finished_results_survive_restart_until_retention_ends(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = make(db)
    first.register_processor("echo", echo)
    await first.start()
    ok = await first.submit_task(ProcessingTask("echo", {"value": b"bytes"}))
    await first.wait_for_task(ok)
    await first.shutdown()

    second = make(db)
    second.register_processor("echo", echo)
    await second.start()
    assert await second.get_task_status(ok) is TaskStatus.COMPLETED
    result = await second.get_task_result(ok)
    assert result is not None and result.result == b"bytes"
    assert (await second.wait_for_task(ok)).status is TaskStatus.COMPLETED
    dependent = await second.submit_task(ProcessingTask("echo", depends_on=[ok]))
    assert (await second.wait_for_task(dependent)).status is TaskStatus.COMPLETED
    await second.shutdown()

    third = make(db, result_ttl=0.05)
    await asyncio.sleep(0.1)
    await third.start()
    with pytest.raises(TaskNotFoundError):
        await third.get_task_status(ok)
    await third.shutdown()
    assert rows(db) == {}  # purged from the file too


async def test_max_results_applies_to_the_file(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = make(db)
    first.register_processor("echo", echo)
    await first.start()
    ids = await first.submit_tasks([ProcessingTask("echo") for _ in range(5)])
    for task_id in ids:
        await first.wait_for_task(task_id)
    await first.shutdown()
    second = make(db, max_results=2)
    await second.start()
    assert len(second.task_manager.results) == 2
    await second.shutdown()
    assert len(rows(db)) == 2


@pytest.mark.parametrize("durable", [True, False])
async def test_idempotency_key_returns_the_first_id(tmp_path: Path, durable: bool) -> None:
    db: Path | str = tmp_path / "s.db" if durable else "memory"
    processor = make(db)
    processor.register_processor("echo", echo)
    await processor.start()
    first = await processor.submit_task(ProcessingTask("echo"), idempotency_key="order-1")
    again = ProcessingTask("echo")
    assert await processor.submit_task(again, idempotency_key="order-1") == first
    assert again.id not in processor.task_manager
    other = await processor.submit_task(ProcessingTask("echo"), idempotency_key="order-2")
    assert other != first
    with pytest.raises(InvalidArgumentError, match="idempotency_key"):
        await processor.submit_task(ProcessingTask("echo"), idempotency_key="")
    await processor.wait_for_task(first)
    await processor.shutdown()
    if durable:
        restarted = make(db)
        restarted.register_processor("echo", echo)
        await restarted.start()
        assert await restarted.submit_task(ProcessingTask("echo"), idempotency_key="order-1") == (
            first
        )
        await restarted.shutdown()


async def test_unregistered_type_on_recovery_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = make(db)

    async def hang(task: ProcessingTask) -> None:
        await asyncio.Event().wait()

    first.register_processor("mystery", hang)
    await first.start()
    await first.submit_task(ProcessingTask("mystery", id="m1"))
    await first.shutdown(timeout=0.05)
    second = make(db)
    with pytest.raises(UnknownTaskTypeError, match=r"cannot recover task m1.*register_processor"):
        await second.start()
    assert not second.running
    third = make(db)  # the failed start released the file
    third.register_processor("mystery", echo)
    await third.start()
    assert (await third.wait_for_task("m1", timeout=5)).status is TaskStatus.COMPLETED
    await third.shutdown()


async def _fill(db: Path, count: int) -> None:
    processor = make(db, queue_size=count)
    processor.register_processor("echo", echo)
    await processor.start()
    ids = await processor.submit_tasks(
        [ProcessingTask("echo", {"value": "x" * 200}) for _ in range(count)]
    )
    for task_id in ids:
        await processor.wait_for_task(task_id)
    await processor.shutdown()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("random bytes", "not a database"),
        ("truncated", "malformed"),
        ("foreign database", "not a task store"),
    ],
)
async def test_bad_files_are_refused_clearly(tmp_path: Path, damage: str, message: str) -> None:
    db = tmp_path / "bad.db"
    if damage == "random bytes":
        db.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        await _fill(db, 1500)
        os.truncate(db, db.stat().st_size // 2)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE users (name TEXT)")
    processor = make(db)
    with pytest.raises(StoreCorruptError, match=message) as caught:
        await processor.start()
    assert str(db) in str(caught.value)
    assert "move the file aside" in str(caught.value) or "new file" in str(caught.value)


async def test_missing_folder(tmp_path: Path) -> None:
    processor = make(tmp_path / "nowhere" / "s.db")
    with pytest.raises(StoreError, match="does not exist"):
        await processor.start()


async def test_locked_store(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    owner = make(db)
    await owner.start()
    intruder = make(f"sqlite:///{db}?timeout=0.2")
    with pytest.raises(StoreLockedError, match=f"{db}.*locked by another process"):
        await intruder.start()
    await owner.shutdown()
    later = make(db)
    await later.start()  # the lock went with its owner
    await later.shutdown()


_FULL_DISK = textwrap.dedent(
    """
    import asyncio, os, resource, signal, sys
    from async_processor import AdvancedAsyncProcessor, ProcessingTask
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process

    async def hold(task):
        await asyncio.Event().wait()

    async def main(db):
        p = AdvancedAsyncProcessor(max_thread_workers=0, max_process_workers=0,
                                   builtin_processors=False, store=f"sqlite:///{db}")
        p.register_processor("hold", hold)
        await p.start()
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        try:
            for i in range(10_000):
                await p.submit_task(ProcessingTask("hold", {"blob": os.urandom(2000)}, id=f"k{i}"))
                print(f"k{i}", flush=True)
        except Exception as exc:
            print("ERROR", type(exc).__name__, exc, flush=True)
        os._exit(0)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_full_disk_refuses_the_submit_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FULL_DISK, str(db), stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), 60)
    lines = stdout.decode().split("\n")
    errors = [line for line in lines if line.startswith("ERROR")]
    assert errors, [*lines[-5:], stderr.decode()[-2000:]]
    assert errors[0].startswith("ERROR StoreFullError") and str(db) in errors[0]
    accepted = [line for line in lines if line.startswith("k")]
    assert len(accepted) > 5

    processor = make(db)

    async def hold(task: ProcessingTask) -> None:
        await asyncio.Event().wait()

    processor.register_processor("hold", hold)
    await processor.start()
    for task_id in accepted:  # every acknowledged task is back
        assert await processor.get_task_status(task_id) in (TaskStatus.PENDING, TaskStatus.RUNNING)
    await processor.shutdown(timeout=0.05)
