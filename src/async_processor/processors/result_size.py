"""How big a built-in's result is, so that an oversized one is refused, not kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError

__all__ = ["check_result_size", "result_size"]


def result_size(value: Any, limit: int) -> int:
    """About how many bytes ``value`` holds: text and binary lengths, array bytes, 8 for
    any other value or container. Counting stops once past ``limit``."""
    total = 0
    pending = [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, memoryview):
            total += item.nbytes
        elif isinstance(item, Mapping):
            total += 8
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 8
            pending.extend(item)
        elif isinstance(getattr(item, "nbytes", None), int):  # numpy arrays
            total += item.nbytes
        else:
            total += 8
    return total


def check_result_size(task_type: str, value: Any, limit: int) -> Any:
    """``value``, or InvalidInputError when it is over ``limit`` (Settings.max_result_bytes)."""
    size = result_size(value, limit)
    if size > limit:
        raise InvalidInputError(
            f"the {task_type} result holds more than {limit} bytes (Settings.max_result_bytes) "
            "and was not kept; ask for less (a smaller image, a shorter clip, a lower sample "
            "rate, fewer rows) or raise max_result_bytes"
        )
    return value
