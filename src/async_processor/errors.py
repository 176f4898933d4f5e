"""Every error the library raises, in one tree.

    AsyncProcessorError
    ├── InvalidArgumentError          a processor argument is wrong (constructor, set_limits, ...)
    ├── ProcessorNotRunningError      submit before start() or after shutdown()
    ├── TaskNotFoundError             an id the processor does not know (or has evicted)
    ├── InvalidTaskError              a task whose fields are wrong
    │   ├── UnknownTaskTypeError      no processor is registered for the task's type
    │   ├── DuplicateTaskError        the id was submitted before
    │   ├── DependencyNotFoundError   depends_on names an id the processor does not know
    │   ├── DependencyCycleError      a batch whose dependencies form a cycle
    │   └── UnsendableTaskError       a process task whose processor or payload cannot be pickled
    ├── QueueFullError                accepting the task would exceed queue_size
    ├── InvalidTransitionError        a lifecycle change the transition table forbids (a bug)
    ├── NonRetryableError             raised by a processor to fail at once, without retries
    │   ├── InvalidInputError         a built-in processor's payload is wrong (bad audio, ...)
    │   ├── MissingExtraError         a built-in processor needs an optional extra installed
    │   ├── ProviderRequestError      a provider refused the request (4xx, malformed reply)
    │   └── EgressDeniedError         a built-in would connect to an internal address
    ├── ProviderError                 a provider failed for now (429, 5xx, timeout): retried
    └── WorkerCrashedError            the worker process running a task died

Each message says what was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AsyncProcessorError",
    "DependencyCycleError",
    "DependencyNotFoundError",
    "DuplicateTaskError",
    "EgressDeniedError",
    "InvalidArgumentError",
    "InvalidInputError",
    "InvalidTaskError",
    "InvalidTransitionError",
    "MissingExtraError",
    "NonRetryableError",
    "ProcessorNotRunningError",
    "ProviderError",
    "ProviderRequestError",
    "QueueFullError",
    "TaskNotFoundError",
    "UnknownTaskTypeError",
    "UnsendableTaskError",
    "WorkerCrashedError",
]


class AsyncProcessorError(Exception):
    """The root of every error raised by async_processor."""


class InvalidArgumentError(AsyncProcessorError, ValueError):
    """An argument to the processor is wrong: a constructor setting, a limit, a wait timeout."""


class ProcessorNotRunningError(AsyncProcessorError):
    """The processor is not accepting work: it was never started, or it is shutting down."""


class TaskNotFoundError(AsyncProcessorError, KeyError):
    """The processor does not know this task id (never submitted, or its result was evicted)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidTaskError(AsyncProcessorError, ValueError):
    """A task was refused because one of its fields is wrong; nothing of it was kept."""


class UnknownTaskTypeError(InvalidTaskError):
    """No processor is registered for the task's type."""


class DuplicateTaskError(InvalidTaskError):
    """A task with this id was already submitted."""


class DependencyNotFoundError(InvalidTaskError):
    """A task depends on an id the processor does not know."""


class DependencyCycleError(InvalidTaskError):
    """The dependencies of a batch form a cycle."""


class UnsendableTaskError(InvalidTaskError):
    """A process-pool task whose processor or payload cannot be pickled."""


class QueueFullError(AsyncProcessorError):
    """Accepting the task would put more than queue_size tasks in the queue."""


class InvalidTransitionError(AsyncProcessorError, RuntimeError):
    """A task was asked to move between two states the lifecycle table does not connect."""


class NonRetryableError(AsyncProcessorError):
    """Raise this (or a subclass) from a processor to fail the task at once, without retries."""


class InvalidInputError(NonRetryableError, ValueError):
    """A built-in processor cannot use the task's payload: empty or corrupt audio, an image
    over the size limit, an unknown database name, ... The message says what to change."""


class MissingExtraError(NonRetryableError):
    """A built-in processor needs an optional dependency; the message gives the pip command."""


class ProviderRequestError(NonRetryableError):
    """A provider API refused the request or answered with something unusable; retrying the
    same request would not help."""


class EgressDeniedError(NonRetryableError):
    """A built-in processor was about to connect to an internal address (loopback, private,
    link-local, CGNAT, unique-local, metadata, ...) that ``ASYNC_PROCESSOR_EGRESS_ALLOW``
    does not allow; nothing was sent. ``address`` is None when the host name itself is
    refused (a cloud metadata name)."""

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        super().__init__(host, address, reason)  # the arguments, so that it pickles
        self.host = host
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        where = self.host if self.address in (None, self.host) else f"{self.host} ({self.address})"
        return (
            f"refused to connect to {where}: {self.reason}; the built-in processors reach "
            "internal addresses only when allowed: if this server is yours, add "
            f"{self.host!r} to ASYNC_PROCESSOR_EGRESS_ALLOW (or Settings.egress_allow)"
        )


class ProviderError(AsyncProcessorError):
    """A provider API failed in a way that may pass (rate limit, server error, timeout, no
    connection); the task is retried under its ``max_retries``."""


class WorkerCrashedError(AsyncProcessorError):
    """The worker process running the task died (a crash, os._exit, or the OOM killer)."""
