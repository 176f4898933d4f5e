"""What tracing costs per task: no-op tasks end to end, without and with a tracer provider.

    PYTHONPATH=src python benchmarks/bench_tracing.py            # 4 interleaved rounds
    PYTHONPATH=src python benchmarks/bench_tracing.py --child batch

Each round runs every mode in a fresh interpreter, one after the other (so the machine's
load drifts alike across modes): ``absent`` (opentelemetry not importable), ``none``
(opentelemetry-api installed, no provider set),
``sdk`` (the SDK's TracerProvider without a span processor: the spans' own cost) and
``batch`` (a BatchSpanProcessor exporting to nowhere: the cost in production, minus the
network). A mode reports the best of 3 runs of 10,000 tasks (submit, run, wait), in µs per
task. The child then times the tracing hooks alone with ``timeit``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence

from async_processor import AdvancedAsyncProcessor, ProcessingTask, create_task
from async_processor.lifecycle import TaskStatus
from async_processor.outcomes import AttemptOutcome
from async_processor.record import TaskRecord
from async_processor.tracing import AVAILABLE, end_attempt, run_context, start_attempt

MODES = ("absent", "none", "sdk", "batch")
#: Runs this file as if opentelemetry were not installed (the "absent" mode).
_WITHOUT_OTEL = (
    "import runpy, sys; sys.modules['opentelemetry'] = None; "
    "sys.argv = [sys.argv[1], '--child', 'absent']; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
TASKS = 10_000


async def noop(task: ProcessingTask) -> None:
    return None


async def per_task_us() -> float:
    processor = AdvancedAsyncProcessor(
        max_process_workers=0, max_thread_workers=0, builtin_processors=False, queue_size=TASKS
    )
    processor.register_processor("noop", noop)
    await processor.start()
    best = float("inf")
    for _ in range(3):
        tasks = [create_task("noop") for _ in range(TASKS)]
        started = time.perf_counter()
        await processor.submit_tasks(tasks)
        for task in tasks:
            await processor.wait_for_task(task.id)
        best = min(best, (time.perf_counter() - started) / TASKS * 1e6)
    await processor.shutdown()
    return best


def hook_us() -> float:
    """One attempt's tracing hooks alone: start the span, make its context, end it."""
    record = TaskRecord(create_task("noop"), noop, "async")
    record.attempts = 1
    done = AttemptOutcome(TaskStatus.COMPLETED)

    def hooks() -> None:
        span = start_attempt(record)
        if span is not None:
            run_context(span, None)
            end_attempt(span, done, None)

    return min(timeit.repeat(hooks, number=20_000, repeat=5)) / 20_000 * 1e6


def child(mode: str) -> None:
    if mode in ("sdk", "batch"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Discard(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        if mode == "batch":
            provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=50_000))
        trace.set_tracer_provider(provider)
    hooks = f"hooks {hook_us():5.2f} µs" if AVAILABLE else "hooks never called"
    print(f"{mode:6} {asyncio.run(per_task_us()):7.1f} µs/task   {hooks}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
        return
    for round_ in range(4):
        for mode in MODES:
            print(f"round {round_ + 1} ", end="", flush=True)
            if mode == "absent":
                command = [sys.executable, "-c", _WITHOUT_OTEL, __file__]
            else:
                command = [sys.executable, __file__, "--child", mode]
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
