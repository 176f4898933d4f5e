"""How long to wait before the next attempt of a failed task."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import InvalidArgumentError

__all__ = ["RetryPolicy", "next_attempt_in"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Attempt ``n`` (1 for the first retry) waits a random time between half and all of
    ``min(max_delay, base_delay * multiplier ** (n - 1))``: the delay grows exponentially,
    and the jitter keeps retries of many tasks that failed together from arriving together.
    """

    base_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not self.base_delay >= 0 or not self.max_delay >= self.base_delay:
            raise InvalidArgumentError(
                "retry delays need 0 <= base_delay <= max_delay, got "
                f"base_delay={self.base_delay!r}, max_delay={self.max_delay!r}"
            )
        if not self.multiplier >= 1:
            raise InvalidArgumentError(f"retry multiplier must be >= 1, got {self.multiplier!r}")

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** (retry_number - 1))
        return ceiling * (0.5 + 0.5 * (rng or random).random())


def next_attempt_in(
    policy: RetryPolicy,
    attempts: int,
    max_retries: int,
    *,
    retryable: bool,
    rng: random.Random | None = None,
) -> float | None:
    """The decision after a failed or timed-out attempt: seconds until the next attempt,
    or None when the task must end now.

    ``attempts`` counts the runs so far (this one included); ``max_retries`` the extra runs
    allowed. A failure that is not ``retryable`` (``NonRetryableError``, a cancellation,
    a processor shutting down) always ends the task.
    """
    if not retryable or attempts > max_retries:
        return None
    return policy.backoff(attempts, rng)
