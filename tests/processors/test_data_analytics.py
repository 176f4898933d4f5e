"""DATA_ANALYTICS: statistics checked by hand and against the statistics module, group-by,
large inputs, and every refusal, directly and through the real processor."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from async_processor import (
    InvalidInputError,
    ProcessingType,
    Settings,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import data_analytics
from async_processor.processors.data_analytics import DEFAULT_OPERATIONS, OPERATIONS


def analyse(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    task = create_task(ProcessingType.DATA_ANALYTICS, payload, **fields)
    return data_analytics.process(task, Settings())


def test_hand_computed_values() -> None:
    result = analyse(
        {
            "data": [2, 4, 4, 4, 5, 5, 7, 9],
            "operations": list(OPERATIONS),
            "percentiles": [0, 25, 50, 90, 100],
            "bins": 4,
        }
    )
    assert result["count"] == 8
    assert result["sum"] == 40
    assert result["mean"] == 5
    assert result["median"] == 4.5
    assert (result["min"], result["max"]) == (2, 9)
    # Sum of squared deviations is 32: sample variance 32/7.
    assert result["variance"] == pytest.approx(32 / 7)
    assert result["std"] == pytest.approx((32 / 7) ** 0.5)
    # rank = p/100 * 7: p25 -> 1.75 (between 4 and 4), p90 -> 6.3 (7 + 0.3 * 2).
    assert result["percentiles"] == pytest.approx(
        {"p0": 2, "p25": 4, "p50": 4.5, "p90": 7.6, "p100": 9}
    )
    assert result["histogram"]["edges"] == pytest.approx([2, 3.75, 5.5, 7.25, 9])
    assert result["histogram"]["counts"] == [1, 5, 1, 1]
    assert "sample" in result["methods"]["std"]
    assert "linear" in result["methods"]["percentiles"]


def test_agrees_with_the_statistics_module() -> None:
    rng = random.Random(7)
    values = [rng.gauss(10, 3) for _ in range(1001)]
    result = analyse({"data": values, "operations": list(OPERATIONS), "percentiles": [10, 50, 95]})
    assert result["mean"] == pytest.approx(statistics.mean(values))
    assert result["median"] == pytest.approx(statistics.median(values))
    assert result["std"] == pytest.approx(statistics.stdev(values))
    assert result["variance"] == pytest.approx(statistics.variance(values))
    inclusive = statistics.quantiles(values, n=20, method="inclusive")  # 5%, 10%, ... 95%
    assert result["percentiles"]["p10"] == pytest.approx(inclusive[1])
    assert result["percentiles"]["p95"] == pytest.approx(inclusive[18])
    assert sum(result["histogram"]["counts"]) == len(values)


def test_default_operations_and_optional_extras() -> None:
    result = analyse({"data": [1.5, 2.5]})
    assert list(result) == [*DEFAULT_OPERATIONS, "methods"]
    with_extras = analyse({"data": [1, 2, 3], "percentiles": [50], "bins": 2})
    assert with_extras["percentiles"] == {"p50": 2}
    assert with_extras["histogram"]["counts"] == [1, 2]


def test_std_of_one_value_is_none_and_equal_values_make_one_unit_histogram() -> None:
    result = analyse({"data": [3], "operations": ["std", "variance", "histogram"], "bins": 2})
    assert result["std"] is None and result["variance"] is None
    assert result["histogram"] == {"edges": [2.5, 3.0, 3.5], "counts": [0, 1]}


def test_records_with_field_and_group_by() -> None:
    data = [
        {"room": "kitchen", "minutes": 10},
        {"room": "garden", "minutes": 30},
        {"room": "kitchen", "minutes": 20},
        {"room": "garden", "minutes": 50},
        {"room": "garden", "minutes": 40},
    ]
    result = analyse(
        {"data": data, "field": "minutes", "group_by": "room", "operations": ["count", "mean"]}
    )
    assert result == {
        "group_by": "room",
        "count": 5,
        "groups": {"kitchen": {"count": 2, "mean": 15}, "garden": {"count": 3, "mean": 40}},
    }
    whole = analyse({"data": data, "field": "minutes", "operations": ["sum", "max"]})
    assert whole == {"sum": 150, "max": 50}


def test_counting_records_needs_no_field_and_group_values_become_strings() -> None:
    data = [{"age": 4}, {"age": 5}, {"age": 4}, {"age": None}]
    result = analyse({"data": data, "group_by": "age", "operations": ["count"]})
    assert result["groups"] == {"4": {"count": 2}, "5": {"count": 1}, "None": {"count": 1}}


def test_a_dependency_supplies_the_data() -> None:
    task = create_task(ProcessingType.DATA_ANALYTICS, {"operations": ["sum"]}, depends_on=["a"])
    task.dependency_results = {"a": {"data": [1, 2, 3]}}
    assert data_analytics.process(task, Settings()) == {"sum": 6}


def test_a_hundred_thousand_values_quickly() -> None:
    rng = random.Random(1)
    records = [{"group": rng.choice("abcd"), "value": rng.random()} for _ in range(100_000)]
    result = analyse(
        {
            "data": records,
            "field": "value",
            "group_by": "group",
            "operations": list(OPERATIONS),
            "percentiles": [50, 95, 99],
        }
    )
    assert sum(group["count"] for group in result["groups"].values()) == 100_000


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "needs payload['data']"),
        ({"data": "1,2,3"}, "must be a list"),
        ({"data": [1, 2, "3"]}, "data[2] is a str"),
        ({"data": [1, True]}, "data[1] is a bool"),
        ({"data": [1.0, float("nan")]}, "data[1] is nan"),
        ({"data": [], "operations": ["mean"]}, "data is empty; mean cannot"),
        ({"data": [1], "operations": ["mode"]}, "unknown operation(s) 'mode'"),
        ({"data": [1], "operations": []}, "non-empty list"),
        ({"data": [1], "bins": 0}, "bins'] must be a whole number from 1"),
        ({"data": [1], "bins": True}, "bins'] must be a whole number from 1"),
        ({"data": [1], "percentiles": [101]}, "percentile 101 is not a number from 0 to 100"),
        ({"data": [1, 2], "field": "x"}, "field and group_by apply to records"),
        ({"data": [{"a": 1}]}, "say which key to analyse"),
        ({"data": [{"a": 1}, {"b": 2}], "field": "a"}, "record 1 has no 'a' key (field)"),
        ({"data": [{"a": 1}, {"a": "x"}], "field": "a"}, "record 1: 'a' is a str"),
        ({"data": [{"a": 1}], "field": "a", "group_by": "g"}, "record 0 has no 'g' key"),
        ({"data": [{"a": 1, "g": [1]}], "field": "a", "group_by": "g"}, "group_by needs"),
        ({"data": [1], "field": 3}, "must be a record key"),
    ],
)
def test_refusals_say_what_is_wrong(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        analyse(payload)
    assert message in str(caught.value)


def test_the_unknown_operation_error_lists_what_is_offered() -> None:
    with pytest.raises(InvalidInputError, match="offers count, sum, mean, median"):
        analyse({"data": [1], "operations": ["avg"]})


async def test_through_the_processor() -> None:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        good = create_task(
            ProcessingType.DATA_ANALYTICS,
            {"data": [{"k": "a", "v": 1}, {"k": "a", "v": 3}], "field": "v", "group_by": "k"},
        )
        bad = create_task(ProcessingType.DATA_ANALYTICS, {"data": [1, "two"]})
        after = create_task(ProcessingType.DATA_ANALYTICS, {"data": [5], "operations": ["sum"]})
        good_id, bad_id = await processor.submit_task(good), await processor.submit_task(bad)
        done = await processor.wait_for_task(good_id, timeout=30)
        assert done.status is TaskStatus.COMPLETED
        assert done.result["groups"]["a"]["mean"] == 2
        failed = await processor.wait_for_task(bad_id, timeout=30)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None
        assert failed.error.startswith("InvalidInputError: data[1] is a str")
        assert failed.attempts == 1
        later = await processor.wait_for_task(await processor.submit_task(after), timeout=30)
        assert later.status is TaskStatus.COMPLETED and later.result == {"sum": 5}
    finally:
        await processor.shutdown()
