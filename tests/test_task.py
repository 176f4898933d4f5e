"""ProcessingTask and create_task: fields, validation, priorities, deadlines, JSON."""

from __future__ import annotations

import base64
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from async_processor import (
    InvalidTaskError,
    ProcessingTask,
    ProcessingType,
    TaskPriority,
    create_task,
)


def test_defaults() -> None:
    task = create_task(ProcessingType.TEXT_ANALYSIS)
    assert task.task_type is ProcessingType.TEXT_ANALYSIS
    assert task.payload == {}
    assert task.priority is TaskPriority.NORMAL
    assert task.timeout is None
    assert task.max_retries == 0
    assert (task.cpu_intensive, task.memory_intensive, task.io_bound) == (False, False, False)
    assert task.allow_failure is False
    assert set(task.tags) == set()
    assert list(task.depends_on) == []
    assert task.deadline is None
    assert task.dependency_results == {}
    assert task.cancel_requested is False
    assert isinstance(task.id, str) and task.id
    assert task.created_at > 0


def test_every_field_by_keyword() -> None:
    task = create_task(
        ProcessingType.AUDIO_ENHANCEMENT,
        {"audio_data": b"\x01\x02"},
        TaskPriority.CRITICAL,
        timeout=2.5,
        max_retries=3,
        cpu_intensive=True,
        memory_intensive=True,
        io_bound=True,
        tags={"audio", "session"},
        depends_on=["a", "b"],
        allow_failure=True,
        deadline=2_000_000_000,
        id="task-1",
        created_at=1_700_000_000.0,
        dependency_results={"a": 1},
    )
    assert task.task_type is ProcessingType.AUDIO_ENHANCEMENT
    assert task.payload == {"audio_data": b"\x01\x02"}
    assert task.priority is TaskPriority.CRITICAL
    assert task.timeout == 2.5
    assert task.max_retries == 3
    assert (task.cpu_intensive, task.memory_intensive, task.io_bound) == (True, True, True)
    assert task.tags == {"audio", "session"}
    assert list(task.depends_on) == ["a", "b"]
    assert task.allow_failure is True
    assert task.deadline == 2_000_000_000.0 and isinstance(task.deadline, float)
    assert task.id == "task-1"
    assert task.created_at == 1_700_000_000.0
    assert task.dependency_results == {"a": 1}
    assert create_task("x", priority=TaskPriority.LOW).priority is TaskPriority.LOW
    assert create_task("x", payload={"k": 1}).payload == {"k": 1}


def test_ids_are_unique() -> None:
    ids = {create_task("x").id for _ in range(10_000)}
    assert len(ids) == 10_000


def test_task_type_by_value_string_and_custom_name() -> None:
    assert create_task("emotion_analysis").task_type is ProcessingType.EMOTION_ANALYSIS
    named = create_task("my_plugin")
    assert named.task_type == "my_plugin"
    assert named.type_name == "my_plugin"
    assert create_task(ProcessingType.CUSTOM).type_name == "custom"


def test_payload_none_and_mappings_become_dicts() -> None:
    assert create_task("x", None).payload == {}
    task = create_task("x", MappingProxyType({"a": 1}))
    assert type(task.payload) is dict and task.payload == {"a": 1}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("critical", TaskPriority.CRITICAL),
        ("HIGH", TaskPriority.HIGH),
        ("Normal", TaskPriority.NORMAL),
        ("low", TaskPriority.LOW),
        ("batch", TaskPriority.BATCH),
        (1, TaskPriority.CRITICAL),
        (2, TaskPriority.HIGH),
        (3, TaskPriority.NORMAL),
        (4, TaskPriority.LOW),
        (5, TaskPriority.BATCH),
        (TaskPriority.HIGH, TaskPriority.HIGH),
    ],
)
def test_priority_by_name_and_number(given: Any, expected: TaskPriority) -> None:
    assert create_task("x", priority=given).priority is expected
    assert ProcessingTask("x", priority=given).priority is expected


def test_aware_datetime_deadline_is_converted() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    task = create_task("x", deadline=when)
    assert task.deadline == when.timestamp()
    east = datetime(2030, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert create_task("x", deadline=east).deadline == when.timestamp()


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"task_type": 42}, "task_type"),
    ({"task_type": ""}, "task_type"),
    ({"task_type": None}, "task_type"),
    ({"payload": [1, 2]}, "payload"),
    ({"payload": "text"}, "payload"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": 0}, "priority"),
    ({"priority": 6}, "priority"),
    ({"priority": True}, "priority"),
    ({"priority": 2.0}, "priority"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"timeout": True}, "timeout"),
    ({"timeout": "30"}, "timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 1.0}, "max_retries"),
    ({"max_retries": True}, "max_retries"),
    ({"max_retries": "3"}, "max_retries"),
    ({"tags": {1, 2}}, "tags"),
    ({"tags": ["ok", 3]}, "tags"),
    ({"tags": "audio"}, "tags"),
    ({"tags": None}, "tags"),
    ({"depends_on": "parent"}, "depends_on"),
    ({"depends_on": [1]}, "depends_on"),
    ({"depends_on": [""]}, "depends_on"),
    ({"depends_on": ["a", "a"]}, "depends_on"),
    ({"depends_on": None}, "depends_on"),
    ({"deadline": datetime(2030, 1, 1)}, "deadline"),  # naive on purpose
    ({"deadline": float("inf")}, "deadline"),
    ({"deadline": True}, "deadline"),
    ({"deadline": "tomorrow"}, "deadline"),
    ({"cpu_intensive": 1}, "cpu_intensive"),
    ({"memory_intensive": "yes"}, "memory_intensive"),
    ({"io_bound": None}, "io_bound"),
    ({"allow_failure": 0}, "allow_failure"),
    ({"id": ""}, "id"),
    ({"id": 7}, "id"),
]


@pytest.mark.parametrize(("fields", "named"), BAD_FIELDS, ids=[repr(f) for f, _ in BAD_FIELDS])
def test_bad_fields_are_refused_naming_the_field(fields: dict[str, Any], named: str) -> None:
    arguments: dict[str, Any] = {"task_type": "x", **fields}
    with pytest.raises(InvalidTaskError, match=named):
        ProcessingTask(**arguments)
    task_type = arguments.pop("task_type")
    with pytest.raises(InvalidTaskError, match=named):
        create_task(task_type, **arguments)


def test_messages_say_what_to_do() -> None:
    with pytest.raises(InvalidTaskError, match=r"depends_on=\[task\.id\]"):
        create_task("x", depends_on="parent")
    with pytest.raises(InvalidTaskError, match=r"wrap the value"):
        create_task("x", ["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidTaskError, match="CRITICAL, HIGH, NORMAL, LOW, BATCH or 1-5"):
        create_task("x", priority="urgent")
    with pytest.raises(InvalidTaskError, match="naive datetime is ambiguous"):
        create_task("x", deadline=datetime(2030, 1, 1))


@pytest.mark.parametrize("keyword", ["retries", "cancel_requested", "name", "type"])
def test_unknown_create_task_keyword_is_refused(keyword: str) -> None:
    fields: dict[str, Any] = {keyword: 1}
    with pytest.raises(InvalidTaskError, match=rf"unknown field\(s\) {keyword}; known fields: "):
        create_task("x", None, **fields)


def test_to_dict_is_plain_json() -> None:
    task = create_task(
        ProcessingType.AI_RESPONSE,
        {
            "audio_data": b"\x00\x01\xfe",
            "nested": {"chunks": [b"ab", bytearray(b"cd")], "set": {"b", "a"}},
            "priority": TaskPriority.HIGH,
            "count": 3,
            "none": None,
            "pair": (1, 2),
            "thing": object,
        },
        TaskPriority.BATCH,
        tags={"z", "a", "m"},
        depends_on=["p1"],
        timeout=1.5,
        deadline=2_000_000_000.0,
    )
    data = task.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["task_type"] == "ai_response"
    assert data["priority"] == 5
    assert data["tags"] == ["a", "m", "z"]
    assert data["depends_on"] == ["p1"]
    assert data["timeout"] == 1.5 and data["deadline"] == 2_000_000_000.0
    payload = data["payload"]
    assert payload["audio_data"] == {"$bytes": base64.b64encode(b"\x00\x01\xfe").decode()}
    assert payload["nested"]["chunks"] == [{"$bytes": "YWI="}, {"$bytes": "Y2Q="}]
    assert payload["nested"]["set"] == ["a", "b"]
    assert payload["priority"] == 2
    assert payload["pair"] == [1, 2]
    assert payload["thing"] == {"$repr": repr(object)}
    assert set(data) == {
        "id",
        "task_type",
        "payload",
        "priority",
        "timeout",
        "max_retries",
        "cpu_intensive",
        "memory_intensive",
        "io_bound",
        "tags",
        "depends_on",
        "allow_failure",
        "deadline",
        "created_at",
        "dependency_results",
        "retry",
        "run_at",
    }


def test_from_dict_round_trip() -> None:
    task = create_task(
        "my_plugin",
        {"audio_data": b"\x00\xffRIFF", "items": [b"x", {"deep": b"y"}], "text": "hi"},
        "high",
        timeout=3.0,
        max_retries=2,
        cpu_intensive=True,
        tags={"b", "a"},
        depends_on=["d1", "d2"],
        allow_failure=True,
        deadline=datetime(2031, 5, 6, tzinfo=UTC),
    )
    wire = json.loads(json.dumps(task.to_dict()))
    again = ProcessingTask.from_dict(wire)
    assert again.id == task.id
    assert again.task_type == "my_plugin"
    assert again.payload == task.payload
    assert isinstance(again.payload["audio_data"], bytes)
    assert again.priority is TaskPriority.HIGH
    assert again.timeout == 3.0 and again.max_retries == 2
    assert again.cpu_intensive is True and again.allow_failure is True
    assert again.tags == {"a", "b"}
    assert list(again.depends_on) == ["d1", "d2"]
    assert again.deadline == task.deadline
    assert again.created_at == task.created_at
    assert again.to_dict() == task.to_dict()
    enum_typed = ProcessingTask.from_dict(create_task(ProcessingType.NOTIFICATION).to_dict())
    assert enum_typed.task_type is ProcessingType.NOTIFICATION


def test_from_dict_refuses_bad_input() -> None:
    with pytest.raises(InvalidTaskError, match="task_type"):
        ProcessingTask.from_dict({"payload": {}})
    with pytest.raises(InvalidTaskError, match="unknown task fields: colour"):
        ProcessingTask.from_dict({"task_type": "x", "colour": "red"})
    with pytest.raises(InvalidTaskError, match="timeout"):
        ProcessingTask.from_dict({"task_type": "x", "timeout": -1})


def test_default_dependency_results_are_not_shared_state() -> None:
    first, second = create_task("x"), create_task("x")
    with pytest.raises(TypeError):
        first.dependency_results["leak"] = 1
    assert second.dependency_results == {}


@pytest.mark.parametrize(
    ("field", "empty", "filled"),
    [("tags", [], ["a"]), ("tags", (), ("a",)), ("depends_on", set(), {"a"})],
)
def test_empty_collections_are_validated_like_filled_ones(
    field: str, empty: Any, filled: Any
) -> None:
    # Regression: tags=[] was refused although tags=["a"] was accepted.
    create_task("x", None, **{field: filled})  # accepted
    task = create_task("x", None, **{field: empty})  # so this must be too
    assert not getattr(task, field)


def test_shared_empty_dependency_results_refuses_writes() -> None:
    task = create_task("x")
    with pytest.raises(TypeError, match="filled in by the processor"):
        task.dependency_results["a"] = 1
    assert create_task("y").dependency_results == {}


def test_task_pickles_with_the_standard_library() -> None:
    task = create_task("x", {"audio": b"\x00\x01"}, tags={"a"})
    copy = pickle.loads(pickle.dumps(task))
    assert copy.to_dict() == task.to_dict()
