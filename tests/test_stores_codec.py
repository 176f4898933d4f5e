"""The msgpack encoding of tasks and results, and the store= argument."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("msgpack")

from async_processor import (
    InvalidArgumentError,
    ProcessingTask,
    ProcessingType,
    RetryPolicy,
    TaskPriority,
    TaskResult,
    TaskStatus,
)
from async_processor.stores import (
    MemoryStore,
    UnstorableTaskError,
    open_store,
)
from async_processor.stores.codec import (
    decode_result,
    decode_task,
    encode_result,
    encode_task,
)
from async_processor.stores.sqlite import SqliteStore


def test_task_round_trip_keeps_every_field_and_bytes() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    payload: dict[Any, Any] = {
        "image": b"\x00\xff" * 10,
        "size": (64, 32),
        "names": {"a"},
        "at": when,
        7: [1.5],
    }
    task = ProcessingTask(
        "resize",
        payload,
        TaskPriority.HIGH,
        timeout=2.5,
        max_retries=3,
        cpu_intensive=True,
        memory_intensive=True,
        io_bound=True,
        tags={"x", "y"},
        depends_on=["a1", "b2"],
        allow_failure=True,
        deadline=1e10,
        retry=RetryPolicy(0.5, 4.0, 3.0, retry_on=(ConnectionError, TimeoutError)),
        run_at=2e9,
    )
    back = decode_task(encode_task(task))
    assert back.payload == task.payload
    assert type(back.payload["image"]) is bytes
    assert type(back.payload["size"]) is tuple
    for name in (
        "id", "task_type", "priority", "timeout", "max_retries", "cpu_intensive",
        "memory_intensive", "io_bound", "tags", "depends_on", "allow_failure", "deadline",
        "created_at", "retry", "run_at",
    ):  # fmt: skip
        assert getattr(back, name) == getattr(task, name), name
    assert back.task_type is not ProcessingType.CUSTOM


def test_encoding_is_compact() -> None:
    task = ProcessingTask("t", {"audio": b"\x01" * 1000})
    assert len(encode_task(task)) < 1100  # bytes are not base64-inflated


@pytest.mark.parametrize(
    ("payload", "hint"),
    [
        ({"processor": lambda p: p}, "register_processor"),
        ({"thing": object()}, "plain data"),
        ({"big": 1 << 70}, "plain data"),
    ],
)
def test_unstorable_payloads_are_refused(payload: dict[str, object], hint: str) -> None:
    task = ProcessingTask(ProcessingType.CUSTOM, payload)
    with pytest.raises(UnstorableTaskError, match=hint) as caught:
        encode_task(task)
    assert task.id in str(caught.value)


def test_result_round_trip_and_unstorable_value_kept_as_repr() -> None:
    result = TaskResult(
        "t1", TaskStatus.COMPLETED, {"b": b"\x00", "obj": object()}, None, 0.5, 1.0, 2.0,
        3.0, 2, "async-0", "kind", TaskPriority.LOW, frozenset({"tag"}),
    )  # fmt: skip
    back = decode_result("t1", encode_result(result))
    assert back.result["b"] == b"\x00"
    assert back.result["obj"].startswith("<object object")
    assert (back.status, back.attempts, back.priority, back.tags) == (
        TaskStatus.COMPLETED, 2, TaskPriority.LOW, frozenset({"tag"}),
    )  # fmt: skip


def test_open_store_arguments() -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store(None), MemoryStore)
    store = open_store("sqlite:///dir/x.db?synchronous=full&timeout=0.5")
    assert isinstance(store, SqliteStore)
    assert (store.path, store.synchronous, store.timeout) == ("dir/x.db", "FULL", 0.5)
    assert open_store(store) is store
    for bad, message in [
        ("redis://x", "store must be"),
        ("sqlite:///", "names no file"),
        ("sqlite:///x.db?fsync=1", "unknown option"),
        ("sqlite:///x.db?timeout=soon", "timeout must be"),
        ("sqlite:///x.db?synchronous=off", "NORMAL or FULL"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            open_store(bad)


def test_failed_result_keeps_error_type_and_traceback() -> None:
    result = TaskResult(
        "t2", TaskStatus.FAILED, None, "KeyError: 'text'", error_type="KeyError",
        traceback="Traceback (most recent call last):\n  ...\nKeyError: 'text'\n",
    )  # fmt: skip
    back = decode_result("t2", encode_result(result))
    assert back.to_dict() == result.to_dict()
    assert (back.error_type, back.traceback) == (result.error_type, result.traceback)


def test_result_written_before_error_type_was_kept_still_decodes() -> None:
    from async_processor.stores.codec import _pack

    old = _pack(["failed", None, "boom", 0.1, 1.0, 2.0, 3.0, 1, "async-0", "t", 3, []], None)
    back = decode_result("t3", old)
    assert (back.status, back.error, back.error_type, back.traceback) == (
        TaskStatus.FAILED, "boom", None, None,
    )  # fmt: skip


def test_task_written_before_retry_and_run_at_were_kept_still_decodes() -> None:
    from async_processor.stores.codec import _pack

    fields = ["t4", "kind", {}, 3, None, 0, False, False, False, [], [], False, None, 1.0]
    back = decode_task(_pack(fields, None))
    assert (back.id, back.retry, back.run_at) == ("t4", None, None)
