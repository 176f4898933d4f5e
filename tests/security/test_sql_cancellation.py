"""Finding 8 of the hardening issue: a cancelled SQL statement logged "Task exception was
never retrieved" when its task was cancelled again while the statement was being stopped."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from pathlib import Path

import pytest

from async_processor import ProcessingTask, ProcessingType, ProviderError, Settings, create_task
from async_processor.processors import database_operation

pytest.importorskip("aiosqlite")


async def test_a_statement_cancelled_twice_leaves_no_unretrieved_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "busy.sqlite3"
    settings = Settings(
        databases={"main": f"sqlite:///{path}"}, statement_timeout=0.3, database_allow_ddl=True
    )

    def task(query: str) -> ProcessingTask:
        return create_task(ProcessingType.DATABASE_OPERATION, {"database": "main", "query": query})

    await database_operation.process(task("CREATE TABLE t (a INTEGER)"), settings)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the insert below waits on SQLite's busy timeout
    try:
        job = asyncio.ensure_future(
            database_operation.process(task("INSERT INTO t VALUES (1)"), settings)
        )
        await asyncio.sleep(0)  # the job now waits for its statement
        job.cancel()
        await asyncio.sleep(0)  # ... and now for the interrupted statement to stop
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        # the next statement queues behind the cancelled one on the connection's thread
        with pytest.raises(ProviderError):
            await database_operation.process(task("INSERT INTO t VALUES (2)"), settings)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await database_operation.aclose()
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text
