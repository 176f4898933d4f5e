"""The HTTP service (extra ``service``): API, Prometheus metrics, event stream, dashboard.

``create_app(processor, config)`` builds the FastAPI application; ``serve(config)`` runs it
on uvicorn with a graceful stop. See docs/service.md.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"async_processor.service needs the service extra ({exc.name} is missing): "
        "pip install 'async-processor[service]'"
    ) from exc

from .app import build_processor, create_app
from .config import ConfigError, ServiceConfig
from .server import ServiceStartError, serve

__all__ = [
    "ConfigError",
    "ServiceConfig",
    "ServiceStartError",
    "build_processor",
    "create_app",
    "serve",
]
