"""A DATABASE_OPERATION payload read and checked before anything connects.

A payload names a configured database and either gives a raw ``query`` (in process; the
service refuses it) or names a configured statement (``statement`` with named ``params``).
See :mod:`async_processor.processors.database_operation` for the whole contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from ..task import ProcessingTask
from . import sql_text
from .settings import Settings

__all__ = ["MAX_MANY", "Request", "request_from"]

#: The most parameter sets one ``many`` task may carry.
MAX_MANY = 100_000
_TRANSACTION_CONTROL = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "END", "SAVEPOINT", "RELEASE", "START", "ABORT"}
)
#: PostgreSQL statements a raw query may never run, and why.
_POSTGRES_NEVER = {
    "COPY": "COPY reads and writes server files and runs programs",
    "LOAD": "LOAD loads native code into the server",
}
#: PostgreSQL statements that change the schema or run code blocks: need database_allow_ddl.
_POSTGRES_DDL = frozenset(
    {
        "ALTER",
        "CLUSTER",
        "COMMENT",
        "CREATE",
        "DO",
        "DROP",
        "GRANT",
        "IMPORT",
        "REASSIGN",
        "REFRESH",
        "REINDEX",
        "REVOKE",
        "SECURITY",
        "TRUNCATE",
        "VACUUM",
    }
)


@dataclass(frozen=True)
class Request:
    name: str
    url: str
    query: str
    params: Sequence[Any] | Mapping[str, Any]
    many: list[Sequence[Any] | Mapping[str, Any]] | None
    #: A configured statement (``payload['statement']``), trusted with DDL.
    configured: bool = False


def _database(payload: Mapping[str, Any], settings: Settings) -> tuple[str, str]:
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
    return name, settings.databases[name]


def request_from(task: ProcessingTask, settings: Settings) -> Request:
    """The task's payload as a checked request, or InvalidInputError saying what is wrong."""
    payload = task.payload
    name, url = _database(payload, settings)
    postgres = not url.startswith("sqlite:")
    if "statement" in payload:
        return _configured_request(payload, settings, name, url, postgres)
    query = payload.get("query")
    if not isinstance(query, str):
        raise InvalidInputError(
            f"payload['query'] must be one SQL statement as a string, got "
            f"{type(query).__name__} (or name a configured statement: payload['statement'])"
        )
    _check_statement(query, postgres, settings.database_allow_ddl)
    params, many = _param_sets(payload, lambda value, where: _params(value, postgres, where))
    return Request(name, url, query, params, many)


def _param_sets(
    payload: Mapping[str, Any],
    convert: Callable[[Any, str], Sequence[Any] | Mapping[str, Any]],
) -> tuple[Sequence[Any] | Mapping[str, Any], list[Sequence[Any] | Mapping[str, Any]] | None]:
    """``(params, None)``, or ``((), sets)`` for ``payload['many']``, each set converted."""
    params = payload.get("params")
    many = payload.get("many")
    if params is not None and many is not None:
        raise InvalidInputError("give payload['params'] or payload['many'], not both")
    if many is None:
        return convert(params, "payload['params']"), None
    if not isinstance(many, list | tuple) or not many:
        raise InvalidInputError(
            "payload['many'] must be a non-empty list of parameter sets (lists or dicts)"
        )
    if len(many) > MAX_MANY:
        raise InvalidInputError(
            f"payload['many'] has {len(many)} parameter sets; the limit is {MAX_MANY}: "
            "split the work into several tasks"
        )
    return (), [convert(item, f"payload['many'][{i}]") for i, item in enumerate(many)]


def _configured_request(
    payload: Mapping[str, Any], settings: Settings, name: str, url: str, postgres: bool
) -> Request:
    """A payload ``{"statement": name, "params": {...}}`` naming a configured statement."""
    statement = payload["statement"]
    if "query" in payload:
        raise InvalidInputError("give payload['statement'] or payload['query'], not both")
    if not isinstance(statement, str):
        raise InvalidInputError(
            f"payload['statement'] must be the name of a configured statement, got "
            f"{type(statement).__name__}"
        )
    sql = settings.database_statements.get(statement)
    if sql is None:
        configured = ", ".join(repr(n) for n in sorted(settings.database_statements)) or "none"
        raise InvalidInputError(
            f"unknown statement {statement!r}; configured statements: {configured}. The "
            "server's operator adds them (Settings.database_statements, or "
            "[database.statements] in the service configuration)"
        )
    names, query = (
        sql_text.to_positional(sql) if postgres else (sql_text.named_parameters(sql, False), sql)
    )
    try:
        _check_statement(query, postgres, allow_ddl=True)
    except InvalidInputError as exc:
        raise InvalidInputError(f"configured statement {statement!r}: {exc}") from None

    def bind(value: Any, where: str) -> Sequence[Any] | Mapping[str, Any]:
        values = _named_values(value, names, statement, where)
        return tuple(values[key] for key in names) if postgres else values

    params, many = _param_sets(payload, bind)
    return Request(name, url, query, params, many, configured=True)


def _named_values(value: Any, names: Sequence[str], statement: str, where: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidInputError(
            f"{where} of statement {statement!r} must be a dict of named values "
            f"({', '.join(names) or 'none'}), got {type(value).__name__}"
        )
    missing = [key for key in names if key not in value]
    if missing:
        raise InvalidInputError(
            f"statement {statement!r} needs params: {', '.join(missing)} ({where})"
        )
    extra = sorted(key for key in value if key not in names)
    if extra:
        raise InvalidInputError(
            f"statement {statement!r} does not take: {', '.join(extra)} ({where}); its "
            f"params are: {', '.join(names) or 'none'}"
        )
    return dict(value)


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


def _check_statement(query: str, postgres: bool, allow_ddl: bool) -> None:
    statements = sql_text.statements(query, postgres)
    if not statements:
        raise InvalidInputError("payload['query'] is empty: give one SQL statement")
    if len(statements) > 1:
        raise InvalidInputError(
            f"payload['query'] holds {len(statements)} statements; a task runs exactly one "
            "(send one task per statement, or use payload['many'] for one statement over "
            "many parameter sets)"
        )
    keyword = sql_text.first_keyword(statements[0])
    if keyword in _TRANSACTION_CONTROL:
        raise InvalidInputError(
            f"{keyword} is refused: each task runs in its own transaction; use "
            "payload['many'] to run one statement over many parameter sets atomically"
        )
    if keyword in ("ATTACH", "DETACH", "VACUUM") and not postgres:
        raise InvalidInputError(
            f"{keyword} is refused: a task may use only its configured database"
        )
    if postgres and keyword in _POSTGRES_NEVER:
        raise InvalidInputError(
            f"{keyword} is refused: {_POSTGRES_NEVER[keyword]}; name a configured statement "
            "(Settings.database_statements) for what the server must do"
        )
    if postgres and keyword in _POSTGRES_DDL and not allow_ddl:
        raise InvalidInputError(
            f"{keyword} is refused: schema changes need Settings(database_allow_ddl=True) "
            "or a configured statement (Settings.database_statements)"
        )
