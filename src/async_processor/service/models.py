"""Request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from ..lifecycle import TaskStatus

__all__ = [
    "BatchSubmission",
    "BatchSubmitted",
    "Cancelled",
    "ErrorBody",
    "Graph",
    "Health",
    "Submitted",
    "TaskFields",
    "TaskPage",
    "TaskSubmission",
    "TaskView",
]

TaskId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
]
PriorityName = Literal[
    "critical", "high", "normal", "low", "batch", "CRITICAL", "HIGH", "NORMAL", "LOW", "BATCH"
]
Priority = Annotated[StrictInt, Field(ge=1, le=5)] | PriorityName
#: Numbers are JSON numbers: ``true`` or ``"5"`` is refused, not read as 1 or 5.
Seconds = Annotated[float, Field(strict=True, gt=0, le=7 * 86400, allow_inf_nan=False)]
UnixTime = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _iso_text(value: Any) -> Any:
    """An ISO 8601 string; a number in a string is refused (send it as a number)."""
    if not isinstance(value, str):
        raise ValueError("a time is Unix seconds (a number) or an ISO 8601 string")
    try:
        float(value)
    except ValueError:
        return value
    raise ValueError("a number in a string is not a time; send Unix seconds as a number")


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class TaskFields(BaseModel):
    """One task. Bytes in ``payload`` travel as ``{"$bytes": "<base64>"}``."""

    model_config = ConfigDict(extra="forbid")

    task_type: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="a ProcessingType value or the name of a registered processor"
    )
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Field("normal", description="critical/high/normal/low/batch or 1-5")
    timeout: Seconds | None = Field(None, description="seconds per attempt")
    max_retries: Annotated[StrictInt, Field(ge=0, le=100)] = 0
    depends_on: list[TaskId] = Field(default_factory=list, max_length=1000)
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=100
    )
    deadline: UnixTime | IsoTime | None = Field(
        None, description="Unix seconds, or an ISO 8601 time with a timezone"
    )
    allow_failure: StrictBool = False
    cpu_intensive: StrictBool = False
    io_bound: StrictBool = False
    memory_intensive: StrictBool = False
    id: TaskId | None = Field(None, description="a client-chosen id (default: generated)")


class TaskSubmission(TaskFields):
    """``POST /tasks``: a task, and an optional idempotency key."""

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="same key and body: the same id again; another body: 409"
    )


class BatchSubmission(BaseModel):
    """``POST /tasks/batch``: tasks accepted together or not at all, in any order."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskFields] = Field(min_length=1, max_length=1000)
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class Submitted(BaseModel):
    id: str
    status: TaskStatus


class BatchSubmitted(BaseModel):
    ids: list[str]


class TaskView(BaseModel):
    """A task: the ``TaskResult`` fields, with ``status`` as its value."""

    task_id: str
    status: TaskStatus
    result: Any = None
    error: str | None = None
    execution_time: float
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    attempts: int
    worker_id: str | None = None
    task_type: str
    priority: int
    tags: list[str]
    error_type: str | None = Field(
        default=None, description="qualified class name of the exception a FAILED task raised"
    )
    traceback: str | None = Field(
        default=None, description="its formatted traceback, chained causes included"
    )


class TaskPage(BaseModel):
    tasks: list[TaskView]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class Cancelled(BaseModel):
    task_id: str
    cancelled: bool
    status: TaskStatus
    cancelled_dependents: list[str]


class Health(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    reason: str | None = Field(None, description="the worst of reasons; null when healthy")
    reasons: list[str] = Field(default_factory=list, description="every problem found")
    metrics: dict[str, Any] | None = Field(
        None, description="only for an admin token; metrics.health says what was seen"
    )


class GraphNode(BaseModel):
    id: str
    task_type: str
    status: str
    priority: int


class Graph(BaseModel):
    nodes: list[GraphNode]
    edges: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        description="[dependency, dependent] pairs"
    )


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code, e.g. task_not_found")
    detail: str = Field(description="what was wrong and what to do")
    errors: list[dict[str, Any]] | None = None
