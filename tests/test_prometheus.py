"""async_processor.prometheus: the collector's exposition, parsed with prometheus_client's
own parser; histogram buckets cumulative and consistent with the tasks that ran."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from processor_helpers import Factory
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from async_processor import ProcessingTask, TaskPriority, create_task
from async_processor.monitor import BUCKETS
from async_processor.prometheus import register

pytestmark = pytest.mark.asyncio


async def echo(task: ProcessingTask) -> Any:
    if task.payload.get("fail"):
        raise ValueError("asked to fail")
    return dict(task.payload)


def samples(registry: CollectorRegistry) -> dict[str, list[Sample]]:
    text = generate_latest(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def bucket_counts(family: list[Sample], suffix: str, labels: dict[str, str]) -> list[float]:
    """The ``_bucket`` values of one label set, in the order of their bounds."""
    chosen = [
        s
        for s in family
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    chosen.sort(key=lambda s: float(s.labels["le"]))
    return [s.value for s in chosen]


async def test_histograms_and_counters_match_the_tasks_run(make_processor: Factory) -> None:
    processor = await make_processor(builtin_processors=False)
    processor.register_processor("echo", echo)
    registry = CollectorRegistry()
    register(processor, registry)
    tasks = [create_task("echo", {"i": i}, TaskPriority.HIGH) for i in range(5)]
    tasks += [create_task("echo", {"fail": True}, TaskPriority.LOW, max_retries=0)]
    await processor.submit_tasks(tasks)
    for task in tasks:
        await processor.wait_for_task(task.id)

    families = samples(registry)
    ended = {s.labels["status"]: s.value for s in families["async_processor_tasks_ended"]}
    assert ended == {"completed": 5.0, "failed": 1.0, "cancelled": 0.0, "timeout": 0.0}
    run = families["async_processor_task_run_seconds"]
    high = {"task_type": "echo", "priority": "HIGH"}
    counts = bucket_counts(run, "_bucket", high)
    assert len(counts) == len(BUCKETS) + 1  # and +Inf
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 5.0
    count = [s.value for s in run if s.name.endswith("_count") and s.labels == high]
    assert count == [5.0]
    low = {"task_type": "echo", "priority": "LOW"}
    assert bucket_counts(run, "_bucket", low)[-1] == 1.0
    wait = families["async_processor_task_queue_wait_seconds"]
    assert bucket_counts(wait, "_bucket", high)[-1] == 5.0
    assert families["async_processor_queue_size"][0].value == 0.0


async def test_a_scrape_from_another_thread_reads_on_the_loop(make_processor: Factory) -> None:
    processor = await make_processor(builtin_processors=False)
    processor.register_processor("echo", echo)
    registry = CollectorRegistry()
    collector = register(processor, registry)
    task = create_task("echo", {})
    await processor.submit_task(task)
    await processor.wait_for_task(task.id)
    text = (await asyncio.to_thread(generate_latest, registry)).decode()
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    assert families["async_processor_tasks"][0].labels["task_type"] == "echo"
    registry.unregister(collector)
    assert generate_latest(registry) == b""


async def test_register_uses_the_default_registry(make_processor: Factory) -> None:
    from prometheus_client import REGISTRY

    processor = await make_processor(builtin_processors=False)
    collector = register(processor)
    try:
        assert "async_processor_tasks_ended_total" in generate_latest(REGISTRY).decode()
    finally:
        REGISTRY.unregister(collector)
