"""Checks of the arguments users pass to the processor, each naming what was wrong."""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidArgumentError

__all__ = ["check_count", "check_seconds"]


def check_seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a finite number of seconds > 0 (or >= 0), or InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgumentError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


def check_count(name: str, value: Any, minimum: int) -> int:
    """``value`` as a whole number >= ``minimum``, or InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value
