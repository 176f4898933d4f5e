"""Finding 5 of issue 10 (HTTP part): a flood of BATCH work over HTTP leaves room for
urgent work. Before the fix, once BATCH tasks filled ``queue_size``, every CRITICAL submit
answered 503 until the flood drained."""

from __future__ import annotations

import httpx
from service.conftest import start_service

QUEUE_SIZE = 100


async def test_urgent_work_is_admitted_under_a_batch_flood() -> None:
    with start_service(queue_size=QUEUE_SIZE, max_workers=1) as service:
        async with httpx.AsyncClient(
            base_url=service.base_url, headers=service.headers_of("bob"), timeout=30
        ) as bob:
            gate = await bob.post(
                "/tasks",
                json={"task_type": "sleep", "payload": {"seconds": 60}, "priority": "critical"},
            )
            assert gate.status_code == 201  # holds the one worker: nothing drains
            whole = {"tasks": [{"task_type": "echo", "priority": "batch"}] * QUEUE_SIZE}
            refused = await bob.post("/tasks/batch", json=whole)
            assert refused.status_code == 503 and "priority_reserve" in refused.json()["detail"]
            flooded = 0
            while flooded <= QUEUE_SIZE:
                tens = {"tasks": [{"task_type": "echo", "priority": "batch"}] * 10}
                answer = await bob.post("/tasks/batch", json=tens)
                if answer.status_code == 503:
                    break
                assert answer.status_code == 201, answer.text
                flooded += 10
            assert 0 < flooded < QUEUE_SIZE  # the flood was stopped short of the queue
            urgent = []
            for priority in ("critical", "high", "normal"):
                answer = await bob.post("/tasks", json={"task_type": "echo", "priority": priority})
                assert answer.status_code == 201, answer.text  # 503 before the fix
                urgent.append(answer.json()["id"])
            assert (await bob.delete(f"/tasks/{gate.json()['id']}")).status_code == 200
            for task_id in urgent:
                done = await bob.get(f"/tasks/{task_id}/wait", params={"timeout": 30})
                assert done.json()["status"] == "completed"
