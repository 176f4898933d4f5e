"""Where tasks are kept: in memory (the default) or durably in SQLite.

``AdvancedAsyncProcessor(store=...)`` takes ``"memory"``, ``"sqlite:///file.db"``
(``sqlite:////abs/path.db`` for an absolute path; ``?synchronous=FULL&timeout=5`` optional)
or a :class:`TaskStore`. See docs/stores.md.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

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
    scheme = urlsplit(store).scheme if isinstance(store, str) else ""
    raise InvalidArgumentError(
        f"store must be 'memory', 'sqlite:///path/to/file.db' or a TaskStore, got {store!r}"
        + ("; PostgreSQL stores are not available yet" if scheme.startswith("postgres") else "")
    )
