"""Finding 1 of the hardening issue: what a DATABASE_OPERATION statement may do.

In process a caller may still send raw SQL, but SQLite runs it under an authorizer and
length limits, every engine caps the result it keeps, DDL needs ``database_allow_ddl``, and
a configured statement (``{"statement": name, "params": {...}}``) runs by name. Over HTTP
only configured statements run (the service refuses ``query``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "processors"))
from servers import ServiceUnavailable, postgres_cluster

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidArgumentError,
    ProcessingType,
    Settings,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)

pytest.importorskip("aiosqlite")

SRC = Path(__file__).parents[2] / "src"


def sqlite_settings(tmp_path: Path, **more: Any) -> Settings:
    return Settings(databases={"main": f"sqlite:///{tmp_path}/main.sqlite3"}, **more)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AdvancedAsyncProcessor]:
    processor = await create_processor(max_process_workers=0, settings=settings)
    try:
        yield processor
    finally:
        await processor.shutdown()


@pytest.fixture
async def processor(tmp_path: Path) -> AsyncIterator[AdvancedAsyncProcessor]:
    async with running(sqlite_settings(tmp_path)) as processor:
        yield processor


async def run(processor: AdvancedAsyncProcessor, payload: dict[str, Any]) -> TaskResult:
    task = create_task(ProcessingType.DATABASE_OPERATION, {"database": "main", **payload})
    return await processor.wait_for_task(await processor.submit_task(task), timeout=60)


async def ok(processor: AdvancedAsyncProcessor, payload: dict[str, Any]) -> dict[str, Any]:
    result = await run(processor, payload)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert isinstance(result.result, dict)
    return result.result


async def refused(processor: AdvancedAsyncProcessor, payload: dict[str, Any], why: str) -> str:
    result = await run(processor, payload)
    assert result.status is TaskStatus.FAILED, result
    assert result.error is not None and why in result.error, result.error
    assert result.error.startswith("InvalidInputError: "), result.error
    return result.error


# --- SQLite: the authorizer -----------------------------------------------------------------

FTS3_ATTACK = """
import asyncio, json, sys
from async_processor import Settings, ProcessingType, create_processor, create_task

async def main():
    settings = Settings(databases={"main": sys.argv[1]})
    processor = await create_processor(max_process_workers=0, settings=settings)
    outcomes = []
    for query in (
        "SELECT fts3_tokenizer('evil', x'4041414141414141')",
        "CREATE VIRTUAL TABLE boom USING fts3(content, tokenize=evil)",
        "INSERT INTO boom VALUES ('hello')",
    ):
        task = create_task(ProcessingType.DATABASE_OPERATION, {"database": "main", "query": query})
        result = await processor.wait_for_task(await processor.submit_task(task), timeout=60)
        outcomes.append([result.status.value, result.error])
    await processor.shutdown()
    print(json.dumps(outcomes))

asyncio.run(main())
"""


def test_the_fts3_tokenizer_pointer_attack_no_longer_crashes(tmp_path: Path) -> None:
    """Registering a tokenizer at a forged address used to segfault the whole process."""
    child = subprocess.run(
        [sys.executable, "-c", FTS3_ATTACK, f"sqlite:///{tmp_path}/attack.sqlite3"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert child.returncode == 0, f"the process died ({child.returncode}): {child.stderr[-2000:]}"
    outcomes = json.loads(child.stdout.splitlines()[-1])
    assert outcomes[0][0] == "failed" and "fts3_tokenizer" in outcomes[0][1], outcomes
    assert all(status == "failed" for status, _ in outcomes), outcomes


async def test_fts3_tokenizer_cannot_leak_a_library_pointer(
    processor: AdvancedAsyncProcessor,
) -> None:
    error = await refused(processor, {"query": "SELECT fts3_tokenizer('simple')"}, "fts3_tokenizer")
    assert "refused" in error


async def test_load_extension_is_refused(processor: AdvancedAsyncProcessor) -> None:
    await refused(processor, {"query": "SELECT load_extension('/tmp/evil.so')"}, "load_extension")


async def test_a_writing_pragma_cannot_poison_the_shared_connection(
    processor: AdvancedAsyncProcessor, tmp_path: Path
) -> None:
    settings = sqlite_settings(tmp_path, database_allow_ddl=True)
    async with running(settings) as ddl:
        await ok(ddl, {"query": "CREATE TABLE toys (name TEXT)"})
    error = await refused(processor, {"query": "PRAGMA query_only=ON"}, "PRAGMA query_only")
    assert "every task shares" in error
    await refused(processor, {"query": "PRAGMA writable_schema=1"}, "PRAGMA writable_schema")
    await refused(processor, {"query": "PRAGMA foreign_keys=OFF"}, "PRAGMA foreign_keys")
    inserted = await ok(processor, {"query": "INSERT INTO toys VALUES ('bear')"})
    assert inserted["rowcount"] == 1
    checked = await ok(processor, {"query": "PRAGMA foreign_keys"})
    assert checked["rows"] == [{"foreign_keys": 1}]


async def test_read_only_pragmas_still_answer(processor: AdvancedAsyncProcessor) -> None:
    await ok(processor, {"query": "SELECT 1"})
    version = await ok(processor, {"query": "PRAGMA user_version"})
    assert version["rows"] == [{"user_version": 0}]
    await ok(processor, {"query": "PRAGMA table_info(sqlite_master)"})


async def test_ddl_needs_database_allow_ddl(processor: AdvancedAsyncProcessor) -> None:
    error = await refused(
        processor, {"query": "CREATE TABLE t (a INTEGER)"}, "CREATE TABLE is refused"
    )
    assert "database_allow_ddl" in error


async def test_drop_table_is_refused_by_default(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, database_allow_ddl=True)
    async with running(settings) as ddl:
        await ok(ddl, {"query": "CREATE TABLE toys (name TEXT)"})
    async with running(sqlite_settings(tmp_path)) as p:
        await refused(p, {"query": "DROP TABLE toys"}, "DROP TABLE is refused")
        await refused(p, {"query": "ALTER TABLE toys ADD COLUMN b"}, "ALTER TABLE is refused")
        await refused(p, {"query": "CREATE INDEX i ON toys (name)"}, "CREATE INDEX is refused")
        assert (await ok(p, {"query": "SELECT count(*) AS n FROM toys"}))["rows"] == [{"n": 0}]


async def test_temporary_objects_are_refused_even_with_ddl(tmp_path: Path) -> None:
    """A TEMP view would shadow a real table for every task sharing the connection."""
    settings = sqlite_settings(tmp_path, database_allow_ddl=True)
    async with running(settings) as ddl:
        await refused(ddl, {"query": "CREATE TEMP VIEW v AS SELECT 1"}, "CREATE TEMP VIEW")
        await refused(ddl, {"query": "CREATE TEMP TABLE t (a)"}, "CREATE TEMP TABLE")


async def test_attach_and_vacuum_stay_refused(processor: AdvancedAsyncProcessor) -> None:
    await refused(processor, {"query": "VACUUM INTO '/tmp/copy.sqlite3'"}, "configured database")


# --- SQLite: lengths and the result cap -----------------------------------------------------


async def test_a_huge_zeroblob_is_refused(processor: AdvancedAsyncProcessor) -> None:
    error = await refused(processor, {"query": "SELECT zeroblob(100000000)"}, "too big")
    assert "max_result_bytes" in error


async def test_a_huge_string_is_refused(processor: AdvancedAsyncProcessor) -> None:
    await refused(processor, {"query": "SELECT hex(zeroblob(6000000))"}, "too big")


async def test_the_result_is_capped_while_fetching(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, max_result_bytes=10_000)
    query = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT ?) "
        "SELECT i, printf('%.100c', 'x') AS filler FROM r"
    )
    async with running(settings) as p:
        small = await ok(p, {"query": query, "params": [10]})
        assert len(small["rows"]) == 10
        error = await refused(p, {"query": query, "params": [1_000_000]}, "max_result_bytes")
        assert "10000 bytes" in error


async def test_a_capped_insert_returning_changes_nothing(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, max_result_bytes=1_000, database_allow_ddl=True)
    async with running(settings) as p:
        await ok(p, {"query": "CREATE TABLE notes (body TEXT)"})
        await refused(
            p,
            {
                "query": "INSERT INTO notes SELECT printf('%.200c', 'n') FROM "
                "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 50) "
                "SELECT i FROM r) RETURNING body"
            },
            "max_result_bytes",
        )
        assert (await ok(p, {"query": "SELECT count(*) AS n FROM notes"}))["rows"] == [{"n": 0}]


# --- configured statements -------------------------------------------------------------------

STATEMENTS = {
    "create_toys": "CREATE TABLE IF NOT EXISTS toys (name TEXT, price REAL)",
    "add_toy": "INSERT INTO toys (name, price) VALUES (:name, :price)",
    "cheaper_than": "SELECT name FROM toys WHERE price < :price AND name <> ':price' ORDER BY name",
}


async def test_a_configured_statement_runs_by_name(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, database_statements=STATEMENTS)
    async with running(settings) as p:
        await ok(p, {"statement": "create_toys"})  # configured DDL runs without the switch
        await ok(p, {"statement": "add_toy", "params": {"name": "bear", "price": 9.5}})
        many = [{"name": "ball", "price": 2}, {"name": "kite", "price": 4}]
        assert (await ok(p, {"statement": "add_toy", "many": many}))["rowcount"] == 2
        rows = await ok(p, {"statement": "cheaper_than", "params": {"price": 5}})
        assert rows["rows"] == [{"name": "ball"}, {"name": "kite"}]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"statement": "drop_all"}, "unknown statement 'drop_all'; configured statements: "),
        ({"statement": "add_toy", "params": {"name": "bear"}}, "needs params: price"),
        (
            {"statement": "add_toy", "params": {"name": "b", "price": 1, "colour": "red"}},
            "does not take: colour",
        ),
        ({"statement": "add_toy", "params": ["bear", 1]}, "a dict of named values"),
        ({"statement": "add_toy", "query": "SELECT 1"}, "not both"),
        ({"statement": 3}, "the name of a configured statement"),
    ],
)
async def test_bad_statement_payloads_fail_clearly(
    tmp_path: Path, payload: dict[str, Any], error: str
) -> None:
    settings = sqlite_settings(tmp_path, database_statements=STATEMENTS)
    async with running(settings) as p:
        await refused(p, payload, error)


def test_configured_statements_are_checked_at_construction() -> None:
    with pytest.raises(InvalidArgumentError, match="database_statements"):
        Settings(database_statements={"": "SELECT 1"})
    with pytest.raises(InvalidArgumentError, match="database_statements"):
        Settings(database_statements={"empty": "  "})
    with pytest.raises(InvalidArgumentError, match="max_result_bytes"):
        Settings(max_result_bytes=0)


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("asyncpg")
    try:
        with postgres_cluster() as url:
            yield url
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def table() -> str:
    return f"sec_{uuid.uuid4().hex[:12]}"


async def test_postgres_ddl_and_copy_are_refused(postgres_url: str, table: str) -> None:
    settings = Settings(databases={"main": postgres_url})
    async with running(settings) as p:
        await refused(p, {"query": f"CREATE TABLE {table} (a int)"}, "CREATE is refused")
        await refused(p, {"query": f"DROP TABLE IF EXISTS {table}"}, "DROP is refused")
        await refused(p, {"query": "DO $$ BEGIN END $$"}, "DO is refused")
        await refused(p, {"query": "COPY (SELECT 1) TO PROGRAM 'true'"}, "COPY is refused")


async def test_postgres_result_is_capped_and_statements_convert(
    postgres_url: str, table: str
) -> None:
    statements = {
        "make": f"CREATE TABLE {table} (name text, price numeric)",
        "add": f"INSERT INTO {table} VALUES (:name, :price::text::numeric)",
        "cheap": f"SELECT name FROM {table} WHERE price < :price AND name <> ':price'",
        "drop": f"DROP TABLE {table}",
    }
    settings = Settings(
        databases={"main": postgres_url}, database_statements=statements, max_result_bytes=2_000
    )
    async with running(settings) as p:
        await ok(p, {"statement": "make"})
        try:
            await ok(p, {"statement": "add", "params": {"name": "bear", "price": "9.5"}})
            rows = await ok(p, {"statement": "cheap", "params": {"price": 10}})
            assert rows["rows"] == [{"name": "bear"}]
            big = "SELECT repeat('x', 100) AS filler FROM generate_series(1, $1)"
            assert len((await ok(p, {"query": big, "params": [5]}))["rows"]) == 5
            await refused(p, {"query": big, "params": [100_000]}, "max_result_bytes")
        finally:
            await ok(p, {"statement": "drop"})


def test_postgres_named_parameters_become_positional() -> None:
    from async_processor.processors import sql_text

    sql = "SELECT :a::int, ':a', $$ :b $$, :b -- :c\n, :a /* :d */"
    names, converted = sql_text.to_positional(sql)
    assert names == ["a", "b"]
    assert converted == "SELECT $1::int, ':a', $$ :b $$, $2 -- :c\n, $1 /* :d */"
