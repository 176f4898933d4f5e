"""Finding 1 of issue 10 (HTTP part): a database task over HTTP names a statement
configured on the server; raw SQL is refused (422 ``raw_sql_refused``) before anything
connects. Before the fix, ``fts3_tokenizer`` then an fts3 table segfaulted the server."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service.conftest import ADMINS, TOKENS, RunningService, start_service

from async_processor.processors.settings import Settings
from async_processor.service import ServiceConfig
from async_processor.service.app import processor_settings

RAW = [
    "SELECT fts3_tokenizer('evil', x'4041414141414141')",
    "CREATE VIRTUAL TABLE boom USING fts3(content, tokenize=evil)",
    "PRAGMA query_only=ON",
    "PRAGMA writable_schema=ON",
    "DROP TABLE children",
    "SELECT zeroblob(100000000)",
]


@pytest.fixture
def sql_service(tmp_path: Path) -> Iterator[RunningService]:
    database = tmp_path / "children.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE children (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO children VALUES (1, 'Mia')")
    config = ServiceConfig(
        tokens=dict(TOKENS),
        admins=list(ADMINS),
        database_statements={"child_name": "SELECT name FROM children WHERE id = :id"},
    )
    settings = processor_settings(config, Settings(databases={"default": f"sqlite:///{database}"}))
    with start_service(config, builtin_processors=True, settings=settings) as service:
        yield service
    with sqlite3.connect(database) as db:  # nothing raw reached the file
        assert db.execute("SELECT name FROM children").fetchall() == [("Mia",)]


def database_task(**payload: Any) -> dict[str, Any]:
    return {"task_type": "database_operation", "payload": payload}


def refused(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "raw_sql_refused"


@pytest.mark.parametrize("query", RAW)
async def test_raw_sql_is_refused(sql_service: RunningService, query: str) -> None:
    async with httpx.AsyncClient(base_url=sql_service.base_url, headers=sql_service.headers) as c:
        task = database_task(query=query)
        refused(await c.post("/tasks", json=task))
        refused(await c.post("/tasks/batch", json={"tasks": [task]}))
        refused(await c.post("/tasks", files={"task": (None, json.dumps(task))}))
        both = database_task(query=query, statement="child_name", params={"id": 1})
        refused(await c.post("/tasks", json=both))
        assert (await c.get("/health")).status_code == 200


async def test_a_configured_statement_runs(sql_service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=sql_service.base_url, headers=sql_service.headers) as c:
        refused(await c.post("/tasks", json=database_task(params={"id": 1})))
        answer = await c.post(
            "/tasks", json=database_task(statement="child_name", params={"id": 1})
        )
        assert answer.status_code == 201, answer.text
        done = await c.get(f"/tasks/{answer.json()['id']}/wait", params={"timeout": 30})
        body = done.json()
        assert body["status"] == "completed", body
        assert body["result"]["rows"] == [{"name": "Mia"}]
