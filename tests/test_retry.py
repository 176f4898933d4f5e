"""RetryPolicy: exponential backoff with jitter, capped, reproducible with a seeded rng."""

from __future__ import annotations

import random
from typing import Any

import pytest

from async_processor import InvalidArgumentError, RetryPolicy
from async_processor.retry import PROGRAMMING_ERRORS, next_attempt_in


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.base_delay, policy.max_delay, policy.multiplier) == (0.1, 30.0, 2.0)


@pytest.mark.parametrize(("retry", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 32.0)])
def test_backoff_within_half_and_all_of_the_ceiling(retry: int, ceiling: float) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0, multiplier=2.0)
    rng = random.Random(1)
    delays = [policy.backoff(retry, rng) for _ in range(2000)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # Jitter spreads them over the whole range.
    assert min(delays) < ceiling * 0.52 and max(delays) > ceiling * 0.98


def test_exact_formula_with_a_seeded_rng() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=10.0, multiplier=3.0)
    rng, mirror = random.Random(42), random.Random(42)
    for retry in range(1, 8):
        ceiling = min(10.0, 0.5 * 3.0 ** (retry - 1))
        assert policy.backoff(retry, rng) == pytest.approx(ceiling * (0.5 + 0.5 * mirror.random()))


def test_exponential_growth_until_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=5.0, multiplier=2.0)
    lowest = [min(policy.backoff(n, random.Random(s)) for s in range(50)) for n in range(1, 12)]
    highest = [max(policy.backoff(n, random.Random(s)) for s in range(50)) for n in range(1, 12)]
    for n in range(5):  # ceilings 0.1, 0.2, 0.4, 0.8, 1.6, 3.2: each retry's floor tops the last's
        assert lowest[n + 1] >= highest[n] * 0.99
    assert all(2.5 <= d <= 5.0 for d in lowest[7:] + highest[7:])  # capped at max_delay


def test_seeded_rng_is_reproducible() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(n, random.Random(7)) for n in range(1, 10)]
    second = [policy.backoff(n, random.Random(7)) for n in range(1, 10)]
    assert first == second
    other = [policy.backoff(n, random.Random(8)) for n in range(1, 10)]
    assert other != first


def test_without_an_rng_uses_the_global_random() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=2.0)
    assert all(1.0 <= policy.backoff(3) <= 2.0 for _ in range(100))


def test_zero_delay_is_allowed() -> None:
    assert RetryPolicy(base_delay=0.0, max_delay=0.0).backoff(5, random.Random(0)) == 0.0


@pytest.mark.parametrize(
    ("base_delay", "max_delay", "multiplier", "named"),
    [
        (-0.1, 1.0, 2.0, "base_delay"),
        (2.0, 1.0, 2.0, "max_delay"),
        (float("nan"), 1.0, 2.0, "base_delay"),
        (0.1, float("nan"), 2.0, "max_delay"),
        (0.1, 1.0, 0.5, "multiplier"),
        (0.1, 1.0, float("nan"), "multiplier"),
    ],
)
def test_bad_policies_are_refused(
    base_delay: float, max_delay: float, multiplier: float, named: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        RetryPolicy(base_delay=base_delay, max_delay=max_delay, multiplier=multiplier)


# -- the retry decision (no event loop) ---------------------------------------------------


def test_next_attempt_follows_the_backoff_while_attempts_remain() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0)
    rng, mirror = random.Random(3), random.Random(3)
    assert next_attempt_in(policy, 1, 2, retryable=True, rng=rng) == policy.backoff(1, mirror)
    assert next_attempt_in(policy, 2, 2, retryable=True, rng=rng) == policy.backoff(2, mirror)
    assert next_attempt_in(policy, 3, 2, retryable=True, rng=rng) is None  # 3 runs: done


def test_no_next_attempt_when_not_retryable_or_no_retries() -> None:
    policy = RetryPolicy()
    assert next_attempt_in(policy, 1, 5, retryable=False) is None
    assert next_attempt_in(policy, 1, 0, retryable=True) is None


class FlakyService(ConnectionError):
    """A user's class, importable by its name."""


def test_without_retry_on_every_failure_but_programming_errors_is_retried() -> None:
    policy = RetryPolicy()
    assert policy.retry_on is None
    retried: list[type[BaseException]] = [ValueError, ConnectionError, TimeoutError, OSError]
    assert all(policy.retries(kind) for kind in retried)
    not_retried = [*PROGRAMMING_ERRORS, UnboundLocalError]  # a NameError
    assert not any(policy.retries(kind) for kind in not_retried)


def test_retry_on_names_the_only_failures_retried() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError, KeyError))
    assert policy.retries(FlakyService) and policy.retries(KeyError)
    assert not policy.retries(ValueError) and not policy.retries(TimeoutError)
    lenient: Any = TimeoutError  # one class, or a list, is taken as a tuple
    assert RetryPolicy(retry_on=lenient).retry_on == (TimeoutError,)
    lenient = [OSError]
    assert RetryPolicy(retry_on=lenient).retry_on == (OSError,)


@pytest.mark.parametrize("bad", [(ValueError, "x"), ("ValueError",), 3, (int,)])
def test_retry_on_must_hold_exception_classes(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="retry_on must be a tuple of exception"):
        RetryPolicy(retry_on=bad)  # type: ignore[arg-type]


def test_to_dict_round_trip_imports_the_classes_by_name() -> None:
    policy = RetryPolicy(0.5, 5.0, 3.0, retry_on=(FlakyService, TimeoutError))
    data = policy.to_dict()
    assert data["retry_on"] == [f"{__name__}:FlakyService", "builtins:TimeoutError"]
    assert RetryPolicy.from_dict(data) == policy
    assert RetryPolicy.from_dict(RetryPolicy().to_dict()) == RetryPolicy()
    with pytest.raises(InvalidArgumentError, match="'nowhere:Gone', which cannot be imported"):
        RetryPolicy.from_dict({**data, "retry_on": ["nowhere:Gone"]})
