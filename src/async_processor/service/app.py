"""The HTTP API: :func:`create_app` builds the FastAPI application (routes in docs/service.md)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from .. import tracing
from ..errors import AsyncProcessorError, InvalidArgumentError
from ..processor import AdvancedAsyncProcessor
from ..processors.settings import Settings
from .config import ConfigError, ServiceConfig
from .gate import Gate
from .openapi import build_openapi
from .responses import JSON, ApiError, error_for, error_response
from .routes import dashboard_router, monitoring_router, submit_router, tasks_router
from .state import ServiceState
from .submission import invalid

__all__ = ["ServiceState", "build_processor", "create_app", "processor_settings"]


def processor_settings(config: ServiceConfig, base: Settings | None = None) -> Settings:
    """``base`` (default: the environment's) with ``[database.statements]`` added."""
    settings = Settings.from_env() if base is None else base
    if not config.database_statements:
        return settings
    statements = {**settings.database_statements, **config.database_statements}
    try:
        return dataclasses.replace(settings, database_statements=statements)
    except InvalidArgumentError as exc:
        raise ConfigError(f"[database.statements]: {exc}") from None


def build_processor(config: ServiceConfig) -> AdvancedAsyncProcessor:
    """The processor ``[processor]`` describes, with ``[service.processors]`` registered and
    the SQL statements of ``[database.statements]``."""
    try:
        processor = AdvancedAsyncProcessor(**config.processor, settings=processor_settings(config))
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
        if processor is None:
            state.set_processor(build_processor(config))
        if manage:
            await state.processor.start()
        state.hub.attach(state.reads)
        try:
            yield
        finally:
            state.close_streams()
            state.hub.detach()
            if manage:
                await state.processor.shutdown(timeout=config.shutdown_timeout)

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
    app.add_middleware(Gate, config=config, sessions=state.sessions)
    if tracing.AVAILABLE:
        _continue_traces(app)
    _add_error_handlers(app)
    for router in (submit_router, tasks_router, monitoring_router, dashboard_router):
        app.include_router(router)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


def _continue_traces(app: FastAPI) -> None:
    """Continue an incoming ``traceparent`` with OpenTelemetry's ASGI middleware (extra
    ``otel``): each request is a server span, and the tasks it submits are its children."""
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:  # the API without the ASGI instrumentation
        return
    app.add_middleware(OpenTelemetryMiddleware)  # outermost: the Gate runs inside its span


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def processor_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AsyncProcessorError)
        return error_for(exc).response()

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return invalid(exc.errors()).response()

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
