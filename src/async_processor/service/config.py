"""The service's settings: :class:`ServiceConfig`, from a TOML file and the environment.

A file looks like this (every key is optional)::

    [service]
    host = "127.0.0.1"
    port = 8080
    max_body_bytes = 16_777_216      # a bigger request body is refused with 413
    max_payload_bytes = 12_582_912   # a bigger task payload is refused with 413
    rate_limit = 50.0                # requests per second per token (0: no limit)
    rate_burst = 100
    max_wait = 60.0                  # longest long poll (GET /tasks/{id}/wait)
    shutdown_timeout = 30.0          # SIGTERM: how long to drain before cancelling
    limit_concurrency = 1000         # more open connections or requests: 503
    max_long_requests_per_token = 100  # event streams + long polls open per token: 429
    timeout_keep_alive = 5           # an idle keep-alive connection is closed after this
    timeout_request_head = 10.0      # a request's headers must arrive within this
    max_header_bytes = 16384         # longer request line + headers: 400, connection closed
    auth_failure_burst = 10          # wrong tokens from one address before it must wait
    auth_failure_rate = 0.1          # then one more try per 10 s (0: no limit)
    session_ttl = 43200.0            # the dashboard's session cookie lasts 12 h
    trusted_proxies = []             # addresses whose X-Forwarded-For/-Proto are believed

    admins = ["ops"]                 # token names that see every task (the dashboard)

    [service.tokens]                 # name = token (the name appears in the logs)
    teddy-backend = "a long random string"
    ops = "another long random string"

    [service.processors]             # task type name = "module:function" to register
    resize = "my_app.images:resize"

    [processor]                      # AdvancedAsyncProcessor keyword arguments
    max_workers = 20

    [database.statements]            # the only SQL a database_operation over HTTP runs
    child_name = "SELECT name FROM children WHERE id = :id"

The environment overrides the file: ``ASYNC_PROCESSOR_API_TOKENS`` (``name:token`` pairs,
comma-separated; ``name:token:admin`` for an admin), ``ASYNC_PROCESSOR_HOST``,
``ASYNC_PROCESSOR_PORT``.

A token sees, waits on, lists, streams and cancels only the tasks it submitted; an admin
token sees every task (docs/security.md).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from ..processor import AdvancedAsyncProcessor

__all__ = ["ConfigError", "ServiceConfig"]

TOKENS_ENV = "ASYNC_PROCESSOR_API_TOKENS"
HOST_ENV = "ASYNC_PROCESSOR_HOST"
PORT_ENV = "ASYNC_PROCESSOR_PORT"
MIN_TOKEN_LENGTH = 16
#: ``name:token:admin`` in ASYNC_PROCESSOR_API_TOKENS: a token that sees every task.
ADMIN_SUFFIX = ":admin"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: Processor arguments a file may set: plain values only (no executors, settings, policies).
_PROCESSOR_KEYS = frozenset(
    name
    for name in inspect.signature(AdvancedAsyncProcessor).parameters
    if name not in {"self", "retry_policy", "thread_executor", "process_executor", "settings"}
)


class ConfigError(InvalidArgumentError):
    """The service configuration is wrong; the message names the setting and its source."""


class _Invalid(Exception):
    """One wrong setting (``validate`` adds where it came from)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(key, message)
        self.key = key
        self.message = message


#: Whole-number settings and their least value.
_WHOLE_NUMBERS = (
    ("max_body_bytes", 1024),
    ("max_payload_bytes", 1),
    ("rate_burst", 1),
    ("sse_queue_size", 1),
    ("limit_concurrency", 2),
    ("max_long_requests_per_token", 1),
    ("timeout_keep_alive", 1),
    ("max_header_bytes", 1024),
    ("auth_failure_burst", 1),
)
#: Settings in seconds or per second, and whether 0 is allowed (0 rate: no limit).
_SECONDS_AND_RATES = (
    ("rate_limit", True),
    ("max_wait", False),
    ("shutdown_timeout", True),
    ("sse_heartbeat", False),
    ("timeout_request_head", False),
    ("auth_failure_rate", True),
    ("session_ttl", False),
)


@dataclass(slots=True)
class ServiceConfig:
    """Everything the HTTP service needs; see the module docstring for the file format."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens: dict[str, str] = field(default_factory=dict)
    admins: list[str] = field(default_factory=list)
    max_body_bytes: int = 16 * 1024 * 1024
    max_payload_bytes: int = 12 * 1024 * 1024
    rate_limit: float = 50.0
    rate_burst: int = 100
    max_wait: float = 60.0
    shutdown_timeout: float = 30.0
    sse_queue_size: int = 1000
    limit_concurrency: int = 1000
    max_long_requests_per_token: int = 100
    timeout_keep_alive: int = 5
    timeout_request_head: float = 10.0
    max_header_bytes: int = 16 * 1024
    auth_failure_burst: int = 10
    auth_failure_rate: float = 0.1
    session_ttl: float = 12 * 3600.0
    trusted_proxies: list[str] = field(default_factory=list)
    sse_heartbeat: float = 15.0
    processors: dict[str, str] = field(default_factory=dict)
    processor: dict[str, Any] = field(default_factory=dict)
    database_statements: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate("ServiceConfig")

    def validate(self, source: str) -> None:
        """Raise ConfigError naming ``source`` and the first wrong setting."""
        try:
            self._check_address()
            self._check_tokens()
            self._check_numbers()
            self._check_tables()
        except _Invalid as exc:
            raise ConfigError(f"{source}: {exc.key} {exc.message}") from None

    def _check_address(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise _Invalid("host", f"must be a host name or address, got {self.host!r}")
        if not _is_int(self.port) or not 0 <= self.port <= 65535:
            raise _Invalid("port", f"must be a whole number from 0 to 65535, got {self.port!r}")
        if not isinstance(self.trusted_proxies, list) or not all(
            isinstance(a, str) and a for a in self.trusted_proxies
        ):
            raise _Invalid("trusted_proxies", "must be a list of addresses or networks")

    def _check_tokens(self) -> None:
        if not isinstance(self.tokens, Mapping):
            raise _Invalid("tokens", "must be a table of name = token")
        for name, token in self.tokens.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise _Invalid(
                    "tokens", f"name {name!r} must be 1-64 letters, digits, '_', '.', '-'"
                )
            if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
                raise _Invalid(
                    "tokens",
                    f"token of {name!r} must be a string of at least {MIN_TOKEN_LENGTH} "
                    "characters (try: python -c 'import secrets; print(secrets.token_urlsafe())')",
                )
            if any(c.isspace() or c == "," for c in token):
                raise _Invalid("tokens", f"token of {name!r} must not contain spaces or commas")
        if not isinstance(self.admins, list | tuple | set | frozenset):
            raise _Invalid("admins", "must be a list of token names")
        for name in self.admins:
            if name not in self.tokens:
                raise _Invalid("admins", f"names {name!r}, which is not a configured token")

    def _check_numbers(self) -> None:
        for key, low in _WHOLE_NUMBERS:
            value = getattr(self, key)
            if not _is_int(value) or value < low:
                raise _Invalid(key, f"must be a whole number >= {low}, got {value!r}")
        for key, allow_zero in _SECONDS_AND_RATES:
            value = getattr(self, key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and not allow_zero)
            ):
                bound = ">= 0" if allow_zero else "> 0"
                raise _Invalid(key, f"must be a finite number {bound}, got {value!r}")

    def _check_tables(self) -> None:
        if not isinstance(self.processors, Mapping):
            raise _Invalid("processors", "must be a table of task type = 'module:function'")
        for name, spec in self.processors.items():
            if not isinstance(spec, str) or not _IMPORT_SPEC.match(spec):
                raise _Invalid(
                    "processors", f"{name!r} must be 'package.module:function', got {spec!r}"
                )
        if not isinstance(self.processor, Mapping):
            raise _Invalid("processor", "must be a table of AdvancedAsyncProcessor arguments")
        statements = self.database_statements
        if not isinstance(statements, Mapping) or not all(
            isinstance(sql, str) and sql.strip() for sql in statements.values()
        ):
            raise _Invalid("database.statements", "must be a table of name = 'SQL'")
        unknown = set(self.processor) - _PROCESSOR_KEYS
        if unknown:
            raise _Invalid(
                "processor",
                f"has unknown argument(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(_PROCESSOR_KEYS))}",
            )

    def require_tokens(self) -> None:
        """Refuse to serve without a token: every endpoint but /health needs one."""
        if not self.tokens:
            raise ConfigError(
                f"no API tokens configured: set {TOKENS_ENV}=name:token (comma-separated "
                "pairs) or add a [service.tokens] table to the config file"
            )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ServiceConfig:
        """Read ``path`` (TOML, optional), then the environment, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        source = "ServiceConfig"
        if path is not None:
            source = str(path)
            values = _read_file(Path(path))
        if env.get(TOKENS_ENV):
            source = f"{source} + {TOKENS_ENV}"
            tokens, admins = parse_tokens(env[TOKENS_ENV])
            values["tokens"] = {**values.get("tokens", {}), **tokens}
            values["admins"] = [*values.get("admins", []), *admins]
        if env.get(HOST_ENV):
            values["host"] = env[HOST_ENV]
        if env.get(PORT_ENV):
            try:
                values["port"] = int(env[PORT_ENV])
            except ValueError:
                raise ConfigError(
                    f"{PORT_ENV} must be a port number, got {env[PORT_ENV]!r}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("ServiceConfig:", f"{source}:", 1)) from None


def parse_tokens(text: str) -> tuple[dict[str, str], list[str]]:
    """``"name:token,ops:token2:admin"`` -> ``({"name": "token", "ops": "token2"}, ["ops"])``."""
    tokens: dict[str, str] = {}
    admins: list[str] = []
    for pair in text.split(","):
        pair = pair.strip()
        if not pair:
            continue
        name, sep, token = pair.partition(":")
        if token.endswith(ADMIN_SUFFIX):
            token = token.removesuffix(ADMIN_SUFFIX)
            admins.append(name)
        if not sep or not name or not token:
            raise ConfigError(
                f"{TOKENS_ENV} must be comma-separated name:token pairs, got an entry "
                f"without 'name:' ({len(pair)} characters, not shown)"
            )
        if name in tokens:
            raise ConfigError(f"{TOKENS_ENV} names {name!r} twice")
        tokens[name] = token
    return tokens, admins


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown_tables = set(data) - {"service", "processor", "database"}
    if unknown_tables:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(sorted(unknown_tables))}; "
            "expected [service], [processor] and [database.statements]"
        )
    database = data.get("database", {})
    if not isinstance(database, dict) or set(database) - {"statements"}:
        raise ConfigError(f"{path}: [database] may hold only a [database.statements] table")
    service = data.get("service", {})
    processor = data.get("processor", {})
    if not isinstance(service, dict) or not isinstance(processor, dict):
        raise ConfigError(f"{path}: [service] and [processor] must be tables")
    names = {f.name for f in dataclasses.fields(ServiceConfig)} - {
        "processor",
        "database_statements",
    }
    unknown = set(service) - names
    if unknown:
        raise ConfigError(
            f"{path}: unknown [service] key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(names))}"
        )
    return {
        **service,
        "processor": processor,
        "database_statements": database.get("statements", {}),
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
