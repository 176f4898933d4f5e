"""tracing.py: one span per attempt, a child of the span current at submit, in every lane;
attributes, queue wait, errors. With the SDK's in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import process_functions as pf
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from otel_helpers import task_spans
from processor_helpers import Factory

from async_processor import ProcessingTask, TaskStatus, create_task


def tracer() -> trace.Tracer:
    """The provider changes between tests: a module-level ProxyTracer would keep the first."""
    return trace.get_tracer("tests")


async def nested_async(task: ProcessingTask) -> str:
    with tracer().start_as_current_span("inside"):
        return "done"


def nested_sync(task: ProcessingTask) -> str:
    with tracer().start_as_current_span("inside"):
        return threading.current_thread().name


async def broken(task: ProcessingTask) -> None:
    raise ValueError("the model file is missing")


async def submit_under_a_span(processor: Any, task: ProcessingTask) -> Any:
    with tracer().start_as_current_span("request") as request:
        await processor.submit_task(task)
    result = await processor.wait_for_task(task.id, timeout=30)
    return request, result


@pytest.mark.parametrize(
    ("task_type", "function", "kwargs"),
    [("on_loop", nested_async, {}), ("in_thread", nested_sync, {})],
)
async def test_a_span_per_attempt_child_of_the_submitters_span(
    make_processor: Factory,
    spans: InMemorySpanExporter,
    task_type: str,
    function: Any,
    kwargs: dict[str, Any],
) -> None:
    processor = await make_processor(builtin_processors=False)
    processor.register_processor(task_type, function)
    task = create_task(task_type, priority="HIGH")
    request, result = await submit_under_a_span(processor, task)
    assert result.status is TaskStatus.COMPLETED
    (span,) = task_spans(spans)
    assert span.name == f"async_processor.task {task_type}"
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert span.context.trace_id == request.get_span_context().trace_id
    attributes = dict(span.attributes or {})
    assert attributes["async_processor.task.id"] == task.id
    assert attributes["async_processor.task.type"] == task_type
    assert attributes["async_processor.task.priority"] == "HIGH"
    assert attributes["async_processor.task.attempt"] == 1
    assert attributes["async_processor.task.status"] == "completed"
    queue_wait = attributes["async_processor.task.queue_wait_s"]
    assert isinstance(queue_wait, float) and queue_wait >= 0.0
    (inside,) = [s for s in spans.get_finished_spans() if s.name == "inside"]
    assert inside.parent is not None and inside.parent.span_id == span.context.span_id


async def test_the_process_lane_span_is_recorded_in_the_parent(
    make_processor: Factory, spans: InMemorySpanExporter
) -> None:
    processor = await make_processor(builtin_processors=False, max_process_workers=1)
    processor.register_processor("add", pf.add_one)
    task = create_task("add", {"x": 1}, cpu_intensive=True)
    request, result = await submit_under_a_span(processor, task)
    assert result.status is TaskStatus.COMPLETED, result.error
    (span,) = task_spans(spans)
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert dict(span.attributes or {})["async_processor.task.status"] == "completed"
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time > span.start_time


async def test_each_attempt_has_its_span_and_errors_are_recorded(
    make_processor: Factory, spans: InMemorySpanExporter
) -> None:
    processor = await make_processor(builtin_processors=False)
    processor.register_processor("broken", broken)
    task = create_task("broken", max_retries=1)
    _, result = await submit_under_a_span(processor, task)
    assert result.status is TaskStatus.FAILED
    first, second = task_spans(spans)
    assert [s.attributes["async_processor.task.attempt"] for s in (first, second)] == [1, 2]  # type: ignore[index]
    assert "async_processor.task.queue_wait_s" not in (second.attributes or {})
    for span in (first, second):
        assert span.attributes["async_processor.task.status"] == "failed"  # type: ignore[index]
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: the model file is missing"
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == "ValueError"  # type: ignore[index]


async def test_a_timeout_is_an_error(make_processor: Factory, spans: InMemorySpanExporter) -> None:
    processor = await make_processor(builtin_processors=False)

    async def slow(task: ProcessingTask) -> None:
        import asyncio

        await asyncio.Event().wait()

    processor.register_processor("slow", slow)
    task = create_task("slow", timeout=0.01, max_retries=0)
    _, result = await submit_under_a_span(processor, task)
    assert result.status is TaskStatus.TIMEOUT
    (span,) = task_spans(spans)
    assert span.attributes["async_processor.task.status"] == "timeout"  # type: ignore[index]
    assert span.status.status_code is StatusCode.ERROR


async def test_without_a_submitters_span_the_attempt_is_a_root(
    make_processor: Factory, spans: InMemorySpanExporter
) -> None:
    processor = await make_processor(builtin_processors=False)
    processor.register_processor("on_loop", nested_async)
    task = create_task("on_loop")
    await processor.wait_for_task(await processor.submit_task(task), timeout=10)
    (span,) = task_spans(spans)
    assert span.parent is None


async def test_no_provider_no_span(make_processor: Factory) -> None:
    exporter = InMemorySpanExporter()  # attached to nothing: the global provider is unset
    processor = await make_processor(builtin_processors=False)
    processor.register_processor("on_loop", nested_async)
    task = create_task("on_loop")
    result = await processor.wait_for_task(await processor.submit_task(task), timeout=10)
    assert result.status is TaskStatus.COMPLETED
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert exporter.get_finished_spans() == ()


def test_without_the_package_the_workers_never_call_in() -> None:
    script = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
from async_processor import AdvancedAsyncProcessor, create_task, lanes, tracing
assert tracing.AVAILABLE is False and lanes.TRACING is False

async def echo(task):
    return "ok"

async def main():
    processor = AdvancedAsyncProcessor(max_process_workers=0, builtin_processors=False)
    processor.register_processor("echo", echo)
    await processor.start()
    task = create_task("echo")
    result = await processor.wait_for_task(await processor.submit_task(task), timeout=10)
    await processor.shutdown()
    print(result.status.value)

asyncio.run(main())
"""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed"
