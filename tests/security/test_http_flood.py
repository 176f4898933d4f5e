"""Finding 5 of issue 10 (HTTP part): a flood of BATCH work over HTTP leaves room for
urgent work. Before the fix, once BATCH tasks filled ``queue_size``, every CRITICAL submit
answered 503 until the flood drained. Likewise event streams and long polls cannot take
every connection the server keeps."""

from __future__ import annotations

import contextlib

import httpx
from service.conftest import ADMINS, TOKENS, start_service

from async_processor.service import ServiceConfig

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


async def test_event_streams_and_long_polls_leave_room_for_submits() -> None:
    config = ServiceConfig(
        tokens=dict(TOKENS),
        admins=list(ADMINS),
        limit_concurrency=10,  # streams and long polls may hold 80%: 8
        max_long_requests_per_token=3,
    )
    with start_service(config) as service:
        async with contextlib.AsyncExitStack() as streams:
            for name, count in (("bob", 3), ("carol", 3), ("alice", 2)):
                client = await streams.enter_async_context(
                    httpx.AsyncClient(base_url=service.base_url, headers=service.headers_of(name))
                )
                for _ in range(count):
                    stream = await streams.enter_async_context(client.stream("GET", "/events"))
                    assert stream.status_code == 200
            async with httpx.AsyncClient(base_url=service.base_url) as probe:
                bob, alice = service.headers_of("bob"), service.headers_of("alice")
                mine = await probe.get("/events", headers=bob)
                assert mine.status_code == 429  # bob's own three are his share
                assert mine.json()["error"] == "too_many_long_requests"
                full = await probe.get("/tasks/x/wait", headers=alice)  # alice has room
                assert full.status_code == 503 and full.json()["error"] == "long_requests_full"
                urgent = await probe.post(
                    "/tasks", headers=bob, json={"task_type": "echo", "priority": "critical"}
                )
                assert urgent.status_code == 201, urgent.text
