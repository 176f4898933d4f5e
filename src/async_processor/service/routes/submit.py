"""``POST /tasks`` and ``POST /tasks/batch``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...lifecycle import TaskStatus
from ...task import ProcessingTask
from ..models import BatchSubmission, BatchSubmitted, Submitted, TaskFields, TaskSubmission
from ..openapi import BATCH_BODY, SUBMIT_BODY, answers, repeat
from ..responses import JSON, ApiError
from ..state import CallerDep, ServiceState, StateDep
from ..submission import build_task, fingerprint, parse_json, read_submission, validate
from ..tenancy import Caller, owner_tag

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
    state: ServiceState, caller: Caller, fields: TaskFields, files: dict[str, bytes]
) -> ProcessingTask:
    if fields.task_type == "custom" and not state.reads.has_processor("custom"):
        raise ApiError(
            422,
            "custom_not_registered",
            "CUSTOM tasks run a processor registered by name on the server; this API "
            "never accepts code (register one with processor.register_processor('custom', "
            "func) or [service.processors])",
        )
    return build_task(fields, files, {owner_tag(caller.name)})


def _check_dependencies(state: ServiceState, caller: Caller, tasks: list[ProcessingTask]) -> None:
    """404 for a dependency the caller cannot see: unknown, or another token's task."""
    submitted = {task.id for task in tasks}
    for task in tasks:
        for dep in task.depends_on:
            if dep in submitted:
                continue
            view = state.reads.view(dep)
            if view is None or not caller.sees(view["tags"]):
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
    task = _build(state, caller, sub, files)
    _check_dependencies(state, caller, [task])
    key = sub.idempotency_key
    mark = fingerprint(sub, files)
    if key is not None:
        again = state.idempotency.lookup(caller.name, key, mark)
        if again is not None:
            return JSON(again, status_code=200)
    await state.processor.submit_task(task)
    state.reads.graph.add(task)
    answer = {"id": task.id, "status": TaskStatus.PENDING.value}
    if key is not None:
        state.idempotency.store(caller.name, key, mark, answer)
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
    tasks = [_build(state, caller, fields, {}) for fields in batch.tasks]
    _check_dependencies(state, caller, tasks)
    key = batch.idempotency_key
    mark = fingerprint(batch, {})
    if key is not None:
        again = state.idempotency.lookup(caller.name, key, mark)
        if again is not None:
            return JSON(again, status_code=200)
    ids = await state.processor.submit_tasks(tasks)
    for task in tasks:
        state.reads.graph.add(task)
    answer = {"ids": ids}
    if key is not None:
        state.idempotency.store(caller.name, key, mark, answer)
    return JSON(answer, status_code=201)
