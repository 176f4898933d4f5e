"""Reading a task submission: JSON (with a nesting limit) or multipart, into a task."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..task import ProcessingTask, create_task
from .models import TaskFields
from .responses import ApiError
from .tenancy import RESERVED_TAG_PREFIX

__all__ = [
    "MAX_JSON_DEPTH",
    "build_task",
    "fingerprint",
    "invalid",
    "parse_json",
    "read_submission",
    "validate",
]

#: Deepest nesting of arrays and objects a request body may have.
MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_exceeds(text: bytes, limit: int) -> bool:
    """True if the JSON ``text`` nests arrays/objects deeper than ``limit``.

    Works on the bytes without recursion: strings are removed, then brackets only are
    kept and every round of removing innermost ``[]`` pairs peels one level.
    """
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    brackets = brackets.replace(b"{", b"[").replace(b"}", b"]")
    for peeled_levels in range(limit):
        if not brackets:
            return False
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):  # unbalanced: what is left opens and never closes
            return peeled_levels + peeled.count(b"[") > limit
        brackets = peeled
    return b"[" in brackets


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a 400 that says what is wrong."""
    if nesting_exceeds(body, MAX_JSON_DEPTH):
        raise ApiError(
            400,
            "json_too_deep",
            f"the request body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep",
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def invalid(errors: Any) -> ApiError:
    """The 422 for pydantic's errors, naming the first wrong field."""
    clean = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg")),
            "type": e.get("type"),
        }
        for e in errors
    ]
    first = clean[0] if clean else {"loc": [], "msg": "invalid"}
    where = ".".join(p for p in first["loc"] if p != "body") or "request"
    return ApiError(422, "validation_error", f"{where}: {first['msg']}", errors=clean)


def validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc.errors()) from None


async def read_submission(request: Request) -> tuple[Any, dict[str, bytes], int]:
    """The task JSON, its uploaded files, and the size of the request body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await request.body()
        return parse_json(body), {}, len(body)
    text, files = await _read_form(request)
    size = len(text) + sum(len(d) for d in files.values())
    try:
        return parse_json(text.encode()), files, size
    except ApiError as exc:
        raise ApiError(
            exc.status if exc.code == "json_too_deep" else 422,
            exc.code if exc.code == "json_too_deep" else "validation_error",
            f"the 'task' field: {exc.detail}",
        ) from None


async def _read_form(request: Request) -> tuple[str, dict[str, bytes]]:
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
                        f"multipart field {key!r} must be a file; other values go in the "
                        "'task' JSON",
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
    return text, files


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


def build_task(
    fields: TaskFields, files: dict[str, bytes], service_tags: set[str]
) -> ProcessingTask:
    """The task ``fields`` describe, with ``files`` added to its payload and the service's
    own tags (its owner) added to the client's."""
    reserved = [t for t in fields.tags if t.startswith(RESERVED_TAG_PREFIX)]
    if reserved:
        raise ApiError(
            422,
            "reserved_tag",
            f"tag {reserved[0]!r}: tags starting with {RESERVED_TAG_PREFIX!r} are the "
            "service's own; choose another tag",
        )
    payload = _decode(fields.payload, "payload")
    for name, data in files.items():
        if name in payload:
            raise ApiError(422, "validation_error", f"payload.{name} is both a field and a file")
        payload[name] = data
    options: dict[str, Any] = {
        "timeout": fields.timeout,
        "max_retries": fields.max_retries,
        "tags": {*fields.tags, *service_tags},
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


def fingerprint(model: BaseModel, files: dict[str, bytes]) -> str:
    """A digest of a submission (without its idempotency key), to spot a changed body."""
    digest = hashlib.sha256(
        json.dumps(
            model.model_dump(mode="json", exclude={"idempotency_key"}), sort_keys=True
        ).encode()
    )
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()
