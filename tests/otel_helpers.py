"""A global OpenTelemetry tracer provider with an in-memory exporter, for one test (the
``spans`` fixture of conftest.py).

The API lets a process set its provider once; this puts the global back as it
found it afterwards (as OpenTelemetry's own test utilities do), so that other tests run
without a provider.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@contextlib.contextmanager
def installed_provider() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None


def task_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The task-attempt spans, in the order they ended."""
    return [s for s in exporter.get_finished_spans() if s.name.startswith("async_processor.task ")]
