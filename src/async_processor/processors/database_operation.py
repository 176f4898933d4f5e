"""DATABASE_OPERATION: one parameterised statement against a configured database.

The payload names a database from :attr:`Settings.databases` (``"default"`` unless given);
it can never give a URL or a file. ``sqlite:///path`` URLs run on SQLite through aiosqlite
(extra ``db``), ``postgresql://`` URLs on PostgreSQL through asyncpg (extra ``postgres``).

Payload:
    ``query``: one SQL statement (a trailing ``;`` is fine; two statements are refused).
    ``params``: the values, never spliced into the text. A list for positional
    placeholders (SQLite ``?``, PostgreSQL ``$1``, ``$2``, ...) or, on SQLite only, a dict for
    named ones (``:name``). Each engine's native style: ``?`` is not rewritten for PostgreSQL,
    where it is also the jsonb "has key" operator.
    ``many``: instead of ``params``, a list of parameter sets; the statement runs once per set,
    all in one transaction (all or nothing).
    ``database``: the configured name.
    ``statement``: instead of ``query``, the name of a statement configured in
    :attr:`Settings.database_statements` (SQL with ``:name`` placeholders, on PostgreSQL
    too); ``params`` (or each set of ``many``) is then a dict with exactly its names. This
    is the only form the HTTP service accepts.

Each task runs in its own transaction, so BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the like
are refused. A raw ``query`` may not change the schema unless
:attr:`Settings.database_allow_ddl` is set (configured statements may). On SQLite an
authorizer (:mod:`.sqlite_guard`) also refuses ATTACH, DETACH and VACUUM, writing PRAGMAs,
``fts3_tokenizer`` and ``load_extension``, and temporary objects, and no string or blob may
exceed :attr:`Settings.max_result_bytes`. On PostgreSQL a first-keyword check refuses DDL
and code blocks (``DO``) without the switch and COPY and LOAD always; it cannot see inside
functions, so the configured role's privileges are the real boundary.

Result: ``rows`` (a list of dicts, column name -> value), ``rowcount`` (rows changed by
INSERT/UPDATE/DELETE, rows returned by a query, 0 for DDL), and beyond the contract:
``columns`` (the keys of each row, in order; a repeated column name gets ``_2``, ``_3``, ...),
``database`` and ``engine`` (``"sqlite"`` or ``"postgresql"``). Values are JSON types: BLOB
and bytea become base64 strings, numeric/Decimal a string (exact), timestamps, dates and
times ISO 8601 strings, intervals seconds, UUIDs and addresses strings, json/jsonb the
decoded value, arrays lists. Rows are counted while they are fetched; a result over
:attr:`Settings.max_result_bytes` fails the task (and rolls back what it changed).

Connections: on SQLite one connection per (process, event loop, database), in WAL mode, with
every statement of that loop serialised by a lock (a single writer, and the statement
timeout interrupts the right statement); other loops and processes wait on SQLite's busy
timeout. On PostgreSQL a pool of up to :data:`POOL_MAX_SIZE` connections per (process, event
loop, database). Both are closed when their event loop shuts down (``asyncio.run`` and
``asyncio.Runner`` close open async generators, which this module uses as the hook) or by
:func:`aclose`.

Errors: an unknown database name, a malformed payload, a syntax error, a missing table, a
constraint violation or a value of the wrong type fail the task at once with
:class:`~async_processor.InvalidInputError` and the database's message. A statement that
runs longer than :attr:`Settings.statement_timeout` (server-side ``statement_timeout`` and a
client-side timer on PostgreSQL; an interrupt on SQLite), a refused or lost connection, a
busy database, a deadlock or a serialisation failure raise
:class:`~async_processor.ProviderError`: transient, retried under the task's
``max_retries``. A database that refuses the configured credentials or does not exist raises
:class:`~async_processor.ProviderRequestError`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import decimal
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..errors import InvalidInputError, ProviderError, ProviderRequestError
from ..task import ProcessingTask
from . import extras
from .database_request import MAX_MANY, Request, request_from
from .settings import Settings
from .sqlite_guard import SqliteGuard, limited_connection

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["CONNECT_TIMEOUT", "MAX_MANY", "POOL_MAX_SIZE", "aclose", "process"]

#: Seconds to open a PostgreSQL connection before the task fails with ProviderError.
CONNECT_TIMEOUT = 10.0
#: Connections in one PostgreSQL pool (per process, event loop and database).
POOL_MAX_SIZE = 10
#: Seconds the client waits beyond the server's statement_timeout before it gives up itself.
_CLIENT_GRACE = 1.0

#: SQLite's own ceiling on one string or blob (SQLITE_MAX_LENGTH).
_SQLITE_MAX_LENGTH = 1_000_000_000
#: Rows fetched per round trip while the result is counted against max_result_bytes.
_FETCH_ROWS = 256


# --- results --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A database value as JSON types (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if all(hasattr(value, name) for name in ("lower", "upper", "isempty")):  # asyncpg Range
        return {
            "lower": _jsonable(value.lower),
            "upper": _jsonable(value.upper),
            "lower_inc": value.lower_inc,
            "upper_inc": value.upper_inc,
            "empty": value.isempty,
        }
    return str(value)


class _ResultBudget:
    """Counts a result against ``Settings.max_result_bytes`` while its rows arrive."""

    __slots__ = ("limit", "name", "rows", "used")

    def __init__(self, request: Request, settings: Settings) -> None:
        self.name = request.name
        self.limit = settings.max_result_bytes
        self.used = 0
        self.rows = 0

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Count ``rows``; InvalidInputError once the result is over the limit."""
        for row in rows:
            self.used += sum(map(_value_size, row))
            self.rows += 1
            if self.used > self.limit:
                raise InvalidInputError(
                    f"database {self.name!r}: the result is over Settings.max_result_bytes "
                    f"({self.limit} bytes) after {self.rows} rows; select fewer rows or "
                    "columns (WHERE, LIMIT), or raise max_result_bytes"
                )


def _value_size(value: Any) -> int:
    """A value's share of a result: text and blob lengths, at least 8 bytes a value."""
    if value is None or isinstance(value, bool | int | float):
        return 8
    if isinstance(value, str | bytes | bytearray | memoryview):
        return max(8, len(value))
    return max(8, len(str(value)))


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _result(
    request: Request, engine: str, columns: list[str], rows: Sequence[Sequence[Any]], count: int
) -> dict[str, Any]:
    return {
        "rows": [dict(zip(columns, map(_jsonable, row), strict=True)) for row in rows],
        "rowcount": count,
        "columns": columns,
        "database": request.name,
        "engine": engine,
    }


# --- connections, per process, event loop and database ----------------------------------


@dataclass
class _LoopResources:
    """What one event loop holds open; closed when the loop shuts down its async generators."""

    sqlite: dict[str, asyncio.Future[_SqliteHandle]] = field(default_factory=dict)
    postgres: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    keeper: AsyncGenerator[None, None] | None = None

    async def aclose(self) -> None:
        for opening in [*self.sqlite.values(), *self.postgres.values()]:
            if not opening.done():
                opening.cancel()
        handles = [f.result() for f in self.sqlite.values() if _succeeded(f)]
        pools = [f.result() for f in self.postgres.values() if _succeeded(f)]
        self.sqlite.clear()
        self.postgres.clear()
        for handle in handles:
            async with handle.lock:
                await handle.connection.close()
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT)
            except TimeoutError:
                pool.terminate()

    def abandon(self) -> None:
        """Release what a loop closed without shutting down left behind (no loop to await)."""
        for opening in self.sqlite.values():
            if _succeeded(opening):
                opening.result().connection.stop()
        for pool_opening in self.postgres.values():
            if _succeeded(pool_opening):
                with contextlib.suppress(RuntimeError):  # its sockets close with the pool
                    pool_opening.result().terminate()
        self.sqlite.clear()
        self.postgres.clear()


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


_resources: dict[asyncio.AbstractEventLoop, _LoopResources] = {}
_resources_pid = os.getpid()


async def _close_at_loop_shutdown(
    loop: asyncio.AbstractEventLoop, resources: _LoopResources
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if _resources.get(loop) is resources:
            del _resources[loop]
        await resources.aclose()


async def _loop_resources() -> _LoopResources:
    global _resources_pid
    if _resources_pid != os.getpid():  # a forked child must not touch its parent's sockets
        _resources.clear()
        _resources_pid = os.getpid()
    loop = asyncio.get_running_loop()
    resources = _resources.get(loop)
    if resources is None:
        for old_loop in [old for old in _resources if old.is_closed()]:
            _resources.pop(old_loop).abandon()
        resources = _resources[loop] = _LoopResources()
        resources.keeper = _close_at_loop_shutdown(loop, resources)
        await anext(resources.keeper)
    return resources


async def aclose() -> None:
    """Close this event loop's database connections (they reopen when a task needs them)."""
    resources = _resources.pop(asyncio.get_running_loop(), None)
    if resources is not None:
        await resources.aclose()
        if resources.keeper is not None:
            await resources.keeper.aclose()


async def _shared(
    openings: dict[str, asyncio.Future[Any]], url: str, opener: Callable[[], Any]
) -> Any:
    """The open connection (or pool) for ``url``; concurrent first callers share one open."""
    opening = openings.get(url)
    if opening is None or (opening.done() and not _succeeded(opening)):
        opening = openings[url] = asyncio.ensure_future(opener())
        opening.add_done_callback(_forget_failure(openings, url))
    return await asyncio.shield(opening)


def _forget_failure(
    openings: dict[str, asyncio.Future[Any]], url: str
) -> Callable[[asyncio.Future[Any]], None]:
    """Drop a failed open, so that the next task tries again."""

    def forget(opening: asyncio.Future[Any]) -> None:
        if not _succeeded(opening) and openings.get(url) is opening:
            del openings[url]

    return forget


# --- SQLite ---------------------------------------------------------------------------------


@dataclass
class _SqliteHandle:
    connection: aiosqlite.Connection
    guard: SqliteGuard
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _sqlite_path(name: str, url: str) -> str:
    rest = url.removeprefix("sqlite://")
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ProviderRequestError(
            f"database {name!r}: a SQLite URL is sqlite:///relative/path or "
            f"sqlite:////absolute/path, got {url!r}"
        )
    return unquote(rest[1:])


async def _open_sqlite(name: str, url: str, settings: Settings) -> _SqliteHandle:
    aiosqlite = await extras.require_off_loop("aiosqlite", "db", "DATABASE_OPERATION on SQLite")
    path = _sqlite_path(name, url)
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(
            path,
            isolation_level=None,
            timeout=settings.statement_timeout,
            factory=limited_connection(min(settings.max_result_bytes, _SQLITE_MAX_LENGTH)),
        )
    except (OSError, sqlite3.Error) as exc:
        raise ProviderRequestError(
            f"database {name!r}: cannot open the SQLite file {path!r}: {exc}"
        ) from exc
    guard = SqliteGuard()
    try:
        if path != ":memory:":
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
        await connection.execute("PRAGMA foreign_keys=ON")
        await connection.set_authorizer(guard)
    except sqlite3.Error as exc:
        await connection.close()
        raise ProviderRequestError(
            f"database {name!r}: {path!r} is not a usable SQLite database: {exc}"
        ) from exc
    return _SqliteHandle(connection, guard)


async def _run_sqlite(request: Request, settings: Settings) -> dict[str, Any]:
    resources = await _loop_resources()
    handle: _SqliteHandle = await _shared(
        resources.sqlite, request.url, lambda: _open_sqlite(request.name, request.url, settings)
    )
    await handle.lock.acquire()
    handle.guard.prepare(allow_ddl=request.configured or settings.database_allow_ddl)
    work = asyncio.ensure_future(
        _sqlite_statement(handle.connection, request, _ResultBudget(request, settings))
    )
    work.add_done_callback(_release(handle.lock))
    try:
        done, _ = await asyncio.wait({work}, timeout=settings.statement_timeout)
    except asyncio.CancelledError:
        await handle.connection.interrupt()
        raise
    if not done:
        await handle.connection.interrupt()
        raise _timeout(request, settings)
    try:
        return work.result()
    except sqlite3.Warning as exc:
        raise InvalidInputError(f"database {request.name!r}: {exc}") from exc
    except sqlite3.Error as exc:
        raise _sqlite_error(request, exc, handle.guard.refused, settings) from exc


def _release(lock: asyncio.Lock) -> Callable[[asyncio.Future[Any]], None]:
    """Free the connection when its statement has really ended, however its task ended.

    A cancelled or timed-out task leaves at once; its interrupted statement still rolls
    back on the connection's thread, and the next statement must wait for that. Nobody
    awaits an abandoned statement, so its exception is retrieved here.
    """

    def release(work: asyncio.Future[Any]) -> None:
        lock.release()
        if not work.cancelled():
            work.exception()

    return release


async def _sqlite_statement(
    connection: aiosqlite.Connection, request: Request, budget: _ResultBudget
) -> dict[str, Any]:
    """The statement in a transaction of its own: a result over the cap changes nothing."""
    await connection.execute("BEGIN")
    try:
        if request.many is not None:
            async with connection.executemany(request.query, request.many) as cursor:
                count = max(cursor.rowcount, 0)
            await connection.commit()
            return _result(request, "sqlite", [], [], count)
        async with connection.execute(request.query, request.params) as cursor:
            description = cursor.description
            rows: list[Any] = []
            while description:
                chunk = list(await cursor.fetchmany(_FETCH_ROWS))
                budget.add(chunk)
                rows.extend(chunk)
                if len(chunk) < _FETCH_ROWS:
                    break
            changed = cursor.rowcount
        await connection.commit()
    except BaseException:
        if connection.in_transaction:
            await connection.rollback()
        raise
    if not description:
        return _result(request, "sqlite", [], [], max(changed, 0))
    columns = _unique([column[0] for column in description])
    return _result(request, "sqlite", columns, rows, changed if changed >= 0 else len(rows))


def _sqlite_error(
    request: Request, exc: sqlite3.Error, refused: str | None, settings: Settings
) -> Exception:
    message = f"database {request.name!r}: {exc}"
    text = str(exc).lower()
    if refused is not None and "not authorized" in text:
        return InvalidInputError(f"database {request.name!r}: {refused}")
    if "too big" in text:
        return InvalidInputError(
            f"{message}: one string or blob may hold at most "
            f"{min(settings.max_result_bytes, _SQLITE_MAX_LENGTH)} bytes "
            "(Settings.max_result_bytes)"
        )
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return ProviderError(f"{message} (another connection holds the write lock)")
    if isinstance(exc, sqlite3.IntegrityError):
        return InvalidInputError(f"{message} (a constraint refused the change)")
    if "not authorized" in text or "authorization denied" in text:
        return InvalidInputError(f"{message}: a task may use only its configured database")
    if isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError):
        return InvalidInputError(message)
    if isinstance(exc, sqlite3.InterfaceError | sqlite3.DataError | sqlite3.NotSupportedError):
        return InvalidInputError(message)
    return ProviderRequestError(message)


# --- PostgreSQL -----------------------------------------------------------------------------


async def _set_codecs(connection: Any) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _open_pool(request: Request, settings: Settings) -> Any:
    asyncpg = await extras.require_off_loop(
        "asyncpg", "postgres", "DATABASE_OPERATION on PostgreSQL"
    )
    milliseconds = max(1, round(settings.statement_timeout * 1000))
    try:
        return await asyncpg.create_pool(
            request.url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            timeout=CONNECT_TIMEOUT,
            init=_set_codecs,
            server_settings={"statement_timeout": str(milliseconds)},
        )
    except Exception as exc:
        raise _postgres_error(request, exc, asyncpg, connecting=True) from exc


async def _run_postgres(request: Request, settings: Settings) -> dict[str, Any]:
    asyncpg = await extras.require_off_loop(
        "asyncpg", "postgres", "DATABASE_OPERATION on PostgreSQL"
    )
    resources = await _loop_resources()
    pool = await _shared(resources.postgres, request.url, lambda: _open_pool(request, settings))
    client_timeout = settings.statement_timeout + _CLIENT_GRACE
    try:
        connection = await pool.acquire(timeout=CONNECT_TIMEOUT + client_timeout)
    except TimeoutError as exc:
        raise ProviderError(
            f"database {request.name!r}: all {POOL_MAX_SIZE} connections stayed busy for "
            f"{CONNECT_TIMEOUT + client_timeout:g} s; retried"
        ) from exc
    except Exception as exc:
        raise _postgres_error(request, exc, asyncpg, connecting=True) from exc
    try:
        budget = _ResultBudget(request, settings)
        return await _postgres_statement(connection, request, client_timeout, budget)
    except (InvalidInputError, ProviderError, ProviderRequestError):
        raise
    except TimeoutError as exc:
        raise _timeout(request, settings) from exc
    except Exception as exc:
        raise _postgres_error(request, exc, asyncpg, connecting=False) from exc
    finally:
        await pool.release(connection)


async def _postgres_statement(
    connection: Any, request: Request, timeout: float, budget: _ResultBudget
) -> dict[str, Any]:
    statement = await connection.prepare(request.query, timeout=timeout)
    columns = _unique([attribute.name for attribute in statement.get_attributes()])
    if request.many is None and columns:
        rows = await _fetch_counted(connection, statement, request.params, timeout, budget)
        return _result(request, "postgresql", columns, rows, len(rows))
    if request.many is None:
        rows = await statement.fetch(*request.params, timeout=timeout)
        count = _status_count(statement.get_statusmsg(), len(rows))
        return _result(request, "postgresql", columns, rows, count)
    count = 0
    async with connection.transaction():
        for params in request.many:
            rows = await statement.fetch(*params, timeout=timeout)
            count += _status_count(statement.get_statusmsg(), len(rows))
    return _result(request, "postgresql", [], [], count)


async def _fetch_counted(
    connection: Any,
    statement: Any,
    params: Sequence[Any] | Mapping[str, Any],
    timeout: float,
    budget: _ResultBudget,
) -> list[Any]:
    """The rows through a cursor, counted as they come; over the cap, nothing is changed."""
    rows: list[Any] = []
    async with connection.transaction():
        cursor = await statement.cursor(*params, timeout=timeout)
        while True:
            chunk = await cursor.fetch(_FETCH_ROWS, timeout=timeout)
            budget.add(chunk)
            rows.extend(chunk)
            if len(chunk) < _FETCH_ROWS:
                return rows


def _status_count(status: str | None, returned: int) -> int:
    """Rows changed or returned, from a command tag such as ``INSERT 0 3`` or ``UPDATE 2``."""
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else returned


def _where(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, without the user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _postgres_error(request: Request, exc: Exception, asyncpg: Any, connecting: bool) -> Exception:
    errors = asyncpg.exceptions
    message = f"database {request.name!r}: {type(exc).__name__}: {exc}"
    if connecting and isinstance(exc, OSError | TimeoutError):
        return ProviderError(
            f"database {request.name!r}: cannot connect to PostgreSQL at "
            f"{_where(request.url)}: {exc or type(exc).__name__}"
        )
    transient = (
        errors.PostgresConnectionError,
        errors.InsufficientResourcesError,
        errors.CannotConnectNowError,
        errors.AdminShutdownError,
        errors.CrashShutdownError,
        errors.SerializationError,
        errors.DeadlockDetectedError,
        errors.LockNotAvailableError,
        errors.QueryCanceledError,
        OSError,
    )
    if isinstance(exc, errors.QueryCanceledError):
        return ProviderError(f"{message} (Settings.statement_timeout); retried")
    if isinstance(exc, transient):
        return ProviderError(message)
    if isinstance(
        exc,
        errors.InvalidAuthorizationSpecificationError
        | errors.InvalidCatalogNameError
        | errors.ClientConfigurationError,
    ):
        return ProviderRequestError(f"{message} (check the configured URL of {request.name!r})")
    if isinstance(exc, errors.PostgresSyntaxError) and "?" in request.query:
        return InvalidInputError(f"{message} (PostgreSQL placeholders are $1, $2, ...)")
    if isinstance(
        exc,
        errors.SyntaxOrAccessError
        | errors.IntegrityConstraintViolationError
        | errors.DataError
        | errors.InterfaceError
        | errors.FeatureNotSupportedError
        | errors.ProgramLimitExceededError
        | errors.InvalidTransactionStateError,
    ):
        return InvalidInputError(message)
    return ProviderRequestError(message)


def _timeout(request: Request, settings: Settings) -> ProviderError:
    return ProviderError(
        f"database {request.name!r}: the statement ran longer than "
        f"Settings.statement_timeout ({settings.statement_timeout:g} s) and was cancelled; "
        "the task is retried under its max_retries"
    )


# --- the processor --------------------------------------------------------------------------


async def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Run the task's statement on its configured database (see the module docstring)."""
    request = request_from(task, settings)
    if request.url.startswith("sqlite:"):
        return await _run_sqlite(request, settings)
    return await _run_postgres(request, settings)
