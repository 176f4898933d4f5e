"""Inputs come from the payload first, then from the dependencies in order."""

from __future__ import annotations

import pytest

from async_processor import InvalidInputError, ProcessingTask, ProcessingType, create_task
from async_processor.processors.inputs import get_input, optional_text, require_text


def dependent(payload: dict[str, object], results: dict[str, object]) -> ProcessingTask:
    task = create_task(ProcessingType.AI_RESPONSE, payload, depends_on=list(results))
    task.dependency_results = dict(results)
    return task


def test_payload_wins_over_dependencies() -> None:
    task = dependent({"text": "mine"}, {"a": {"text": "theirs"}})
    assert get_input(task, "text") == "mine"


def test_first_dependency_with_the_key_in_depends_on_order() -> None:
    task = dependent({"text": None}, {"a": {"emotion": "sad"}, "b": {"text": "hi"}, "c": 5})
    assert get_input(task, "text") == "hi"
    assert get_input(task, "emotion") == "sad"
    assert get_input(task, "missing") is None


def test_text_must_be_a_non_empty_string() -> None:
    with pytest.raises(InvalidInputError, match=r"payload\['text'\] must be a string"):
        optional_text(dependent({"text": 3}, {}))
    with pytest.raises(InvalidInputError, match="or a dependency whose result has 'text'"):
        require_text(dependent({"text": "  "}, {}))
    assert require_text(dependent({}, {"a": {"text": "ok"}})) == "ok"
