"""The dashboard: ``GET /`` (its page) and ``GET /dashboard/{file}`` (its assets)."""

from __future__ import annotations

import mimetypes
import re
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..gate import COOKIE
from ..openapi import answers
from ..responses import ApiError

__all__ = ["router"]

router = APIRouter()
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HTML: dict[int | str, Any] = {200: {"content": {"text/html": {"schema": {"type": "string"}}}}}


def _dashboard_file(parts: list[str]) -> bytes | None:
    if not parts or not all(_SEGMENT.match(p) for p in parts):
        return None
    resource = resources.files("async_processor.service").joinpath("dashboard", *parts)
    try:
        return resource.read_bytes() if resource.is_file() else None
    except OSError:
        return None


@router.get("/", response_class=Response, responses=answers(404, ok=_HTML))
async def dashboard(request: Request, access_token: str | None = None) -> Response:
    """The live dashboard (``?access_token=`` of an admin sets a session cookie for its
    data and stream: signed, HttpOnly, SameSite=Strict, Secure over HTTPS)."""
    page = _dashboard_file(["index.html"])
    if page is None:
        raise ApiError(404, "not_found", "the dashboard is not installed in this package")
    response = Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})
    state = request.app.state.service
    name = state.auth.identify(access_token) if access_token else None
    if name is not None and name in state.config.admins:
        response.set_cookie(
            COOKIE,
            state.sessions.issue(name),
            max_age=int(state.config.session_ttl),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


@router.get(
    "/dashboard/{file:path}",
    response_class=Response,
    responses=answers(404, ok={200: {"content": {"*/*": {}}}}),
)
async def dashboard_asset(file: str) -> Response:
    """A static file of the dashboard."""
    data = _dashboard_file(file.split("/"))
    if data is None:
        raise ApiError(404, "not_found", f"no dashboard file {file!r}")
    media = mimetypes.guess_type(file)[0] or "application/octet-stream"
    return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})
