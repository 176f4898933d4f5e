"""DATABASE_OPERATION on real SQLite files and a real PostgreSQL server, through the
processor: rows as dicts, parameters, many, concurrency, timeouts, and every bad input
failing its task with a clear error while the processor goes on."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import ServiceUnavailable, closed_port, postgres_cluster

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingTask,
    ProcessingType,
    Settings,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import database_operation

pytest.importorskip("aiosqlite")

SLOW_SQLITE = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("asyncpg")
    try:
        with postgres_cluster() as url:
            yield url
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


def sqlite_settings(tmp_path: Path, **more: Any) -> Settings:
    """The tests create and drop their tables, so DDL is allowed (tests/security has more)."""
    return Settings(
        databases={"main": f"sqlite:///{tmp_path}/db/main.sqlite3"}, database_allow_ddl=True, **more
    )


@pytest.fixture
async def processor(tmp_path: Path) -> AsyncIterator[AdvancedAsyncProcessor]:
    processor = await create_processor(max_process_workers=0, settings=sqlite_settings(tmp_path))
    yield processor
    await processor.shutdown()


async def run(
    processor: AdvancedAsyncProcessor, payload: dict[str, Any], **fields: Any
) -> TaskResult:
    task = create_task(ProcessingType.DATABASE_OPERATION, payload, **fields)
    return await processor.wait_for_task(await processor.submit_task(task), timeout=60)


async def ok(processor: AdvancedAsyncProcessor, payload: dict[str, Any]) -> dict[str, Any]:
    result = await run(processor, payload)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert isinstance(result.result, dict)
    return result.result


async def failed(
    processor: AdvancedAsyncProcessor, payload: dict[str, Any], error: str, **fields: Any
) -> TaskResult:
    """The task fails with ``error`` in its message, and the processor still runs the next."""
    result = await run(processor, payload, **fields)
    assert result.status is TaskStatus.FAILED, result
    assert result.error is not None and error in result.error, result.error
    alive = await ok(processor, {"database": "main", "query": "SELECT 1 AS one"})
    assert alive["rows"] == [{"one": 1}]
    return result


# --- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_rows_params_and_rowcount(processor: AdvancedAsyncProcessor) -> None:
    main = {"database": "main"}
    created = await ok(
        processor,
        {
            **main,
            "query": "CREATE TABLE toys (id INTEGER PRIMARY KEY, name TEXT, "
            "price REAL, photo BLOB)",
        },
    )
    assert created["rows"] == [] and created["rowcount"] == 0 and created["engine"] == "sqlite"
    inserted = await ok(
        processor,
        {
            **main,
            "query": "INSERT INTO toys (name, price, photo) VALUES (?, ?, ?)",
            "params": ["teddy; DROP TABLE toys", 9.5, None],
        },
    )
    assert inserted["rowcount"] == 1
    named = await ok(
        processor,
        {
            **main,
            "query": "INSERT INTO toys (name, price) VALUES (:name, :price), (:other, :price)",
            "params": {"name": "ball", "price": 2, "other": "kite"},
        },
    )
    assert named["rowcount"] == 2
    selected = await ok(
        processor,
        {
            **main,
            "query": "SELECT id, name, price FROM toys WHERE price < ? ORDER BY id",
            "params": [100],
        },
    )
    assert selected["columns"] == ["id", "name", "price"]
    assert selected["rows"] == [
        {"id": 1, "name": "teddy; DROP TABLE toys", "price": 9.5},
        {"id": 2, "name": "ball", "price": 2.0},
        {"id": 3, "name": "kite", "price": 2.0},
    ]
    assert selected["rowcount"] == 3 and selected["database"] == "main"
    updated = await ok(
        processor,
        {
            **main,
            "query": "UPDATE toys SET price = price + 1 WHERE price = ?",
            "params": [2],
        },
    )
    assert updated["rowcount"] == 2
    returning = await ok(
        processor,
        {
            **main,
            "query": "DELETE FROM toys WHERE name = ? RETURNING id, name;",
            "params": ["kite"],
        },
    )
    assert returning["rows"] == [{"id": 3, "name": "kite"}] and returning["rowcount"] == 1


async def test_sqlite_values_are_json_types(processor: AdvancedAsyncProcessor) -> None:
    result = await ok(
        processor,
        {
            "database": "main",
            "query": "SELECT x'00ff10' AS photo, 1 AS n, 2 AS n, NULL AS empty, "
            "'a;b' AS text -- a comment; with a semicolon\n;",
        },
    )
    assert result["columns"] == ["photo", "n", "n_2", "empty", "text"]
    assert result["rows"] == [{"photo": "AP8Q", "n": 1, "n_2": 2, "empty": None, "text": "a;b"}]


async def test_sqlite_many_is_all_or_nothing(processor: AdvancedAsyncProcessor) -> None:
    main = {"database": "main"}
    await ok(processor, {**main, "query": "CREATE TABLE kids (name TEXT UNIQUE, age INT)"})
    inserted = await ok(
        processor,
        {
            **main,
            "query": "INSERT INTO kids VALUES (?, ?)",
            "many": [["Ada", 5], ["Bo", 6], ["Cy", 4]],
        },
    )
    assert inserted["rowcount"] == 3 and inserted["rows"] == []
    await failed(
        processor,
        {
            **main,
            "query": "INSERT INTO kids VALUES (:name, :age)",
            "many": [{"name": "Di", "age": 7}, {"name": "Ada", "age": 5}],
        },
        "UNIQUE constraint failed: kids.name",
    )
    names = await ok(processor, {**main, "query": "SELECT name FROM kids ORDER BY name"})
    assert [row["name"] for row in names["rows"]] == ["Ada", "Bo", "Cy"]  # no "Di"


async def test_sqlite_twenty_concurrent_tasks(processor: AdvancedAsyncProcessor) -> None:
    main = {"database": "main"}
    await ok(processor, {**main, "query": "CREATE TABLE turns (n INTEGER, said TEXT)"})
    writes = [
        create_task(
            ProcessingType.DATABASE_OPERATION,
            {**main, "query": "INSERT INTO turns VALUES (?, ?)", "params": [n, f"turn {n}"]},
        )
        for n in range(20)
    ]
    reads = [
        create_task(ProcessingType.DATABASE_OPERATION, {**main, "query": "SELECT * FROM turns"})
        for _ in range(5)
    ]
    await processor.submit_tasks([*writes, *reads])
    results = [await processor.wait_for_task(task.id, timeout=30) for task in writes + reads]
    assert all(r.status is TaskStatus.COMPLETED for r in results), [r.error for r in results]
    assert all(r.result["rowcount"] == 1 for r in results[:20])
    total = await ok(processor, {**main, "query": "SELECT count(*) AS c, sum(n) AS s FROM turns"})
    assert total["rows"] == [{"c": 20, "s": sum(range(20))}]


async def test_default_database_is_created_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = Settings()
    task = ProcessingTask(ProcessingType.DATABASE_OPERATION, {"query": "PRAGMA journal_mode"})
    result = await database_operation.process(task, settings)
    assert result["rows"] == [{"journal_mode": "wal"}]
    assert (tmp_path / "xdg" / "async-processor" / "default.sqlite3").is_file()
    await database_operation.aclose()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"query": "SELECT 1"}, "unknown database 'default'; configured databases: 'main'"),
        ({"database": "nope", "query": "SELECT 1"}, "unknown database 'nope'"),
        ({"database": "main"}, "payload['query'] must be one SQL statement as a string"),
        ({"database": "main", "query": 42}, "got int"),
        ({"database": "main", "query": "  -- nothing\n ; "}, "payload['query'] is empty"),
        ({"database": "main", "query": "SELECT ?", "params": "1"}, "must be a list"),
        ({"database": "main", "query": "SELECT ?", "params": 1}, "must be a list"),
        ({"database": "main", "query": "SELECT 1; DROP TABLE t"}, "holds 2 statements"),
        ({"database": "main", "query": "SELECT ';'; SELECT 2"}, "holds 2 statements"),
        ({"database": "main", "query": "BEGIN"}, "BEGIN is refused"),
        ({"database": "main", "query": "ATTACH '/tmp/x.db' AS x"}, "ATTACH is refused"),
        ({"database": "main", "query": "VACUUM INTO '/tmp/copy.db'"}, "configured database"),
        ({"database": "main", "query": "SELEC 1"}, 'near "SELEC": syntax error'),
        ({"database": "main", "query": "SELECT * FROM missing"}, "no such table: missing"),
        ({"database": "main", "query": "SELECT ?, ?", "params": [1]}, "Incorrect number"),
        ({"database": "main", "query": "SELECT ?", "params": [[1, 2]]}, "binding parameter"),
        ({"database": "main", "query": "SELECT 1", "params": [], "many": [[]]}, "not both"),
        ({"database": "main", "query": "SELECT 1", "many": []}, "non-empty list"),
    ],
)
async def test_bad_sqlite_payloads_fail_clearly(
    processor: AdvancedAsyncProcessor, payload: dict[str, Any], error: str
) -> None:
    result = await failed(processor, payload, error)
    assert result.error is not None and result.error.startswith("InvalidInputError: ")
    assert result.attempts == 1


async def test_unusable_sqlite_files_are_not_retried(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "garbage.sqlite3").write_bytes(b"this is not a database file, " * 100)
    settings = Settings(
        databases={
            "main": f"sqlite:///{tmp_path}/main.sqlite3",
            "under_a_file": f"sqlite:///{tmp_path}/a-file/db.sqlite3",
            "garbage": f"sqlite:///{tmp_path}/garbage.sqlite3",
        }
    )
    processor = await create_processor(max_process_workers=0, settings=settings)
    try:
        for name, error in (
            ("under_a_file", "cannot open the SQLite file"),
            ("garbage", "is not a usable SQLite database: file is not a database"),
        ):
            result = await failed(
                processor, {"database": name, "query": "SELECT 1"}, error, max_retries=2
            )
            assert result.error is not None
            assert result.error.startswith(f"ProviderRequestError: database {name!r}: ")
            assert result.attempts == 1
    finally:
        await processor.shutdown()


async def test_sqlite_constraint_violation(processor: AdvancedAsyncProcessor) -> None:
    main = {"database": "main"}
    await ok(processor, {**main, "query": "CREATE TABLE t (id INTEGER PRIMARY KEY)"})
    await ok(processor, {**main, "query": "INSERT INTO t VALUES (?)", "params": [1]})
    await failed(
        processor,
        {**main, "query": "INSERT INTO t VALUES (?)", "params": [1]},
        "InvalidInputError: database 'main': UNIQUE constraint failed: t.id",
        max_retries=2,
    )


async def test_sqlite_statement_timeout_interrupts(tmp_path: Path) -> None:
    processor = await create_processor(
        max_process_workers=0, settings=sqlite_settings(tmp_path, statement_timeout=0.2)
    )
    try:
        started = time.perf_counter()
        result = await failed(
            processor, {"database": "main", "query": SLOW_SQLITE}, "ProviderError: "
        )
        assert "Settings.statement_timeout (0.2 s)" in (result.error or "")
        assert time.perf_counter() - started < 5
    finally:
        await processor.shutdown()


async def test_a_task_timeout_frees_the_connection(processor: AdvancedAsyncProcessor) -> None:
    """The task times out long before the statement timeout; the statement is interrupted,
    so the next task does not wait behind it."""
    result = await run(processor, {"database": "main", "query": SLOW_SQLITE}, timeout=0.2)
    assert result.status is TaskStatus.TIMEOUT
    started = time.perf_counter()
    await ok(processor, {"database": "main", "query": "SELECT 1"})
    assert time.perf_counter() - started < 1.0


def test_connections_close_when_the_loop_ends(tmp_path: Path) -> None:
    def workers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}

    async def use() -> set[threading.Thread]:
        before = workers()
        task = ProcessingTask(
            ProcessingType.DATABASE_OPERATION, {"database": "main", "query": "SELECT 1"}
        )
        await database_operation.process(task, sqlite_settings(tmp_path))
        return workers() - before

    opened = asyncio.run(use())
    assert len(opened) == 1
    thread = opened.pop()
    thread.join(timeout=5)
    assert not thread.is_alive()


async def test_sqlite_latency(processor: AdvancedAsyncProcessor) -> None:
    """Insert and select through the processor; prints the medians for the docs."""
    main = {"database": "main"}
    await ok(processor, {**main, "query": "CREATE TABLE log (n INTEGER, at REAL)"})
    timings: dict[str, list[float]] = {"insert": [], "select": []}
    for n in range(50):
        for kind, payload in (
            ("insert", {**main, "query": "INSERT INTO log VALUES (?, ?)", "params": [n, 0.5]}),
            ("select", {**main, "query": "SELECT * FROM log WHERE n = ?", "params": [n]}),
        ):
            started = time.perf_counter()
            await ok(processor, payload)
            timings[kind].append(time.perf_counter() - started)
    medians = {kind: round(statistics.median(values) * 1000, 2) for kind, values in timings.items()}
    started = time.perf_counter()
    inserted = await ok(
        processor,
        {
            **main,
            "query": "INSERT INTO log VALUES (?, ?)",
            "many": [[n, 1.0] for n in range(10_000)],
        },
    )
    many_s = time.perf_counter() - started
    print(f"\nSQLite via the processor, median ms: {medians}; 10,000-row many: {many_s:.3f} s")
    assert inserted["rowcount"] == 10_000
    assert medians["insert"] < 50 and medians["select"] < 50 and many_s < 5


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[AdvancedAsyncProcessor]:
    settings = Settings(
        databases={
            "main": postgres_url,
            "refused": f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres",
            "missing": postgres_url.rsplit("/", 1)[0] + "/no_such_database",
        },
        statement_timeout=0.5,
        database_allow_ddl=True,
    )
    processor = await create_processor(max_process_workers=0, settings=settings)
    yield processor
    await processor.shutdown()


async def test_postgres_rows_params_and_types(pg: AdvancedAsyncProcessor) -> None:
    main = {"database": "main"}
    await ok(pg, {**main, "query": "DROP TABLE IF EXISTS toys"})
    await ok(
        pg,
        {
            **main,
            "query": "CREATE TABLE toys (id serial PRIMARY KEY, name text UNIQUE, "
            "price numeric(6, 2), info jsonb, photo bytea, added timestamptz DEFAULT "
            "'2024-05-01T10:00:00Z')",
        },
    )
    inserted = await ok(
        pg,
        {
            **main,
            "query": "INSERT INTO toys (name, price, info, photo) VALUES ($1, $2::text::numeric, "
            "$3, $4::text::bytea), ($5, 2.50, NULL, NULL)",
            "params": ["teddy", "9.99", {"soft": True, "colours": ["brown"]}, "\\x00ff", "ball"],
        },
    )
    assert inserted["rowcount"] == 2 and inserted["engine"] == "postgresql"
    selected = await ok(
        pg,
        {
            **main,
            "query": "SELECT id, name, price, info, photo, added, ARRAY[1, 2] AS a, "
            "1 AS id FROM toys WHERE price > $1 ORDER BY toys.id",
            "params": [1],
        },
    )
    assert selected["columns"] == ["id", "name", "price", "info", "photo", "added", "a", "id_2"]
    assert selected["rows"] == [
        {
            "id": 1,
            "name": "teddy",
            "price": "9.99",
            "info": {"soft": True, "colours": ["brown"]},
            "photo": "AP8=",
            "added": "2024-05-01T10:00:00+00:00",
            "a": [1, 2],
            "id_2": 1,
        },
        {
            "id": 2,
            "name": "ball",
            "price": "2.50",
            "info": None,
            "photo": None,
            "added": "2024-05-01T10:00:00+00:00",
            "a": [1, 2],
            "id_2": 1,
        },
    ]
    assert selected["rowcount"] == 2
    updated = await ok(
        pg,
        {
            **main,
            "query": "UPDATE toys SET price = price * 2 WHERE name = ANY($1)",
            "params": [["teddy", "ball", "kite"]],
        },
    )
    assert updated["rowcount"] == 2
    quoted = await ok(pg, {**main, "query": "SELECT $$a;b$$ AS d, E'it\\'s;' AS e /* ; */ -- ;\n;"})
    assert quoted["rows"] == [{"d": "a;b", "e": "it's;"}]


async def test_postgres_many_is_all_or_nothing(pg: AdvancedAsyncProcessor) -> None:
    main = {"database": "main"}
    await ok(pg, {**main, "query": "DROP TABLE IF EXISTS kids"})
    await ok(pg, {**main, "query": "CREATE TABLE kids (name text PRIMARY KEY, age int)"})
    inserted = await ok(
        pg, {**main, "query": "INSERT INTO kids VALUES ($1, $2)", "many": [["Ada", 5], ["Bo", 6]]}
    )
    assert inserted["rowcount"] == 2
    await failed(
        pg,
        {**main, "query": "INSERT INTO kids VALUES ($1, $2)", "many": [["Cy", 4], ["Ada", 5]]},
        "UniqueViolationError",
    )
    names = await ok(pg, {**main, "query": "SELECT name FROM kids ORDER BY name"})
    assert names["rows"] == [{"name": "Ada"}, {"name": "Bo"}]


async def test_postgres_twenty_concurrent_tasks(pg: AdvancedAsyncProcessor) -> None:
    tasks = [
        create_task(
            ProcessingType.DATABASE_OPERATION,
            {
                "database": "main",
                "query": "SELECT $1::int * 2 AS twice, pg_sleep(0.05)",
                "params": [n],
            },
        )
        for n in range(20)
    ]
    started = time.perf_counter()
    await pg.submit_tasks(tasks)
    results = [await pg.wait_for_task(task.id, timeout=30) for task in tasks]
    assert [r.result["rows"][0]["twice"] for r in results] == [2 * n for n in range(20)]
    # 20 sleeps of 50 ms over a pool of 10 connections: about 0.1 s, not 1 s.
    assert time.perf_counter() - started < 0.8


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"database": "main", "query": "SELEC 1"}, "PostgresSyntaxError: syntax error at or near"),
        ({"database": "main", "query": "SELECT ?", "params": [1]}, "placeholders are $1, $2"),
        ({"database": "main", "query": "SELECT * FROM missing"}, 'relation "missing" does not'),
        ({"database": "main", "query": "SELECT $1::int", "params": ["x"]}, "invalid input for"),
        ({"database": "main", "query": "SELECT $1::int", "params": [1, 2]}, "expects 1 argument"),
        ({"database": "main", "query": "SELECT 1/0"}, "division by zero"),
        ({"database": "main", "query": "SELECT $1", "params": {"a": 1}}, "pass a list"),
        ({"database": "main", "query": "SELECT 1; SELECT 2"}, "holds 2 statements"),
        ({"database": "main", "query": "START TRANSACTION"}, "START is refused"),
        ({"database": "nope", "query": "SELECT 1"}, "configured databases: 'main', 'missing'"),
    ],
)
async def test_bad_postgres_payloads_fail_clearly(
    pg: AdvancedAsyncProcessor, payload: dict[str, Any], error: str
) -> None:
    result = await failed(pg, payload, error, max_retries=2)
    assert result.error is not None and result.error.startswith("InvalidInputError: ")
    assert result.attempts == 1


async def test_postgres_statement_timeout_is_retryable(pg: AdvancedAsyncProcessor) -> None:
    started = time.perf_counter()
    result = await failed(
        pg, {"database": "main", "query": "SELECT pg_sleep(10)"}, "ProviderError: ", max_retries=1
    )
    assert "statement timeout" in (result.error or "")
    assert result.attempts == 2
    assert time.perf_counter() - started < 5


async def test_postgres_connection_refused_is_retryable(pg: AdvancedAsyncProcessor) -> None:
    result = await failed(
        pg,
        {"database": "refused", "query": "SELECT 1"},
        "cannot connect to PostgreSQL at 127.0.0.1:",
        max_retries=1,
    )
    assert result.error is not None and result.error.startswith("ProviderError: ")
    assert result.attempts == 2


async def test_postgres_missing_database_is_not_retried(pg: AdvancedAsyncProcessor) -> None:
    result = await failed(
        pg, {"database": "missing", "query": "SELECT 1"}, "no_such_database", max_retries=2
    )
    assert result.error is not None and result.error.startswith("ProviderRequestError: ")
    assert result.attempts == 1


async def test_postgres_latency(pg: AdvancedAsyncProcessor) -> None:
    """A one-row select through the processor on a warm pool; prints the median for the docs."""
    timings = []
    for n in range(50):
        started = time.perf_counter()
        await ok(pg, {"database": "main", "query": "SELECT $1::int AS n", "params": [n]})
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings[1:]) * 1000
    await ok(pg, {"database": "main", "query": "DROP TABLE IF EXISTS log"})
    await ok(pg, {"database": "main", "query": "CREATE TABLE log (n int, at real)"})
    started = time.perf_counter()
    inserted = await ok(
        pg,
        {
            "database": "main",
            "query": "INSERT INTO log VALUES ($1, $2)",
            "many": [[n, 1.0] for n in range(2_000)],
        },
    )
    many_s = time.perf_counter() - started
    print(
        f"\nPostgreSQL via the processor, median ms: {median:.2f}; 2,000-row many: {many_s:.3f} s"
    )
    assert inserted["rowcount"] == 2_000
    assert median < 50 and many_s < 10
