"""``POST /tasks`` and ``POST /tasks/batch``."""

from __future__ import annotations

import hashlib
import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...errors import DuplicateTaskError
from ...lifecycle import TaskStatus
from ...task import ProcessingTask, ProcessingType
from ..models import BatchSubmission, BatchSubmitted, Submitted, TaskFields, TaskSubmission
from ..openapi import BATCH_BODY, SUBMIT_BODY, answers, repeat
from ..responses import JSON, ApiError
from ..state import CallerDep, ServiceState, StateDep
from ..submission import build_task, fingerprint, parse_json, read_submission, validate
from ..tenancy import Caller, fingerprint_of, owner_tag, request_tag

__all__ = ["router"]

router = APIRouter()


def _check_payload_size(state: ServiceState, size: int) -> None:
    limit = state.config.max_payload_bytes
    if size > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the task payload is {size} bytes, more than {limit} (max_payload_bytes)",
        )


def _payload_size(fields: TaskFields) -> int:
    return len(json.dumps(fields.payload, separators=(",", ":")))


def _build(
    state: ServiceState,
    caller: Caller,
    fields: TaskFields,
    files: dict[str, bytes],
    mark: str | None,
) -> ProcessingTask:
    if fields.task_type == "custom" and not state.reads.has_processor("custom"):
        raise ApiError(
            422,
            "custom_not_registered",
            "CUSTOM tasks run a processor registered by name on the server; this API "
            "never accepts code (register one with processor.register_processor('custom', "
            "func) or [service.processors])",
        )
    tags = {owner_tag(caller.name)} if mark is None else {owner_tag(caller.name), request_tag(mark)}
    task = build_task(fields, files, tags)
    if task.task_type is ProcessingType.DATABASE_OPERATION:
        _refuse_raw_sql(task.payload)
    return task


def _refuse_raw_sql(payload: dict[str, object]) -> None:
    """Over HTTP a database task names a statement configured on the server."""
    if "query" in payload or "statement" not in payload:
        raise ApiError(
            422,
            "raw_sql_refused",
            "a database_operation over HTTP runs only a statement configured on the server: "
            "send {'statement': name, 'params': {...}} with a name from [database.statements] "
            "of the service config; payload.query (raw SQL) is refused",
        )


def _check_dependencies(state: ServiceState, caller: Caller, tasks: list[ProcessingTask]) -> None:
    """404 for a dependency the caller cannot see: unknown, or another token's task."""
    submitted = {task.id for task in tasks}
    for task in tasks:
        for dep in task.depends_on:
            if dep in submitted:
                continue
            view = state.reads.find(dep)
            if view is None or not caller.sees(view.tags):
                raise ApiError(
                    404,
                    "dependency_not_found",
                    f"task {task.id} depends on {dep!r}, which is not a task of yours "
                    "(never submitted, or evicted); submit it first, or in the same batch",
                )


@router.post(
    "/tasks",
    status_code=201,
    response_model=Submitted,
    responses=answers(400, 404, 409, 413, 422, 503, ok=repeat(Submitted)),
    openapi_extra={"requestBody": SUBMIT_BODY},
    summary="Submit a task (JSON, or multipart with files that land in the payload)",
)
async def submit(request: Request, state: StateDep, caller: CallerDep) -> Response:
    raw, files, size = await read_submission(request)
    sub: TaskSubmission = validate(TaskSubmission, raw)
    if size > state.config.max_payload_bytes:
        _check_payload_size(state, _payload_size(sub) + sum(len(d) for d in files.values()))
    key = sub.idempotency_key
    mark = None if key is None else fingerprint(sub, files)
    task = _build(state, caller, sub, files, mark)
    _check_dependencies(state, caller, [task])
    known = key is not None and state.reads.find(task.id) is not None
    first = await state.processor.submit_task(task, idempotency_key=_library_key(caller, key))
    if known or first != task.id:
        _check_repeat(state, key, mark, first)
        return JSON({"id": first, "status": TaskStatus.PENDING.value}, status_code=200)
    answer = {"id": task.id, "status": TaskStatus.PENDING.value}
    return JSON(answer, status_code=201, headers={"Location": f"/tasks/{task.id}"})


@router.post(
    "/tasks/batch",
    status_code=201,
    response_model=BatchSubmitted,
    responses=answers(400, 404, 409, 413, 422, 503, ok=repeat(BatchSubmitted)),
    openapi_extra={"requestBody": BATCH_BODY},
    summary="Submit tasks atomically, in any order (depends_on may name ids in the batch)",
)
async def submit_batch(request: Request, state: StateDep, caller: CallerDep) -> Response:
    body = await request.body()
    batch: BatchSubmission = validate(BatchSubmission, parse_json(body))
    if len(body) > state.config.max_payload_bytes:
        for fields in batch.tasks:
            _check_payload_size(state, _payload_size(fields))
    key = batch.idempotency_key
    mark = None if key is None else fingerprint(batch, {})
    named = batch.tasks if key is None else _named(batch.tasks, f"{caller.name}/{key}")
    tasks = [_build(state, caller, fields, {}, mark) for fields in named]
    _check_dependencies(state, caller, tasks)
    try:
        ids = await state.processor.submit_tasks(tasks)
    except DuplicateTaskError:
        if key is None or state.reads.find(tasks[0].id) is None:
            raise
        _check_repeat(state, key, mark, tasks[0].id)
        return JSON({"ids": [task.id for task in tasks]}, status_code=200)
    return JSON({"ids": ids}, status_code=201)


def _library_key(caller: Caller, key: str | None) -> str | None:
    """The processor's idempotency key for a client's: one namespace per token."""
    return None if key is None else f"service/{caller.name}/{key}"


def _check_repeat(state: ServiceState, key: str | None, mark: str | None, first: str) -> None:
    """A repeat of the request that made ``first`` is fine; another body is a 409."""
    view = state.reads.find(first)
    if view is not None and fingerprint_of(view.tags) != mark:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"idempotency_key {key!r} was used before with a different request body; "
            "use a new key for a new request",
        )


def _named(fields: list[TaskFields], key: str) -> list[TaskFields]:
    """A keyed batch's tasks with ids that follow from the key, so that a repeat (even
    after a restart) finds the same tasks: the id a client set, else ``<digest>-<n>``.

    The processor's ``idempotency_key`` covers one task; a batch needs every id again.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return [
        given if given.id is not None else given.model_copy(update={"id": f"{digest}-{n}"})
        for n, given in enumerate(fields)
    ]
