"""The HTTP API over real HTTP: uvicorn on 127.0.0.1, httpx clients (see conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from async_processor import AdvancedAsyncProcessor, create_task
from async_processor.service import ServiceConfig
from async_processor.service.events import EventHub
from async_processor.service.reads import ProcessorReads

from .conftest import ADMINS, TOKENS, RunningService, start_service

#: Every route of the API, with a concrete path (the test below checks it is complete).
ROUTES = [
    ("POST", "/tasks"),
    ("POST", "/tasks/batch"),
    ("GET", "/tasks"),
    ("GET", "/tasks/x"),
    ("GET", "/tasks/x/wait"),
    ("DELETE", "/tasks/x"),
    ("GET", "/tasks/x/graph"),
    ("GET", "/metrics"),
    ("GET", "/events"),
    ("GET", "/stats"),
    ("GET", "/"),
    ("GET", "/dashboard/app.js"),
    ("GET", "/openapi.json"),
    ("GET", "/health"),
]


def client(service: RunningService, token: str | None = None) -> httpx.AsyncClient:
    token = service.token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=service.base_url, headers=headers, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"] == code, body


async def submit(c: httpx.AsyncClient, **task: Any) -> str:
    response = await c.post("/tasks", json=task)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- submitting and reading --------------------------------------------------------------


async def test_submit_wait_and_get(service: RunningService) -> None:
    deadline = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    async with client(service) as c:
        response = await c.post(
            "/tasks",
            json={
                "task_type": "echo",
                "payload": {"text": "hi", "audio": {"$bytes": base64.b64encode(b"RIFF").decode()}},
                "priority": "critical",
                "timeout": 5,
                "max_retries": 2,
                "tags": ["child-1", "turn"],
                "deadline": deadline,
            },
        )
        assert response.status_code == 201
        task_id = response.json()["id"]
        assert response.headers["location"] == f"/tasks/{task_id}"
        done = (await c.get(f"/tasks/{task_id}/wait", params={"timeout": 10})).json()
        assert done["status"] == "completed"
        assert done["result"] == {"text": "hi", "audio": {"$bytes": "UklGRg=="}}
        assert done["priority"] == 1 and done["tags"] == ["child-1", "turn"]
        assert done["attempts"] == 1 and done["task_id"] == task_id
        assert (await c.get(f"/tasks/{task_id}")).json() == done
        epoch = await submit(c, task_type="sync_echo", priority=5, deadline=time.time() + 60)
        late = (await c.get(f"/tasks/{epoch}/wait", params={"timeout": 10})).json()
        assert late["status"] == "completed" and late["priority"] == 5


async def test_failed_task_and_nan_result(service: RunningService) -> None:
    async with client(service) as c:
        failed = await submit(c, task_type="fail", payload={"message": "no microphone"})
        body = (await c.get(f"/tasks/{failed}/wait", params={"timeout": 10})).json()
        assert body["status"] == "failed" and "no microphone" in body["error"]
        assert body["error_type"] == "async_processor.errors.NonRetryableError"
        assert "Traceback (most recent call last)" in body["traceback"]
        assert "no microphone" in body["traceback"]
        assert (await c.get(f"/tasks/{failed}")).json() == body
        nan = await submit(c, task_type="nan")
        body = (await c.get(f"/tasks/{nan}/wait", params={"timeout": 10})).json()
        assert body["status"] == "completed" and body["result"] == {"value": None}


async def test_long_poll_returns_the_current_state_when_time_runs_out(
    service: RunningService,
) -> None:
    async with client(service) as c:
        task_id = await submit(c, task_type="sleep", payload={"seconds": 2})
        started = time.monotonic()
        body = (await c.get(f"/tasks/{task_id}/wait", params={"timeout": 0.2})).json()
        assert time.monotonic() - started < 1.5
        assert body["status"] in ("pending", "running")
        assert_error(await c.get(f"/tasks/{task_id}/wait", params={"timeout": 1e6}), 422)


async def test_batch_is_atomic_and_in_any_order(service: RunningService) -> None:
    async with client(service) as c:
        response = await c.post(
            "/tasks/batch",
            json={
                "tasks": [
                    {"id": "reply-1", "task_type": "echo", "depends_on": ["heard-1"]},
                    {"id": "heard-1", "task_type": "echo", "payload": {"text": "hello"}},
                ]
            },
        )
        assert response.status_code == 201, response.text
        assert response.json() == {"ids": ["reply-1", "heard-1"]}
        done = (await c.get("/tasks/reply-1/wait", params={"timeout": 10})).json()
        assert done["status"] == "completed"
        refused = await c.post(
            "/tasks/batch",
            json={
                "tasks": [
                    {"id": "kept-1", "task_type": "echo"},
                    {"id": "kept-2", "task_type": "echo", "depends_on": ["nobody"]},
                ]
            },
        )
        assert_error(refused, 404, "dependency_not_found")  # as another token's task
        assert_error(await c.get("/tasks/kept-1"), 404, "task_not_found")
        cycle = await c.post(
            "/tasks/batch",
            json={
                "tasks": [
                    {"id": "a-1", "task_type": "echo", "depends_on": ["b-1"]},
                    {"id": "b-1", "task_type": "echo", "depends_on": ["a-1"]},
                ]
            },
        )
        assert_error(cycle, 422, "dependency_cycle")


async def test_cancel_cascades_to_dependents(service: RunningService) -> None:
    async with client(service) as c:
        slow = await submit(c, task_type="sleep", payload={"seconds": 5})
        child = await submit(c, task_type="echo", depends_on=[slow])
        grandchild = await submit(c, task_type="echo", depends_on=[child])
        other = await submit(c, task_type="sleep", payload={"seconds": 0.2})
        await asyncio.sleep(0.1)
        response = await c.delete(f"/tasks/{slow}")
        assert response.status_code == 200
        body = response.json()
        assert body["cancelled"] is True and body["status"] == "cancelled"
        assert sorted(body["cancelled_dependents"]) == sorted([child, grandchild])
        gc = (await c.get(f"/tasks/{grandchild}")).json()
        assert (gc["status"] == "cancelled" and slow in gc["error"]) or child in gc["error"]
        done = (await c.get(f"/tasks/{other}/wait", params={"timeout": 10})).json()
        assert done["status"] == "completed"
        again = (await c.delete(f"/tasks/{slow}")).json()
        assert again["cancelled"] is False


async def test_dependency_graph(service: RunningService) -> None:
    async with client(service) as c:
        a = await submit(c, task_type="echo")
        b = await submit(c, task_type="echo", depends_on=[a])
        c_id = await submit(c, task_type="echo", depends_on=[b])
        await c.get(f"/tasks/{c_id}/wait", params={"timeout": 10})
        graph = (await c.get(f"/tasks/{b}/graph")).json()
        assert {n["id"] for n in graph["nodes"]} == {a, b, c_id}
        assert sorted(graph["edges"]) == sorted([[a, b], [b, c_id]])
        assert all(n["status"] == "completed" and n["task_type"] == "echo" for n in graph["nodes"])
        assert_error(await c.get("/tasks/nobody/graph"), 404)


async def test_list_filters_and_pages(service: RunningService) -> None:
    async with client(service) as c:
        ids = [await submit(c, task_type="echo", tags=["page"]) for _ in range(25)]
        slow = await submit(c, task_type="sleep", payload={"seconds": 3}, tags=["page"])
        for task_id in ids:
            await c.get(f"/tasks/{task_id}/wait", params={"timeout": 10})
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"tag": "page", "limit": 10}
            if cursor:
                params["cursor"] = cursor
            page = (await c.get("/tasks", params=params)).json()
            seen += [t["task_id"] for t in page["tasks"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and len(seen) == len(set(seen)) == 26
        assert set(seen) == {*ids, slow}
        assert seen[0] == slow  # newest first
        running = (await c.get("/tasks", params={"status": "running", "tag": "page"})).json()
        assert [t["task_id"] for t in running["tasks"]] == [slow]
        by_type = (await c.get("/tasks", params={"task_type": "sleep"})).json()
        assert [t["task_id"] for t in by_type["tasks"]] == [slow]
        none = (await c.get("/tasks", params={"tag": ["page", "other"]})).json()
        assert none == {"tasks": [], "next_cursor": None}
        assert_error(
            await c.get("/tasks", params={"cursor": "not-a-cursor"}), 422, "invalid_cursor"
        )
        assert_error(await c.get("/tasks", params={"status": "sleeping"}), 422)
        assert_error(await c.get("/tasks", params={"limit": 0}), 422)


# -- idempotency and uploads -----------------------------------------------------------


async def test_idempotency_key(service: RunningService) -> None:
    body = {"task_type": "echo", "payload": {"n": 1}, "idempotency_key": "turn-42"}
    async with client(service) as c:
        first = await c.post("/tasks", json=body)
        again = await c.post("/tasks", json=body)
        assert first.status_code == 201 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        changed = await c.post("/tasks", json={**body, "payload": {"n": 2}})
        assert_error(changed, 409, "idempotency_conflict")
    async with client(service, TOKENS["bob"]) as other:
        theirs = await other.post("/tasks", json=body)
        assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_multipart_upload_lands_in_the_payload(service: RunningService) -> None:
    audio = bytes(range(256)) * 40
    task = {
        "task_type": "sizes",
        "payload": {"image": {"$bytes": base64.b64encode(b"png").decode()}},
    }
    async with client(service) as c:
        response = await c.post(
            "/tasks",
            data={"task": json.dumps(task)},
            files={"audio_data": ("turn.wav", audio, "audio/wav")},
        )
        assert response.status_code == 201, response.text
        task_id = response.json()["id"]
        done = (await c.get(f"/tasks/{task_id}/wait", params={"timeout": 10})).json()
        assert done["result"] == {"audio_data": len(audio), "image": 3}
        no_task = await c.post("/tasks", files={"audio_data": ("a.wav", b"x", "audio/wav")})
        assert_error(no_task, 400, "invalid_multipart")
        clash = await c.post(
            "/tasks",
            data={"task": json.dumps({"task_type": "sizes", "payload": {"audio_data": 1}})},
            files={"audio_data": ("a.wav", b"x", "audio/wav")},
        )
        assert_error(clash, 422)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"task_type": "nobody"}, "unknown_task_type"),
        ({"task_type": "custom", "payload": {"processor": "os.system"}}, "custom_not_registered"),
        ({"task_type": "echo", "priority": "urgent"}, "validation_error"),
        ({"task_type": "echo", "priority": 9}, "validation_error"),
        ({"task_type": "echo", "timeout": -1}, "validation_error"),
        ({"task_type": "echo", "deadline": "2030-01-01T00:00:00"}, "validation_error"),
        ({"task_type": "echo", "payload": {"a": {"$bytes": "***"}}}, "invalid_base64"),
        ({"task_type": "echo", "depends_on": "x"}, "validation_error"),
        ({"task_type": "echo", "code": "print(1)"}, "validation_error"),
        ({"payload": {}}, "validation_error"),
        ([1, 2], "validation_error"),
    ],
)
async def test_invalid_tasks_get_422(service: RunningService, body: Any, code: str) -> None:
    async with client(service) as c:
        assert_error(await c.post("/tasks", json=body), 422, code)


async def test_400_404_409(service: RunningService) -> None:
    async with client(service) as c:
        assert_error(await c.post("/tasks", content=b"{not json"), 400, "invalid_json")
        assert_error(await c.post("/tasks/batch", content=b"\xff\xfe"), 400, "invalid_json")
        for method, path in [
            ("GET", "/tasks/nobody"),
            ("GET", "/tasks/nobody/wait"),
            ("DELETE", "/tasks/nobody"),
            ("GET", "/no/such/route"),
            ("GET", "/dashboard/../secret"),
            ("GET", "/dashboard/nothing.js"),
        ]:
            assert_error(await c.request(method, path), 404)
        await submit(c, task_type="echo", id="same-id")
        assert_error(
            await c.post("/tasks", json={"task_type": "echo", "id": "same-id"}),
            409,
            "duplicate_task",
        )


async def test_413_body_and_payload_limits() -> None:
    config = ServiceConfig(tokens=dict(TOKENS), max_body_bytes=4096, max_payload_bytes=1024)
    with start_service(config) as service:
        async with client(service) as c:
            big = {"task_type": "echo", "payload": {"blob": "x" * 5000}}
            assert_error(await c.post("/tasks", json=big), 413, "body_too_large")

            async def chunks() -> Any:
                for _ in range(10):
                    yield b"x" * 1000

            assert_error(await c.post("/tasks", content=chunks()), 413, "body_too_large")
            payload = {"task_type": "echo", "payload": {"blob": "x" * 2000}}
            assert_error(await c.post("/tasks", json=payload), 413, "payload_too_large")
            upload = await c.post(
                "/tasks",
                data={"task": json.dumps({"task_type": "sizes"})},
                files={"audio_data": ("a.wav", b"x" * 2000, "audio/wav")},
            )
            assert_error(upload, 413, "payload_too_large")
            assert (await c.post("/tasks", json={"task_type": "echo"})).status_code == 201


async def test_429_rate_limit_per_token() -> None:
    config = ServiceConfig(tokens=dict(TOKENS), rate_limit=0.5, rate_burst=3)
    with start_service(config) as service:
        async with client(service) as alice, client(service, TOKENS["bob"]) as bob:
            codes = [(await alice.get("/metrics")).status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            limited = await alice.get("/metrics")
            assert_error(limited, 429, "rate_limited")
            assert int(limited.headers["retry-after"]) >= 1
            assert (await bob.get("/metrics")).status_code == 200
            assert (await alice.get("/health")).status_code == 200  # health is never limited


async def test_503_queue_full_and_stopped(service: RunningService) -> None:
    with start_service(queue_size=1, max_workers=1) as small:
        async with client(small) as c:
            await submit(c, task_type="sleep", payload={"seconds": 2})
            await asyncio.sleep(0.1)
            await submit(c, task_type="sleep", payload={"seconds": 2})
            full = await c.post("/tasks", json={"task_type": "echo"})
            assert_error(full, 503, "queue_full")
            assert full.headers["retry-after"] == "1"
    async with client(service) as c:
        service.run(service.processor.shutdown(timeout=1))
        health = await c.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["reason"] == "processor_stopped"
        assert health.json()["reasons"] == ["processor_stopped"]
        assert_error(await c.post("/tasks", json={"task_type": "echo"}), 503, "not_running")


async def test_unexpected_errors_are_a_generic_500() -> None:
    def add_broken_route(app: FastAPI) -> None:
        @app.get("/broken")
        async def broken() -> None:
            raise RuntimeError("secret internal detail")

    with start_service(configure_app=add_broken_route) as service:
        async with client(service) as c:
            response = await c.get("/broken")
            assert_error(response, 500, "internal_error")
            assert "secret" not in response.text


# -- auth --------------------------------------------------------------------------------


async def test_route_table_is_complete(service: RunningService) -> None:
    async with client(service) as c:
        spec = (await c.get("/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "delete")
    }
    concrete = {(m, p.replace("{task_id}", "x").replace("{file}", "app.js")) for m, p in documented}
    assert concrete | {("GET", "/openapi.json")} == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_a_token(service: RunningService, method: str, path: str) -> None:
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {service.token}"},
        {"Authorization": f"Bearer {service.token}x"},
    ]
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as c:
        for headers in bad_headers:
            response = await c.request(method, path, headers=headers)
            if path == "/health":
                assert response.status_code == 200
                assert "metrics" not in response.json()  # anonymous callers see less
            else:
                assert_error(response, 401, "unauthorized")
                assert response.headers["www-authenticate"].startswith("Bearer")
        if method != "GET":  # ?access_token= is for GET requests only
            response = await c.request(method, path, params={"access_token": service.token})
            assert_error(response, 401)
        elif path not in ("/events",):
            response = await c.request(method, path, params={"access_token": service.token})
            assert response.status_code != 401


async def test_every_token_works_and_is_logged_by_name(
    service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="async_processor.service.access")
    for name, token in TOKENS.items():
        async with client(service, token) as c:
            assert (await c.get("/metrics")).status_code == 200
            health = (await c.get("/health")).json()
            assert health["reasons"] == []
            if name in ADMINS:  # the metrics name running tasks: an admin's only
                assert health["metrics"]["tasks_processed"] >= 0
                assert health["metrics"]["health"]["details"] == {}
            else:
                assert "metrics" not in health
        async with httpx.AsyncClient(base_url=service.base_url) as anonymous:
            response = await anonymous.get("/metrics", params={"access_token": token})
            assert response.status_code == 200
    await asyncio.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.name.endswith(".access")]
    assert any("GET /metrics 200 token=alice" in line for line in lines)
    assert any("token=bob" in line for line in lines)
    assert not any(token in r.getMessage() for r in caplog.records for token in TOKENS.values())


async def test_dashboard_access_token_sets_a_cookie(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as c:
        page = await c.get("/", params={"access_token": service.token})
        if page.status_code == 404:  # the dashboard files are not in this checkout yet
            assert_error(page, 404)
            return
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "httponly" in page.headers["set-cookie"].lower()
        assert (await c.get("/stats")).status_code == 200  # the cookie now authenticates GETs
        assert_error(await c.post("/tasks", json={"task_type": "echo"}), 401)


# -- events and metrics ------------------------------------------------------------------


async def test_event_stream_shows_a_tasks_transitions(service: RunningService) -> None:
    async with client(service) as c:
        task_id = "sse-task-1"
        statuses: list[str] = []
        async with c.stream("GET", "/events", params={"task_id": task_id}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            await submit(c, task_type="sleep", id=task_id, payload={"seconds": 0.1})
            event = None
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "task":
                    data = json.loads(line[5:])
                    assert data["task_id"] == task_id and data["task_type"] == "sleep"
                    statuses.append(data["status"])
                    if data["status"] == "completed":
                        assert data["execution_time"] >= 0.1
                        break
        assert statuses == ["pending", "running", "completed"]


async def test_event_stream_with_access_token_and_heartbeat() -> None:
    config = ServiceConfig(tokens=dict(TOKENS), admins=list(ADMINS), sse_heartbeat=0.2)
    with start_service(config) as service:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as c:
            params = {"access_token": service.token}
            async with c.stream("GET", "/events", params=params) as stream:
                assert stream.status_code == 200
                pings = 0
                async for line in stream.aiter_lines():
                    pings += line == ": ping"
                    if pings == 2:
                        break


async def test_slow_event_client_is_dropped_not_the_processor() -> None:
    processor = AdvancedAsyncProcessor(builtin_processors=False, max_process_workers=0)

    async def quick(task: Any) -> int:
        return 1

    processor.register_processor("quick", quick)
    await processor.start()
    hub = EventHub(queue_size=5)
    hub.attach(ProcessorReads(processor))
    slow = hub.subscribe()
    keen = hub.subscribe(task_type="other")
    try:
        tasks = [create_task("quick") for _ in range(20)]
        await processor.submit_tasks(tasks)
        for task in tasks:
            assert (await processor.wait_for_task(task.id, timeout=5)).result == 1
        await asyncio.sleep(0)
        assert slow not in hub.subscribers and keen in hub.subscribers
        assert hub.dropped == 1
        lines = [line async for line in hub.stream(slow, heartbeat=1.0)]
        assert lines[-1].startswith("event: dropped")
        assert sum(line.startswith("id:") for line in lines) == 5
    finally:
        hub.detach()
        await processor.shutdown()


async def test_prometheus_metrics_parse(service: RunningService) -> None:
    async with client(service) as c:
        for kind in ("echo", "echo", "fail"):
            task_id = await submit(c, task_type=kind)
            await c.get(f"/tasks/{task_id}/wait", params={"timeout": 10})
        slow = await submit(c, task_type="sleep", payload={"seconds": 2})
        await asyncio.sleep(0.1)
        response = await c.get("/metrics")
        await c.delete(f"/tasks/{slow}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert (
        samples[("async_processor_tasks_total", (("status", "completed"), ("task_type", "echo")))]
        == 2
    )
    assert (
        samples[("async_processor_tasks_total", (("status", "failed"), ("task_type", "fail")))] == 1
    )
    depth = list(families["async_processor_queue_depth"].samples)
    assert {s.labels["priority"] for s in depth} == {"CRITICAL", "HIGH", "NORMAL", "LOW", "BATCH"}
    assert samples[("async_processor_running_tasks", ())] == 1
    run = families["async_processor_task_run_seconds"]
    assert run.type == "histogram"  # the library's collector (async_processor.prometheus)
    echo_buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in run.samples
        if s.name.endswith("_bucket") and s.labels["task_type"] == "echo"
    )
    counts = [n for _, n in echo_buckets]
    assert counts == sorted(counts)  # cumulative
    assert echo_buckets[-1] == (float("inf"), 2.0)
    ended = ("async_processor_tasks_ended_total", (("status", "failed"),))
    assert samples[ended] == 1
    assert families["async_processor_task_queue_wait_seconds"].type == "histogram"
    assert 0 < samples[("async_processor_success_rate_percent", ())] < 100
    assert samples[("async_processor_uptime_seconds", ())] > 0
    workers = families["async_processor_workers"].samples
    assert sum(s.value for s in workers) == 18  # 16 async + 2 thread slots


async def test_stats_for_the_dashboard(service: RunningService) -> None:
    async with client(service) as c:
        failed = await submit(c, task_type="fail", payload={"message": "mic unplugged"})
        await c.get(f"/tasks/{failed}/wait", params={"timeout": 10})
        await asyncio.sleep(0.05)
        stats = (await c.get("/stats")).json()
    assert stats["recent_failures"][0]["task_id"] == failed
    assert "mic unplugged" in stats["recent_failures"][0]["error"]
    assert stats["recent_tasks"][0]["task_id"] == failed
    assert {"queue_size", "running_tasks", "worker_stats", "success_rate"} <= set(stats)


async def test_dashboard_sets_a_cookie_only_for_a_real_token(service: RunningService) -> None:
    """Found by schemathesis: a junk ?access_token= beside a valid header crashed the page."""
    async with httpx.AsyncClient(base_url=service.base_url) as client:
        junk = await client.get(
            "/", params={"access_token": "\U000212dd junk"}, headers=service.headers
        )
        assert junk.status_code == 200 and "set-cookie" not in junk.headers
        real = await client.get("/", params={"access_token": service.token})
        assert real.status_code == 200 and "set-cookie" in real.headers


async def test_an_incoming_traceparent_is_continued(spans: Any) -> None:
    from otel_helpers import task_spans

    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with start_service() as traced:
        async with client(traced) as c:
            response = await c.post(
                "/tasks",
                json={"task_type": "echo"},
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
            )
            assert response.status_code == 201, response.text
            task_id = response.json()["id"]
            await c.get(f"/tasks/{task_id}/wait", params={"timeout": 10})
    finished = {s.context.span_id: s for s in spans.get_finished_spans()}
    (attempt,) = task_spans(spans)
    assert attempt.context.trace_id == int(trace_id, 16)
    assert dict(attempt.attributes or {})["async_processor.task.id"] == task_id
    ancestor = attempt  # up the chain: the server span of POST /tasks, then the caller's
    while ancestor.parent is not None and ancestor.parent.span_id in finished:
        ancestor = finished[ancestor.parent.span_id]
    assert ancestor.kind is SpanKind.SERVER
    assert ancestor.parent is not None and ancestor.parent.is_remote
    assert ancestor.parent.span_id == int(parent_id, 16)
