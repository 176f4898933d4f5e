"""JSON responses and errors: every error is ``{"error": code, "detail": message}``."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse

from ..errors import (
    AsyncProcessorError,
    DependencyNotFoundError,
    DuplicateTaskError,
    InvalidArgumentError,
    InvalidTaskError,
    ProcessorNotRunningError,
    QueueFullError,
    TaskNotFoundError,
)

__all__ = ["JSON", "ApiError", "error_body", "error_for", "error_response"]


class JSON(JSONResponse):
    """JSON that never fails on NaN or infinity (they become null)."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class ApiError(Exception):
    """Raised by a route to answer with a JSON error."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.errors = errors

    def response(self) -> JSON:
        return error_response(self.status, self.code, self.detail, self.headers, self.errors)


def error_body(
    code: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def error_response(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSON:
    return JSON(error_body(code, detail, errors), status_code=status, headers=headers)


def error_for(exc: AsyncProcessorError) -> ApiError:
    """The HTTP answer to a refusal by the processor."""
    detail = str(exc)
    if isinstance(exc, TaskNotFoundError):
        return ApiError(404, "task_not_found", detail)
    if isinstance(exc, DependencyNotFoundError):  # as for another token's task: 404
        return ApiError(404, "dependency_not_found", detail)
    if isinstance(exc, DuplicateTaskError):
        return ApiError(409, "duplicate_task", detail)
    if isinstance(exc, InvalidTaskError):
        code = type(exc).__name__.removesuffix("Error")
        return ApiError(422, _snake(code), detail)
    if isinstance(exc, QueueFullError):
        return ApiError(503, "queue_full", detail, {"Retry-After": "1"})
    if isinstance(exc, ProcessorNotRunningError):
        return ApiError(503, "not_running", detail, {"Retry-After": "5"})
    if isinstance(exc, InvalidArgumentError):
        return ApiError(422, "invalid_argument", detail)
    return ApiError(500, "internal_error", "the server failed to handle the request")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
