"""``/health``, ``/metrics`` (Prometheus), ``/events`` (server-sent events) and ``/stats``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response, StreamingResponse

from ...task import to_json
from ..models import Health
from ..openapi import answers
from ..responses import JSON
from ..state import CallerDep, StateDep, require_admin
from ..tenancy import Caller

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Unhealthy"}},
)
async def health(request: Request, state: StateDep) -> Response:
    """healthy/degraded (200) or unhealthy (503), with every reason; no token needed. An
    admin token also gets the metrics (they name stores and running tasks)."""
    check = await state.processor.health_check()
    body: dict[str, Any] = {
        "status": check["status"],
        "reason": check["reason"],
        "reasons": check["reasons"],
    }
    caller = getattr(request.state, "caller", None)
    if isinstance(caller, Caller) and caller.admin:
        body["metrics"] = to_json(check["metrics"])
    return JSON(body, status_code=503 if check["status"] == "unhealthy" else 200)


@router.get(
    "/metrics",
    response_class=Response,
    responses=answers(ok={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}),
)
async def metrics(state: StateDep) -> Response:
    """The processor's metrics in the Prometheus text format."""
    snapshot = await state.processor.get_performance_metrics()
    return Response(state.exporter.render(snapshot), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses=answers(503, ok={200: {"content": {"text/event-stream": {}}}}),
)
async def events(
    state: StateDep, caller: CallerDep, task_id: str | None = None, task_type: str | None = None
) -> Response:
    """Server-sent events: one ``task`` event per status change of the caller's tasks
    (an admin's: every task), ``: ping`` heartbeats."""
    sub = state.hub.subscribe(caller, task_id, task_type)
    return StreamingResponse(
        state.hub.stream(sub, state.config.sse_heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/stats", response_model=dict[str, Any], responses=answers(403))
async def stats(state: StateDep, caller: CallerDep) -> Response:
    """The processor's metrics plus recent tasks and failures, for the dashboard (admin)."""
    require_admin(caller, "/stats")
    snapshot = await state.processor.get_performance_metrics()
    snapshot["recent_failures"] = list(state.hub.recent_failures)
    snapshot["recent_tasks"] = state.hub.recent()
    snapshot["events"] = {
        "subscribers": len(state.hub.subscribers),
        "dropped": state.hub.dropped,
    }
    return JSON(to_json(snapshot))
