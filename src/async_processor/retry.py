"""Whether, and how long after, a failed task is tried again."""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError

__all__ = ["PROGRAMMING_ERRORS", "RetryPolicy", "next_attempt_in"]

#: Failures that are bugs in a processor, not bad luck: a retry would fail the same way,
#: so a policy without ``retry_on`` does not retry them (one that names them does).
PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    AssertionError,
    AttributeError,
    IndexError,
    KeyError,
    NameError,
    NotImplementedError,
    TypeError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Attempt ``n`` (1 for the first retry) waits a random time between half and all of
    ``min(max_delay, base_delay * multiplier ** (n - 1))``: the delay grows exponentially,
    and the jitter keeps retries of many tasks that failed together from arriving together.

    ``retry_on``: the exception classes worth another attempt (a timed-out attempt counts
    as ``TimeoutError``); None retries every failure but :data:`PROGRAMMING_ERRORS`. How
    many retries a task gets is its ``max_retries``. ``NonRetryableError`` and
    ``InvalidTaskError`` always end a task at once, and cancellation is never retried.
    """

    base_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0
    retry_on: tuple[type[BaseException], ...] | None = None

    def __post_init__(self) -> None:
        if self.retry_on is not None:
            object.__setattr__(self, "retry_on", _exception_classes(self.retry_on))
        if not self.base_delay >= 0 or not self.max_delay >= self.base_delay:
            raise InvalidArgumentError(
                "retry delays need 0 <= base_delay <= max_delay, got "
                f"base_delay={self.base_delay!r}, max_delay={self.max_delay!r}"
            )
        if not self.multiplier >= 1:
            raise InvalidArgumentError(f"retry multiplier must be >= 1, got {self.multiplier!r}")

    def retries(self, error: type[BaseException]) -> bool:
        """Whether a failure of class ``error`` may be tried again under this policy."""
        if self.retry_on is None:
            return not issubclass(error, PROGRAMMING_ERRORS)
        return issubclass(error, self.retry_on)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; ``retry_on`` as ``"module:QualName"`` strings."""
        names = None if self.retry_on is None else [_name(kind) for kind in self.retry_on]
        return {
            "base_delay": self.base_delay,
            "max_delay": self.max_delay,
            "multiplier": self.multiplier,
            "retry_on": names,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        """Undo :meth:`to_dict` (the exception classes are imported by name)."""
        names = data.get("retry_on")
        retry_on = None if names is None else tuple(_import(name) for name in names)
        return cls(data["base_delay"], data["max_delay"], data["multiplier"], retry_on)

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


def _exception_classes(value: Any) -> tuple[type[BaseException], ...]:
    classes = (value,) if isinstance(value, type) else value
    if not isinstance(classes, tuple | list) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in classes
    ):
        raise InvalidArgumentError(
            f"retry_on must be a tuple of exception classes, e.g. (ConnectionError,), got {value!r}"
        )
    return tuple(classes)


def _name(kind: type[BaseException]) -> str:
    return f"{kind.__module__}:{kind.__qualname__}"


def _import(name: str) -> type[BaseException]:
    """The exception class named ``"module:QualName"``; InvalidArgumentError if none is."""
    module_name, _, qualname = str(name).partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"retry_on names {name!r}, which cannot be imported here ({exc}); "
            "the class must be importable where the task is read back"
        ) from None
    return _exception_classes((found,))[0]
