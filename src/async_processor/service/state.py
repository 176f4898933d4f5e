"""What the routes share (:class:`ServiceState`) and how a route gets it and its caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..processor import AdvancedAsyncProcessor
from .auth import Sessions, TokenAuth
from .config import ServiceConfig
from .events import EventHub
from .prometheus import MetricsExporter
from .reads import ProcessorReads
from .responses import ApiError
from .tenancy import Caller

__all__ = ["CallerDep", "ServiceState", "StateDep", "require_admin"]


class ServiceState:
    """The processor, its read window, the event hub and the metrics exporter."""

    def __init__(self, config: ServiceConfig, processor: AdvancedAsyncProcessor | None) -> None:
        self.config = config
        self.auth = TokenAuth(config.tokens)
        self.sessions = Sessions(config.session_ttl)
        self._processor = processor
        self._reads = None if processor is None else ProcessorReads(processor)
        self.hub = EventHub(config.sse_queue_size)
        self.exporter = MetricsExporter()

    def set_processor(self, processor: AdvancedAsyncProcessor) -> None:
        self._processor = processor
        self._reads = ProcessorReads(processor)

    @property
    def processor(self) -> AdvancedAsyncProcessor:
        if self._processor is None:
            raise ApiError(503, "not_running", "the service is starting", {"Retry-After": "1"})
        return self._processor

    @property
    def reads(self) -> ProcessorReads:
        if self._reads is None:
            raise ApiError(503, "not_running", "the service is starting", {"Retry-After": "1"})
        return self._reads

    def close_streams(self) -> None:
        """End every event stream (called when the server starts shutting down)."""
        self.hub.close()


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def _caller(request: Request) -> Caller:
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, Caller):  # the gate lets no route run without a token
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    return caller


StateDep = Annotated[ServiceState, Depends(_state)]
CallerDep = Annotated[Caller, Depends(_caller)]


def require_admin(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise ApiError(
            403,
            "admin_required",
            f"{what} shows every client's tasks: use a token configured as admin "
            "(name:token:admin in ASYNC_PROCESSOR_API_TOKENS, or [service] admins)",
        )
