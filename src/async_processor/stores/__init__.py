"""Where tasks are kept: in memory (the default), durably in SQLite or in PostgreSQL.

``AdvancedAsyncProcessor(store=...)`` takes ``"memory"``, ``"sqlite:///file.db"``
(``sqlite:////abs/path.db`` for an absolute path; ``?synchronous=FULL&timeout=5`` optional),
``"postgresql://user:password@host:port/database"`` (``?lease=30&claim=100&owner=...&
timeout=10`` optional; several processors may share one) or a :class:`TaskStore`.
See docs/stores.md.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ..errors import InvalidArgumentError
from .base import (
    Recovered,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    TaskStore,
    UnstorableTaskError,
)
from .memory import MemoryStore

__all__ = [
    "MemoryStore",
    "Recovered",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "TaskStore",
    "UnstorableTaskError",
    "open_store",
]


def open_store(store: str | TaskStore | None) -> TaskStore:
    """Turn the processor's ``store=`` argument into a :class:`TaskStore` (not yet opened)."""
    if store is None or store == "memory":
        return MemoryStore()
    if isinstance(store, TaskStore):
        return store
    if isinstance(store, str) and store.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        rest = store[len("sqlite:///") :]
        path, _, query = rest.partition("?")
        if not path:
            raise InvalidArgumentError(f"store {store!r} names no file: sqlite:///file.db")
        options = {k: v[-1] for k, v in parse_qs(query, strict_parsing=bool(query)).items()}
        unknown = options.keys() - {"synchronous", "timeout"}
        if unknown:
            raise InvalidArgumentError(
                f"store {store!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                "known: synchronous, timeout"
            )
        try:
            timeout = float(options.get("timeout", "5"))
        except ValueError:
            raise InvalidArgumentError(
                f"store {store!r}: timeout must be a number of seconds"
            ) from None
        synchronous = options.get("synchronous", "NORMAL")
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise InvalidArgumentError(
                f"store {store!r}: synchronous must be NORMAL or FULL, got {synchronous!r}"
            )
        return SqliteStore(path, synchronous, timeout)
    if isinstance(store, str) and store.startswith(("postgresql://", "postgres://")):
        return _postgres(store)
    raise InvalidArgumentError(
        "store must be 'memory', 'sqlite:///path/to/file.db', "
        f"'postgresql://user@host/database' or a TaskStore, got {store!r}"
    )


#: Options of the store itself; the others listed are passed on to the server connection.
_PG_OPTIONS = {"lease", "claim", "owner", "timeout"}
_PG_PASSED = {"sslmode", "sslrootcert", "sslcert", "sslkey", "application_name"}


def _postgres(store: str) -> TaskStore:
    from .postgres import PostgresStore

    try:
        parts = urlsplit(store)
        port = parts.port
        options = {
            k: v[-1]
            for k, v in parse_qs(
                parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)
            ).items()
        }
    except ValueError as exc:
        raise InvalidArgumentError(f"store {_redact(store)!r} is not a valid URL: {exc}") from None
    unknown = options.keys() - _PG_OPTIONS - _PG_PASSED
    if unknown:
        raise InvalidArgumentError(
            f"store {_redact(store)!r}: unknown option(s) {', '.join(sorted(unknown))}; known: "
            + ", ".join(sorted(_PG_OPTIONS | _PG_PASSED))
        )
    numbers = {"lease": 30.0, "timeout": 10.0, "claim": 100.0}
    for name in numbers:
        if name in options:
            try:
                numbers[name] = float(options[name])
            except ValueError:
                numbers[name] = float("nan")
            if not numbers[name] > 0 or (name == "claim" and not numbers[name].is_integer()):
                kind = "a whole number" if name == "claim" else "a number of seconds"
                raise InvalidArgumentError(
                    f"store {_redact(store)!r}: {name} must be {kind} above 0, "
                    f"got {options[name]!r}"
                )
    if "owner" in options and not options["owner"].strip():
        raise InvalidArgumentError(f"store {_redact(store)!r}: owner must not be empty")
    passed = {k: v for k, v in options.items() if k in _PG_PASSED}
    dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed)))
    where = f"postgresql://{parts.username or ''}@{parts.hostname or 'localhost'}:{port or 5432}"
    return PostgresStore(
        dsn,
        lease=numbers["lease"],
        timeout=numbers["timeout"],
        claim=int(numbers["claim"]),
        owner=options.get("owner"),
        where=f"{where}{parts.path or '/'}",
    )


def _redact(url: str) -> str:
    """The URL without its password."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
