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

Each task runs in its own transaction (autocommit), so BEGIN, COMMIT, ROLLBACK, SAVEPOINT
and the like are refused, and so are ATTACH and VACUUM INTO on SQLite (they would reach
files that are not configured).

Result: ``rows`` (a list of dicts, column name -> value), ``rowcount`` (rows changed by
INSERT/UPDATE/DELETE, rows returned by a query, 0 for DDL), and beyond the contract:
``columns`` (the keys of each row, in order; a repeated column name gets ``_2``, ``_3``, ...),
``database`` and ``engine`` (``"sqlite"`` or ``"postgresql"``). Values are JSON types: BLOB
and bytea become base64 strings, numeric/Decimal a string (exact), timestamps, dates and
times ISO 8601 strings, intervals seconds, UUIDs and addresses strings, json/jsonb the
decoded value, arrays lists.

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
import re
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
from .settings import Settings

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["CONNECT_TIMEOUT", "MAX_MANY", "POOL_MAX_SIZE", "aclose", "process"]

#: Seconds to open a PostgreSQL connection before the task fails with ProviderError.
CONNECT_TIMEOUT = 10.0
#: Connections in one PostgreSQL pool (per process, event loop and database).
POOL_MAX_SIZE = 10
#: The most parameter sets one ``many`` task may carry.
MAX_MANY = 100_000
#: Seconds the client waits beyond the server's statement_timeout before it gives up itself.
_CLIENT_GRACE = 1.0

_TRANSACTION_CONTROL = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "END", "SAVEPOINT", "RELEASE", "START", "ABORT"}
)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")


# --- the payload --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    name: str
    url: str
    query: str
    params: Sequence[Any] | Mapping[str, Any]
    many: list[Sequence[Any] | Mapping[str, Any]] | None


def _request(task: ProcessingTask, settings: Settings) -> _Request:
    payload = task.payload
    name = payload.get("database")
    if name is None:
        name = "default"
    if not isinstance(name, str):
        raise InvalidInputError(
            f"payload['database'] must be the name of a configured database, got "
            f"{type(name).__name__}"
        )
    if name not in settings.databases:
        configured = ", ".join(repr(n) for n in sorted(settings.databases)) or "none"
        raise InvalidInputError(
            f"unknown database {name!r}; configured databases: {configured}. Add one with "
            "Settings(databases={name: url}) or ASYNC_PROCESSOR_DATABASES='name=url'"
        )
    url = settings.databases[name]
    postgres = not url.startswith("sqlite:")
    query = payload.get("query")
    if not isinstance(query, str):
        raise InvalidInputError(
            f"payload['query'] must be one SQL statement as a string, got {type(query).__name__}"
        )
    _check_statement(query, postgres)
    params = payload.get("params")
    many = payload.get("many")
    if params is not None and many is not None:
        raise InvalidInputError("give payload['params'] or payload['many'], not both")
    if many is not None:
        if not isinstance(many, list | tuple) or not many:
            raise InvalidInputError(
                "payload['many'] must be a non-empty list of parameter sets (lists or dicts)"
            )
        if len(many) > MAX_MANY:
            raise InvalidInputError(
                f"payload['many'] has {len(many)} parameter sets; the limit is {MAX_MANY}: "
                "split the work into several tasks"
            )
        sets = [_params(item, postgres, f"payload['many'][{i}]") for i, item in enumerate(many)]
        return _Request(name, url, query, (), sets)
    return _Request(name, url, query, _params(params, postgres, "payload['params']"), None)


def _params(value: Any, postgres: bool, where: str) -> Sequence[Any] | Mapping[str, Any]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, Mapping):
        if postgres:
            raise InvalidInputError(
                f"{where} is a dict, but PostgreSQL takes positional parameters: write "
                "$1, $2, ... in the query and pass a list"
            )
        if not all(isinstance(key, str) for key in value):
            raise InvalidInputError(f"{where}: named parameters need string keys")
        return dict(value)
    raise InvalidInputError(
        f"{where} must be a list (positional placeholders) or a dict (named, SQLite), got "
        f"{type(value).__name__}; values are never spliced into the query text"
    )


def _check_statement(query: str, postgres: bool) -> None:
    statements = _statements(query, postgres)
    if not statements:
        raise InvalidInputError("payload['query'] is empty: give one SQL statement")
    if len(statements) > 1:
        raise InvalidInputError(
            f"payload['query'] holds {len(statements)} statements; a task runs exactly one "
            "(send one task per statement, or use payload['many'] for one statement over "
            "many parameter sets)"
        )
    first = _FIRST_WORD.match(statements[0])
    keyword = first.group().upper() if first else ""
    if keyword in _TRANSACTION_CONTROL:
        raise InvalidInputError(
            f"{keyword} is refused: each task runs in its own transaction; use "
            "payload['many'] to run one statement over many parameter sets atomically"
        )
    if keyword in ("ATTACH", "DETACH") and not postgres:
        raise InvalidInputError(
            f"{keyword} is refused: a task may use only its configured database"
        )


def _statements(query: str, postgres: bool) -> list[str]:
    """The statements of ``query``: split at semicolons outside literals, comments dropped."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        end = i + 1
        if char == ";":
            statements.append("".join(current))
            current = []
        elif query.startswith("--", i):
            newline = query.find("\n", i)
            end = n if newline < 0 else newline
            current.append(" ")
        elif query.startswith("/*", i):
            end = _comment_end(query, i, nested=postgres)
            current.append(" ")
        elif char in "'\"" or (not postgres and char in "[`"):
            backslash = postgres and char == "'" and _escape_string(query, i)
            end = _quote_end(query, i, "]" if char == "[" else char, backslash)
            current.append(query[i:end])
        elif postgres and char == "$" and (match := _dollar_tag(query, i)):
            close = query.find(match, i + len(match))
            end = n if close < 0 else close + len(match)
            current.append(query[i:end])
        else:
            current.append(char)
        i = end
    statements.append("".join(current))
    return [text.strip() for text in statements if text.strip()]


def _comment_end(query: str, start: int, nested: bool) -> int:
    depth, i = 0, start
    while i < len(query):
        if query.startswith("/*", i) and (nested or depth == 0):
            depth += 1
            i += 2
        elif query.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(query)


def _quote_end(query: str, start: int, closing: str, backslash: bool) -> int:
    i = start + 1
    while i < len(query):
        char = query[i]
        if backslash and char == "\\":
            i += 2
        elif char == closing:
            if closing != "]" and query.startswith(closing, i + 1):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(query)


def _escape_string(query: str, quote: int) -> bool:
    """True for PostgreSQL's E'...' strings, where a backslash escapes the next character."""
    if quote == 0 or query[quote - 1] not in "eE":
        return False
    return quote == 1 or not (query[quote - 2].isalnum() or query[quote - 2] in "_$")


def _dollar_tag(query: str, start: int) -> str | None:
    if start > 0 and (query[start - 1].isalnum() or query[start - 1] in "_$"):
        return None
    match = _DOLLAR_TAG.match(query, start)
    return match.group() if match else None


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


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _result(
    request: _Request, engine: str, columns: list[str], rows: Sequence[Sequence[Any]], count: int
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


def _deny_other_files(action: int, *_: Any) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


async def _open_sqlite(name: str, url: str, settings: Settings) -> _SqliteHandle:
    aiosqlite = await extras.require_off_loop("aiosqlite", "db", "DATABASE_OPERATION on SQLite")
    path = _sqlite_path(name, url)
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(
            path, isolation_level=None, timeout=settings.statement_timeout
        )
    except (OSError, sqlite3.Error) as exc:
        raise ProviderRequestError(
            f"database {name!r}: cannot open the SQLite file {path!r}: {exc}"
        ) from exc
    try:
        if path != ":memory:":
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
        await connection.execute("PRAGMA foreign_keys=ON")
        await connection.set_authorizer(_deny_other_files)
    except sqlite3.Error as exc:
        await connection.close()
        raise ProviderRequestError(
            f"database {name!r}: {path!r} is not a usable SQLite database: {exc}"
        ) from exc
    return _SqliteHandle(connection)


async def _run_sqlite(request: _Request, settings: Settings) -> dict[str, Any]:
    resources = await _loop_resources()
    handle: _SqliteHandle = await _shared(
        resources.sqlite, request.url, lambda: _open_sqlite(request.name, request.url, settings)
    )
    async with handle.lock:
        work = asyncio.ensure_future(_sqlite_statement(handle.connection, request))
        try:
            done, _ = await asyncio.wait({work}, timeout=settings.statement_timeout)
        except asyncio.CancelledError:
            await _interrupt(handle.connection, work)
            raise
        if not done:
            await _interrupt(handle.connection, work)
            raise _timeout(request, settings)
    try:
        return work.result()
    except sqlite3.Warning as exc:
        raise InvalidInputError(f"database {request.name!r}: {exc}") from exc
    except sqlite3.Error as exc:
        raise _sqlite_error(request, exc) from exc


async def _interrupt(connection: aiosqlite.Connection, work: asyncio.Future[Any]) -> None:
    """Stop the running statement and wait until the connection is free again."""
    await connection.interrupt()
    await asyncio.wait({work})
    if not work.cancelled():
        work.exception()


async def _sqlite_statement(connection: aiosqlite.Connection, request: _Request) -> dict[str, Any]:
    if request.many is not None:
        await connection.execute("BEGIN")
        try:
            async with connection.executemany(request.query, request.many) as cursor:
                count = max(cursor.rowcount, 0)
            await connection.commit()
        except BaseException:
            await connection.rollback()
            raise
        return _result(request, "sqlite", [], [], count)
    try:
        async with connection.execute(request.query, request.params) as cursor:
            rows = list(await cursor.fetchall())
            description = cursor.description
            changed = cursor.rowcount
    finally:
        if connection.in_transaction:
            await connection.rollback()
    if not description:
        return _result(request, "sqlite", [], [], max(changed, 0))
    columns = _unique([column[0] for column in description])
    return _result(request, "sqlite", columns, rows, changed if changed >= 0 else len(rows))


def _sqlite_error(request: _Request, exc: sqlite3.Error) -> Exception:
    message = f"database {request.name!r}: {exc}"
    text = str(exc).lower()
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


async def _open_pool(request: _Request, settings: Settings) -> Any:
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


async def _run_postgres(request: _Request, settings: Settings) -> dict[str, Any]:
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
        return await _postgres_statement(connection, request, client_timeout)
    except (InvalidInputError, ProviderError, ProviderRequestError):
        raise
    except TimeoutError as exc:
        raise _timeout(request, settings) from exc
    except Exception as exc:
        raise _postgres_error(request, exc, asyncpg, connecting=False) from exc
    finally:
        await pool.release(connection)


async def _postgres_statement(connection: Any, request: _Request, timeout: float) -> dict[str, Any]:
    statement = await connection.prepare(request.query, timeout=timeout)
    columns = _unique([attribute.name for attribute in statement.get_attributes()])
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


def _status_count(status: str | None, returned: int) -> int:
    """Rows changed or returned, from a command tag such as ``INSERT 0 3`` or ``UPDATE 2``."""
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else returned


def _where(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, without the user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _postgres_error(request: _Request, exc: Exception, asyncpg: Any, connecting: bool) -> Exception:
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


def _timeout(request: _Request, settings: Settings) -> ProviderError:
    return ProviderError(
        f"database {request.name!r}: the statement ran longer than "
        f"Settings.statement_timeout ({settings.statement_timeout:g} s) and was cancelled; "
        "the task is retried under its max_retries"
    )


# --- the processor --------------------------------------------------------------------------


async def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Run the task's statement on its configured database (see the module docstring)."""
    request = _request(task, settings)
    if request.url.startswith("sqlite:"):
        return await _run_sqlite(request, settings)
    return await _run_postgres(request, settings)
