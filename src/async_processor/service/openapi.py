"""The OpenAPI document: documented answers of each route and the request bodies."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from .models import BatchSubmission, ErrorBody, TaskSubmission

__all__ = ["BATCH_BODY", "SUBMIT_BODY", "answers", "build_openapi", "repeat"]

_ERROR_TEXT = {
    400: "Malformed request body (not JSON, or a broken multipart form)",
    401: "Missing or invalid bearer token",
    403: "This route needs an admin token",
    404: "Unknown task, or another token's task (or dependency)",
    409: "Duplicate task id, or idempotency key reused with another body",
    413: "Request body or task payload too large",
    422: "A field is wrong, or the processor refused the task",
    429: "Rate limit of this token, its open streams, or failed logins (see Retry-After)",
    503: "Queue full, too many streams and long polls, or not running (see Retry-After)",
}

SUBMIT_BODY = {
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
BATCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchSubmission"}}},
}


def answers(*codes: int, ok: dict[int | str, Any] | None = None) -> dict[int | str, Any]:
    """The documented answers of a route: ``ok`` and the error statuses it may return."""
    documented: dict[int | str, Any] = dict(ok or {})
    for code in (401, 429, *codes):
        documented[code] = {"model": ErrorBody, "description": _ERROR_TEXT[code]}
    return documented


def repeat(model: type[BaseModel]) -> dict[int | str, Any]:
    return {200: {"model": model, "description": "Idempotent repeat"}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
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
