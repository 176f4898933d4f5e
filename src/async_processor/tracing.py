"""OpenTelemetry spans of task attempts (extra ``otel``: ``opentelemetry-api``).

With a tracer provider set, each attempt of a task is one span named
``async_processor.task <task_type>``, a child of the span that was current when the task
was submitted (read from the submitter's context, which the record keeps). It starts when
a worker takes the task and ends when the attempt is judged; its attributes are the
task's id, type, priority and attempt, the attempt's status, and on a first attempt the
queue wait (seconds from ready to start). A failure is recorded as an exception event and
an error status; a timeout sets the error status.

The span is current while the processor function runs on the loop or in a thread, so
spans the function starts are its children. In the process lane (local processes or
Dask) the span is recorded in the parent around the attempt; the child process starts
no span of its own, and spans created there do not join the trace.

Without the package, :data:`AVAILABLE` is False and the workers never call in here; with
it but without a provider set, each attempt costs one look-up of the global provider.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outcomes import AttemptOutcome
    from .record import TaskRecord

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError:  # the "otel" extra is not installed
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["AVAILABLE", "SPAN_PREFIX", "end_attempt", "run_context", "start_attempt"]

SPAN_PREFIX = "async_processor.task "

_A = "async_processor.task."

#: (provider, its tracer): the tracer of the provider set last.
_cached: tuple[Any, Any] = (None, None)


def _tracer() -> Any:
    """The library's tracer, or None while no tracer provider is set."""
    global _cached
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    if _cached[0] is not provider:
        from . import __version__

        _cached = (provider, provider.get_tracer("async_processor", __version__))
    return _cached[1]


def start_attempt(record: TaskRecord) -> Any:
    """Start the span of the attempt ``record`` begins now; None without a provider."""
    tracer = _tracer()
    if tracer is None:
        return None
    parent = record.context.run(otel_context.get_current) if record.context else None
    attributes: dict[str, Any] = {
        _A + "id": record.task.id,
        _A + "type": record.type_name,
        _A + "priority": record.priority_name,
        _A + "attempt": record.attempts,
    }
    if record.attempts == 1:
        attributes[_A + "queue_wait_s"] = max(0.0, record.exec_started - record.ready_at)
    return tracer.start_span(SPAN_PREFIX + record.type_name, parent, attributes=attributes)


def run_context(span: Any, base: contextvars.Context | None) -> contextvars.Context:
    """A copy of ``base`` (or of the current context) in which ``span`` is current."""
    context = base.copy() if base is not None else contextvars.copy_context()
    parent = context.run(otel_context.get_current)
    context.run(otel_context.attach, trace.set_span_in_context(span, parent))
    return context


def end_attempt(span: Any, outcome: AttemptOutcome, failure: BaseException | None) -> None:
    """Note how the attempt ended (status, error) and end its span."""
    span.set_attribute(_A + "status", outcome.status.value)
    if failure is not None:
        span.record_exception(failure)
    if outcome.error is not None and outcome.status.value in ("failed", "timeout"):
        span.set_status(trace.Status(trace.StatusCode.ERROR, outcome.error))
    span.end()
