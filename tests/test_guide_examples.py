"""Every runnable example of the user's guide, in guide order, run as written.

The guide imports ``src.infrastructure.processing.async_processor``; here that is
``async_processor``. The built-in processors (transcription, emotion, AI response, ...)
arrive with a later issue, so the examples that submit those types first register small
real processors written below. What the tests check is the scheduler: where and in which
order tasks run, what dependents receive, and how each task ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    DependencyNotFoundError,
    NonRetryableError,
    ProcessingTask,
    ProcessingType,
    ProcessorNotRunningError,
    QueueFullError,
    RetryPolicy,
    TaskNotFoundError,
    TaskPriority,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
    install_signal_handlers,
)

TESTS = Path(__file__).resolve().parent

#: Stand-in audio: 0.5 s of 16-bit mono PCM at 16 kHz.
AUDIO_BYTES = bytes(range(256)) * 62 + bytes(128)

# ------------------------------------------------------------ test processors
# Module-level, so the process pool can import them by name.


def transcribe(task: ProcessingTask) -> dict[str, Any]:
    """Transcription stand-in (plain def: thread pool): the text comes from the audio length."""
    audio = task.payload["audio_data"]
    return {
        "text": f"I am happy today ({len(audio)} bytes)",
        "language": task.payload.get("language", "en"),
    }


def enhance_audio(task: ProcessingTask) -> dict[str, Any]:
    """Enhancement stand-in (plain def, cpu_intensive: process pool)."""
    audio = task.payload["audio_data"]
    return {
        "audio_data": bytes(reversed(audio)),
        "sample_rate": task.payload.get("sample_rate", 16000),
        "pid": os.getpid(),
        "parents": sorted(task.dependency_results),
    }


def query_database(task: ProcessingTask) -> dict[str, Any]:
    """Database stand-in (plain def: thread pool)."""
    return {"rows": [[task.payload.get("query", "")]], "rowcount": 1}


def process_image(task: ProcessingTask) -> dict[str, Any]:
    """Image stand-in (plain def: thread pool; memory_intensive is an admission rule)."""
    return {"width": task.payload.get("width", 1), "height": task.payload.get("height", 1)}


async def analyse_emotion(task: ProcessingTask) -> dict[str, Any]:
    """Emotion stand-in (async def: event loop): uses its own text or a transcription's."""
    heard = [
        r["text"] for r in task.dependency_results.values() if isinstance(r, dict) and "text" in r
    ]
    text = task.payload.get("text") or " ".join(heard)
    return {
        "emotion": "happy" if "happy" in text else "neutral",
        "text": text,
        "sources": sorted(task.dependency_results),
    }


async def generate_response(task: ProcessingTask) -> dict[str, Any]:
    """AI response stand-in (async def): echoes what it was given."""
    prompt = task.payload.get("prompt") or task.payload.get("prompt_template", "")
    return {"response": f"Teddy says: {prompt}", "inputs": dict(task.dependency_results)}


async def analyse_text(task: ProcessingTask) -> dict[str, Any]:
    text = task.payload.get("text", "")
    return {"word_count": len(text.split())}


def register_teddy_processors(processor: AdvancedAsyncProcessor) -> None:
    """What the built-in processors will provide, until they land."""
    processor.register_processor(ProcessingType.AUDIO_TRANSCRIPTION, transcribe)
    processor.register_processor(ProcessingType.AUDIO_ENHANCEMENT, enhance_audio)
    processor.register_processor(ProcessingType.EMOTION_ANALYSIS, analyse_emotion)
    processor.register_processor(ProcessingType.AI_RESPONSE, generate_response)
    processor.register_processor(ProcessingType.DATABASE_OPERATION, query_database)
    processor.register_processor(ProcessingType.IMAGE_PROCESSING, process_image)
    processor.register_processor(ProcessingType.TEXT_ANALYSIS, analyse_text)


def assert_ran_after(dependent: TaskResult, *dependencies: TaskResult) -> None:
    assert dependent.started_at is not None
    for dep in dependencies:
        assert dep.completed_at is not None
        assert dep.completed_at <= dependent.started_at, (dep.task_id, dependent.task_id)


@pytest.fixture
def fast_retries() -> RetryPolicy:
    return RetryPolicy(base_delay=0.001, max_delay=0.005)


# ------------------------------------------------------------ Architecture


# Guide: Architecture > Processing Types
def test_processing_types_match_guide() -> None:
    beyond_the_guide = {"SPEECH_SYNTHESIS": "speech_synthesis"}
    assert {t.name: t.value for t in ProcessingType} == beyond_the_guide | {
        "AUDIO_TRANSCRIPTION": "audio_transcription",
        "AUDIO_ENHANCEMENT": "audio_enhancement",
        "AI_RESPONSE": "ai_response",
        "EMOTION_ANALYSIS": "emotion_analysis",
        "IMAGE_GENERATION": "image_generation",
        "IMAGE_PROCESSING": "image_processing",
        "TEXT_ANALYSIS": "text_analysis",
        "DATA_ANALYTICS": "data_analytics",
        "DATABASE_OPERATION": "database_operation",
        "NOTIFICATION": "notification",
        "CUSTOM": "custom",
    }


# Guide: Architecture > Priority Levels
def test_priority_levels_match_guide() -> None:
    assert {p.name: p.value for p in TaskPriority} == {
        "CRITICAL": 1,
        "HIGH": 2,
        "NORMAL": 3,
        "LOW": 4,
        "BATCH": 5,
    }


# ------------------------------------------------------------ Quick Start


# Guide: Quick Start > Basic Usage (run with asyncio.run, as the guide does)
def test_quick_start_basic_usage(capsys: pytest.CaptureFixture[str]) -> None:
    results: list[TaskResult] = []

    async def main() -> None:
        # Create and start processor
        processor = await create_processor(max_workers=5, enable_monitoring=True)
        processor.register_processor(ProcessingType.AI_RESPONSE, generate_response)

        try:
            # Create a task
            task = create_task(
                ProcessingType.AI_RESPONSE,
                {"prompt": "Hello, how are you?", "model": "gpt-3.5-turbo"},
                TaskPriority.HIGH,
            )

            # Submit and wait for result
            task_id = await processor.submit_task(task)
            result = await processor.wait_for_task(task_id, timeout=30.0)

            print(f"Result: {result.result}")
            results.append(result)

        finally:
            await processor.shutdown()
        assert not processor.running

    asyncio.run(main())

    (result,) = results
    assert result.status is TaskStatus.COMPLETED
    assert result.result == {"response": "Teddy says: Hello, how are you?", "inputs": {}}
    assert result.priority is TaskPriority.HIGH
    assert result.worker_id is not None and result.worker_id.startswith("async-")
    assert capsys.readouterr().out == f"Result: {result.result}\n"


# Guide: Quick Start > Task Dependencies
async def test_quick_start_task_dependencies() -> None:
    audio_bytes = AUDIO_BYTES

    async def dependency_example() -> tuple[TaskResult, ...]:
        processor = await create_processor(max_workers=3)
        register_teddy_processors(processor)

        try:
            # Create dependent tasks
            task1 = create_task(
                ProcessingType.AUDIO_TRANSCRIPTION, {"audio_data": audio_bytes}, TaskPriority.HIGH
            )

            task2 = create_task(
                ProcessingType.EMOTION_ANALYSIS,
                {"audio_data": audio_bytes},
                TaskPriority.HIGH,
                depends_on=[task1.id],  # Depends on task1
            )

            task3 = create_task(
                ProcessingType.AI_RESPONSE,
                {"prompt": "Generate response based on emotion"},
                TaskPriority.NORMAL,
                depends_on=[task1.id, task2.id],  # Depends on both
            )

            # Submit all tasks
            await processor.submit_task(task1)
            await processor.submit_task(task2)
            await processor.submit_task(task3)

            # Wait for final result
            final_result = await processor.wait_for_task(task3.id)
            first = await processor.wait_for_task(task1.id)
            second = await processor.wait_for_task(task2.id)
            return first, second, final_result

        finally:
            await processor.shutdown()

    first, second, final_result = await dependency_example()

    assert [r.status for r in (first, second, final_result)] == [TaskStatus.COMPLETED] * 3
    assert_ran_after(second, first)
    assert_ran_after(final_result, first, second)
    # The emotion task read the transcription; the reply received both results.
    assert second.result["text"] == first.result["text"]
    assert second.result["emotion"] == "happy"
    assert final_result.result["inputs"] == {
        first.task_id: first.result,
        second.task_id: second.result,
    }
    assert first.worker_id is not None and first.worker_id.startswith("thread-")


# ------------------------------------------------------------ Advanced Configuration


# Guide: Advanced Configuration > Processor Configuration
async def test_processor_configuration() -> None:
    processor = AdvancedAsyncProcessor(
        max_workers=10,  # Total async workers
        max_thread_workers=5,  # Thread pool size
        max_process_workers=2,  # Process pool size
        queue_size=1000,  # Max queue size
        enable_monitoring=True,  # Performance monitoring
        enable_profiling=False,  # Detailed profiling
    )
    assert not processor._running
    await processor.start()
    try:
        assert processor._running
        metrics = await processor.get_performance_metrics()
        lanes: dict[str, int] = {}
        for stats in metrics["worker_stats"].values():
            lanes[stats["context"]] = lanes.get(stats["context"], 0) + 1
        assert lanes == {"async": 10, "thread": 5, "process": 2}
        assert processor.queue_size == 1000
        assert "profile" not in metrics
    finally:
        await processor.shutdown()
    assert not processor._running


# Guide: Advanced Configuration > Task Configuration
async def test_task_configuration() -> None:
    data = AUDIO_BYTES
    task = ProcessingTask(
        task_type=ProcessingType.AUDIO_ENHANCEMENT,
        payload={"audio_data": data, "sample_rate": 44100},
        priority=TaskPriority.HIGH,
        timeout=30.0,  # Task timeout
        max_retries=3,  # Retry attempts
        cpu_intensive=True,  # Use process pool
        memory_intensive=False,  # Memory usage hint
        io_bound=False,  # I/O bound hint
        tags={"user_session", "audio"},  # Tags for tracking
        depends_on=["parent_task_id"],  # Dependencies
    )
    assert task.task_type is ProcessingType.AUDIO_ENHANCEMENT
    assert task.payload == {"audio_data": data, "sample_rate": 44100}
    assert task.priority is TaskPriority.HIGH
    assert task.timeout == 30.0
    assert task.max_retries == 3
    assert (task.cpu_intensive, task.memory_intensive, task.io_bound) == (True, False, False)
    assert task.tags == {"user_session", "audio"}
    assert list(task.depends_on) == ["parent_task_id"]

    processor = await create_processor(max_workers=2, max_thread_workers=1, max_process_workers=1)
    register_teddy_processors(processor)
    try:
        # Without its parent the task is refused, and nothing of it is kept.
        with pytest.raises(DependencyNotFoundError) as refused:
            await processor.submit_task(task)
        message = str(refused.value)
        assert "'parent_task_id'" in message
        assert task.id in message
        assert "submit the dependency first" in message
        assert "submit_tasks()" in message
        with pytest.raises(TaskNotFoundError):
            await processor.get_task_status(task.id)

        # Once the parent is known, the same task runs, in the process pool.
        parent = create_task(
            ProcessingType.AUDIO_TRANSCRIPTION, {"audio_data": data}, id="parent_task_id"
        )
        await processor.submit_task(parent)
        await processor.submit_task(task)
        result = await processor.wait_for_task(task.id, timeout=60.0)
        assert result.status is TaskStatus.COMPLETED, result.error
        assert result.worker_id is not None and result.worker_id.startswith("process-")
        assert result.result["pid"] != os.getpid()
        assert result.result["audio_data"] == bytes(reversed(data))
        assert result.result["parents"] == ["parent_task_id"]
        assert result.tags == {"user_session", "audio"}
    finally:
        await processor.shutdown()


# ------------------------------------------------------------ Performance Monitoring


# Guide: Performance Monitoring > Real-time Metrics
async def test_monitor_performance(capsys: pytest.CaptureFixture[str]) -> None:
    processor = await create_processor(max_workers=1, max_thread_workers=1, max_process_workers=0)

    async def ok(task: ProcessingTask) -> int:
        return 1

    async def broken(task: ProcessingTask) -> int:
        raise ValueError("broken on purpose")

    processor.register_processor("ok", ok)
    processor.register_processor("broken", broken)

    async def monitor_performance() -> None:
        metrics = await processor.get_performance_metrics()

        print(f"Tasks processed: {metrics['tasks_processed']}")
        print(f"Success rate: {metrics['success_rate']:.1f}%")
        print(f"Average execution time: {metrics['average_execution_time']:.3f}s")
        print(f"Current throughput: {metrics['current_throughput']:.1f} tasks/sec")
        print(f"Queue size: {metrics['queue_size']}")
        print(f"Running tasks: {metrics['running_tasks']}")

        # Worker statistics
        for worker_id, stats in metrics["worker_stats"].items():
            print(f"{worker_id}: {stats['tasks_processed']} tasks, {stats['status']}")

    try:
        ids = [await processor.submit_task(create_task("ok")) for _ in range(3)]
        ids.append(await processor.submit_task(create_task("broken")))
        for task_id in ids:
            await processor.wait_for_task(task_id, timeout=10.0)

        await monitor_performance()
    finally:
        await processor.shutdown()

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Tasks processed: 4"
    assert lines[1] == "Success rate: 75.0%"
    assert re.fullmatch(r"Average execution time: \d+\.\d{3}s", lines[2])
    throughput = re.fullmatch(r"Current throughput: (\d+\.\d) tasks/sec", lines[3])
    assert throughput is not None and float(throughput.group(1)) > 0
    assert lines[4] == "Queue size: 0"
    assert lines[5] == "Running tasks: 0"
    workers = dict(line.split(": ", 1) for line in lines[6:])
    assert set(workers) == {"async-0", "thread-0"}
    assert workers["async-0"].startswith("4 tasks, ")
    assert workers["thread-0"].startswith("0 tasks, ")


# Guide: Performance Monitoring > Performance Optimization
async def test_performance_optimization_hints_route_to_pools() -> None:
    payload = {"audio_data": AUDIO_BYTES, "query": "SELECT 1", "width": 4, "height": 3}
    processor = await create_processor(
        max_workers=2, max_thread_workers=2, max_process_workers=1, min_free_memory_mb=0
    )
    register_teddy_processors(processor)
    try:
        # For CPU-intensive tasks
        task = create_task(
            ProcessingType.AUDIO_ENHANCEMENT,
            payload,
            cpu_intensive=True,  # Will use process pool
        )
        cpu = await processor.submit_task(task)

        # For I/O bound tasks
        task = create_task(
            ProcessingType.DATABASE_OPERATION,
            payload,
            io_bound=True,  # Will use thread pool
        )
        io = await processor.submit_task(task)

        # For memory-intensive tasks
        task = create_task(
            ProcessingType.IMAGE_PROCESSING,
            payload,
            memory_intensive=True,  # Special handling
        )
        memory = await processor.submit_task(task)

        # And an async def processor, which always runs on the event loop.
        on_loop = await processor.submit_task(create_task(ProcessingType.TEXT_ANALYSIS, payload))

        where = {}
        for name, task_id in (("cpu", cpu), ("io", io), ("memory", memory), ("loop", on_loop)):
            result = await processor.wait_for_task(task_id, timeout=60.0)
            assert result.status is TaskStatus.COMPLETED, (name, result.error)
            assert result.worker_id is not None
            where[name] = result.worker_id.split("-")[0]
        assert where == {"cpu": "process", "io": "thread", "memory": "thread", "loop": "async"}
        metrics = await processor.get_performance_metrics()
        assert metrics["memory_intensive"]["running"] == 0
    finally:
        await processor.shutdown()


# Guide: Performance Monitoring > Performance Optimization ("Special handling")
async def test_memory_intensive_tasks_are_admitted_one_at_a_time() -> None:
    processor = await create_processor(
        max_workers=1,
        max_thread_workers=3,
        max_process_workers=0,
        max_memory_intensive=1,
        min_free_memory_mb=0,
    )
    lock = threading.Lock()
    running = 0
    most = 0

    def heavy(task: ProcessingTask) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    processor.register_processor(ProcessingType.IMAGE_PROCESSING, heavy)
    try:
        ids = [
            await processor.submit_task(
                create_task(ProcessingType.IMAGE_PROCESSING, {}, memory_intensive=True)
            )
            for _ in range(4)
        ]
        results = [await processor.wait_for_task(i, timeout=30.0) for i in ids]
    finally:
        await processor.shutdown()
    assert [r.status for r in results] == [TaskStatus.COMPLETED] * 4
    assert most == 1  # three threads were free, but the budget admits one at a time


# ------------------------------------------------------------ Specific Processors


# Guide: Specific Processors > Audio Processing
async def test_audio_processing() -> None:
    audio_bytes = AUDIO_BYTES
    processor = await create_processor(max_workers=2, max_thread_workers=1, max_process_workers=1)
    register_teddy_processors(processor)
    try:
        # Audio transcription
        transcription_task = create_task(
            ProcessingType.AUDIO_TRANSCRIPTION,
            {"audio_data": audio_bytes, "sample_rate": 44100, "language": "en"},
            TaskPriority.HIGH,
            timeout=30.0,
        )

        # Audio enhancement
        enhancement_task = create_task(
            ProcessingType.AUDIO_ENHANCEMENT,
            {
                "audio_data": audio_bytes,
                "sample_rate": 44100,
                "noise_reduction": True,
                "normalization": True,
            },
            cpu_intensive=True,
        )

        await processor.submit_task(transcription_task)
        await processor.submit_task(enhancement_task)
        heard = await processor.wait_for_task(transcription_task.id, timeout=60.0)
        enhanced = await processor.wait_for_task(enhancement_task.id, timeout=60.0)
    finally:
        await processor.shutdown()

    assert heard.status is TaskStatus.COMPLETED
    assert heard.result == {
        "text": f"I am happy today ({len(audio_bytes)} bytes)",
        "language": "en",
    }
    assert heard.worker_id is not None and heard.worker_id.startswith("thread-")
    assert enhanced.status is TaskStatus.COMPLETED, enhanced.error
    assert enhanced.worker_id is not None and enhanced.worker_id.startswith("process-")
    assert enhanced.result["audio_data"] == bytes(reversed(audio_bytes))
    assert enhanced.result["sample_rate"] == 44100


# Guide: Specific Processors > AI Response Generation
async def test_ai_response_generation() -> None:
    seen: list[dict[str, Any]] = []

    async def ai_processor(task: ProcessingTask) -> dict[str, Any]:
        seen.append(task.payload)
        context = task.payload["context"]
        return {"response": f"Hooray, {context['emotion']}!", "model": task.payload["model"]}

    processor = await create_processor(max_workers=2)
    processor.register_processor(ProcessingType.AI_RESPONSE, ai_processor)
    try:
        ai_task = create_task(
            ProcessingType.AI_RESPONSE,
            {
                "prompt": 'Child said: "I am happy today!"',
                "context": {"child_age": 5, "emotion": "happy", "session_id": "session_123"},
                "model": "gpt-3.5-turbo",
                "max_tokens": 150,
            },
            TaskPriority.HIGH,
            timeout=10.0,
        )
        await processor.submit_task(ai_task)
        result = await processor.wait_for_task(ai_task.id, timeout=30.0)
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED
    assert result.result == {"response": "Hooray, happy!", "model": "gpt-3.5-turbo"}
    assert seen == [ai_task.payload]
    assert result.attempts == 1


# Guide: Specific Processors > Emotion Analysis
async def test_emotion_analysis() -> None:
    audio_bytes = AUDIO_BYTES
    processor = await create_processor(max_workers=2)
    register_teddy_processors(processor)
    try:
        emotion_task = create_task(
            ProcessingType.EMOTION_ANALYSIS,
            {
                "audio_data": audio_bytes,
                "text": "I am happy today!",
                "analysis_type": "comprehensive",
            },
            TaskPriority.HIGH,
        )
        await processor.submit_task(emotion_task)
        result = await processor.wait_for_task(emotion_task.id, timeout=30.0)
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED
    assert result.result == {"emotion": "happy", "text": "I am happy today!", "sources": []}


# ------------------------------------------------------------ Custom Processors


# Guide: Custom Processors > Registering Custom Processors
async def test_registering_custom_processors() -> None:
    processor = await create_processor(max_workers=2)

    async def custom_nlp_processor(task: ProcessingTask) -> dict[str, Any]:
        """Custom NLP processing"""
        text = task.payload.get("text")
        assert isinstance(text, str)

        # Your custom processing logic here
        result = {
            "processed_text": text.upper(),
            "word_count": len(text.split()),
            "custom_metric": 42,
        }

        return result  # noqa: RET504 - the guide's code

    # Register the custom processor
    processor.register_processor(ProcessingType.TEXT_ANALYSIS, custom_nlp_processor)

    try:
        task_id = await processor.submit_task(
            create_task(ProcessingType.TEXT_ANALYSIS, {"text": "hello teddy bear"})
        )
        result = await processor.wait_for_task(task_id, timeout=30.0)
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED
    assert result.result == {
        "processed_text": "HELLO TEDDY BEAR",
        "word_count": 3,
        "custom_metric": 42,
    }
    assert result.worker_id is not None and result.worker_id.startswith("async-")


# Guide: Custom Processors > Using Custom Processors
async def test_using_custom_processors() -> None:
    task = create_task(
        ProcessingType.CUSTOM,
        {"processor": lambda payload: {"custom_result": payload["input"] * 2}, "input": 21},
    )
    processor = await create_processor(max_workers=1, max_thread_workers=1, max_process_workers=0)
    try:
        await processor.submit_task(task)
        result = await processor.wait_for_task(task.id, timeout=30.0)
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.result == {"custom_result": 42}
    assert result.worker_id is not None and result.worker_id.startswith("thread-")


# ------------------------------------------------------------ Task Lifecycle Management


# Guide: Task Lifecycle Management > Task States
def test_task_states_match_guide() -> None:
    assert {s.name: s.value for s in TaskStatus} == {
        "PENDING": "pending",
        "RUNNING": "running",
        "COMPLETED": "completed",
        "FAILED": "failed",
        "CANCELLED": "cancelled",
        "TIMEOUT": "timeout",
    }


# Guide: Task Lifecycle Management > Cancellation
async def test_cancellation(capsys: pytest.CaptureFixture[str]) -> None:
    processor = await create_processor(max_workers=2, max_process_workers=0)
    started = asyncio.Event()
    release = asyncio.Event()

    async def blocking(task: ProcessingTask) -> str:
        started.set()
        await release.wait()
        return "should not finish"

    async def quick(task: ProcessingTask) -> str:
        return "done"

    processor.register_processor("blocking", blocking)
    processor.register_processor("quick", quick)
    try:
        parent = create_task("blocking")
        child = create_task("quick", depends_on=[parent.id])
        grandchild = create_task("quick", depends_on=[child.id])
        lone = create_task("quick", depends_on=[parent.id])
        await processor.submit_tasks([parent, child, grandchild, lone])
        unrelated = await processor.submit_task(create_task("quick"))
        await asyncio.wait_for(started.wait(), 10.0)
        task_id, parent_task_id = lone.id, parent.id

        # Cancel a specific task
        await processor.cancel_task(task_id)
        assert await processor.get_task_status(task_id) is TaskStatus.CANCELLED
        assert await processor.get_task_status(parent_task_id) is TaskStatus.RUNNING

        # Cancel task with dependents (cascading)
        cancelled = await processor.cancel_task(parent_task_id)
        print(f"Cancelled: {cancelled}")

        results = {
            t.id: await processor.wait_for_task(t.id, timeout=10.0)
            for t in (parent, child, grandchild)
        }
        other = await processor.wait_for_task(unrelated, timeout=10.0)
        again = await processor.cancel_task(parent_task_id)
    finally:
        await processor.shutdown()

    assert capsys.readouterr().out == "Cancelled: True\n"
    assert {r.status for r in results.values()} == {TaskStatus.CANCELLED}
    reason = "cancelled by cancel_task()"
    assert results[parent.id].error == reason
    assert results[child.id].error == f"dependency {parent.id} ended cancelled: {reason}"
    assert results[grandchild.id].error == (
        f"dependency {child.id} ended cancelled: {results[child.id].error}"
    )
    assert results[child.id].attempts == 0  # it never ran
    assert other.status is TaskStatus.COMPLETED  # unrelated work is never touched
    assert again is False  # already ended


# Guide: Task Lifecycle Management > Status Monitoring
async def test_status_monitoring(capsys: pytest.CaptureFixture[str]) -> None:
    processor = await create_processor(max_workers=2, max_process_workers=0)
    gate = asyncio.Event()

    async def gated(task: ProcessingTask) -> str:
        await gate.wait()
        if task.payload.get("fail"):
            raise RuntimeError("the microphone was unplugged")
        return "ok"

    processor.register_processor("gated", gated)

    async def show(task_id: str) -> None:
        # Check task status
        status = await processor.get_task_status(task_id)
        print(f"Task status: {status.value}")

        # Get detailed result
        result = await processor.get_task_result(task_id)
        if result:
            print(f"Status: {result.status.value}")
            print(f"Execution time: {result.execution_time:.3f}s")
            if result.error:
                print(f"Error: {result.error}")

    try:
        good = await processor.submit_task(create_task("gated"))
        bad = await processor.submit_task(create_task("gated", {"fail": True}))
        await asyncio.sleep(0.01)
        await show(good)
        assert capsys.readouterr().out == "Task status: running\n"
        gate.set()
        await processor.wait_for_task(good, timeout=10.0)
        await processor.wait_for_task(bad, timeout=10.0)
        await show(good)
        shown_good = capsys.readouterr().out
        await show(bad)
        shown_bad = capsys.readouterr().out
    finally:
        await processor.shutdown()

    assert re.fullmatch(
        r"Task status: completed\nStatus: completed\nExecution time: \d+\.\d{3}s\n", shown_good
    )
    assert re.fullmatch(
        r"Task status: failed\nStatus: failed\nExecution time: \d+\.\d{3}s\n"
        r"Error: RuntimeError: the microphone was unplugged\n",
        shown_bad,
    )


# ------------------------------------------------------------ Error Handling


# Guide: Error Handling > Retry Logic
async def test_retry_logic(fast_retries: RetryPolicy) -> None:
    processor = await create_processor(max_workers=2, retry_policy=fast_retries)
    calls: dict[str, int] = {}

    async def flaky(task: ProcessingTask) -> str:
        calls[task.id] = calls.get(task.id, 0) + 1
        if calls[task.id] <= task.payload["failures"]:
            raise ConnectionError(f"provider unavailable (call {calls[task.id]})")
        return f"answered on call {calls[task.id]}"

    async def refuses(task: ProcessingTask) -> None:
        calls[task.id] = calls.get(task.id, 0) + 1
        raise NonRetryableError("the prompt is not allowed")

    processor.register_processor(ProcessingType.AI_RESPONSE, flaky)
    processor.register_processor("refuses", refuses)
    try:
        payload = {"failures": 3}
        task = create_task(
            ProcessingType.AI_RESPONSE,
            payload,
            max_retries=3,  # Will retry up to 3 times
            timeout=10.0,
        )
        recovers = await processor.submit_task(task)
        gives_up = await processor.submit_task(
            create_task(ProcessingType.AI_RESPONSE, {"failures": 99}, max_retries=3, timeout=10.0)
        )
        fatal = await processor.submit_task(create_task("refuses", max_retries=3))
        ok = await processor.wait_for_task(recovers, timeout=30.0)
        failed = await processor.wait_for_task(gives_up, timeout=30.0)
        refused = await processor.wait_for_task(fatal, timeout=30.0)
        metrics = await processor.get_performance_metrics()
    finally:
        await processor.shutdown()

    assert ok.status is TaskStatus.COMPLETED
    assert ok.result == "answered on call 4"
    assert ok.attempts == 4
    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 4 and calls[gives_up] == 4  # 1 run + 3 retries, no more
    assert failed.error == "ConnectionError: provider unavailable (call 4)"
    assert refused.status is TaskStatus.FAILED
    assert refused.attempts == 1 and calls[fatal] == 1
    assert metrics["retries"] == 6
    assert metrics["by_type"]["ai_response"]["retries"] == 6


# Guide: Error Handling > Error Handling Patterns
async def test_error_handling_patterns(capsys: pytest.CaptureFixture[str]) -> None:
    processor = await create_processor(max_workers=4, max_process_workers=0)
    gate = asyncio.Event()

    async def behave(task: ProcessingTask) -> str:
        how = task.payload["how"]
        if how == "fail":
            raise ValueError("bad audio")
        if how == "block":
            await gate.wait()
        if how == "hang":
            await asyncio.sleep(3600)
        return "hello"

    processor.register_processor("behave", behave)

    async def handle(task_id: str, wait: float = 30.0) -> None:
        try:
            result = await processor.wait_for_task(task_id, timeout=wait)

            if result.status == TaskStatus.COMPLETED:
                print("Success:", result.result)
            elif result.status == TaskStatus.FAILED:
                print("Failed:", result.error)
            elif result.status == TaskStatus.TIMEOUT:
                print("Timed out")
            elif result.status == TaskStatus.CANCELLED:
                print("Cancelled")

        except asyncio.TimeoutError:  # noqa: UP041 - the guide's spelling
            print("Wait timeout exceeded")
            await processor.cancel_task(task_id)

    try:
        out: dict[str, str] = {}
        completed = await processor.submit_task(create_task("behave", {"how": "ok"}))
        failed = await processor.submit_task(create_task("behave", {"how": "fail"}))
        timed_out = await processor.submit_task(
            create_task("behave", {"how": "hang"}, timeout=0.05)
        )
        blocker = await processor.submit_task(create_task("behave", {"how": "block"}))
        cancelled = await processor.submit_task(
            create_task("behave", {"how": "ok"}, depends_on=[blocker])
        )
        await processor.cancel_task(cancelled)
        for name, task_id in (
            ("completed", completed),
            ("failed", failed),
            ("timeout", timed_out),
            ("cancelled", cancelled),
        ):
            await handle(task_id)
            out[name] = capsys.readouterr().out
        await handle(blocker, wait=0.05)
        out["wait timeout"] = capsys.readouterr().out
        blocker_status = await processor.get_task_status(blocker)
    finally:
        await processor.shutdown()

    assert out == {
        "completed": "Success: hello\n",
        "failed": "Failed: ValueError: bad audio\n",
        "timeout": "Timed out\n",
        "cancelled": "Cancelled\n",
        "wait timeout": "Wait timeout exceeded\n",
    }
    assert blocker_status is TaskStatus.CANCELLED  # the except branch cancelled it


# ------------------------------------------------------------ Performance Tips


# Guide: Performance Tips > 1. Resource-Aware Task Submission
async def test_resource_aware_task_submission() -> None:
    payload = {"audio_data": AUDIO_BYTES, "query": "SELECT 1"}
    processor = await create_processor(max_workers=2, max_thread_workers=1, max_process_workers=1)
    register_teddy_processors(processor)
    try:
        # CPU-intensive tasks
        audio_task = create_task(
            ProcessingType.AUDIO_ENHANCEMENT,
            payload,
            cpu_intensive=True,  # Uses process pool
            priority=TaskPriority.HIGH,
        )

        # I/O bound tasks
        db_task = create_task(
            ProcessingType.DATABASE_OPERATION,
            payload,
            io_bound=True,  # Uses thread pool
            priority=TaskPriority.LOW,
        )
        await processor.submit_task(audio_task)
        await processor.submit_task(db_task)
        audio = await processor.wait_for_task(audio_task.id, timeout=60.0)
        db = await processor.wait_for_task(db_task.id, timeout=60.0)
    finally:
        await processor.shutdown()
    assert audio.status is TaskStatus.COMPLETED, audio.error
    assert audio.priority is TaskPriority.HIGH
    assert audio.worker_id is not None and audio.worker_id.startswith("process-")
    assert db.status is TaskStatus.COMPLETED
    assert db.priority is TaskPriority.LOW
    assert db.worker_id is not None and db.worker_id.startswith("thread-")
    assert db.result == {"rows": [["SELECT 1"]], "rowcount": 1}


# Guide: Performance Tips > 2. Batch Processing
async def test_batch_processing() -> None:
    batch_data = [{"text": " ".join(["word"] * n)} for n in range(1, 31)]
    processor = await create_processor(max_workers=4)
    register_teddy_processors(processor)
    try:
        # Submit multiple tasks together
        tasks = []
        for data in batch_data:
            task = create_task(ProcessingType.TEXT_ANALYSIS, data, TaskPriority.BATCH)
            tasks.append(await processor.submit_task(task))

        # Wait for all
        results = []
        for task_id in tasks:
            result = await processor.wait_for_task(task_id)
            results.append(result)
    finally:
        await processor.shutdown()
    assert [r.task_id for r in results] == tasks
    assert all(r.status is TaskStatus.COMPLETED for r in results)
    assert [r.result["word_count"] for r in results] == list(range(1, 31))
    assert {r.priority for r in results} == {TaskPriority.BATCH}


# Guide: Performance Tips > 3. Dependency Optimization
async def test_dependency_optimization() -> None:
    processor = await create_processor(max_workers=3)
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def transcription(task: ProcessingTask) -> dict[str, str]:
        first_started.set()
        # Only returns if the emotion task runs at the same time: they are parallel.
        await asyncio.wait_for(second_started.wait(), 10.0)
        return {"text": task.payload["text"]}

    async def emotion(task: ProcessingTask) -> dict[str, str]:
        second_started.set()
        await asyncio.wait_for(first_started.wait(), 10.0)
        return {"emotion": "happy"}

    processor.register_processor(ProcessingType.AUDIO_TRANSCRIPTION, transcription)
    processor.register_processor(ProcessingType.EMOTION_ANALYSIS, emotion)
    processor.register_processor(ProcessingType.AI_RESPONSE, generate_response)
    data1, data2, data3 = {"text": "hi teddy"}, {"audio_data": AUDIO_BYTES}, {"prompt": "reply"}
    try:
        # Parallel independent tasks
        task1 = create_task(ProcessingType.AUDIO_TRANSCRIPTION, data1)
        task2 = create_task(ProcessingType.EMOTION_ANALYSIS, data2)

        # Dependent task
        task3 = create_task(ProcessingType.AI_RESPONSE, data3, depends_on=[task1.id, task2.id])
        await processor.submit_tasks([task3, task1, task2])
        final = await processor.wait_for_task(task3.id, timeout=30.0)
        one = await processor.wait_for_task(task1.id)
        two = await processor.wait_for_task(task2.id)
    finally:
        await processor.shutdown()
    assert one.status is TaskStatus.COMPLETED, one.error
    assert two.status is TaskStatus.COMPLETED, two.error
    assert final.status is TaskStatus.COMPLETED
    assert_ran_after(final, one, two)
    assert final.result["inputs"] == {
        task1.id: {"text": "hi teddy"},
        task2.id: {"emotion": "happy"},
    }


# ------------------------------------------------------------ Debugging and Logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


# Guide: Debugging and Logging > Enable Detailed Logging
@pytest.mark.usefixtures("restore_root_logger")
async def test_enable_detailed_logging(caplog: pytest.LogCaptureFixture) -> None:
    # Configure logging
    logging.basicConfig(
        level=logging.DEBUG, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    )
    caplog.set_level(logging.DEBUG)  # under pytest, basicConfig finds handlers already there

    # Create processor with debug info
    processor = AdvancedAsyncProcessor(
        enable_monitoring=True,
        enable_profiling=True,  # Detailed profiling
    )
    await processor.start()
    processor.register_processor(ProcessingType.TEXT_ANALYSIS, analyse_text)
    try:
        task = create_task(ProcessingType.TEXT_ANALYSIS, {"text": "secret words"}, tags={"debug"})
        await processor.submit_task(task)
        await processor.wait_for_task(task.id, timeout=30.0)
        metrics = await processor.get_performance_metrics()
    finally:
        await processor.shutdown()
    messages = [r.getMessage() for r in caplog.records if r.name == "async_processor"]
    assert any(f"task {task.id} (text_analysis) accepted" in m for m in messages)
    assert "processor started" in " ".join(messages)
    assert not any("secret words" in m for m in messages)  # payloads are never logged
    profile = metrics["profile"]["text_analysis"]
    assert set(profile) == {
        "waiting_on_dependencies_s",
        "queued_s",
        "running_s",
        "retry_backoff_s",
    }
    assert profile["running_s"] >= 0


# Guide: Debugging and Logging > Task Debugging
def test_task_debugging(capsys: pytest.CaptureFixture[str]) -> None:
    payload = {"prompt": "hi", "audio_data": b"\x00\xffRIFF", "history": ["a", "b"]}
    # Add debug tags
    task = create_task(
        ProcessingType.AI_RESPONSE, payload, tags={"debug", "user_session_123", "test_case"}
    )

    # Convert task to dict for inspection
    task_dict = task.to_dict()
    print(json.dumps(task_dict, indent=2))

    printed = json.loads(capsys.readouterr().out)
    assert printed["id"] == task.id
    assert printed["task_type"] == "ai_response"
    assert printed["priority"] == 3
    assert printed["tags"] == ["debug", "test_case", "user_session_123"]
    assert printed["payload"]["audio_data"] == {"$bytes": "AP9SSUZG"}
    assert printed["payload"]["history"] == ["a", "b"]
    again = ProcessingTask.from_dict(printed)
    assert again.payload == payload
    assert again.tags == task.tags


# ------------------------------------------------------------ Testing


# Guide: Testing > Unit Tests (the three commands, run from the tests folder, collect only)
@pytest.mark.parametrize(
    ("target", "classes", "count"),
    [
        (
            "test_async_processor.py::TestAdvancedAsyncProcessor::test_submit_and_process_task",
            {"TestAdvancedAsyncProcessor"},
            1,
        ),
        ("test_async_processor.py::TestPerformance", {"TestPerformance"}, None),
        ("test_async_processor.py", {"TestAdvancedAsyncProcessor", "TestPerformance"}, None),
    ],
)
def test_guide_pytest_commands(target: str, classes: set[str], count: int | None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", target, "-v", "--collect-only"],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(re.findall(r"<Class (\w+)>", done.stdout)) == classes
    collected = re.search(r"collected (\d+) items?", done.stdout)
    assert collected is not None
    if count is not None:
        assert int(collected.group(1)) == count
        assert "<Coroutine test_submit_and_process_task>" in done.stdout
    else:
        assert int(collected.group(1)) >= 3


# Guide: Testing > Integration Testing
async def test_full_workflow() -> None:
    test_audio = AUDIO_BYTES
    processor = await create_processor(max_workers=3)
    register_teddy_processors(processor)

    try:
        # Test complete AI Teddy Bear workflow
        transcription_task = create_task(
            ProcessingType.AUDIO_TRANSCRIPTION, {"audio_data": test_audio}
        )

        emotion_task = create_task(
            ProcessingType.EMOTION_ANALYSIS,
            {"audio_data": test_audio},
            depends_on=[transcription_task.id],
        )

        ai_task = create_task(
            ProcessingType.AI_RESPONSE,
            {"prompt": "Generate response"},
            depends_on=[transcription_task.id, emotion_task.id],
        )

        # Submit and verify
        await processor.submit_task(transcription_task)
        await processor.submit_task(emotion_task)
        await processor.submit_task(ai_task)

        result = await processor.wait_for_task(ai_task.id)
        assert result.status == TaskStatus.COMPLETED

        inputs = result.result["inputs"]
        assert list(inputs) == [transcription_task.id, emotion_task.id]
        assert inputs[emotion_task.id]["sources"] == [transcription_task.id]

    finally:
        await processor.shutdown()


# ------------------------------------------------------------ Production Deployment


# Guide: Production Deployment > Configuration for Production
async def test_production_configuration() -> None:
    # Production configuration
    processor = AdvancedAsyncProcessor(
        max_workers=20,  # Scale based on CPU cores
        max_thread_workers=10,  # I/O bound tasks
        max_process_workers=4,  # CPU intensive tasks
        queue_size=5000,  # Large queue for burst traffic
        enable_monitoring=True,  # Always monitor in production
        enable_profiling=False,  # Disable profiling for performance
    )
    await processor.start()
    gate = asyncio.Event()

    async def wait_for_gate(task: ProcessingTask) -> None:
        await gate.wait()

    async def noop(task: ProcessingTask) -> None:
        return None

    processor.register_processor("gate", wait_for_gate)
    processor.register_processor("noop", noop)
    try:
        metrics = await processor.get_performance_metrics()
        contexts = [s["context"] for s in metrics["worker_stats"].values()]
        assert (contexts.count("async"), contexts.count("thread"), contexts.count("process")) == (
            20,
            10,
            4,
        )
        # The burst queue holds exactly 5000 waiting tasks.
        blocker = await processor.submit_task(create_task("gate"))
        await asyncio.sleep(0.01)
        assert await processor.get_task_status(blocker) is TaskStatus.RUNNING
        waiting = [
            await processor.submit_task(create_task("noop", depends_on=[blocker]))
            for _ in range(5000)
        ]
        with pytest.raises(QueueFullError, match="queue_size is 5000"):
            await processor.submit_task(create_task("noop"))
        gate.set()
        results = [await processor.wait_for_task(i, timeout=60.0) for i in waiting]
        assert {r.status for r in results} == {TaskStatus.COMPLETED}
        assert "profile" not in await processor.get_performance_metrics()
    finally:
        await processor.shutdown()


# Guide: Production Deployment > Health Checks
async def test_health_checks() -> None:
    processor = await create_processor(max_workers=2, queue_size=2000, max_process_workers=0)
    gate = asyncio.Event()

    async def wait_for_gate(task: ProcessingTask) -> None:
        await gate.wait()

    async def noop(task: ProcessingTask) -> None:
        return None

    async def broken(task: ProcessingTask) -> None:
        raise RuntimeError("broken")

    processor.register_processor("gate", wait_for_gate)
    processor.register_processor("noop", noop)
    processor.register_processor("broken", broken)

    async def health_check() -> dict[str, Any]:
        """Health check for monitoring systems"""
        metrics = await processor.get_performance_metrics()

        # Check if processor is healthy
        if not processor._running:
            return {"status": "unhealthy", "reason": "processor_stopped"}

        if metrics["queue_size"] > 1000:
            return {"status": "degraded", "reason": "high_queue_size"}

        if metrics["success_rate"] < 95.0:
            return {"status": "degraded", "reason": "low_success_rate"}

        return {"status": "healthy", "metrics": metrics}

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        return await health_check(), await processor.health_check()

    seen = []
    try:
        await processor.wait_for_task(await processor.submit_task(create_task("noop")))
        seen.append(await both())

        blocker = await processor.submit_task(create_task("gate"))
        await asyncio.sleep(0.01)  # the blocker is running, not waiting
        assert await processor.get_task_status(blocker) is TaskStatus.RUNNING
        waiting = [
            await processor.submit_task(create_task("noop", depends_on=[blocker]))
            for _ in range(1001)
        ]
        seen.append(await both())
        gate.set()
        for task_id in waiting:
            await processor.wait_for_task(task_id, timeout=30.0)
        seen.append(await both())

        for _ in range(60):  # 1003 completed, 60 failed: 94.4 %
            await processor.wait_for_task(await processor.submit_task(create_task("broken")))
        seen.append(await both())
    finally:
        await processor.shutdown()
    seen.append(await both())

    expected = [
        ("healthy", None),
        ("degraded", "high_queue_size"),
        ("healthy", None),
        ("degraded", "low_success_rate"),
        ("unhealthy", "processor_stopped"),
    ]
    for (guide, own), (status, reason) in zip(seen, expected, strict=True):
        assert guide["status"] == own["status"] == status
        assert guide.get("reason") == own["reason"] == reason
        assert set(own) == {"status", "reason", "reasons", "metrics"}  # + every reason
        assert own["reasons"] == ([] if reason is None else [reason])
        assert {"queue_size", "success_rate", "tasks_processed"} <= set(own["metrics"])
    assert seen[0][0]["metrics"]["tasks_processed"] == 1
    assert seen[1][1]["metrics"]["queue_size"] == 1001


# Guide: Production Deployment > Graceful Shutdown (the guide's signal.signal version)
def test_graceful_shutdown_signal_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stopped: list[AdvancedAsyncProcessor] = []

    async def main() -> None:
        processor = await create_processor(max_process_workers=0)
        stopped.append(processor)

        def signal_handler(signum: int, frame: object) -> None:
            print(f"Received signal {signum}, shutting down...")
            asyncio.create_task(processor.shutdown())  # noqa: RUF006 - the guide's code

        signal.signal(signal.SIGTERM, signal_handler)
        signal.signal(signal.SIGINT, signal_handler)
        # The test plays the operator: SIGTERM to this process shortly.
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

        try:
            # Main application loop
            while processor._running:  # noqa: ASYNC110 - the guide's code
                await asyncio.sleep(1)
        finally:
            await processor.shutdown()

    try:
        asyncio.run(main())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    assert capsys.readouterr().out == f"Received signal {int(signal.SIGTERM)}, shutting down...\n"
    (processor,) = stopped
    assert not processor._running


# Guide: Production Deployment > Graceful Shutdown (install_signal_handlers)
async def test_graceful_shutdown_install_signal_handlers() -> None:
    processor = await create_processor(max_workers=2, max_process_workers=0)
    release = asyncio.Event()

    async def in_flight(task: ProcessingTask) -> str:
        await release.wait()
        return "finished during shutdown"

    processor.register_processor("in_flight", in_flight)
    loop = asyncio.get_running_loop()
    stopped = install_signal_handlers(processor, timeout=10.0)
    try:
        task_id = await processor.submit_task(create_task("in_flight"))
        await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if not processor.running:
                break
            await asyncio.sleep(0.01)
        # Shutdown refuses new work at once but lets running work finish.
        with pytest.raises(ProcessorNotRunningError, match="shutting down"):
            await processor.submit_task(create_task("in_flight"))
        assert not stopped.is_set()
        release.set()
        await asyncio.wait_for(stopped.wait(), 10.0)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
        await processor.shutdown()
    assert not processor._running
    result = await processor.get_task_result(task_id)
    assert result is not None and result.status is TaskStatus.COMPLETED
    assert result.result == "finished during shutdown"
    with pytest.raises(ProcessorNotRunningError, match="was shut down"):
        await processor.submit_task(create_task("in_flight"))


# ------------------------------------------------------------ Troubleshooting


# Guide: Troubleshooting > 1. Tasks not processing
async def test_troubleshooting_tasks_not_processing() -> None:
    processor = AdvancedAsyncProcessor(max_workers=1, max_process_workers=0)
    processor.register_processor(ProcessingType.TEXT_ANALYSIS, analyse_text)
    task = create_task(ProcessingType.TEXT_ANALYSIS, {"text": "a b"})
    with pytest.raises(ProcessorNotRunningError, match=r"await processor\.start\(\)"):
        await processor.submit_task(task)

    # Check if processor is running
    if not processor._running:
        await processor.start()

    try:
        await processor.submit_task(task)
        result = await processor.wait_for_task(task.id, timeout=10.0)
    finally:
        await processor.shutdown()
    assert result.status is TaskStatus.COMPLETED and result.result == {"word_count": 2}


# Guide: Troubleshooting > 2. High memory usage, 3. Slow performance
async def test_troubleshooting_memory_and_utilisation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    processor = await create_processor(max_workers=2, max_thread_workers=1, max_process_workers=0)

    async def busy(task: ProcessingTask) -> None:
        await asyncio.sleep(0.02)

    processor.register_processor("busy", busy)
    try:
        await processor.wait_for_task(await processor.submit_task(create_task("busy")))

        # Monitor memory usage
        metrics = await processor.get_performance_metrics()
        print(f"Peak memory: {metrics['peak_memory_usage_mb']} MB")

        # Check worker utilization
        for worker_id, stats in metrics["worker_stats"].items():
            utilization = stats["total_execution_time"] / metrics["uptime_seconds"]
            print(f"{worker_id}: {utilization:.1%} utilization")
    finally:
        await processor.shutdown()

    lines = capsys.readouterr().out.splitlines()
    peak = re.fullmatch(r"Peak memory: (\d+\.\d+) MB", lines[0])
    assert peak is not None and float(peak.group(1)) > 1
    usage = {}
    for line in lines[1:]:
        found = re.fullmatch(r"(\S+): (\d+\.\d)% utilization", line)
        assert found is not None, line
        usage[found.group(1)] = float(found.group(2))
    assert set(usage) == {"async-0", "async-1", "thread-0"}
    assert all(0 <= u <= 100 for u in usage.values())
    assert max(usage["async-0"], usage["async-1"]) > 0  # one of them ran the task
    assert usage["thread-0"] == 0


# Guide: Troubleshooting > 4. Task dependencies not working
async def test_troubleshooting_ready_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    processor = await create_processor(max_workers=1, max_process_workers=0)
    gate = asyncio.Event()

    async def wait_for_gate(task: ProcessingTask) -> None:
        await gate.wait()

    async def noop(task: ProcessingTask) -> None:
        return None

    processor.register_processor("gate", wait_for_gate)
    processor.register_processor("noop", noop)
    try:
        running = await processor.submit_task(create_task("gate"))
        await asyncio.sleep(0.01)  # it occupies the only worker
        ready = await processor.submit_task(create_task("noop"))
        blocked = await processor.submit_task(create_task("noop", depends_on=[ready]))

        # Verify dependency setup
        ready_tasks = await processor.task_manager.get_ready_tasks()
        print(f"Ready tasks: {ready_tasks}")

        gate.set()
        final = await processor.wait_for_task(blocked, timeout=10.0)
    finally:
        await processor.shutdown()
    assert ready_tasks == [ready]
    assert running not in ready_tasks and blocked not in ready_tasks
    assert capsys.readouterr().out == f"Ready tasks: {[ready]}\n"
    assert final.status is TaskStatus.COMPLETED


# ------------------------------------------------------------ Integration Examples


# Guide: Integration Examples > Integration with AI Teddy Bear System
async def test_teddy_bear_system_integration() -> None:
    class TeddyBearSystem:
        def __init__(self) -> None:
            self.processor: AdvancedAsyncProcessor | None = None

        async def start_system(self) -> None:
            self.processor = await create_processor(max_workers=8, enable_monitoring=True)
            register_teddy_processors(self.processor)  # until the built-ins land

        async def process_child_interaction(self, audio_data: bytes, child_id: str) -> TaskResult:
            """Process complete child interaction"""
            assert self.processor is not None

            # 1. Transcribe audio
            transcription_task = create_task(
                ProcessingType.AUDIO_TRANSCRIPTION,
                {"audio_data": audio_data, "child_id": child_id},
                TaskPriority.HIGH,
            )

            # 2. Analyze emotion (parallel with transcription)
            emotion_task = create_task(
                ProcessingType.EMOTION_ANALYSIS,
                {"audio_data": audio_data, "child_id": child_id},
                TaskPriority.HIGH,
            )

            # 3. Generate AI response (depends on both)
            ai_task = create_task(
                ProcessingType.AI_RESPONSE,
                {"child_id": child_id, "prompt_template": "child_interaction"},
                TaskPriority.HIGH,
                depends_on=[transcription_task.id, emotion_task.id],
            )

            # Submit all tasks
            await self.processor.submit_task(transcription_task)
            await self.processor.submit_task(emotion_task)
            await self.processor.submit_task(ai_task)

            # Wait for final response
            result = await self.processor.wait_for_task(ai_task.id, timeout=30.0)

            self.last_ids = (transcription_task.id, emotion_task.id)
            return result

    system = TeddyBearSystem()
    await system.start_system()
    assert system.processor is not None
    try:
        result = await system.process_child_interaction(AUDIO_BYTES, "child-7")
        second = await system.process_child_interaction(b"\x00\x00" * 10, "child-8")
    finally:
        await system.processor.shutdown()
    assert result.status is TaskStatus.COMPLETED
    assert result.result["response"] == "Teddy says: child_interaction"
    assert second.status is TaskStatus.COMPLETED
    transcription_id, emotion_id = system.last_ids
    assert second.result["inputs"] == {
        transcription_id: {"text": "I am happy today (20 bytes)", "language": "en"},
        # No transcription reached it: the emotion task ran in parallel, with no text.
        emotion_id: {"emotion": "neutral", "text": "", "sources": []},
    }
