"""What a DATABASE_OPERATION statement may do on SQLite: an authorizer and length limits.

Every task of an event loop shares one SQLite connection, so a statement must not change
that connection for the next task, reach another file, or hand SQLite a pointer. The
authorizer (consulted while SQLite compiles each statement, views and triggers included)
refuses:

- ATTACH and DETACH (and so ``VACUUM``, which attaches a scratch database): a task may use
  only its configured database;
- every PRAGMA but the read-only ones in :data:`READ_PRAGMAS` (asked without a value) and
  :data:`LOOKUP_PRAGMAS` (whose argument names a table or an index): a writing PRAGMA such
  as ``query_only``, ``foreign_keys`` or ``writable_schema`` would change the shared
  connection or corrupt the file;
- the SQL functions in :data:`DENIED_FUNCTIONS`: ``fts3_tokenizer`` turns a blob into a
  function pointer (a crash, or code execution) and leaks a library address;
  ``load_extension`` loads native code;
- temporary tables, views, triggers and indexes: they live on the shared connection, where a
  temporary view would shadow a real table for every other task;
- other DDL (CREATE, DROP, ALTER, REINDEX, ANALYZE, virtual tables) unless the statement is
  allowed it (``Settings.database_allow_ddl`` or a configured statement).

The length limits bound one string or blob (``SELECT zeroblob(100000000)``) and the text
of one statement, so that a single value cannot take more memory than the result cap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

__all__ = [
    "DENIED_FUNCTIONS",
    "LOOKUP_PRAGMAS",
    "MAX_SQL_LENGTH",
    "READ_PRAGMAS",
    "SqliteGuard",
    "limited_connection",
]

#: The longest statement text SQLite accepts from a task, in bytes.
MAX_SQL_LENGTH = 1_000_000
#: PRAGMAs a task may read (only without a value: ``PRAGMA user_version``).
READ_PRAGMAS = frozenset(
    {
        "application_id",
        "collation_list",
        "data_version",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "journal_mode",
        "page_count",
        "page_size",
        "schema_version",
        "user_version",
    }
)
#: PRAGMAs whose argument names a table or index; they only read the schema.
LOOKUP_PRAGMAS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
#: SQL functions no task may call, and why.
DENIED_FUNCTIONS = {
    "fts3_tokenizer": "it turns a blob into a function pointer and leaks library addresses",
    "load_extension": "it loads native code into the process",
}

_DDL = {
    sqlite3.SQLITE_CREATE_INDEX: "CREATE INDEX",
    sqlite3.SQLITE_CREATE_TABLE: "CREATE TABLE",
    sqlite3.SQLITE_CREATE_TRIGGER: "CREATE TRIGGER",
    sqlite3.SQLITE_CREATE_VIEW: "CREATE VIEW",
    sqlite3.SQLITE_CREATE_VTABLE: "CREATE VIRTUAL TABLE",
    sqlite3.SQLITE_DROP_INDEX: "DROP INDEX",
    sqlite3.SQLITE_DROP_TABLE: "DROP TABLE",
    sqlite3.SQLITE_DROP_TRIGGER: "DROP TRIGGER",
    sqlite3.SQLITE_DROP_VIEW: "DROP VIEW",
    sqlite3.SQLITE_DROP_VTABLE: "DROP VIRTUAL TABLE",
    sqlite3.SQLITE_ALTER_TABLE: "ALTER TABLE",
    sqlite3.SQLITE_REINDEX: "REINDEX",
    sqlite3.SQLITE_ANALYZE: "ANALYZE",
}
_TEMPORARY = {
    sqlite3.SQLITE_CREATE_TEMP_INDEX: "CREATE TEMP INDEX",
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "CREATE TEMP TABLE",
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "CREATE TEMP TRIGGER",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "CREATE TEMP VIEW",
    sqlite3.SQLITE_DROP_TEMP_INDEX: "DROP TEMP INDEX",
    sqlite3.SQLITE_DROP_TEMP_TABLE: "DROP TEMP TABLE",
    sqlite3.SQLITE_DROP_TEMP_TRIGGER: "DROP TEMP TRIGGER",
    sqlite3.SQLITE_DROP_TEMP_VIEW: "DROP TEMP VIEW",
}


class SqliteGuard:
    """The authorizer of one shared connection.

    Statements on the connection are serialised, so ``allow_ddl`` is set before each one
    and ``refused`` says afterwards what the authorizer refused, for the task's error.
    """

    __slots__ = ("allow_ddl", "refused")

    def __init__(self) -> None:
        self.allow_ddl = False
        self.refused: str | None = None

    def prepare(self, allow_ddl: bool) -> None:
        """Set up for the next statement."""
        self.allow_ddl = allow_ddl
        self.refused = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
        reason = self._refusal(action, arg1, arg2)
        if reason is None:
            return sqlite3.SQLITE_OK
        self.refused = reason
        return sqlite3.SQLITE_DENY

    def _refusal(self, action: int, arg1: str | None, arg2: str | None) -> str | None:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return (
                "ATTACH, DETACH and VACUUM are refused: a task may use only its configured database"
            )
        if action == sqlite3.SQLITE_PRAGMA:
            return _pragma_refusal((arg1 or "").lower(), arg2)
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
            name = (arg2 or "").lower()
            return f"the SQL function {name}() is refused: {DENIED_FUNCTIONS[name]}"
        if action in _TEMPORARY:
            return (
                f"{_TEMPORARY[action]} is refused: temporary objects would outlive the task "
                "on the connection every task shares"
            )
        if action in _DDL and not self.allow_ddl:
            return (
                f"{_DDL[action]} is refused: schema changes need "
                "Settings(database_allow_ddl=True) or a configured statement "
                "(Settings.database_statements)"
            )
        return None


def _pragma_refusal(name: str, value: str | None) -> str | None:
    if name in LOOKUP_PRAGMAS or (name in READ_PRAGMAS and value is None):
        return None
    written = name if value is None else f"{name}={value}"
    return (
        f"PRAGMA {written} is refused: a PRAGMA could change the connection every task "
        f"shares or the file; readable: {', '.join(sorted(READ_PRAGMAS | LOOKUP_PRAGMAS))}"
    )


def limited_connection(max_length: int) -> Callable[..., sqlite3.Connection]:
    """A ``sqlite3.connect`` factory whose connections refuse longer strings and blobs."""

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = sqlite3.Connection(*args, **kwargs)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_length)
        connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH)
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        return connection

    return connect
