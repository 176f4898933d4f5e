"""Finding 3 of the hardening issue: memory bombs in the built-in processors.

``"{text:>100000000}"`` as a prompt template allocated 100 MB per field on the event loop,
``target_sample_rate: 384000`` turned 3.8 MB into a 91 MB result, and a large PNG with 32
blurs held a thread for 45 s with no default timeout.
"""

from __future__ import annotations

import io
import math
import struct
import tracemalloc
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    InvalidInputError,
    ProcessingType,
    Settings,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import ai_response


def tone(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(seconds * rate))
        )
        out.writeframes(b"".join(frames))
    return buffer.getvalue()


def png(width: int, height: int) -> bytes:
    image = pytest.importorskip("PIL.Image").new("RGB", (width, height), (200, 120, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def processor_with(settings: Settings) -> AdvancedAsyncProcessor:
    return await create_processor(max_process_workers=0, settings=settings)


@pytest.fixture
async def processor() -> AsyncIterator[AdvancedAsyncProcessor]:
    processor = await processor_with(Settings(databases={}))
    yield processor
    await processor.shutdown()


async def run(
    processor: AdvancedAsyncProcessor, task_type: ProcessingType, payload: dict[str, Any]
) -> TaskResult:
    task = create_task(task_type, payload)
    return await processor.wait_for_task(await processor.submit_task(task), timeout=120)


async def failed(
    processor: AdvancedAsyncProcessor,
    task_type: ProcessingType,
    payload: dict[str, Any],
    why: str,
) -> str:
    result = await run(processor, task_type, payload)
    assert result.status is TaskStatus.FAILED, result
    assert result.error is not None and why in result.error, result.error
    assert result.error.startswith("InvalidInputError: "), result.error
    return result.error


# --- prompt templates -------------------------------------------------------------------------


async def template_error(template: str, **context: Any) -> tuple[str, int]:
    """The error of filling ``template``, and the peak memory it took in bytes."""
    task = create_task(
        ProcessingType.AI_RESPONSE,
        {"prompt_template": template, "context": {"text": "hi", **context}},
    )
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError) as caught:
            await ai_response.process(task, Settings())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(caught.value), peak


async def test_a_width_in_a_template_allocates_nothing() -> None:
    error, peak = await template_error("{text:>100000000}")
    assert "format" in error and "{text}" in error, error
    assert peak < 5_000_000, f"filling the template took {peak} bytes"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{text!r}", "format"),
        ("{text.__class__}", "only plain named fields"),
        ("{text[0]}", "only plain named fields"),
        ("{0}", "only plain named fields"),
        ("{}", "only plain named fields"),
        ("say {text", "not a valid template"),
        ("say text}", "not a valid template"),
    ],
)
async def test_templates_take_plain_named_fields_only(template: str, error: str) -> None:
    message, _ = await template_error(template)
    assert error in message, message


async def test_a_filled_template_stops_at_the_prompt_limit() -> None:
    long_text = "x" * 1_000_000  # ten copies were built before the length was checked
    error, peak = await template_error("{a}{a}{a}{a}{a}{a}{a}{a}{a}{a}", a=long_text)
    assert f"at most {ai_response.MAX_PROMPT_CHARS}" in error, error
    assert peak < 1_000_000, f"filling the template took {peak} bytes"


def test_the_guide_templates_still_fill() -> None:
    task = create_task(ProcessingType.AI_RESPONSE, {"text": "I built a tower"})
    context = {"child_name": "Mia", "child_age": 5}
    assert (
        ai_response._fill_template(task, "child_interaction", context)
        == 'The child said: "I built a tower"'
    )
    filled = ai_response._fill_template(
        task, '{child_name} ({child_age}) said: "{text}" {{ok}}', context
    )
    assert filled == 'Mia (5) said: "I built a tower" {ok}'


# --- audio ------------------------------------------------------------------------------------


async def test_a_huge_target_sample_rate_is_refused(processor: AdvancedAsyncProcessor) -> None:
    payload = {"audio_data": tone(0.5), "target_sample_rate": 384_000}
    error = await failed(processor, ProcessingType.AUDIO_ENHANCEMENT, payload, "48000")
    assert "target_sample_rate" in error


async def test_audio_output_over_the_result_cap_is_refused_before_resampling() -> None:
    processor = await processor_with(Settings(databases={}, max_result_bytes=100_000))
    try:
        payload = {"audio_data": tone(2.0), "target_sample_rate": 48_000}
        error = await failed(
            processor, ProcessingType.AUDIO_ENHANCEMENT, payload, "max_result_bytes"
        )
        assert "192000" in error  # 2 s x 48000 samples x 2 bytes
        small = await run(processor, ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": tone(1.0)})
        assert small.status is TaskStatus.COMPLETED, small.error
    finally:
        await processor.shutdown()


# --- images ------------------------------------------------------------------------------------


async def test_many_blurs_are_refused(processor: AdvancedAsyncProcessor) -> None:
    from async_processor.processors import image_processing

    blurs = [{"op": "blur", "radius": 2}] * (image_processing.MAX_BLURS + 1)
    payload = {"image_data": png(64, 64), "operations": blurs}
    error = await failed(processor, ProcessingType.IMAGE_PROCESSING, payload, "blur")
    assert f"at most {image_processing.MAX_BLURS}" in error


async def test_a_result_over_the_cap_is_refused() -> None:
    processor = await processor_with(Settings(databases={}, max_result_bytes=2_000))
    try:
        payload = {"prompt": "a teddy bear in a garden", "size": "256x256"}
        error = await failed(
            processor, ProcessingType.IMAGE_GENERATION, payload, "max_result_bytes"
        )
        assert "image_generation" in error
    finally:
        await processor.shutdown()


# --- default timeouts --------------------------------------------------------------------------


HEAVY = (
    ProcessingType.IMAGE_PROCESSING,
    ProcessingType.IMAGE_GENERATION,
    ProcessingType.AUDIO_ENHANCEMENT,
    ProcessingType.AUDIO_TRANSCRIPTION,
    ProcessingType.EMOTION_ANALYSIS,
)


async def test_heavy_built_ins_get_a_default_timeout(processor: AdvancedAsyncProcessor) -> None:
    for task_type in HEAVY:
        task = create_task(task_type, {}, cpu_intensive=False)
        await processor.submit_task(task)
        assert task.timeout == Settings().default_timeouts[task_type.value], task_type
    own = create_task(ProcessingType.IMAGE_PROCESSING, {}, timeout=5.0)
    await processor.submit_task(own)
    assert own.timeout == 5.0  # a task's own timeout wins


async def test_default_timeouts_can_be_changed_or_removed() -> None:
    processor = await processor_with(
        Settings(databases={}, default_timeouts={"image_processing": 7.5})
    )
    try:
        changed = create_task(ProcessingType.IMAGE_PROCESSING, {})
        await processor.submit_task(changed)
        assert changed.timeout == 7.5
        removed = create_task(ProcessingType.AUDIO_ENHANCEMENT, {})
        await processor.submit_task(removed)
        assert removed.timeout is None
    finally:
        await processor.shutdown()


def test_a_cancelled_image_task_stops_before_its_next_operation() -> None:
    from async_processor.processors import image_processing

    task = create_task(
        ProcessingType.IMAGE_PROCESSING,
        {"image_data": png(64, 64), "operations": [{"op": "blur"}, {"op": "grayscale"}]},
    )
    task.cancel_requested = True  # what the thread lane sets when the task times out
    with pytest.raises(TimeoutError, match="stopped"):
        image_processing.process(task, Settings())


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), True, "60"])
def test_bad_default_timeouts_are_refused(seconds: Any) -> None:
    from async_processor import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"default_timeouts\['image_processing'\]"):
        Settings(default_timeouts={"image_processing": seconds})
