"""The HTTP API: :func:`create_app` builds the FastAPI application (routes in docs/service.md)."""

import base64
import binascii
import hashlib
import heapq
import importlib
import json
import mimetypes
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from ..errors import AsyncProcessorError, InvalidArgumentError
from ..lifecycle import TaskStatus
from ..processor import AdvancedAsyncProcessor
from ..task import ProcessingTask, create_task, to_json
from ..task_manager import TaskRecord
from .auth import TokenAuth
from .config import ConfigError, ServiceConfig
from .events import EventHub
from .gate import COOKIE, Gate
from .models import (
    BatchSubmission,
    BatchSubmitted,
    Cancelled,
    ErrorBody,
    Graph,
    Health,
    Submitted,
    TaskFields,
    TaskPage,
    TaskSubmission,
    TaskView,
)
from .prometheus import MetricsExporter
from .responses import JSON, ApiError, error_for, error_response

__all__ = ["ServiceState", "build_processor", "create_app"]

_ERROR_TEXT = {
    400: "Malformed request body (not JSON, or a broken multipart form)",
    401: "Missing or invalid bearer token",
    404: "Unknown task",
    409: "Duplicate task id, or idempotency key reused with another body",
    413: "Request body or task payload too large",
    422: "A field is wrong, or the processor refused the task",
    429: "Rate limit of this token exceeded (see Retry-After)",
    503: "Queue full or processor not running (see Retry-After)",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_GRAPH_LIMIT = 500


def _errors(*codes: int, ok: dict[int | str, Any] | None = None) -> dict[int | str, Any]:
    """The documented answers of a route: ``ok`` and the error statuses it may return."""
    answers: dict[int | str, Any] = dict(ok or {})
    for code in (401, 429, *codes):
        answers[code] = {"model": ErrorBody, "description": _ERROR_TEXT[code]}
    return answers


def _repeat(model: type[BaseModel]) -> dict[int | str, Any]:
    return {200: {"model": model, "description": "The same idempotency key and body again"}}


def build_processor(config: ServiceConfig) -> AdvancedAsyncProcessor:
    """The processor ``[processor]`` describes, with ``[service.processors]`` registered."""
    try:
        processor = AdvancedAsyncProcessor(**config.processor)
    except (InvalidArgumentError, TypeError) as exc:
        raise ConfigError(f"[processor]: {exc}") from None
    for name, spec in config.processors.items():
        module_name, _, attr = spec.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"[service.processors] {name} = {spec!r} cannot be loaded: {exc}"
            ) from None
        processor.register_processor(name, func)
    return processor


class _GraphIndex:
    """Dependency edges of tasks submitted through the API, kept after they end."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.deps: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.dependents: dict[str, list[str]] = {}

    def add(self, task: ProcessingTask) -> None:
        if not task.depends_on:
            return
        self.deps[task.id] = tuple(task.depends_on)
        for dep in task.depends_on:
            self.dependents.setdefault(dep, []).append(task.id)
        while len(self.deps) > self.limit:
            old, old_deps = self.deps.popitem(last=False)
            self.dependents.pop(old, None)
            for dep in old_deps:
                children = self.dependents.get(dep)
                if children is not None and old in children:
                    children.remove(old)
                    if not children:
                        del self.dependents[dep]


class _Idempotency:
    """(token name, key) -> (fingerprint, answer), the newest ``limit`` kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: OrderedDict[tuple[str, str], tuple[str, dict[str, Any]]] = OrderedDict()

    def lookup(self, owner: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        entry = self.entries.get((owner, key))
        if entry is None:
            return None
        if entry[0] != fingerprint:
            raise ApiError(
                409,
                "idempotency_conflict",
                f"idempotency_key {key!r} was used before with a different request body; "
                "use a new key for a new request",
            )
        return entry[1]

    def store(self, owner: str, key: str, fingerprint: str, answer: dict[str, Any]) -> None:
        self.entries[(owner, key)] = (fingerprint, answer)
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)


class ServiceState:
    """What the routes share: the processor, the event hub, the indexes."""

    def __init__(self, config: ServiceConfig, processor: AdvancedAsyncProcessor | None) -> None:
        self.config = config
        self.auth = TokenAuth(config.tokens)
        self._processor = processor
        self.hub = EventHub(config.sse_queue_size)
        self.exporter = MetricsExporter()
        self.idempotency = _Idempotency(config.max_idempotency_keys)
        self.graph = _GraphIndex()

    @property
    def processor(self) -> AdvancedAsyncProcessor:
        if self._processor is None:
            raise ApiError(503, "not_running", "the service is starting", {"Retry-After": "1"})
        return self._processor

    def close_streams(self) -> None:
        """End every event stream (called when the server starts shutting down)."""
        self.hub.close()


def create_app(
    processor: AdvancedAsyncProcessor | None,
    config: ServiceConfig,
    *,
    manage_processor: bool | None = None,
) -> FastAPI:
    """The HTTP API over ``processor``.

    With ``processor=None`` the app builds one from ``config`` when it starts and shuts it
    down when it stops; a given processor is left alone (start and stop it yourself)
    unless ``manage_processor=True``.
    """
    config.require_tokens()
    manage = processor is None if manage_processor is None else manage_processor
    state = ServiceState(config, processor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state._processor is None:
            state._processor = build_processor(config)
        proc = state._processor
        if manage:
            await proc.start()
        state.hub.attach(proc)
        try:
            yield
        finally:
            state.close_streams()
            state.hub.detach()
            if manage:
                await proc.shutdown(timeout=config.shutdown_timeout)

    app = FastAPI(
        title="async-processor",
        version="0.1.0",
        description="Prioritised tasks with dependencies, over HTTP. Every route but /health "
        "needs 'Authorization: Bearer <token>'.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSON,
    )
    app.state.service = state
    app.add_middleware(Gate, config=config)
    _add_error_handlers(app)
    _add_task_routes(app, state)
    _add_monitoring_routes(app, state)
    _add_dashboard_routes(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# -- errors ----------------------------------------------------------------------------


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg")),
            "type": e.get("type"),
        }
        for e in errors
    ]


def _invalid(errors: Any) -> ApiError:
    clean = _clean_errors(errors)
    first = clean[0] if clean else {"loc": [], "msg": "invalid"}
    where = ".".join(p for p in first["loc"] if p != "body") or "request"
    return ApiError(422, "validation_error", f"{where}: {first['msg']}", errors=clean)


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def processor_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AsyncProcessorError)
        return error_for(exc).response()

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _invalid(exc.errors()).response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}; see /openapi.json"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, detail, headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(AsyncProcessorError, processor_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


# -- tasks -----------------------------------------------------------------------------


def _decode(value: Any, where: str) -> Any:
    """Turn ``{"$bytes": base64}`` into bytes, checking the base64."""
    if isinstance(value, dict):
        if len(value) == 1 and "$bytes" in value:
            text = value["$bytes"]
            try:
                if not isinstance(text, str):
                    raise ValueError
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(
                    422, "invalid_base64", f"{where}: $bytes must be a base64 string"
                ) from None
        return {k: _decode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc.errors()) from None


def _task_view(record: TaskRecord) -> dict[str, Any]:
    task = record.task
    return {
        "task_id": task.id,
        "status": record.status.value,
        "result": None,
        "error": None,
        "execution_time": 0.0,
        "created_at": task.created_at,
        "started_at": record.started_at,
        "completed_at": None,
        "attempts": record.attempts,
        "worker_id": record.worker_id,
        "task_type": record.type_name,
        "priority": task.priority.value,
        "tags": sorted(task.tags),
        "error_type": None,
        "traceback": None,
    }


def _encode_cursor(created_at: float, task_id: str) -> str:
    raw = json.dumps([created_at, task_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, task_id = json.loads(raw)
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise ValueError
        if not isinstance(task_id, str):
            raise ValueError
        return -float(created_at), task_id
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(422, "invalid_cursor", "cursor is not one this server handed out") from None


def _add_task_routes(app: FastAPI, state: ServiceState) -> None:
    config = state.config

    def build(fields: TaskFields, files: dict[str, bytes]) -> ProcessingTask:
        proc = state.processor
        if fields.task_type == "custom" and "custom" not in proc._processors:
            raise ApiError(
                422,
                "custom_not_registered",
                "CUSTOM tasks run a processor registered by name on the server; this API "
                "never accepts code (register one with processor.register_processor('custom', "
                "func) or [service.processors])",
            )
        payload = _decode(fields.payload, "payload")
        for name, data in files.items():
            if name in payload:
                raise ApiError(
                    422, "validation_error", f"payload.{name} is both a field and a file"
                )
            payload[name] = data
        options: dict[str, Any] = {
            "timeout": fields.timeout,
            "max_retries": fields.max_retries,
            "tags": set(fields.tags),
            "deadline": fields.deadline,
            "allow_failure": fields.allow_failure,
            "cpu_intensive": fields.cpu_intensive,
            "io_bound": fields.io_bound,
            "memory_intensive": fields.memory_intensive,
        }
        if fields.depends_on:
            options["depends_on"] = fields.depends_on
        if fields.id is not None:
            options["id"] = fields.id
        return create_task(fields.task_type, payload, fields.priority, **options)

    def check_payload_size(size: int) -> None:
        if size > config.max_payload_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"the task payload is {size} bytes, more than {config.max_payload_bytes} "
                "(max_payload_bytes)",
            )

    def payload_size(fields: TaskFields) -> int:
        return len(json.dumps(fields.payload, separators=(",", ":")))

    async def read_submission(request: Request) -> tuple[Any, dict[str, bytes], int]:
        """The task JSON, its uploaded files, and the size of the request body."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            files: dict[str, bytes] = {}
            try:
                async with request.form(max_files=64, max_fields=16) as form:
                    text = form.get("task")
                    for key, value in form.multi_items():
                        if key == "task":
                            continue
                        if isinstance(value, str):
                            raise ApiError(
                                422,
                                "validation_error",
                                f"multipart field {key!r} must be a file; other values go "
                                "in the 'task' JSON",
                            )
                        if key in files:
                            raise ApiError(422, "validation_error", f"file {key!r} is sent twice")
                        files[key] = await value.read()
            except StarletteHTTPException as exc:
                raise ApiError(400, "invalid_multipart", str(exc.detail)) from None
            if not isinstance(text, str):
                raise ApiError(
                    400,
                    "invalid_multipart",
                    "a multipart submission needs a 'task' field holding the task as JSON",
                )
            size = len(text) + sum(len(d) for d in files.values())
            try:
                return json.loads(text), files, size
            except ValueError as exc:
                raise ApiError(
                    422, "validation_error", f"the 'task' field is not valid JSON: {exc}"
                ) from None
        body = await request.body()
        return _parse_json(body), {}, len(body)

    def fingerprint(model: BaseModel, files: dict[str, bytes]) -> str:
        digest = hashlib.sha256(
            json.dumps(
                model.model_dump(mode="json", exclude={"idempotency_key"}), sort_keys=True
            ).encode()
        )
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        return digest.hexdigest()

    def owner(request: Request) -> str:
        return str(request.state.token_name)

    @app.post(
        "/tasks",
        status_code=201,
        response_model=Submitted,
        responses=_errors(
            400,
            409,
            413,
            422,
            503,
            ok={200: {"model": Submitted, "description": "Idempotent repeat"}},
        ),
        openapi_extra={"requestBody": _SUBMIT_BODY},
        summary="Submit a task (JSON, or multipart with files that land in the payload)",
    )
    async def submit(request: Request) -> Response:
        raw, files, size = await read_submission(request)
        sub: TaskSubmission = _validate(TaskSubmission, raw)
        if size > config.max_payload_bytes:
            check_payload_size(payload_size(sub) + sum(len(d) for d in files.values()))
        task = build(sub, files)
        key = sub.idempotency_key
        if key is not None:
            mark = fingerprint(sub, files)
            again = state.idempotency.lookup(owner(request), key, mark)
            if again is not None:
                return JSON(again, status_code=200)
        await state.processor.submit_task(task)
        state.graph.add(task)
        answer = {"id": task.id, "status": TaskStatus.PENDING.value}
        if key is not None:
            state.idempotency.store(owner(request), key, mark, answer)
        return JSON(answer, status_code=201, headers={"Location": f"/tasks/{task.id}"})

    @app.post(
        "/tasks/batch",
        status_code=201,
        response_model=BatchSubmitted,
        responses=_errors(
            400,
            409,
            413,
            422,
            503,
            ok={200: {"model": BatchSubmitted, "description": "Idempotent repeat"}},
        ),
        openapi_extra={"requestBody": _BATCH_BODY},
        summary="Submit tasks atomically, in any order (depends_on may name ids in the batch)",
    )
    async def submit_batch(request: Request) -> Response:
        body = await request.body()
        batch: BatchSubmission = _validate(BatchSubmission, _parse_json(body))
        if len(body) > config.max_payload_bytes:
            for fields in batch.tasks:
                check_payload_size(payload_size(fields))
        tasks = [build(fields, {}) for fields in batch.tasks]
        key = batch.idempotency_key
        if key is not None:
            mark = fingerprint(batch, {})
            again = state.idempotency.lookup(owner(request), key, mark)
            if again is not None:
                return JSON(again, status_code=200)
        ids = await state.processor.submit_tasks(tasks)
        for task in tasks:
            state.graph.add(task)
        answer = {"ids": ids}
        if key is not None:
            state.idempotency.store(owner(request), key, mark, answer)
        return JSON(answer, status_code=201)

    def view(task_id: str) -> dict[str, Any]:
        manager = state.processor.task_manager
        record = manager.records.get(task_id)
        if record is not None:
            return _task_view(record)
        result = manager.result(task_id)
        assert result is not None
        return result.to_dict()

    @app.get("/tasks/{task_id}", response_model=TaskView, responses=_errors(404))
    async def get_task(task_id: str) -> Response:
        """A task's status, and its result once it has ended."""
        return JSON(view(task_id))

    @app.get("/tasks/{task_id}/wait", response_model=TaskView, responses=_errors(404, 422))
    async def wait_task(
        task_id: str,
        timeout: Annotated[float, Query(ge=0, le=config.max_wait, description="seconds")] = 30.0,
    ) -> Response:
        """Wait up to ``timeout`` seconds for the task to end; answers its state either way."""
        try:
            result = await state.processor.wait_for_task(task_id, timeout)
        except TimeoutError:
            return JSON(view(task_id))
        return JSON(result.to_dict())

    @app.delete("/tasks/{task_id}", response_model=Cancelled, responses=_errors(400, 404, 413))
    async def cancel_task(task_id: str) -> Response:
        """Cancel a task that has not ended, and every task that depends on it."""
        proc = state.processor
        manager = proc.task_manager
        record = manager.records.get(task_id)
        downstream: list[str] = []
        if record is not None:
            stack, seen = [record], {task_id}
            while stack:
                for child in stack.pop().dependents or ():
                    if child.task.id not in seen:
                        seen.add(child.task.id)
                        downstream.append(child.task.id)
                        stack.append(child)
        cancelled = await proc.cancel_task(task_id)
        status = manager.status(task_id)
        cascaded = [
            d
            for d in downstream
            if d not in manager.records and _status_or_none(proc, d) is TaskStatus.CANCELLED
        ]
        return JSON(
            {
                "task_id": task_id,
                "cancelled": cancelled,
                "status": status.value,
                "cancelled_dependents": cascaded,
            }
        )

    @app.get("/tasks", response_model=TaskPage, responses=_errors(400, 422))
    async def list_tasks(
        status: TaskStatus | None = None,
        task_type: str | None = None,
        tag: Annotated[list[str], Query(description="all of these tags")] = [],  # noqa: B006
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> Response:
        """Tasks newest first, filtered by status, type and tags; page with ``next_cursor``."""
        after = _decode_cursor(cursor) if cursor else None
        manager = state.processor.task_manager
        wanted = set(tag)
        now = time.time()
        cutoff = now - manager.results.ttl

        def candidates() -> Iterator[tuple[tuple[float, str], Any]]:
            if status is None or not status.is_terminal:
                for record in list(manager.records.values()):
                    task = record.task
                    if (
                        (status is None or record.status is status)
                        and (task_type is None or record.type_name == task_type)
                        and wanted <= task.tags
                    ):
                        yield (-task.created_at, task.id), record
            if status is None or status.is_terminal:
                for result in manager.results.values():
                    if (
                        (status is None or result.status is status)
                        and (task_type is None or result.task_type == task_type)
                        and wanted <= result.tags
                        and (result.completed_at or now) > cutoff
                    ):
                        yield (-result.created_at, result.task_id), result

        chosen = heapq.nsmallest(
            limit + 1,
            (c for c in candidates() if after is None or c[0] > after),
            key=lambda c: c[0],
        )
        page = chosen[:limit]
        items = [
            _task_view(item) if isinstance(item, TaskRecord) else item.to_dict() for _, item in page
        ]
        next_cursor = None
        if len(chosen) > limit:
            last_key = page[-1][0]
            next_cursor = _encode_cursor(-last_key[0], last_key[1])
        return JSON({"tasks": items, "next_cursor": next_cursor})

    @app.get("/tasks/{task_id}/graph", response_model=Graph, responses=_errors(404))
    async def task_graph(task_id: str) -> Response:
        """The task's transitive dependencies and dependents (at most 500 nodes)."""
        proc = state.processor
        manager = proc.task_manager
        if task_id not in manager and task_id not in state.graph.deps:
            raise ApiError(
                404, "task_not_found", f"no task {task_id!r} (never submitted, or evicted)"
            )

        def upstream(node: str) -> tuple[str, ...]:
            record = manager.records.get(node)
            if record is not None:
                return tuple(record.task.depends_on)
            return state.graph.deps.get(node, ())

        def downstream(node: str) -> list[str]:
            children = list(state.graph.dependents.get(node, ()))
            record = manager.records.get(node)
            for child in (record.dependents or ()) if record is not None else ():
                if child.task.id not in children:
                    children.append(child.task.id)
            return children

        nodes: dict[str, dict[str, Any]] = {}
        edges: set[tuple[str, str]] = set()
        for walk, is_up in ((upstream, True), (downstream, False)):
            stack, seen = [task_id], {task_id}
            while stack and len(seen) < _GRAPH_LIMIT:
                node = stack.pop()
                for other in walk(node):
                    edges.add((other, node) if is_up else (node, other))
                    if other not in seen:
                        seen.add(other)
                        stack.append(other)
            for node in seen:
                nodes[node] = _node(proc, node)
        return JSON({"nodes": list(nodes.values()), "edges": sorted([a, b] for a, b in edges)})


def _status_or_none(proc: AdvancedAsyncProcessor, task_id: str) -> TaskStatus | None:
    try:
        return proc.task_manager.status(task_id)
    except AsyncProcessorError:
        return None


def _node(proc: AdvancedAsyncProcessor, task_id: str) -> dict[str, Any]:
    manager = proc.task_manager
    record = manager.records.get(task_id)
    if record is not None:
        return {
            "id": task_id,
            "task_type": record.type_name,
            "status": record.status.value,
            "priority": record.task.priority.value,
        }
    result = manager.results.get(task_id, time.time())
    if result is not None:
        return {
            "id": task_id,
            "task_type": result.task_type,
            "status": result.status.value,
            "priority": result.priority.value,
        }
    return {"id": task_id, "task_type": "", "status": "unknown", "priority": 0}


# -- health, metrics, events, stats ------------------------------------------------------


def _add_monitoring_routes(app: FastAPI, state: ServiceState) -> None:
    config = state.config

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "Unhealthy"}},
    )
    async def health(request: Request) -> Response:
        """healthy/degraded (200) or unhealthy (503), with the reason; no token needed."""
        check = await state.processor.health_check()
        body: dict[str, Any] = {"status": check["status"], "reason": check.get("reason")}
        if getattr(request.state, "token_name", None):
            body["metrics"] = to_json(check["metrics"])
        return JSON(body, status_code=503 if check["status"] == "unhealthy" else 200)

    @app.get(
        "/metrics",
        response_class=Response,
        responses=_errors(ok={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}),
    )
    async def metrics() -> Response:
        """The processor's metrics in the Prometheus text format."""
        snapshot = await state.processor.get_performance_metrics()
        return Response(state.exporter.render(snapshot), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/events",
        response_class=StreamingResponse,
        responses=_errors(ok={200: {"content": {"text/event-stream": {}}}}),
    )
    async def events(task_id: str | None = None, task_type: str | None = None) -> Response:
        """Server-sent events: one ``task`` event per status change, ``: ping`` heartbeats."""
        sub = state.hub.subscribe(task_id, task_type)
        return StreamingResponse(
            state.hub.stream(sub, config.sse_heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/stats", response_model=dict[str, Any], responses=_errors())
    async def stats() -> Response:
        """The processor's metrics plus recent tasks and failures, for the dashboard."""
        snapshot = await state.processor.get_performance_metrics()
        snapshot["recent_failures"] = list(state.hub.recent_failures)
        snapshot["recent_tasks"] = state.hub.recent()
        snapshot["events"] = {
            "subscribers": len(state.hub.subscribers),
            "dropped": state.hub.dropped,
        }
        return JSON(to_json(snapshot))


# -- dashboard ---------------------------------------------------------------------------


def _dashboard_file(parts: list[str]) -> bytes | None:
    if not parts or not all(_SEGMENT.match(p) for p in parts):
        return None
    resource = resources.files("async_processor.service").joinpath("dashboard", *parts)
    try:
        return resource.read_bytes() if resource.is_file() else None
    except OSError:
        return None


def _add_dashboard_routes(app: FastAPI) -> None:
    html: dict[int | str, Any] = {200: {"content": {"text/html": {"schema": {"type": "string"}}}}}

    @app.get("/", response_class=Response, responses=_errors(404, ok=html))
    async def dashboard(request: Request, access_token: str | None = None) -> Response:
        """The live dashboard (``?access_token=`` sets a cookie for its assets and stream)."""
        page = _dashboard_file(["index.html"])
        if page is None:
            raise ApiError(404, "not_found", "the dashboard is not installed in this package")
        response = Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})
        if access_token and request.app.state.service.auth.identify(access_token):
            response.set_cookie(COOKIE, access_token, httponly=True, samesite="strict")
        return response

    @app.get(
        "/dashboard/{file:path}",
        response_class=Response,
        responses=_errors(404, ok={200: {"content": {"*/*": {}}}}),
    )
    async def dashboard_asset(file: str) -> Response:
        """A static file of the dashboard."""
        data = _dashboard_file(file.split("/"))
        if data is None:
            raise ApiError(404, "not_found", f"no dashboard file {file!r}")
        media = mimetypes.guess_type(file)[0] or "application/octet-stream"
        return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})


# -- OpenAPI -----------------------------------------------------------------------------

_SUBMIT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/TaskSubmission"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["task"],
                "properties": {
                    "task": {"type": "string", "description": "the TaskSubmission as JSON"}
                },
                "additionalProperties": {"type": "string", "format": "binary"},
            }
        },
    },
}
_BATCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchSubmission"}}},
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (TaskSubmission, BatchSubmission):
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(js.pop("$defs", {}))
        schemas[model.__name__] = js
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}]
    schema["paths"]["/health"]["get"]["security"] = []
    app.openapi_schema = schema
    return schema
