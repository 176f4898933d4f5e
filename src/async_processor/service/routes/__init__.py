"""The API's routes, one router per concern: submitting, reading tasks, monitoring, the
dashboard."""

from .dashboard import router as dashboard_router
from .monitoring import router as monitoring_router
from .submit import router as submit_router
from .tasks import router as tasks_router

__all__ = ["dashboard_router", "monitoring_router", "submit_router", "tasks_router"]
