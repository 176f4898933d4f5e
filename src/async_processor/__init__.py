"""async_processor: prioritised async task processing for AI applications.

Tasks with priorities, dependencies, deadlines, timeouts and retries, run on the event
loop, a thread pool or a process pool, with metrics. Start with :func:`create_processor`
and :func:`create_task`.
"""

from __future__ import annotations

from .errors import (
    AsyncProcessorError,
    DependencyCycleError,
    DependencyNotFoundError,
    DuplicateTaskError,
    EgressDeniedError,
    InvalidArgumentError,
    InvalidInputError,
    InvalidTaskError,
    InvalidTransitionError,
    MissingExtraError,
    NonRetryableError,
    ProcessorNotRunningError,
    ProviderError,
    ProviderRequestError,
    QueueFullError,
    TaskNotFoundError,
    UnknownTaskTypeError,
    UnsendableTaskError,
    WorkerCrashedError,
)
from .executors.base import Executor
from .lifecycle import TaskStatus
from .monitor import PerformanceMonitor
from .processor import AdvancedAsyncProcessor, create_processor
from .processors import ProviderSettings, Settings, SmtpSettings
from .result import TaskResult
from .retry import RetryPolicy
from .signals import install_signal_handlers
from .task import ProcessingTask, ProcessingType, TaskPriority, create_task
from .task_manager import TaskManager

__version__ = "0.1.0"

__all__ = [
    "AdvancedAsyncProcessor",
    "AsyncProcessorError",
    "DependencyCycleError",
    "DependencyNotFoundError",
    "DuplicateTaskError",
    "EgressDeniedError",
    "Executor",
    "InvalidArgumentError",
    "InvalidInputError",
    "InvalidTaskError",
    "InvalidTransitionError",
    "MissingExtraError",
    "NonRetryableError",
    "PerformanceMonitor",
    "ProcessingTask",
    "ProcessingType",
    "ProcessorNotRunningError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderSettings",
    "QueueFullError",
    "RetryPolicy",
    "Settings",
    "SmtpSettings",
    "TaskManager",
    "TaskNotFoundError",
    "TaskPriority",
    "TaskResult",
    "TaskStatus",
    "UnknownTaskTypeError",
    "UnsendableTaskError",
    "WorkerCrashedError",
    "__version__",
    "create_processor",
    "create_task",
    "install_signal_handlers",
]
