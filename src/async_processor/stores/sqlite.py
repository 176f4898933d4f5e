"""A durable task store in one SQLite file (stdlib ``sqlite3``, WAL mode).

One row per task: its encoded fields, status, attempts and, once it ended, its result.
``add`` commits before a submit returns; status changes and results are buffered and
written together once per event-loop iteration (a crash loses at most that iteration's
changes, and the tasks concerned run again: at-least-once). The file is opened with an
exclusive lock, so one processor at a time owns it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..lifecycle import TaskStatus
from .base import (
    Recovered,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
)
from .codec import decode_result, decode_task, encode_task
from .journal import JournalStore

if TYPE_CHECKING:
    from ..task import ProcessingTask

__all__ = ["SqliteStore"]

logger = logging.getLogger("async_processor.stores")

SCHEMA_VERSION = "1"
#: Ended rows past retention are deleted after this many results (and at open).
_PURGE_EVERY = 1000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ap_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ap_tasks ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " idempotency_key TEXT UNIQUE,"
    " status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " task BLOB NOT NULL,"
    " result BLOB,"
    " ended_at REAL)",
    "CREATE INDEX IF NOT EXISTS ap_tasks_ended ON ap_tasks (ended_at) WHERE ended_at IS NOT NULL",
)


class SqliteStore(JournalStore):
    """Tasks journalled in ``path``. ``synchronous``: ``"NORMAL"`` survives a crash of the
    process; ``"FULL"`` also a crash of the machine, at the cost of an fsync per commit.
    ``timeout``: seconds to wait for a lock before :class:`StoreLockedError`."""

    def __init__(self, path: str, synchronous: str = "NORMAL", timeout: float = 5.0) -> None:
        self.path = path
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("NORMAL", "FULL"):
            raise StoreError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        super().__init__()
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        #: The last flush failed; what it held is still buffered.
        self._write_failed = False
        self._ttl = 0.0
        self._max_results = 0
        self._since_purge = 0

    # -- opening -------------------------------------------------------------------------

    def open(
        self, loop: asyncio.AbstractEventLoop, result_ttl: float, max_results: int
    ) -> Recovered:
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise StoreError(
                f"cannot open the task store {self.path}: folder {folder} does not exist; "
                "create it first"
            )
        self._loop, self._ttl, self._max_results = loop, result_ttl, max_results
        try:
            conn = self._conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None
            )
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_and_create(conn)
                self._purge(conn)
                recovered = self._load(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._abandon()
            raise self._error(exc, "open") from exc
        except StoreError:
            self._abandon()
            raise
        return recovered

    def _abandon(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _check_and_create(self, conn: sqlite3.Connection) -> None:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StoreCorruptError(self._corrupt("; ".join(problems[:3])))
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if tables and "ap_meta" not in tables:
            raise StoreCorruptError(
                f"{self.path} is an SQLite database but not a task store (it has tables "
                f"{', '.join(sorted(tables)[:5])}); point store= at a new file"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM ap_meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO ap_meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise StoreCorruptError(
                f"the task store {self.path} has schema version {row[0]}, this version of "
                f"async_processor reads version {SCHEMA_VERSION}; use a matching version"
            )

    def _load(self, conn: sqlite3.Connection) -> Recovered:
        recovered = Recovered()
        try:
            for task_id, blob in conn.execute(
                "SELECT id, result FROM ap_tasks WHERE ended_at IS NOT NULL ORDER BY ended_at"
            ):
                recovered.results.append(decode_result(task_id, blob))
            for blob, status, attempts in conn.execute(
                "SELECT task, status, attempts FROM ap_tasks WHERE ended_at IS NULL ORDER BY seq"
            ):
                # a task that was running had started one more attempt than recorded
                started = 1 if status == TaskStatus.RUNNING.value else 0
                recovered.tasks.append((decode_task(blob), attempts + started))
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreCorruptError(self._corrupt(f"a row cannot be decoded: {exc}")) from exc
        return recovered

    def _purge(self, conn: sqlite3.Connection) -> None:
        """Delete ended rows past the result TTL or beyond max_results."""
        conn.execute(
            "DELETE FROM ap_tasks WHERE ended_at IS NOT NULL AND ended_at < ?",
            (time.time() - self._ttl,),
        )
        conn.execute(
            "DELETE FROM ap_tasks WHERE ended_at IS NOT NULL AND ended_at <= (SELECT ended_at "
            "FROM ap_tasks WHERE ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT 1 OFFSET ?)",
            (self._max_results,),
        )
        self._since_purge = 0

    # -- accepting -----------------------------------------------------------------------

    def find_key(self, key: str) -> str | None:
        try:
            row = self._db.execute(
                "SELECT id FROM ap_tasks WHERE idempotency_key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from exc
        return None if row is None else str(row[0])

    def prepare(self, tasks: Sequence[ProcessingTask], keys: Sequence[str | None]) -> Any:
        return [(task.id, key, encode_task(task)) for task, key in zip(tasks, keys, strict=True)]

    def add(self, prepared: Any) -> None:
        conn = self._db
        try:
            conn.execute("BEGIN")
            try:
                self._write_buffers(conn)
                keys = [(key,) for _, key, _ in prepared if key is not None]
                if keys:  # a key whose first task is forgotten starts afresh
                    conn.executemany(
                        "UPDATE ap_tasks SET idempotency_key = NULL WHERE idempotency_key = ?",
                        keys,
                    )
                conn.executemany(
                    "INSERT OR REPLACE INTO ap_tasks (id, idempotency_key, status, attempts, "
                    "task) VALUES (?, ?, 'pending', 0, ?)",
                    prepared,
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc, "write") from exc
        self._clear_buffers()

    # -- changes -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered changes in one transaction; on failure keep them and log."""
        self._flush_pending = False
        if not (self._updates or self._results) or self._conn is None:
            return
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                self._write_buffers(conn)
                if self._since_purge >= _PURGE_EVERY:
                    self._purge(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._write_failed = True
            logger.error(
                "%s; %d status changes and %d results are kept in memory and written with "
                "the next accepted task",
                self._error(exc, "write"),
                len(self._updates),
                len(self._results),
            )
            return
        self._write_failed = False
        self._clear_buffers()

    def _write_buffers(self, conn: sqlite3.Connection) -> None:
        if self._updates:
            conn.executemany(
                "UPDATE ap_tasks SET status = ?, attempts = ? WHERE id = ?", self._updates
            )
        if self._results:
            conn.executemany(
                "UPDATE ap_tasks SET status = ?, attempts = ?, result = ?, ended_at = ?, "
                "task = X'' WHERE id = ?",
                self._results,
            )
            self._since_purge += len(self._results)

    async def health(self) -> str | None:
        """None when the file answers ``SELECT 1`` and nothing waits in memory after a
        failed write; otherwise what is wrong."""
        if self._conn is None:
            return f"the task store {self.path} is not open"
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            return str(self._error(exc, "answer a health check"))
        if self._write_failed and (self._updates or self._results):
            return (
                f"{len(self._updates) + len(self._results)} changes wait in memory after a "
                f"failed write to {self.path}"
            )
        return None

    def _clear_buffers(self) -> None:
        self._updates.clear()
        self._results.clear()

    def close(self) -> None:
        if self._conn is None:
            return
        self.flush()
        self._conn.close()
        self._conn = None

    # -- errors --------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the task store {self.path} is not open; start the processor")
        return self._conn

    def _corrupt(self, detail: str) -> str:
        return (
            f"the task store {self.path} is damaged ({detail}); move the file aside and start "
            f"with a new one (`sqlite3 {self.path} .recover` may save some of its rows)"
        )

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "")
        path = self.path
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreLockedError(
                f"the task store {path} is locked by another process ({exc}); one processor "
                "at a time owns an SQLite store: stop the other one, or use another file"
            )
        if name.startswith(("SQLITE_FULL", "SQLITE_IOERR_WRITE")):
            return StoreFullError(
                f"cannot {doing} the task store {path} ({name}: {exc}): the disk is full, a "
                "file-size limit was reached, or the disk failed; free space and retry. Tasks "
                "accepted before are on disk; the one being submitted was not accepted"
            )
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StoreCorruptError(self._corrupt(str(exc)))
        if name.startswith("SQLITE_READONLY"):
            return StoreError(
                f"cannot {doing} the task store {path}: it is read-only ({exc}); make the file "
                "and its folder writable"
            )
        return StoreError(
            f"cannot {doing} the task store {path} ({name or type(exc).__name__}: {exc}); "
            "check the file, its folder and free disk space"
        )
