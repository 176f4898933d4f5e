"""Reading tasks: ``GET /tasks/{id}``, its long poll, cancelling, listing and the graph.

A token sees only its own tasks (an admin: every task); another token's task answers
exactly as an unknown one.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from ...errors import TaskNotFoundError
from ...lifecycle import TaskStatus
from ...views import TaskView
from ..models import Cancelled, Graph, TaskPage
from ..models import TaskView as TaskViewModel
from ..openapi import answers
from ..reads import ProcessorReads
from ..responses import JSON, ApiError
from ..state import CallerDep, ServiceState, StateDep
from ..tenancy import Caller, owner_tag, public_view

__all__ = ["router"]

router = APIRouter()
_GRAPH_LIMIT = 500


def _not_found(task_id: str) -> ApiError:
    """The answer for an unknown task, and for another token's task alike."""
    return ApiError(404, "task_not_found", f"no task {task_id!r} (never submitted, or evicted)")


def _find(state: ServiceState, caller: Caller, task_id: str) -> TaskView:
    """The task's snapshot if ``caller`` may see it; else 404."""
    view = state.reads.find(task_id)
    if view is None or not caller.sees(view.tags):
        raise _not_found(task_id)
    return view


async def _json(state: ServiceState, view: TaskView) -> dict[str, Any]:
    return public_view(await state.reads.as_json(view))


@router.get("/tasks/{task_id}", response_model=TaskViewModel, responses=answers(404))
async def get_task(task_id: str, state: StateDep, caller: CallerDep) -> Response:
    """A task's status, and its result once it has ended."""
    return JSON(await _json(state, _find(state, caller, task_id)))


@router.get("/tasks/{task_id}/wait", response_model=TaskViewModel, responses=answers(404, 422, 503))
async def wait_task(
    task_id: str,
    state: StateDep,
    caller: CallerDep,
    timeout: Annotated[
        float, Query(ge=0, description="seconds, at most the server's max_wait")
    ] = 30.0,
) -> Response:
    """Wait up to ``timeout`` seconds for the task to end; answers its state either way."""
    if timeout > state.config.max_wait:
        raise ApiError(
            422,
            "validation_error",
            f"timeout: must be at most {state.config.max_wait} seconds (max_wait)",
        )
    _find(state, caller, task_id)
    try:
        result = await state.processor.wait_for_task(task_id, timeout)
    except TimeoutError:
        return JSON(await _json(state, _find(state, caller, task_id)))
    return JSON(public_view(result.to_dict()))


@router.delete("/tasks/{task_id}", response_model=Cancelled, responses=answers(400, 404, 413))
async def cancel_task(task_id: str, state: StateDep, caller: CallerDep) -> Response:
    """Cancel a task that has not ended, and every task that depends on it."""
    reads = state.reads
    _find(state, caller, task_id)
    downstream = reads.unfinished_downstream(task_id)
    cancelled = await state.processor.cancel_task(task_id)
    status = await state.processor.get_task_status(task_id)
    cascaded = []
    for dependent in downstream:
        view = reads.find(dependent)
        if view is not None and view.status is TaskStatus.CANCELLED:
            cascaded.append(dependent)
    return JSON(
        {
            "task_id": task_id,
            "cancelled": cancelled,
            "status": status.value,
            "cancelled_dependents": cascaded,
        }
    )


def _encode_cursor(task_id: str) -> str:
    return base64.urlsafe_b64encode(task_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error):
        raise ApiError(422, "invalid_cursor", "cursor is not one this server handed out") from None


@router.get("/tasks", response_model=TaskPage, responses=answers(400, 422))
async def list_tasks(
    state: StateDep,
    caller: CallerDep,
    status: TaskStatus | None = None,
    task_type: str | None = None,
    tag: Annotated[list[str], Query(description="all of these tags")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Response:
    """Tasks newest first, filtered by status, type and tags; page with ``next_cursor``."""
    after = _decode_cursor(cursor) if cursor else None
    if after is not None and (view := state.reads.find(after)) and not caller.sees(view.tags):
        raise ApiError(422, "invalid_cursor", "cursor is not one this server handed out")
    wanted = tag if caller.admin else [*tag, owner_tag(caller.name)]
    try:
        chosen = state.reads.page(status, task_type, wanted, limit + 1, after)
    except TaskNotFoundError:
        raise ApiError(
            422, "invalid_cursor", "the cursor's task is no longer kept; list from the start"
        ) from None
    page = chosen[:limit]
    next_cursor = _encode_cursor(page[-1].task_id) if len(chosen) > limit else None
    items = [await _json(state, view) for view in page]
    return JSON({"tasks": items, "next_cursor": next_cursor})


def _node(reads: ProcessorReads, caller: Caller, task_id: str) -> dict[str, Any] | None:
    """The graph node of ``task_id``; None if it is not the caller's."""
    view = reads.find(task_id)
    if view is None:
        return {"id": task_id, "task_type": "", "status": "unknown", "priority": 0}
    if not caller.sees(view.tags):
        return None
    return {
        "id": task_id,
        "task_type": view.task_type,
        "status": view.status.value,
        "priority": view.priority.value,
    }


def _walk(
    reads: ProcessorReads, task_id: str, upward: bool
) -> tuple[set[str], set[tuple[str, str]]]:
    """The nodes reached from ``task_id`` along dependencies (or dependents), and edges."""
    edges: set[tuple[str, str]] = set()
    stack, seen = [task_id], {task_id}
    while stack and len(seen) < _GRAPH_LIMIT:
        node = stack.pop()
        if upward:
            view = reads.find(node)
            step = list(view.depends_on) if view is not None else []
        else:
            step = reads.dependents(node)
        for other in step:
            edges.add((other, node) if upward else (node, other))
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen, edges


@router.get("/tasks/{task_id}/graph", response_model=Graph, responses=answers(404))
async def task_graph(task_id: str, state: StateDep, caller: CallerDep) -> Response:
    """The task's transitive dependencies and dependents (at most 500 nodes)."""
    reads = state.reads
    _find(state, caller, task_id)
    up_nodes, up_edges = _walk(reads, task_id, upward=True)
    down_nodes, down_edges = _walk(reads, task_id, upward=False)
    found = {node: _node(reads, caller, node) for node in (*up_nodes, *down_nodes)}
    nodes = {node: info for node, info in found.items() if info is not None}
    edges = sorted([a, b] for a, b in up_edges | down_edges if a in nodes and b in nodes)
    return JSON({"nodes": list(nodes.values()), "edges": edges})
