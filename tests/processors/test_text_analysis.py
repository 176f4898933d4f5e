"""TEXT_ANALYSIS: counts, VADER sentiment, keywords and safety flags, through the processor."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingType,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors.text_analysis import MAX_TEXT_CHARS, analyse, keywords

pytest.importorskip("vaderSentiment")


def test_counts_sentiment_keywords_and_flags() -> None:
    result = analyse("I love my teddy bear! My teddy is so soft. Bears are the best.")
    assert result["word_count"] == 14 and result["sentence_count"] == 3
    sentiment = result["sentiment"]
    assert sentiment["label"] == "positive" and sentiment["compound"] > 0.3
    assert sentiment["pos"] + sentiment["neu"] + sentiment["neg"] == pytest.approx(1, abs=0.01)
    assert result["keywords"][:2] == ["teddy", "love"]
    assert result["safety_flags"] == []


def test_sentiment_labels() -> None:
    assert analyse("My sister broke my toy and I am so sad and angry.")["sentiment"]["label"] == (
        "negative"
    )
    assert analyse("The box is on the table.")["sentiment"] == {
        "compound": 0.0,
        "pos": 0.0,
        "neu": 1.0,
        "neg": 0.0,
        "label": "neutral",
    }


def test_keywords_by_frequency_then_first_occurrence() -> None:
    text = "Zebras and lions. Lions roar, zebras run, lions sleep. The owl hoots."
    assert keywords(text) == ["lions", "zebras", "roar", "run", "sleep", "owl", "hoots"]
    assert keywords(text, 2) == ["lions", "zebras"]
    assert keywords("I don't know, it is what it is.") == []


def test_safety_flags_of_a_childs_message() -> None:
    flags = analyse("A man said it's our secret. My number is 555-123-4567.")["safety_flags"]
    assert flags == ["personal_information", "secrecy"]
    assert analyse("I want to hurt myself")["safety_flags"] == ["self_harm"]


def test_safeguarding_is_the_child_side_verdict() -> None:
    result = analyse("The man in the van said I can have sweets if I get in. I want to go!")
    verdict = result["safeguarding"]
    assert verdict["side"] == "child" and not verdict["safe"]
    assert verdict["top"] == "strangers" and verdict["risks"][0]["severity"] == "high"
    assert result["safety_flags"] == sorted(risk["category"] for risk in verdict["risks"])
    calm = analyse("We fed the ducks at the pond with grandma.")
    assert calm["safeguarding"]["safe"] and calm["safety_flags"] == []


def test_the_longest_text_allowed_is_quick() -> None:
    text = ("I built a tall tower with my blocks today and it was great fun. " * 2000)[
        :MAX_TEXT_CHARS
    ]
    started = time.perf_counter()
    result = analyse(text)
    assert time.perf_counter() - started < 5  # VADER on the whole text would take ~10 s
    assert result["sentence_count"] == 1563 and result["keywords"][0] == "built"


@pytest.fixture
async def processor() -> Any:
    processor = await create_processor(max_process_workers=0)
    yield processor
    await processor.shutdown()


async def run(processor: AdvancedAsyncProcessor, payload: dict[str, Any], **fields: Any) -> Any:
    task_id = await processor.submit_task(
        create_task(ProcessingType.TEXT_ANALYSIS, payload, **fields)
    )
    return await processor.wait_for_task(task_id, timeout=30)


async def test_through_the_processor(processor: AdvancedAsyncProcessor) -> None:
    result = await run(processor, {"text": "Foxes live in dens. They are clever!"})
    assert result.status is TaskStatus.COMPLETED, result.error
    assert set(result.result) == {
        "word_count",
        "sentence_count",
        "sentiment",
        "keywords",
        "safeguarding",
        "safety_flags",
    }
    assert result.result["word_count"] == 7 and result.result["keywords"][0] == "foxes"


async def test_text_from_a_dependency(processor: AdvancedAsyncProcessor) -> None:
    processor.register_processor(
        ProcessingType.CUSTOM, lambda task: {"text": "I feel happy and my kite flies high."}
    )
    first = await processor.submit_task(create_task(ProcessingType.CUSTOM))
    result = await run(processor, {}, depends_on=[first])
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.result["sentiment"]["label"] == "positive"
    assert result.result["keywords"] == ["feel", "happy", "kite", "flies", "high"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({}, "InvalidInputError: text_analysis needs payload['text']"),
        ({"text": "   "}, "InvalidInputError: text_analysis needs payload['text']"),
        ({"text": 42}, "InvalidInputError: payload['text'] must be a string, got int"),
        ({"text": "a" * (MAX_TEXT_CHARS + 1)}, "at most 100,000 characters, got 100,001"),
        ({"text": "hi", "max_keywords": 0}, "max_keywords'] must be a whole number"),
        ({"text": "hi", "max_keywords": "5"}, "max_keywords'] must be a whole number"),
    ],
)
async def test_bad_input_fails_the_task_and_the_processor_goes_on(
    processor: AdvancedAsyncProcessor, payload: dict[str, Any], error: str
) -> None:
    failed = await run(processor, payload)
    assert failed.status is TaskStatus.FAILED and error in (failed.error or "")
    assert failed.attempts == 1  # an input error is not retried
    after = await run(processor, {"text": "Still here."})
    assert after.status is TaskStatus.COMPLETED


def test_without_vader_the_task_fails_with_the_install_hint() -> None:
    script = """
import sys
sys.modules["vaderSentiment"] = None
from async_processor import MissingExtraError, create_task, ProcessingType
from async_processor.processors.settings import Settings
from async_processor.processors.text_analysis import process
try:
    process(create_task(ProcessingType.TEXT_ANALYSIS, {"text": "hi"}), Settings())
except MissingExtraError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'async-processor[nlp]'" in done.stdout, done.stderr
