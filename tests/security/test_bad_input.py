"""Finding 7 of issue 10: hostile JSON answers 400/422, never 500, and logs no traceback."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from service.conftest import RunningService

from async_processor.service.submission import MAX_JSON_DEPTH, nesting_exceeds


def nested(depth: int) -> str:
    """JSON text of arrays nesting ``depth`` levels."""
    return "[" * depth + "1" + "]" * depth


def task_nested(depth: int) -> str:
    """A task body nesting ``depth`` levels in all (the body itself and payload count)."""
    return '{"task_type": "echo", "payload": {"deep": ' + nested(depth - 2) + "}}"


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not logged, [r.getMessage() for r in logged]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 100_000])
async def test_deep_json_is_a_400_without_a_traceback(
    service: RunningService, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(base_url=service.base_url, headers=service.headers) as c:
        for path, body in (
            ("/tasks", task_nested(depth)),
            ("/tasks/batch", '{"tasks": [' + nested(depth) + "]}"),
        ):
            response = await c.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "json_too_deep"
        form = await c.post("/tasks", files={"task": (None, task_nested(depth))})
        assert form.status_code == 400 and form.json()["error"] == "json_too_deep"
    no_tracebacks(caplog)


async def test_json_at_the_nesting_limit_is_accepted(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, headers=service.headers) as c:
        response = await c.post(
            "/tasks",
            content=task_nested(MAX_JSON_DEPTH),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 201, response.text
        done = await c.get(f"/tasks/{response.json()['id']}/wait", params={"timeout": 10})
        assert done.json()["status"] == "completed"


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ('{"a": "[[[[[[[[[["}', False),  # brackets inside strings do not count
        ('{"a": "\\"[[[[[[[[["}', False),  # nor after an escaped quote
        ("[[[[[]]]]]", True),
        ("[[[[]]]]", False),
        ("[{}, [{}], {}]", False),
        ("[[[[[[", True),  # unbalanced and deep: refused before parsing
        ("", False),
    ],
)
def test_nesting_is_measured_on_the_bytes(text: str, deep: bool) -> None:
    assert nesting_exceeds(text.encode(), 4) is deep


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", True),
        ("timeout", "5"),
        ("cpu_intensive", "yes"),
        ("io_bound", 1),
        ("allow_failure", "true"),
        ("memory_intensive", 0),
        ("max_retries", "3"),
        ("max_retries", 2.0),
        ("priority", "1"),
        ("priority", True),
        ("deadline", "tomorrow"),
        ("deadline", True),
        ("tags", "child-1"),
        ("depends_on", "task-1"),
    ],
)
async def test_loose_types_are_refused(
    service: RunningService, caplog: pytest.LogCaptureFixture, field: str, value: Any
) -> None:
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(base_url=service.base_url, headers=service.headers) as c:
        response = await c.post("/tasks", json={"task_type": "echo", field: value})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "validation_error" and field in body["detail"]
        batch = await c.post("/tasks/batch", json={"tasks": [{"task_type": "echo", field: value}]})
        assert batch.status_code == 422, batch.text
    no_tracebacks(caplog)
