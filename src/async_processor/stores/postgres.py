"""A durable task store in PostgreSQL (asyncpg, the ``postgres`` extra), shared by processors.

Tables ``ap_tasks`` (one row per task, as in SQLite, plus its group) and ``ap_groups`` (one
row per group: its owner and lease). A group is a task together with the unfinished tasks
it depends on, transitively; a group is claimed, run and reclaimed as a whole by one
processor, so dependencies never cross processors. A processor owns the groups it submits
and renews their lease every ``lease / 3`` seconds; it claims groups whose lease expired
(their owner crashed, or shut down and released them) with ``FOR UPDATE SKIP LOCKED``, so
each group has one live owner. asyncpg runs on a thread of the store's own: the processor's
calls stay synchronous (``add`` has committed when it returns), status changes and results
are written in the background, in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import MissingExtraError
from ..lifecycle import TaskStatus
from .base import Recovered, StoreCorruptError, StoreError
from .codec import decode_result, decode_task, encode_task
from .journal import JournalStore

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
    raise MissingExtraError(
        "PostgreSQL task stores need asyncpg: pip install 'async-processor[postgres]'"
    ) from exc

if TYPE_CHECKING:
    from ..result import TaskResult
    from ..task import ProcessingTask

__all__ = ["PostgresStore"]

logger = logging.getLogger("async_processor.stores")

SCHEMA_VERSION = "1"
_PURGE_EVERY = 1000
_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ap_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ap_tasks ("
    " seq BIGSERIAL PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " idempotency_key TEXT UNIQUE,"
    " grp TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " task BYTEA NOT NULL,"
    " result BYTEA,"
    " ended_at DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS ap_tasks_ended ON ap_tasks (ended_at) WHERE ended_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS ap_tasks_grp ON ap_tasks (grp) WHERE ended_at IS NULL",
    "CREATE TABLE IF NOT EXISTS ap_groups ("
    " grp TEXT PRIMARY KEY,"
    " seq BIGSERIAL NOT NULL,"
    " owner TEXT NOT NULL,"
    " lease_until TIMESTAMPTZ NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ap_groups_owner ON ap_groups (owner)",
)
_LEASE = "clock_timestamp() + $2 * interval '1 second'"
_CLAIM = (
    f"UPDATE ap_groups SET owner = $1, lease_until = {_LEASE} WHERE grp IN ("
    " SELECT grp FROM ap_groups WHERE (owner = $1 AND $3) OR (NOT $3 AND grp <> ALL($5::text[])"
    " AND lease_until < clock_timestamp()) ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " RETURNING grp"
)
_DROP_EMPTY = (
    "DELETE FROM ap_groups g WHERE {where} AND NOT EXISTS"
    " (SELECT 1 FROM ap_tasks t WHERE t.grp = g.grp AND t.ended_at IS NULL)"
)


class PostgresStore(JournalStore):
    """Tasks journalled in the PostgreSQL database at ``dsn``.

    ``lease``: seconds a crashed processor's tasks wait before another claims them.
    ``timeout``: seconds to connect. ``claim``: at most this many of its tasks unfinished
    before a processor claims more. ``owner``: this processor's id (unique among live
    processors; a restart with the same id takes its groups back at once).
    """

    def __init__(
        self,
        dsn: str,
        lease: float = 30.0,
        timeout: float = 10.0,
        claim: int = 100,
        owner: str | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__()
        self.dsn, self.lease, self.timeout, self.claim = dsn, lease, timeout, claim
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.where = where or dsn
        self._conn: asyncpg.Connection | None = None
        self._bg: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock: asyncio.Lock | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._unwritten: tuple[list[tuple[str, int, str]], list[Any]] = ([], [])
        self._live: set[str] = set()
        self._refused: set[str] = set()
        self._ttl = 0.0
        self._max_results = 0
        self._since_purge = 0

    # -- the store's thread ----------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T], doing: str) -> _T:
        """Run ``coro`` on the store's thread and wait for it."""
        if self._bg is None:
            coro.close()
            raise StoreError(f"the task store {self.where} is not open; start the processor")
        future = asyncio.run_coroutine_threadsafe(coro, self._bg)
        try:
            return future.result()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._error(exc, doing) from exc

    def _post(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the store's thread without waiting (in order with the others)."""
        if self._bg is None:
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self._bg)

    async def _db(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
        return self._conn

    # -- opening -------------------------------------------------------------------------

    def open(
        self, loop: asyncio.AbstractEventLoop, result_ttl: float, max_results: int
    ) -> Recovered:
        self._loop, self._ttl, self._max_results = loop, result_ttl, max_results
        bg = self._bg = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=bg.run_forever, name="async-processor-postgres", daemon=True
        )
        self._thread.start()
        try:
            return self._call(self._open(), "open")
        except BaseException:
            self._stop_thread()
            raise

    async def _open(self) -> Recovered:
        self._lock = asyncio.Lock()
        conn = await self._db()
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('async_processor schema'))")
            tables = {
                row[0]
                for row in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_name LIKE 'ap\\_%'"
                )
            }
            if tables and "ap_meta" not in tables:
                raise StoreCorruptError(
                    f"the database {self.where} has tables {', '.join(sorted(tables))} but no "
                    "ap_meta: they are not a task store's; use another database"
                )
            for statement in _SCHEMA:
                await conn.execute(statement)
            version = await conn.fetchval("SELECT value FROM ap_meta WHERE key = 'schema'")
            if version is None:
                await conn.execute("INSERT INTO ap_meta VALUES ('schema', $1)", SCHEMA_VERSION)
            elif version != SCHEMA_VERSION:
                raise StoreCorruptError(
                    f"the task store {self.where} has schema version {version}, this version "
                    f"of async_processor reads version {SCHEMA_VERSION}; use a matching version"
                )
        await self._purge(conn)
        recovered = Recovered()
        for row in await conn.fetch(
            "SELECT id, result FROM ap_tasks WHERE ended_at IS NOT NULL ORDER BY ended_at"
        ):
            recovered.results.append(self._decode(decode_result, row["id"], row["result"]))
        for mine in (True, False):  # this owner's groups (a restart), then expired ones
            recovered.tasks += (await self._claim(conn, mine, fetch_deps=False)).tasks
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        return recovered

    def _decode(self, decode: Callable[..., _T], *args: Any) -> _T:
        try:
            return decode(*args)
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreCorruptError(
                f"the task store {self.where} is damaged (a row cannot be decoded: {exc}); "
                "delete the row or use another database"
            ) from exc

    async def _purge(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "DELETE FROM ap_tasks WHERE ended_at IS NOT NULL AND ended_at < $1",
            time.time() - self._ttl,
        )
        await conn.execute(
            "DELETE FROM ap_tasks WHERE ended_at IS NOT NULL AND ended_at <= (SELECT ended_at "
            "FROM ap_tasks WHERE ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT 1 OFFSET $1)",
            self._max_results,
        )
        self._since_purge = 0

    # -- claiming --------------------------------------------------------------------------

    async def _claim(
        self, conn: asyncpg.Connection, mine: bool, fetch_deps: bool = True
    ) -> Recovered:
        """Claim every group of this owner (``mine``), or expired groups while there is room;
        with ``fetch_deps``, also the kept results of the claimed tasks' ended dependencies."""
        recovered = Recovered()
        room = (1 << 62) if mine else self.claim - len(self._live)
        if room <= 0:
            return recovered
        async with conn.transaction():
            groups = [
                row[0]
                for row in await conn.fetch(
                    _CLAIM, self.owner, self.lease, mine, room, list(self._refused)
                )
            ]
            if not groups:
                return recovered
            rows = await conn.fetch(
                "SELECT id, task, status, attempts FROM ap_tasks "
                "WHERE grp = ANY($1::text[]) AND ended_at IS NULL ORDER BY seq",
                groups,
            )
            await conn.execute(_DROP_EMPTY.format(where="grp = ANY($1::text[])"), groups)
        ids = set()
        for row in rows:
            task = self._decode(decode_task, row["task"])
            started = 1 if row["status"] == TaskStatus.RUNNING.value else 0
            recovered.tasks.append((task, row["attempts"] + started))
            ids.add(task.id)
        self._live.update(ids)
        if fetch_deps:
            deps = {d for task, _ in recovered.tasks for d in task.depends_on} - ids
            for row in await conn.fetch(
                "SELECT id, result FROM ap_tasks WHERE id = ANY($1::text[]) "
                "AND ended_at IS NOT NULL",
                list(deps),
            ):
                recovered.results.append(self._decode(decode_result, row["id"], row["result"]))
        if recovered.tasks:
            logger.info(
                "store owner %s claimed %d groups (%d tasks)",
                self.owner,
                len(groups),
                len(recovered.tasks),
            )
        return recovered

    async def _beat(self) -> None:
        """Renew this owner's leases, drop its empty groups, and claim expired groups."""
        assert self._lock is not None
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                async with self._lock:
                    conn = await self._db()
                    await conn.execute(
                        f"UPDATE ap_groups SET lease_until = {_LEASE} WHERE owner = $1",
                        self.owner,
                        self.lease,
                    )
                    await conn.execute(_DROP_EMPTY.format(where="owner = $1"), self.owner)
                    if self._frozen:
                        continue
                    claimed = await self._claim(conn, False)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                logger.error(
                    "%s; retrying in %.1f s", self._error(exc, "renew leases in"), self.lease / 3
                )
                continue
            except StoreError as exc:  # a claimed row that cannot be decoded
                logger.error("%s; retrying in %.1f s", exc, self.lease / 3)
                continue
            if claimed.tasks and self._loop is not None:
                self._loop.call_soon_threadsafe(self._hand_over, claimed)

    def _hand_over(self, claimed: Recovered) -> None:
        """On the processor's loop: accept claimed tasks, or give them back."""
        ids = [task.id for task, _ in claimed.tasks]
        if self._frozen or self.adopt is None:
            return  # still leased to this owner; close() releases them
        try:
            self.adopt(claimed)
        except Exception as exc:
            logger.error("cannot run claimed tasks (%s); giving their groups back", exc)
            self._live.difference_update(ids)
            self._post(self._release(ids))

    async def _release(self, ids: list[str]) -> None:
        """Give the groups of ``ids`` back, and claim them no more."""
        assert self._lock is not None
        async with self._lock:
            try:
                conn = await self._db()
                groups = await conn.fetch(
                    "SELECT DISTINCT grp FROM ap_tasks WHERE id = ANY($1::text[])", ids
                )
                self._refused.update(row[0] for row in groups)
                await conn.execute(
                    "UPDATE ap_groups SET lease_until = '-infinity' "
                    "WHERE grp = ANY($1::text[]) AND owner = $2",
                    list(self._refused),
                    self.owner,
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                logger.error(
                    "%s; they go back when this processor stops",
                    self._error(exc, "release groups in"),
                )

    # -- accepting -----------------------------------------------------------------------

    def find_key(self, key: str) -> str | None:
        return self._call(self._find_key(key), "read")

    async def _find_key(self, key: str) -> str | None:
        assert self._lock is not None
        async with self._lock:
            conn = await self._db()
            found = await conn.fetchval("SELECT id FROM ap_tasks WHERE idempotency_key = $1", key)
        return None if found is None else str(found)

    def prepare(self, tasks: Sequence[ProcessingTask], keys: Sequence[str | None]) -> Any:
        return [
            (task.id, key, encode_task(task), task.depends_on)
            for task, key in zip(tasks, keys, strict=True)
        ]

    def add(self, prepared: Any) -> None:
        self._call(self._add(prepared), "write")
        self._live.update(task_id for task_id, _, _, _ in prepared)

    async def _add(self, prepared: list[tuple[str, str | None, bytes, list[str]]]) -> None:
        assert self._lock is not None
        async with self._lock:
            conn = await self._db()
            async with conn.transaction():
                counts = await self._write(conn)
                outside = {d for *_, deps in prepared for d in deps}
                stored: dict[str, str] = {}
                if outside:
                    for row in await conn.fetch(
                        "SELECT id, grp FROM ap_tasks WHERE id = ANY($1::text[]) "
                        "AND ended_at IS NULL",
                        list(outside),
                    ):
                        stored[row[0]] = row[1]
                groups, merged, new = _assign_groups(prepared, stored)
                if merged:
                    await conn.executemany(
                        "UPDATE ap_tasks SET grp = $1 WHERE grp = $2 AND ended_at IS NULL", merged
                    )
                    await conn.execute(
                        "DELETE FROM ap_groups WHERE grp = ANY($1::text[])",
                        [old for _, old in merged],
                    )
                await conn.execute(
                    f"INSERT INTO ap_groups (grp, owner, lease_until) SELECT g, $1, {_LEASE} "
                    "FROM unnest($3::text[]) AS g ON CONFLICT (grp) DO UPDATE "
                    "SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until",
                    self.owner,
                    self.lease,
                    list(new),
                )
                keys = [key for _, key, _, _ in prepared if key is not None]
                if keys:  # a key whose first task is forgotten starts afresh
                    await conn.execute(
                        "UPDATE ap_tasks SET idempotency_key = NULL "
                        "WHERE idempotency_key = ANY($1::text[])",
                        keys,
                    )
                await conn.execute(
                    "INSERT INTO ap_tasks (id, idempotency_key, grp, status, attempts, task) "
                    "SELECT i, k, g, 'pending', 0, t FROM unnest($1::text[], $2::text[], "
                    "$3::text[], $4::bytea[]) AS u(i, k, g, t) ON CONFLICT (id) DO UPDATE SET "
                    "idempotency_key = EXCLUDED.idempotency_key, grp = EXCLUDED.grp, "
                    "status = 'pending', attempts = 0, task = EXCLUDED.task, result = NULL, "
                    "ended_at = NULL",
                    [p[0] for p in prepared],
                    [p[1] for p in prepared],
                    [groups[p[0]] for p in prepared],
                    [p[2] for p in prepared],
                )
            self._written(counts)

    # -- changes -------------------------------------------------------------------------

    def finished(self, result: TaskResult) -> None:
        if not self._frozen:
            self._live.discard(result.task_id)
        super().finished(result)

    def flush(self) -> None:
        """Hand the buffered changes to the store's thread (written in one transaction)."""
        self._flush_pending = False
        if not (self._updates or self._results):
            return
        self._post(self._flush(self._updates, self._results))
        self._updates, self._results = [], []

    async def _flush(self, updates: list[Any], results: list[Any]) -> None:
        assert self._lock is not None
        self._unwritten[0].extend(updates)
        self._unwritten[1].extend(results)
        async with self._lock:
            try:
                conn = await self._db()
                async with conn.transaction():
                    counts = await self._write(conn)
                self._written(counts)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                logger.error(
                    "%s; %d status changes and %d results are kept in memory and written "
                    "with the next change",
                    self._error(exc, "write"),
                    len(self._unwritten[0]),
                    len(self._unwritten[1]),
                )

    async def health(self) -> str | None:
        """None when the database answers ``SELECT 1`` within ``timeout`` seconds, and no
        change waits in memory after a failed write; otherwise what is wrong."""
        if self._bg is None:
            return f"the task store {self.where} is not open"
        unwritten = len(self._unwritten[0]) + len(self._unwritten[1])
        ping = asyncio.run_coroutine_threadsafe(self._ping(), self._bg)
        try:
            await asyncio.wait_for(asyncio.wrap_future(ping), self.timeout)
        except Exception as exc:  # whatever the driver raised, the store did not answer
            return str(self._error(exc, "answer a health check"))
        if unwritten:
            return f"{unwritten} changes wait in memory after a failed write to {self.where}"
        return None

    async def _ping(self) -> None:
        assert self._lock is not None
        async with self._lock:
            conn = await self._db()
            try:
                await conn.fetchval("SELECT 1")
            except Exception:  # a session the server ended: the next call connects anew
                conn.terminate()
                raise

    async def _write(self, conn: asyncpg.Connection) -> tuple[int, int]:
        """Write the changes not yet written, inside the caller's transaction; once it has
        committed, the caller passes the counts returned to :meth:`_written`."""
        updates, results = self._unwritten
        n_updates, n_results = len(updates), len(results)  # more may come while awaiting
        if n_updates:
            await conn.execute(
                "UPDATE ap_tasks SET status = u.s, attempts = u.a FROM unnest($1::text[], "
                "$2::int[], $3::text[]) AS u(s, a, id) WHERE ap_tasks.id = u.id",
                *zip(*_last_per_id(updates[:n_updates]), strict=True),
            )
        if n_results:
            await conn.execute(
                "UPDATE ap_tasks SET status = u.s, attempts = u.a, result = u.r, ended_at = u.e, "
                "task = ''::bytea FROM unnest($1::text[], $2::int[], $3::bytea[], "
                "$4::float8[], $5::text[]) AS u(s, a, r, e, id) WHERE ap_tasks.id = u.id",
                *zip(*_last_per_id(results[:n_results]), strict=True),
            )
            if self._since_purge + n_results >= _PURGE_EVERY:
                await self._purge(conn)
        return n_updates, n_results

    def _written(self, counts: tuple[int, int]) -> None:
        del self._unwritten[0][: counts[0]]
        del self._unwritten[1][: counts[1]]
        self._since_purge += counts[1]

    def close(self) -> None:
        """Write what is pending, give this owner's groups back, and disconnect."""
        if self._bg is None:
            return
        self.flush()
        try:
            self._call(self._close(), "close")
        except StoreError as exc:
            logger.error("%s", exc)
        finally:
            self._stop_thread()

    async def _close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        assert self._lock is not None
        async with self._lock:
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                async with conn.transaction():
                    counts = await self._write(conn)
                    await conn.execute(
                        "UPDATE ap_groups SET lease_until = '-infinity' WHERE owner = $1",
                        self.owner,
                    )
                    await conn.execute(_DROP_EMPTY.format(where="owner = $1"), self.owner)
                self._written(counts)
            finally:
                await conn.close()

    def _stop_thread(self) -> None:
        bg, thread = self._bg, self._thread
        self._bg = self._thread = None
        if bg is None or thread is None:
            return
        conn = self._conn
        if conn is not None and not conn.is_closed():
            asyncio.run_coroutine_threadsafe(_quietly_close(conn), bg).result()
        bg.call_soon_threadsafe(bg.stop)
        thread.join()
        bg.close()
        self._conn = None

    # -- errors --------------------------------------------------------------------------

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        where = self.where
        if isinstance(
            exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
        ):
            return StoreError(
                f"cannot {doing} the task store {where}: the server refused the credentials "
                f"({exc}); check the user and password in the URL"
            )
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return StoreError(
                f"cannot {doing} the task store {where}: {exc}; create the database first "
                "(CREATE DATABASE ...)"
            )
        if isinstance(exc, asyncpg.InsufficientPrivilegeError):
            return StoreError(
                f"cannot {doing} the task store {where}: {exc}; grant the user the right to "
                "create and write the ap_* tables"
            )
        if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
            return StoreError(
                f"cannot {doing} the task store {where}: the PostgreSQL server cannot be "
                f"reached ({type(exc).__name__}: {exc or 'timed out'}); check that it runs "
                "and the host and port in the URL"
            )
        return StoreError(f"cannot {doing} the task store {where} ({type(exc).__name__}: {exc})")


def _last_per_id(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The last change of each task (the task id is each row's last field)."""
    return list({row[-1]: row for row in rows}.values())


async def _quietly_close(conn: asyncpg.Connection) -> None:
    conn.terminate()


def _assign_groups(
    prepared: list[tuple[str, str | None, bytes, list[str]]], stored: dict[str, str]
) -> tuple[dict[str, str], list[tuple[str, str]], set[str]]:
    """Put each new task in one group with every task it depends on (union-find over
    group names; ``stored`` gives the groups of dependencies already in the store).

    Returns each new task's group, the (new, old) renames of stored groups that merged,
    and the groups that do not exist yet.
    """
    parent: dict[str, str] = {}

    def find(group: str) -> str:
        while parent.get(group, group) != group:
            group = parent[group]
        return group

    own: dict[str, str] = {}
    for task_id, _, _, deps in prepared:
        groups = {find(g) for d in deps if (g := own.get(d) or stored.get(d))}
        root = min(groups) if groups else task_id
        for group in groups:
            parent[group] = root
        own[task_id] = root
    merged = [(find(g), g) for g in set(stored.values()) if find(g) != g]
    new = {find(g) for g in own.values()} - set(stored.values())
    return {task_id: find(group) for task_id, group in own.items()}, merged, new
