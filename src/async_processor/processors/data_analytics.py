"""DATA_ANALYTICS: descriptive statistics over a list of numbers or of records (stdlib only).

Payload:
    data: a list of numbers, or a list of records (dicts). Taken from a dependency's ``data``
        when the payload has none.
    field: for records, the key holding the number to analyse. Not needed when every
        operation is ``count``.
    group_by: for records, a key to group them by; the statistics are then given per group.
    operations: names from :data:`OPERATIONS`; absent means :data:`DEFAULT_OPERATIONS`, plus
        ``percentiles`` when the payload gives ``percentiles`` and ``histogram`` when it
        gives ``bins``.
    percentiles: the percentiles wanted, numbers from 0 to 100 (default 25, 50, 75, 90, 95, 99).
    bins: how many equal-width histogram bins (default 10).

Methods: ``std`` and ``variance`` are the *sample* statistics (divisor n - 1) and are None
for fewer than two values. Percentiles interpolate linearly between the two nearest ranks
(rank = p/100 * (n - 1) over the sorted values), which is NumPy's default ``linear`` method
and ``statistics.quantiles(method="inclusive")``. The histogram spans min to max in equal
bins; the last bin includes max; when every value is the same the range is value +- 0.5.

Result: one key per operation (``percentiles`` maps ``"p50"``-style names to values,
``histogram`` is ``{"edges": [...], "counts": [...]}``) and ``methods`` naming the methods
used. With ``group_by``: ``{"group_by", "count", "groups": {group: statistics}}``; group
values that are not strings become their ``str()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InvalidInputError
from ..task import ProcessingTask
from .inputs import get_input
from .settings import Settings

__all__ = ["DEFAULT_OPERATIONS", "OPERATIONS", "process"]

OPERATIONS = (
    "count",
    "sum",
    "mean",
    "median",
    "min",
    "max",
    "std",
    "variance",
    "percentiles",
    "histogram",
)
DEFAULT_OPERATIONS = ("count", "sum", "mean", "median", "min", "max", "std")
DEFAULT_PERCENTILES = (25, 50, 75, 90, 95, 99)
DEFAULT_BINS = 10
MAX_BINS = 10_000

_NEEDS_VALUES = frozenset(OPERATIONS) - {"count", "sum", "std", "variance"}
_METHODS = {
    "std": "sample standard deviation (divisor n - 1)",
    "variance": "sample variance (divisor n - 1)",
    "percentiles": "linear interpolation between closest ranks (NumPy 'linear')",
    "histogram": "equal-width bins from min to max; the last bin includes max",
}


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    payload = task.payload
    data = get_input(task, "data")
    if data is None:
        raise InvalidInputError(
            "data_analytics needs payload['data']: a list of numbers or of records (dicts), "
            "or a dependency whose result has 'data'"
        )
    if not isinstance(data, list | tuple):
        raise InvalidInputError(
            f"payload['data'] must be a list of numbers or of records, got {type(data).__name__}"
        )
    operations = _operations(payload)
    percentiles = _percentiles(payload.get("percentiles"))
    bins = _bins(payload.get("bins"))
    field = _optional_key(payload, "field")
    group_by = _optional_key(payload, "group_by")
    only_count = set(operations) == {"count"}

    records = bool(data) and all(isinstance(item, Mapping) for item in data)
    if not records:
        if field is not None or group_by is not None:
            raise InvalidInputError(
                "field and group_by apply to records: data must be a list of dicts, "
                f"but data[{_first_not_record(data)}] is not one"
            )
        values = _numbers(data, lambda i: f"data[{i}]")
        return _statistics(values, operations, percentiles, bins, "")
    if field is None and not only_count:
        raise InvalidInputError(
            "data holds records, so say which key to analyse with payload['field'] "
            f"(the first record has {', '.join(map(repr, list(data[0])[:10]))})"
        )
    values = _field_values(data, field) if field is not None else [0.0] * len(data)
    if group_by is None:
        return _statistics(values, operations, percentiles, bins, "")

    groups: dict[str, list[float]] = {}
    for index, (record, value) in enumerate(zip(data, values, strict=True)):
        if group_by not in record:
            raise InvalidInputError(f"record {index} has no {group_by!r} key (group_by)")
        key = record[group_by]
        if isinstance(key, list | dict | set):
            raise InvalidInputError(
                f"record {index}: the {group_by!r} value is a {type(key).__name__}; "
                "group_by needs a string, number or None"
            )
        groups.setdefault(key if isinstance(key, str) else str(key), []).append(value)
    return {
        "group_by": group_by,
        "count": len(data),
        "groups": {
            name: _statistics(members, operations, percentiles, bins, f" in group {name!r}")
            for name, members in groups.items()
        },
    }


def _operations(payload: Mapping[str, Any]) -> list[str]:
    raw = payload.get("operations")
    if raw is None:
        chosen = list(DEFAULT_OPERATIONS)
        if payload.get("percentiles") is not None:
            chosen.append("percentiles")
        if payload.get("bins") is not None:
            chosen.append("histogram")
        return chosen
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidInputError(
            f"payload['operations'] must be a non-empty list of names from "
            f"{', '.join(OPERATIONS)}; got {raw!r}"
        )
    unknown = [op for op in raw if op not in OPERATIONS]
    if unknown:
        raise InvalidInputError(
            f"unknown operation(s) {', '.join(map(repr, unknown))}; "
            f"data_analytics offers {', '.join(OPERATIONS)}"
        )
    return list(dict.fromkeys(raw))


def _percentiles(raw: Any) -> list[float]:
    if raw is None:
        return [float(p) for p in DEFAULT_PERCENTILES]
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidInputError(
            f"payload['percentiles'] must be a non-empty list of numbers from 0 to 100, "
            f"e.g. [50, 95, 99]; got {raw!r}"
        )
    out = []
    for p in raw:
        if not _is_number(p) or not 0 <= p <= 100:
            raise InvalidInputError(f"percentile {p!r} is not a number from 0 to 100")
        out.append(float(p))
    return out


def _bins(raw: Any) -> int:
    if raw is None:
        return DEFAULT_BINS
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_BINS:
        raise InvalidInputError(
            f"payload['bins'] must be a whole number from 1 to {MAX_BINS}, got {raw!r}"
        )
    return raw


def _optional_key(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"payload[{name!r}] must be a record key (a string), got {value!r}")
    return value


def _first_not_record(data: Sequence[Any]) -> int:
    return next((i for i, item in enumerate(data) if not isinstance(item, Mapping)), 0)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(items: Sequence[Any], where: Callable[[int], str]) -> list[float]:
    """``items`` as floats; the first non-number is refused by index. Bools are not numbers."""
    for index, value in enumerate(items):
        if not _is_number(value):
            if isinstance(value, bool):
                what = "a bool"
            elif isinstance(value, int | float):
                what = repr(value)
            else:
                what = f"a {type(value).__name__} ({value!r:.40})"
            raise InvalidInputError(
                f"{where(index)} is {what}, not a finite number; data_analytics needs "
                "int or float values (true and false are not numbers)"
            )
    return [float(v) for v in items]


def _field_values(records: Sequence[Mapping[str, Any]], field: str) -> list[float]:
    values = []
    for index, record in enumerate(records):
        if field not in record:
            raise InvalidInputError(f"record {index} has no {field!r} key (field)")
        values.append(record[field])
    return _numbers(values, lambda i: f"record {i}: {field!r}")


def _statistics(
    values: list[float], operations: list[str], percentiles: list[float], bins: int, where: str
) -> dict[str, Any]:
    n = len(values)
    needs_values = [op for op in operations if op in _NEEDS_VALUES]
    if n == 0 and needs_values:
        raise InvalidInputError(
            f"data is empty{where}; {', '.join(needs_values)} cannot be computed without "
            "values (count and sum can)"
        )
    ordered = sorted(values) if any(op in operations for op in _NEEDS_VALUES) else values
    mean = math.fsum(values) / n if n else 0.0
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else None
    compute: dict[str, Callable[[], Any]] = {
        "count": lambda: n,
        "sum": lambda: math.fsum(values),
        "mean": lambda: mean,
        "median": lambda: _percentile(ordered, 50.0),
        "min": lambda: ordered[0],
        "max": lambda: ordered[-1],
        "std": lambda: math.sqrt(variance) if variance is not None else None,
        "variance": lambda: variance,
        "percentiles": lambda: {f"p{p:g}": _percentile(ordered, p) for p in percentiles},
        "histogram": lambda: _histogram(ordered, bins),
    }
    result: dict[str, Any] = {op: compute[op]() for op in operations if op in compute}
    methods = {op: _METHODS[op] for op in operations if op in _METHODS}
    if methods:
        result["methods"] = methods
    return result


def _percentile(ordered: list[float], p: float) -> float:
    rank = p / 100.0 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _histogram(ordered: list[float], bins: int) -> dict[str, list[float] | list[int]]:
    low, high = ordered[0], ordered[-1]
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    edges = [low + i * width for i in range(bins)] + [high]
    counts = [0] * bins
    for value in ordered:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return {"edges": edges, "counts": counts}
