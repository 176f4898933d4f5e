"""Finding 4 of issue 10: a token sees, waits on, lists, streams and cancels only its own
tasks; another token's task answers exactly as an unknown one; an admin sees everything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from service.conftest import RunningService, start_service


def as_(service: RunningService, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=service.base_url, headers=service.headers_of(name), timeout=30
    )


async def submit(c: httpx.AsyncClient, **task: Any) -> str:
    response = await c.post("/tasks", json=task)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def same_refusal(theirs: httpx.Response, unknown: httpx.Response, their_id: str) -> None:
    """``theirs`` (another token's task) answers exactly as ``unknown`` (no such task)."""
    assert theirs.status_code == unknown.status_code == 404
    mine = theirs.json()
    other = unknown.json()
    assert mine["error"] == other["error"]
    assert mine["detail"].replace(their_id, "ID") == other["detail"].replace("nobody-1", "ID")


async def test_another_tokens_task_is_invisible(service: RunningService) -> None:
    async with as_(service, "bob") as bob, as_(service, "carol") as carol:
        slow = await submit(bob, task_type="sleep", payload={"seconds": 30}, tags=["t"])
        for method, suffix, params in (
            ("GET", "", None),
            ("GET", "/wait", {"timeout": 0.1}),
            ("GET", "/graph", None),
            ("DELETE", "", None),
        ):
            theirs = await carol.request(method, f"/tasks/{slow}{suffix}", params=params)
            unknown = await carol.request(method, f"/tasks/nobody-1{suffix}", params=params)
            same_refusal(theirs, unknown, slow)
        assert (await bob.get(f"/tasks/{slow}")).json()["status"] in ("pending", "running")
        listed = (await carol.get("/tasks", params={"tag": "t"})).json()
        assert listed == {"tasks": [], "next_cursor": None}
        assert [t["task_id"] for t in (await bob.get("/tasks")).json()["tasks"]] == [slow]
        cancel = await bob.delete(f"/tasks/{slow}")
        assert cancel.status_code == 200 and cancel.json()["cancelled"] is True


async def test_an_admin_sees_every_task(service: RunningService) -> None:
    async with as_(service, "bob") as bob, as_(service, "alice") as admin:
        task_id = await submit(bob, task_type="echo", tags=["mine"])
        done = (await admin.get(f"/tasks/{task_id}/wait", params={"timeout": 10})).json()
        assert done["status"] == "completed" and done["tags"] == ["mine"]
        listed = (await admin.get("/tasks", params={"tag": "mine"})).json()["tasks"]
        assert [t["task_id"] for t in listed] == [task_id]
        assert (await admin.get("/stats")).status_code == 200
        refused = await bob.get("/stats")
        assert refused.status_code == 403 and refused.json()["error"] == "admin_required"
        assert "metrics" in (await admin.get("/health")).json()
        assert "metrics" not in (await bob.get("/health")).json()  # they name running tasks


async def test_depends_on_another_tokens_task_is_404(service: RunningService) -> None:
    async with as_(service, "bob") as bob, as_(service, "carol") as carol:
        theirs = await submit(bob, task_type="echo")
        for path, body in (
            ("/tasks", {"task_type": "echo", "depends_on": [theirs]}),
            ("/tasks/batch", {"tasks": [{"task_type": "echo", "depends_on": [theirs]}]}),
        ):
            refused = await carol.post(path, json=body)
            unknown = await carol.post(
                path, json=json.loads(json.dumps(body).replace(theirs, "nobody-1"))
            )
            assert refused.status_code == unknown.status_code == 404, refused.text
            assert refused.json()["error"] == unknown.json()["error"] == "dependency_not_found"
        assert (
            await bob.post("/tasks", json={"task_type": "echo", "depends_on": [theirs]})
        ).status_code == 201


async def test_the_owner_tag_cannot_be_forged_or_seen(service: RunningService) -> None:
    async with as_(service, "bob") as bob:
        for tag in ("@owner:carol", "@anything"):
            refused = await bob.post("/tasks", json={"task_type": "echo", "tags": [tag]})
            assert refused.status_code == 422 and refused.json()["error"] == "reserved_tag"
        task_id = await submit(bob, task_type="echo", tags=["kept"])
        done = (await bob.get(f"/tasks/{task_id}/wait", params={"timeout": 10})).json()
        assert done["tags"] == ["kept"]
        assert (await bob.get(f"/tasks/{task_id}")).json()["tags"] == ["kept"]


async def read_events(stream: httpx.Response, until: str) -> list[dict[str, Any]]:
    """The task events of an SSE stream, up to ``until`` completing."""
    events: list[dict[str, Any]] = []
    async for line in stream.aiter_lines():
        if line.startswith("data: {"):
            event = json.loads(line[len("data: ") :])
            events.append(event)
            if event.get("task_id") == until and event["status"] == "completed":
                return events
    raise AssertionError("the stream ended early")


async def test_event_stream_shows_only_the_callers_tasks(service: RunningService) -> None:
    async with (
        as_(service, "bob") as bob,
        as_(service, "carol") as carol,
        as_(service, "alice") as admin,
        carol.stream("GET", "/events") as carols,
        admin.stream("GET", "/events") as admins,
    ):
        assert carols.status_code == admins.status_code == 200
        theirs = await submit(bob, task_type="echo")
        await bob.get(f"/tasks/{theirs}/wait", params={"timeout": 10})
        mine = await submit(carol, task_type="echo")
        seen_by_carol = await asyncio.wait_for(read_events(carols, mine), 10)
        seen_by_admin = await asyncio.wait_for(read_events(admins, mine), 10)
    assert {e["task_id"] for e in seen_by_carol} == {mine}
    assert {e["task_id"] for e in seen_by_admin} == {theirs, mine}


async def test_the_owner_survives_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'tasks.db'}"
    with start_service(store=store) as service:
        async with as_(service, "bob") as bob:
            task_id = await submit(bob, task_type="echo", tags=["kept"])
            done = (await bob.get(f"/tasks/{task_id}/wait", params={"timeout": 10})).json()
            assert done["status"] == "completed"
    with start_service(store=store) as service:
        async with as_(service, "bob") as bob, as_(service, "carol") as carol:
            again = await bob.get(f"/tasks/{task_id}")
            assert again.status_code == 200 and again.json()["tags"] == ["kept"]
            same_refusal(
                await carol.get(f"/tasks/{task_id}"), await carol.get("/tasks/nobody-1"), task_id
            )
            assert (await carol.get("/tasks")).json()["tasks"] == []
