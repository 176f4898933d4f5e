"""Finding 6 of issue 10: idempotency keys are kept in the task store, per token, so that
the same key after a restart answers the same id instead of running the task twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from service.conftest import RunningService, start_service

from async_processor import create_task


def as_(service: RunningService, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=service.base_url, headers=service.headers_of(name), timeout=30
    )


TASK = {"task_type": "echo", "payload": {"turn": 42}, "idempotency_key": "turn-42"}
BATCH = {
    "tasks": [{"task_type": "echo", "payload": {"n": 1}}, {"id": "given-1", "task_type": "echo"}],
    "idempotency_key": "batch-7",
}


async def first_submits(service: RunningService) -> tuple[str, list[str]]:
    async with as_(service, "bob") as bob:
        single = await bob.post("/tasks", json=TASK)
        batch = await bob.post("/tasks/batch", json=BATCH)
        assert single.status_code == batch.status_code == 201, (single.text, batch.text)
        task_id = str(single.json()["id"])
        ids = list(batch.json()["ids"])
        for waited in (task_id, *ids):
            done = await bob.get(f"/tasks/{waited}/wait", params={"timeout": 10})
            assert done.json()["status"] == "completed"
    return task_id, ids


async def bobs_task_count(bob: httpx.AsyncClient) -> int:
    return len((await bob.get("/tasks")).json()["tasks"])


async def test_keys_survive_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'tasks.db'}"
    with start_service(store=store) as service:
        task_id, ids = await first_submits(service)
    with start_service(store=store) as service:
        async with as_(service, "bob") as bob:
            again = await bob.post("/tasks", json=TASK)
            assert again.status_code == 200 and again.json()["id"] == task_id
            batch = await bob.post("/tasks/batch", json=BATCH)
            assert batch.status_code == 200 and batch.json()["ids"] == ids
            assert await bobs_task_count(bob) == 3  # nothing ran twice
            changed: dict[str, Any] = {**TASK, "payload": {"turn": 43}}
            conflict = await bob.post("/tasks", json=changed)
            assert conflict.status_code == 409
            assert conflict.json()["error"] == "idempotency_conflict"
            other_batch = {**BATCH, "tasks": [{"task_type": "echo", "payload": {"n": 2}}]}
            conflict = await bob.post("/tasks/batch", json=other_batch)
            assert conflict.status_code == 409
            assert conflict.json()["error"] == "idempotency_conflict"


async def test_keys_are_per_token(service: RunningService) -> None:
    task_id, ids = await first_submits(service)
    async with as_(service, "carol") as carol:
        single = await carol.post("/tasks", json=TASK)
        assert single.status_code == 201 and single.json()["id"] != task_id
        batch = await carol.post("/tasks/batch", json={**BATCH, "tasks": BATCH["tasks"][:1]})
        assert batch.status_code == 201 and batch.json()["ids"] != ids[:1]


async def test_one_mechanism_with_the_librarys_key(service: RunningService) -> None:
    task_id, _ = await first_submits(service)
    in_process = service.run(
        service.processor.submit_task(create_task("echo"), idempotency_key="service/bob/turn-42")
    )
    assert in_process == task_id
