"""Reading a built-in processor's inputs from the payload, or from its dependencies.

A dependent task uses its dependencies' results when its own payload lacks the input: an
emotion analysis that depends on a transcription reads the transcription's ``text``; a
reply reads ``text`` and ``emotion``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError
from ..task import ProcessingTask

__all__ = ["from_dependencies", "get_input", "optional_text", "require_text"]

_MISSING = object()


def from_dependencies(task: ProcessingTask, key: str) -> Any:
    """``key`` from the first dependency (in ``depends_on`` order) whose result has it."""
    for dependency in task.depends_on:
        result = task.dependency_results.get(dependency)
        if isinstance(result, Mapping) and result.get(key) is not None:
            return result[key]
    return None


def get_input(task: ProcessingTask, key: str) -> Any:
    """``payload[key]`` if present and not None, else the dependencies' ``key``, else None."""
    value = task.payload.get(key, _MISSING)
    if value is not _MISSING and value is not None:
        return value
    return from_dependencies(task, key)


def optional_text(task: ProcessingTask, key: str = "text") -> str | None:
    """A text input (payload or dependencies); a non-string is refused."""
    value = get_input(task, key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"payload[{key!r}] must be a string, got {type(value).__name__}")
    return value


def require_text(task: ProcessingTask, key: str = "text") -> str:
    """A non-empty text input, or InvalidInputError saying where it may come from."""
    value = optional_text(task, key)
    if value is None or not value.strip():
        raise InvalidInputError(
            f"{task.type_name} needs payload[{key!r}] (a non-empty string), or a dependency "
            f"whose result has {key!r}"
        )
    return value
