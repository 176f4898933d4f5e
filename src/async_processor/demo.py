"""``python -m async_processor demo``: priorities, dependencies and the three contexts.

Each child turn is a small dependency graph run at CRITICAL priority:

    words (loop) ─────────────┐
                              ├──> reply_template (loop, depends on both, 2 s deadline)
    journal (thread, SQLite) ─┘

while BATCH analytics (zlib compression in the process pool) and LOW housekeeping fill the
queues. The summary shows that the turns waited microseconds while the batch work waited
its turn, and where each kind of work ran. The work is real (text statistics, SQLite
writes, compression); the teddy bear's speech and language processors come with the
``audio``/``nlp``/``ai`` extras.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from typing import Any

from .lifecycle import TaskStatus
from .processor import AdvancedAsyncProcessor
from .result import TaskResult
from .task import ProcessingTask, ProcessingType, TaskPriority, create_task

__all__ = ["main", "run_demo"]

CHILD_TURNS = (
    "I built a tower with my blocks today",
    "can you tell me a story about a brave little fox",
    "my sister took my crayons and I am sad",
    "why is the sky blue",
    "I had a scary dream about a monster",
)

_local = threading.local()


async def count_words(task: ProcessingTask) -> dict[str, Any]:
    """On the event loop: word statistics of a child's sentence."""
    words = task.payload["text"].split()
    return {"words": len(words), "longest": max(words, key=len), "question": words[0] == "why"}


def journal_turn(task: ProcessingTask) -> dict[str, Any]:
    """In a thread: append the sentence to a SQLite journal and count the entries."""
    path = task.payload["database"]
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = sqlite3.connect(path, timeout=10)
        connection.execute("CREATE TABLE IF NOT EXISTS turns (at REAL, text TEXT)")
    with connection:
        connection.execute("INSERT INTO turns VALUES (?, ?)", (time.time(), task.payload["text"]))
    (count,) = connection.execute("SELECT COUNT(*) FROM turns").fetchone()
    return {"journal_entries": count}


async def shape_reply(task: ProcessingTask) -> dict[str, Any]:
    """On the event loop: a template reply built from the two results it depends on.

    A stand-in for the language-model reply, labelled as such: it shows how a dependent
    task reads its dependencies' results.
    """
    words, journal = (task.dependency_results[dep] for dep in task.depends_on)
    opening = "What a great question!" if words["question"] else "Thank you for telling me."
    return {
        "reply": f"{opening} I loved the word '{words['longest']}'.",
        "journal_entries": journal["journal_entries"],
    }


def compress_batch(task: ProcessingTask) -> dict[str, Any]:
    """In a worker process: compress a generated block of analytics data."""
    seed = task.payload["seed"]
    data = b"".join((i * seed % 9973).to_bytes(4, "little") for i in range(task.payload["records"]))
    packed = zlib.compress(data, 9)
    return {"pid": os.getpid(), "raw": len(data), "packed": len(packed)}


def tidy_up(task: ProcessingTask) -> int:
    """In a thread: LOW-priority housekeeping."""
    return sum(range(task.payload["n"]))


async def run_demo(turns: int = len(CHILD_TURNS), batch_jobs: int = 24) -> list[TaskResult]:
    """Run the demo and print its summary; returns every task's result."""
    processor = AdvancedAsyncProcessor(max_workers=4, max_thread_workers=2, max_process_workers=2)
    await processor.start()
    processor.register_processor(ProcessingType.TEXT_ANALYSIS, count_words)
    processor.register_processor(ProcessingType.DATABASE_OPERATION, journal_turn)
    processor.register_processor("reply_template", shape_reply)
    processor.register_processor(ProcessingType.DATA_ANALYTICS, compress_batch)
    processor.register_processor("housekeeping", tidy_up)
    results: list[TaskResult] = []
    with tempfile.TemporaryDirectory() as workdir:
        database = os.path.join(workdir, "journal.db")
        try:
            started = time.perf_counter()
            background = [
                create_task(
                    ProcessingType.DATA_ANALYTICS,
                    {"seed": seed, "records": 150_000},
                    TaskPriority.BATCH,
                    cpu_intensive=True,
                    tags={"analytics"},
                )
                for seed in range(1, batch_jobs + 1)
            ] + [
                create_task("housekeeping", {"n": 200_000}, TaskPriority.LOW, tags={"cleanup"})
                for _ in range(batch_jobs // 2)
            ]
            await processor.submit_tasks(background)
            print(f"queued {len(background)} background tasks (BATCH analytics, LOW cleanup)")
            replies = []
            for text in CHILD_TURNS[:turns]:
                await asyncio.sleep(0.05)  # a child speaks every now and then
                words = create_task(ProcessingType.TEXT_ANALYSIS, {"text": text})
                journal = create_task(
                    ProcessingType.DATABASE_OPERATION,
                    {"text": text, "database": database},
                    io_bound=True,
                )
                reply = create_task(
                    "reply_template",
                    {},
                    TaskPriority.CRITICAL,
                    depends_on=[words.id, journal.id],
                    deadline=time.time() + 2.0,
                    tags={"child_turn"},
                )
                await processor.submit_tasks([reply, words, journal])
                replies.append((text, reply, words, journal))
            for text, reply, *_ in replies:
                result = await processor.wait_for_task(reply.id, timeout=30)
                answer = result.result["reply"] if result.result else result.error
                print(f"  child: {text!r}\n  reply: {answer} [{result.status.value}]")
            for task in background:
                results.append(await processor.wait_for_task(task.id, timeout=120))
            for _, reply, words, journal in replies:
                for task in (words, journal, reply):
                    results.append(await processor.wait_for_task(task.id))
            elapsed = time.perf_counter() - started
            metrics = await processor.get_performance_metrics()
        finally:
            await processor.shutdown()
    print_summary(results, metrics, elapsed)
    return results


def print_summary(results: list[TaskResult], metrics: dict[str, Any], elapsed: float) -> None:
    """A table per (type, priority): counts, where it ran, queue wait and run time."""
    groups: dict[tuple[str, str], list[TaskResult]] = defaultdict(list)
    for result in results:
        groups[(result.task_type, result.priority.name)].append(result)
    header = (
        f"{'task type':<20}{'priority':<10}{'done':>6}{'context':>10}"
        f"{'wait p50 ms':>13}{'run p50 ms':>12}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for (task_type, priority), group in sorted(
        groups.items(), key=lambda item: TaskPriority[item[0][1]].value
    ):
        done = sum(r.status is TaskStatus.COMPLETED for r in group)
        contexts = sorted({(r.worker_id or "-").split("-")[0] for r in group})
        waits = sorted(
            (r.started_at - r.created_at) * 1000 for r in group if r.started_at is not None
        )
        runs = sorted(r.execution_time * 1000 for r in group)
        print(
            f"{task_type:<20}{priority:<10}{done:>6}{'/'.join(contexts):>10}"
            f"{_median(waits):>13.2f}{_median(runs):>12.2f}"
        )
    print(
        f"\n{metrics['tasks_processed']} tasks in {elapsed:.2f}s, success rate "
        f"{metrics['success_rate']:.1f}%, event-loop lag max "
        f"{metrics['event_loop_lag']['max_s'] * 1000:.1f} ms, peak memory "
        f"{metrics['peak_memory_usage_mb']:.0f} MB"
    )
    print(
        "(wait = from submission to start, so a CRITICAL reply's wait includes the time its "
        "two dependencies ran)"
    )


def _median(values: list[float]) -> float:
    return values[len(values) // 2] if values else 0.0


def main() -> None:
    asyncio.run(run_demo())
