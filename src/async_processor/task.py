"""What a user submits: a :class:`ProcessingTask`, built directly or with :func:`create_task`."""

from __future__ import annotations

import base64
import itertools
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .errors import InvalidArgumentError, InvalidTaskError
from .retry import RetryPolicy

__all__ = ["ProcessingTask", "ProcessingType", "TaskPriority", "create_task", "new_task_id"]


class ProcessingType(str, Enum):
    """The kinds of work the teddy bear needs; ``CUSTOM`` runs ``payload["processor"]``."""

    AUDIO_TRANSCRIPTION = "audio_transcription"
    AUDIO_ENHANCEMENT = "audio_enhancement"
    AI_RESPONSE = "ai_response"
    EMOTION_ANALYSIS = "emotion_analysis"
    IMAGE_GENERATION = "image_generation"
    IMAGE_PROCESSING = "image_processing"
    TEXT_ANALYSIS = "text_analysis"
    DATA_ANALYTICS = "data_analytics"
    DATABASE_OPERATION = "database_operation"
    NOTIFICATION = "notification"
    #: Beyond the guide: the bear's voice (text to WAV).
    SPEECH_SYNTHESIS = "speech_synthesis"
    CUSTOM = "custom"


class TaskPriority(int, Enum):
    """Lower is more urgent. A free worker always takes the most urgent ready task."""

    CRITICAL = 1
    HIGH = 2
    NORMAL = 3
    LOW = 4
    BATCH = 5

    @classmethod
    def parse(cls, value: TaskPriority | int | str) -> TaskPriority:
        """Accept a member, its number (1-5) or its name (any case)."""
        if isinstance(value, TaskPriority):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
            return cls(value)
        names = ", ".join(cls.__members__)
        raise InvalidTaskError(f"priority must be one of {names} or 1-5, got {value!r}")


def _id_prefix() -> str:
    return os.urandom(8).hex()


_prefix = _id_prefix()
_counter = itertools.count(1)


def _reseed_after_fork() -> None:
    global _prefix
    _prefix = _id_prefix()


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_task_id() -> str:
    """A unique id: a random per-process prefix and a counter (cheaper than uuid4)."""
    return f"{_prefix}-{next(_counter):08x}"


@dataclass(slots=True, eq=False)
class ProcessingTask:
    """One unit of work, with its scheduling hints and dependencies.

    ``timeout`` is per attempt; ``max_retries`` counts extra attempts. ``tags`` is a set of
    strings (an empty frozenset by default); ``depends_on`` lists the ids of tasks that must
    complete first. ``deadline`` is an
    absolute time (Unix seconds or an aware datetime) after which a task that has not
    started is not started at all. ``dependency_results`` is filled just before the task
    runs, with each dependency's result. A thread task may poll ``cancel_requested`` to
    stop early once it has been cancelled or has timed out. ``retry`` replaces the
    processor's ``retry_policy`` for this task: its backoff and which failures are retried
    (``RetryPolicy.retry_on``); ``max_retries`` still says how many. ``run_at`` (Unix
    seconds or an aware datetime) is the time before which the task does not start.
    """

    task_type: ProcessingType | str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: TaskPriority = TaskPriority.NORMAL
    timeout: float | None = None
    max_retries: int = 0
    cpu_intensive: bool = False
    memory_intensive: bool = False
    io_bound: bool = False
    tags: Set[str] = field(default_factory=lambda: _NO_TAGS)
    depends_on: Sequence[str] = ()
    allow_failure: bool = False
    deadline: float | None = None
    id: str = field(default_factory=new_task_id)
    created_at: float = field(default_factory=time.time)
    dependency_results: dict[str, Any] = field(default_factory=lambda: _NO_RESULTS)
    cancel_requested: bool = False
    retry: RetryPolicy | None = None
    run_at: float | None = None

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.task_type, ProcessingType):
            self.task_type = _task_type(self.task_type)
        if not isinstance(self.payload, dict):
            self.payload = _payload(self.payload)
        if type(self.priority) is not TaskPriority:
            self.priority = TaskPriority.parse(self.priority)
        if self.timeout is not None:
            self.timeout = _positive_seconds("timeout", self.timeout)
        if type(self.max_retries) is not int or self.max_retries < 0:
            raise InvalidTaskError(
                f"max_retries must be a whole number >= 0, got {self.max_retries!r}"
            )
        if self.tags is not _NO_TAGS:
            self.tags = _string_set("tags", self.tags) or _NO_TAGS
        if self.depends_on != ():
            self.depends_on = _id_list(self.depends_on) or ()
        if self.deadline is not None:
            self.deadline = _time_seconds("deadline", self.deadline)
        if self.run_at is not None or self.retry is not None:
            self._validate_schedule()
        if not isinstance(self.id, str) or not self.id:
            raise InvalidTaskError(f"id must be a non-empty string, got {self.id!r}")
        if not (
            type(self.cpu_intensive) is bool
            and type(self.memory_intensive) is bool
            and type(self.io_bound) is bool
            and type(self.allow_failure) is bool
        ):
            self._refuse_flags()

    def _validate_schedule(self) -> None:
        if self.run_at is not None:
            self.run_at = _time_seconds("run_at", self.run_at)
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            self.retry = _retry_policy(self.retry)

    def _refuse_flags(self) -> None:
        for name in ("cpu_intensive", "memory_intensive", "io_bound", "allow_failure"):
            if type(getattr(self, name)) is not bool:
                raise InvalidTaskError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def type_name(self) -> str:
        """The task type as a plain string (the registry key)."""
        t = self.task_type
        return t._value_ if type(t) is ProcessingType else t

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: enums by value, sets as sorted lists, bytes as base64."""
        return {
            "id": self.id,
            "task_type": self.type_name,
            "payload": to_json(self.payload),
            "priority": self.priority.value,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "cpu_intensive": self.cpu_intensive,
            "memory_intensive": self.memory_intensive,
            "io_bound": self.io_bound,
            "tags": sorted(self.tags),
            "depends_on": list(self.depends_on),
            "allow_failure": self.allow_failure,
            "deadline": self.deadline,
            "created_at": self.created_at,
            "dependency_results": to_json(self.dependency_results),
            "retry": None if self.retry is None else self.retry.to_dict(),
            "run_at": self.run_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessingTask:
        """Rebuild a task from :meth:`to_dict` output (bytes come back as bytes)."""
        if not isinstance(data, Mapping) or "task_type" not in data:
            raise InvalidTaskError("from_dict needs a mapping with at least 'task_type'")
        known = set(cls.__dataclass_fields__) - {"cancel_requested"}
        unknown = set(data) - known
        if unknown:
            raise InvalidTaskError(f"unknown task fields: {', '.join(sorted(unknown))}")
        fields = dict(data)
        for name in ("payload", "dependency_results"):
            if name in fields:
                fields[name] = from_json(fields[name])
        if "tags" in fields:
            fields["tags"] = set(fields["tags"])
        return cls(**fields)


_NO_TAGS: frozenset[str] = frozenset()


class _NoDependencyResults(dict[str, Any]):
    """The shared, read-only, empty default of ``dependency_results``.

    Sharing one object spares every task without dependencies an allocation; the
    processor replaces it with a real dict when a first dependency result arrives.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("dependency_results is filled in by the processor")

    __setitem__ = __delitem__ = __ior__ = _refuse
    update = pop = popitem = clear = setdefault = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (_no_dependency_results, ())


def _no_dependency_results() -> dict[str, Any]:
    return _NO_RESULTS


_NO_RESULTS: dict[str, Any] = _NoDependencyResults()
_TYPE_VALUES = frozenset(t.value for t in ProcessingType)


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTaskError(f"{name} must be a number of seconds, got {value!r}")
    if not value > 0 or math.isinf(value):
        raise InvalidTaskError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _retry_policy(value: Any) -> RetryPolicy:
    """A RetryPolicy, or one from its ``to_dict()``; InvalidTaskError otherwise."""
    if isinstance(value, Mapping):
        try:
            return RetryPolicy.from_dict(dict(value))
        except (InvalidArgumentError, KeyError, TypeError) as exc:
            raise InvalidTaskError(f"retry: {exc}") from None
    raise InvalidTaskError(
        f"retry must be a RetryPolicy, e.g. RetryPolicy(retry_on=(ConnectionError,)), got {value!r}"
    )


def _task_type(value: Any) -> ProcessingType | str:
    """A built-in type's name as the ProcessingType, any other name as it is."""
    if not isinstance(value, str) or not value:
        raise InvalidTaskError(
            f"task_type must be a ProcessingType or a registered name, got {value!r}"
        )
    return ProcessingType(value) if value in _TYPE_VALUES else value


def _payload(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise InvalidTaskError(
        f"payload must be a dict, got {type(value).__name__}; "
        "wrap the value, e.g. {'data': value}"
    )


def _time_seconds(name: str, value: Any) -> float:
    """An absolute time as Unix seconds: a finite number, or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidTaskError(
                f"{name} must be an aware datetime (with tzinfo) or a Unix timestamp; "
                "a naive datetime is ambiguous"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidTaskError(
            f"{name} must be a Unix timestamp or an aware datetime, got {value!r}"
        )
    return float(value)


def _string_set(name: str, value: Any) -> set[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidTaskError(f"{name} must be a set of strings, got {value!r}")
    items = set(value)
    if not all(isinstance(item, str) for item in items):
        raise InvalidTaskError(f"{name} must contain only strings, got {sorted(map(repr, items))}")
    return items


def _id_list(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidTaskError(
            f"depends_on must be a list of task ids, got {value!r}; "
            "for one dependency write depends_on=[task.id]"
        )
    ids = list(value)
    for item in ids:
        if not isinstance(item, str) or not item:
            raise InvalidTaskError(f"depends_on must contain task id strings, got {item!r}")
    if len(set(ids)) != len(ids):
        raise InvalidTaskError(f"depends_on lists the same id twice: {ids}")
    return ids


def to_json(value: Any) -> Any:
    """Turn a payload into plain JSON types; bytes become ``{"$bytes": base64}``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(to_json(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return {"$repr": repr(value)}


def from_json(value: Any) -> Any:
    """Undo :func:`to_json` for bytes; everything else is already plain."""
    if isinstance(value, dict):
        if len(value) == 1 and "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def create_task(
    task_type: ProcessingType | str,
    payload: Mapping[str, Any] | None = None,
    priority: TaskPriority | int | str = TaskPriority.NORMAL,
    *,
    delay: float | None = None,
    **fields: Any,
) -> ProcessingTask:
    """Build a :class:`ProcessingTask`; any of its fields may be passed by keyword.

    ``delay``: seconds from now before the task may start (sets ``run_at``).

    Raises:
        InvalidTaskError: a field has the wrong type or value; the message names it.
    """
    if delay is not None:
        fields["run_at"] = _run_at_after(delay, fields.get("run_at"))
    unknown = fields.keys() - _FIELD_NAMES
    if unknown:
        raise InvalidTaskError(
            f"create_task() got unknown field(s) {', '.join(sorted(unknown))}; "
            f"known fields: {', '.join(sorted(_FIELD_NAMES))}"
        )
    return ProcessingTask(task_type, payload, priority, **fields)  # type: ignore[arg-type]


def _run_at_after(delay: Any, run_at: Any) -> float:
    if run_at is not None:
        raise InvalidTaskError("pass delay= or run_at=, not both")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
        raise InvalidTaskError(f"delay must be a number of seconds >= 0, got {delay!r}")
    if math.isinf(delay):
        raise InvalidTaskError(f"delay must be finite, got {delay!r}")
    return time.time() + delay


_FIELD_NAMES = frozenset(ProcessingTask.__dataclass_fields__) - {
    "task_type",
    "payload",
    "priority",
    "cancel_requested",
}
