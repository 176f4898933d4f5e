"""The PostgreSQL task store against a real server: journal, recovery after kill -9,
idempotency, several processors sharing one queue (and one of them killed), bad URLs."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingTask,
    TaskStatus,
    UnknownTaskTypeError,
)
from async_processor.stores import StoreCorruptError, StoreError, UnstorableTaskError

pytest.importorskip("msgpack")
pytest.importorskip("asyncpg")

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "processors"))
import asyncpg
from crash_worker import logged, make_processor, plan
from pg_worker import share_job
from servers import ServiceUnavailable, closed_port, postgres_cluster
from test_stores_crash import expected_statuses

WORKER = Path(__file__).parent / "pg_worker.py"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    try:
        with postgres_cluster() as url:
            yield url
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database."""
    name = f"ap_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def blocked(task: ProcessingTask) -> None:
    await asyncio.Event().wait()


async def test_journalled_before_submit_returns_and_recovered(db: str) -> None:
    processor = make_processor(db + "?lease=1", max_workers=1)
    processor.register_processor("block", blocked)
    processor.register_processor("share.job", share_job(None))
    await processor.start()
    await processor.submit_task(ProcessingTask("block", {}, id="b0"))
    first = ProcessingTask("share.job", {"n": 1, "when": b"\x00\x01"}, id="t00001")
    second = ProcessingTask("share.job", {"n": 2}, id="t00002", depends_on=["t00001"])
    await processor.submit_tasks([first, second])
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch("SELECT id, grp FROM ap_tasks ORDER BY seq")
        assert [tuple(r) for r in rows] == [
            ("b0", "b0"),
            ("t00001", "t00001"),
            ("t00002", "t00001"),
        ]
        with pytest.raises(UnstorableTaskError):
            await processor.submit_task(ProcessingTask("share.job", {"f": print}))
        # the one worker is blocked: shutdown leaves the three unfinished in the store
        await processor.shutdown(timeout=0.1)
        assert await conn.fetchval("SELECT count(*) FROM ap_tasks WHERE ended_at IS NULL") == 3
        assert await conn.fetchval("SELECT count(*) FROM ap_groups") == 2  # b0, t00001
    finally:
        await conn.close()
    again = make_processor(db + "?lease=1")
    again.register_processor("share.job", share_job(None))
    again.register_processor("block", blocked)
    await again.start()  # released groups are claimed at once
    try:
        assert "b0" in again.task_manager.records
        result = await again.wait_for_task("t00002", timeout=10)
        assert result is not None and result.result == 4
        assert (await again.get_task_result("t00001")).result == 2  # type: ignore[union-attr]
    finally:
        await again.shutdown(timeout=0.1)


async def test_idempotency_keys_across_restart(db: str) -> None:
    processor = make_processor(db)
    processor.register_processor("share.job", share_job(None))
    await processor.start()
    first = await processor.submit_task(ProcessingTask("share.job", {"n": 1}), idempotency_key="k")
    again = await processor.submit_task(ProcessingTask("share.job", {"n": 2}), idempotency_key="k")
    assert again == first
    await processor.wait_for_task(first)
    await processor.shutdown()
    restarted = make_processor(db)
    restarted.register_processor("share.job", share_job(None))
    await restarted.start()
    try:
        third = await restarted.submit_task(
            ProcessingTask("share.job", {"n": 3}), idempotency_key="k"
        )
        assert third == first
        assert len(restarted.task_manager.records) == 0
    finally:
        await restarted.shutdown()


def test_kill_9_loses_nothing(db: str, tmp_path: Path) -> None:
    count, seed = 5000, 7
    log = tmp_path / "accepted.log"
    url = db + "?owner=crash-worker"
    command = [sys.executable, str(WORKER), "crash", url, str(log), str(count), str(seed)]
    rng = random.Random(seed)
    killed = 0
    for _ in range(2):
        worker = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 0.9))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            killed += 1
        worker.wait()
    assert killed, "no kill landed while the worker ran"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert logged(str(log)) == count
    asyncio.run(check_every_task(url, count, seed))


async def check_every_task(url: str, count: int, seed: int) -> None:
    processor = make_processor(url)
    await processor.start()
    try:
        assert not processor.task_manager.records
        statuses = {t.id: s for t, s in zip(plan(count, seed), _statuses(count, seed), strict=True)}
        for task_id, status in statuses.items():
            assert await processor.get_task_status(task_id) is status, task_id
            result = await processor.get_task_result(task_id)
            assert result is not None
            if status is TaskStatus.COMPLETED:
                assert result.result == int(task_id[1:]) * 2
    finally:
        await processor.shutdown()


def _statuses(count: int, seed: int) -> list[TaskStatus]:
    import test_stores_crash

    saved = test_stores_crash.COUNT
    test_stores_crash.COUNT = count
    try:
        return list(expected_statuses(seed).values())
    finally:
        test_stores_crash.COUNT = saved


async def leave_tasks(url: str, count: int) -> list[str]:
    """Submit ``count`` share.job tasks (every third depends on the one before) from a
    processor that runs none of them, and shut it down: they wait in the store, released."""
    processor = make_processor(url, max_workers=1)
    processor.register_processor("share.job", blocked)
    await processor.start()
    tasks = [
        ProcessingTask(
            "share.job",
            {"n": i},
            id=f"t{i:05d}",
            depends_on=[f"t{i - 1:05d}"] if i % 3 != 1 else [],
        )
        for i in range(1, count + 1)
    ]
    await processor.submit_tasks(tasks)
    await processor.shutdown(timeout=0.05)
    return [task.id for task in tasks]


def start_sharers(url: str, logs: list[Path]) -> list[subprocess.Popen[bytes]]:
    """One processor per log, each with the log's name as its owner id."""
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), "share", f"{url}&owner={log.stem}", str(log)]
        )
        for log in logs
    ]


def ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def test_two_processors_share_one_queue(db: str, tmp_path: Path) -> None:
    url = db + "?lease=1&claim=3"
    ids = await leave_tasks(url, 90)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = start_sharers(url, logs)
    for worker in workers:
        assert await asyncio.to_thread(worker.wait, 60) == 0
    a, b = ran(logs[0]), ran(logs[1])
    assert a and b, "one processor ran every task"
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert not set(a) & set(b)  # no task ran twice
    assert set(a) | set(b) == set(ids)
    await check_completed(url, ids)


async def test_killed_processor_tasks_reclaimed(db: str, tmp_path: Path) -> None:
    url = db + "?lease=1&claim=6"
    ids = await leave_tasks(url, 90)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    victim, survivor = start_sharers(url, logs)
    for _ in range(200):
        if len(ran(logs[0])) >= 3:
            break
        await asyncio.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    await asyncio.to_thread(victim.wait)
    conn = await asyncpg.connect(db)
    try:  # the victim held unfinished tasks when it died
        held = await conn.fetchval(
            "SELECT count(*) FROM ap_tasks t JOIN ap_groups g USING (grp) "
            "WHERE g.owner = 'a' AND t.ended_at IS NULL"
        )
    finally:
        await conn.close()
    assert held > 0
    assert await asyncio.to_thread(survivor.wait, 60) == 0
    assert set(ran(logs[0])) | set(ran(logs[1])) == set(ids)
    await check_completed(url, ids)


async def check_completed(url: str, ids: list[str]) -> None:
    processor = make_processor(url)
    await processor.start()
    try:
        assert not processor.task_manager.records
        for task_id in ids:
            result = await processor.get_task_result(task_id)
            assert result is not None and result.status is TaskStatus.COMPLETED, task_id
            assert result.result == int(task_id[1:]) * 2
    finally:
        await processor.shutdown()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h/db?lease=0", "lease must be a number of seconds above 0"),
        ("postgresql://u@h/db?lease=soon", "lease must be a number of seconds above 0"),
        ("postgresql://u@h/db?claim=1.5", "claim must be a whole number above 0"),
        ("postgresql://u@h/db?owner=", "owner must not be empty"),
        ("postgresql://u@h/db?colour=red", "unknown option.s. colour"),
        ("postgresql://u:secret@h:port/db", "not a valid URL"),
        ("postgres:/nowhere", "store must be"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        AdvancedAsyncProcessor(store=url)
    assert "secret" not in str(caught.value)


async def start_fails(url: str) -> StoreError:
    processor = AdvancedAsyncProcessor(store=url, max_process_workers=0)
    with pytest.raises(StoreError) as caught:
        await processor.start()
    await processor.shutdown()
    return caught.value


async def test_unreachable_server() -> None:
    error = await start_fails(f"postgresql://postgres@127.0.0.1:{closed_port()}/x?timeout=2")
    assert "cannot be reached" in str(error)


async def test_wrong_credentials_and_missing_database(postgres_url: str) -> None:
    base = postgres_url.rsplit("/", 1)[0]
    host = base.split("@", 1)[1]
    error = await start_fails(f"postgresql://nobody:secret@{host}/postgres")
    assert "refused the credentials" in str(error) and "secret" not in str(error)
    error = await start_fails(f"{base}/no_such_database")
    assert "create the database first" in str(error)


async def test_another_applications_tables(db: str) -> None:
    conn = await asyncpg.connect(db)
    await conn.execute("CREATE TABLE ap_tasks (x int)")
    await conn.close()
    error = await start_fails(db)
    assert isinstance(error, StoreCorruptError)
    assert "not a task store" in str(error)


async def test_claimed_task_of_unknown_type_given_back(
    db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = db + "?lease=0.6"
    bare = make_processor(url)  # no share.job processor
    await bare.start()
    try:
        ids = await leave_tasks(url, 3)
        for _ in range(50):
            if "giving their groups back" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "giving their groups back" in caplog.text
        assert not bare.task_manager.records
        with pytest.raises(UnknownTaskTypeError, match="cannot recover task t00001"):
            await make_processor(url).start()  # at start() it is an error, as with SQLite
        workers = start_sharers(url, [tmp_path / "c.log"])
        assert await asyncio.to_thread(workers[0].wait, 30) == 0
        await check_completed(url, ids)
    finally:
        await bare.shutdown()


async def test_health_reports_a_database_it_cannot_reach_then_recovers(db: str) -> None:
    processor = make_processor(db)
    await processor.start()
    name = db.rsplit("/", 1)[1]
    admin = await asyncpg.connect(db.rsplit("/", 1)[0] + "/postgres")
    try:
        assert (await processor.health_check())["reasons"] == []
        # the database refuses sessions and the store's is ended, as in an outage
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        health = await processor.health_check()
        assert (health["status"], health["reason"]) == ("unhealthy", "store_unavailable")
        assert "health check" in health["metrics"]["health"]["details"]["store_unavailable"]
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert (await processor.health_check())["reasons"] == []  # it connected again
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.close()
        await processor.shutdown()
