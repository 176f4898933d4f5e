"""Compact binary encoding of tasks and results with msgpack (the ``store`` extra).

Bytes stay bytes; tuples, sets and aware or naive datetimes come back as they went in.
Payloads are encoded strictly: anything else (a function, an arbitrary object) raises
:class:`~async_processor.stores.base.UnstorableTaskError`. Results are encoded leniently:
a value msgpack cannot hold is kept as its ``repr()`` string.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from ..errors import MissingExtraError
from ..lifecycle import TaskStatus
from ..result import TaskResult
from ..task import ProcessingTask, TaskPriority
from .base import UnstorableTaskError

try:
    import msgpack  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
    raise MissingExtraError(
        "durable task stores need msgpack: pip install 'async-processor[store]'"
    ) from exc

__all__ = ["decode_result", "decode_task", "encode_result", "encode_task"]

_SET, _TUPLE, _DATETIME, _REPR = 1, 2, 3, 4
_PLAIN: tuple[type[Any], ...] = (dict, list, str, int, float, bytes)


class _Unstorable(TypeError):
    """msgpack met a value it cannot store."""


def _strict(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return msgpack.ExtType(_SET, _pack(list(value), _strict))
    if isinstance(value, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(value), _strict))
    if isinstance(value, datetime):
        return msgpack.ExtType(_DATETIME, value.isoformat().encode())
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    for plain in _PLAIN:  # subclasses of the plain types
        if isinstance(value, plain):
            return plain(value)
    raise _Unstorable(f"a {type(value).__name__} ({value!r:.80})")


def _lenient(value: Any) -> Any:
    try:
        return _strict(value)
    except _Unstorable:
        return msgpack.ExtType(_REPR, repr(value).encode())


def _pack(value: Any, default: Any) -> bytes:
    data: bytes = msgpack.packb(value, default=default, use_bin_type=True, strict_types=True)
    return data


def _ext(code: int, data: bytes) -> Any:
    if code == _SET:
        return set(_unpack(data))
    if code == _TUPLE:
        return tuple(_unpack(data))
    if code == _DATETIME:
        return datetime.fromisoformat(data.decode())
    if code == _REPR:
        return data.decode()
    return msgpack.ExtType(code, data)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext, raw=False, strict_map_key=False)


def encode_task(task: ProcessingTask) -> bytes:
    """The task's fields but ``dependency_results`` (rebuilt on recovery).

    Raises:
        UnstorableTaskError: the payload holds something msgpack cannot store.
    """
    fields = [
        task.id,
        task.type_name,
        task.payload,
        task.priority.value,
        task.timeout,
        task.max_retries,
        task.cpu_intensive,
        task.memory_intensive,
        task.io_bound,
        sorted(task.tags),
        list(task.depends_on),
        task.allow_failure,
        task.deadline,
        task.created_at,
        None if task.retry is None else task.retry.to_dict(),
        task.run_at,
    ]
    try:
        return _pack(fields, _strict)
    except (_Unstorable, OverflowError, ValueError) as exc:
        hint = (
            "; a CUSTOM task's payload['processor'] cannot be stored: register the function "
            "with register_processor('name', func) and submit tasks of type 'name' instead"
            if callable(task.payload.get("processor"))
            else "; use plain data (dict, list, str, int, float, bool, None, bytes)"
        )
        raise UnstorableTaskError(
            f"task {task.id} cannot be stored in a durable store: its payload holds {exc}{hint}"
        ) from exc


def decode_task(data: bytes) -> ProcessingTask:
    """A task written by :func:`encode_task` (one written before ``retry`` and ``run_at``
    were kept has neither)."""
    fields = _unpack(data)
    retry, run_at = [*fields[14:16], None, None][:2]
    (
        task_id,
        type_name,
        payload,
        priority,
        timeout,
        max_retries,
        cpu_intensive,
        memory_intensive,
        io_bound,
        tags,
        depends_on,
        allow_failure,
        deadline,
        created_at,
    ) = fields[:14]
    return ProcessingTask(
        type_name,
        payload,
        TaskPriority(priority),
        timeout=timeout,
        max_retries=max_retries,
        cpu_intensive=cpu_intensive,
        memory_intensive=memory_intensive,
        io_bound=io_bound,
        tags=set(tags),
        depends_on=depends_on,
        allow_failure=allow_failure,
        deadline=deadline,
        id=task_id,
        created_at=created_at,
        retry=retry,
        run_at=run_at,
    )


def encode_result(result: TaskResult) -> bytes:
    """Every field of the result; a value msgpack cannot store is kept as its repr()."""
    return _pack(
        [
            result.status.value,
            result.result,
            result.error,
            result.execution_time,
            result.created_at,
            result.started_at,
            result.completed_at,
            result.attempts,
            result.worker_id,
            result.task_type,
            result.priority.value,
            sorted(result.tags),
            result.error_type,
            result.traceback,
        ],
        _lenient,
    )


def decode_result(task_id: str, data: bytes) -> TaskResult:
    """A result written by :func:`encode_result` (one written before ``error_type`` and
    ``traceback`` were kept has neither)."""
    fields = _unpack(data)
    error_type, traceback = fields[12:14] if len(fields) >= 14 else (None, None)
    (
        status,
        value,
        error,
        execution_time,
        created_at,
        started_at,
        completed_at,
        attempts,
        worker_id,
        task_type,
        priority,
        tags,
    ) = fields[:12]
    return TaskResult(
        task_id,
        TaskStatus(status),
        value,
        error,
        execution_time,
        created_at,
        started_at,
        completed_at,
        attempts,
        worker_id,
        task_type,
        TaskPriority(priority),
        frozenset(tags),
        error_type,
        traceback,
    )
