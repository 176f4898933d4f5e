"""Bearer tokens (compared in constant time) and per-token rate limits."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

__all__ = ["RateLimiter", "TokenAuth", "bearer_token"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class TokenAuth:
    """Names the caller from a presented token; every configured token is compared."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]

    def identify(self, presented: str | None) -> str | None:
        """The token's name, or None. Compares against every token so timing says nothing."""
        if not presented:
            return None
        given = presented.encode("utf-8", "surrogateescape")
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(given, token):
                found = name
        return found


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, name: str) -> float:
        """Take one request for ``name``: 0.0 if allowed, else seconds until it would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        level, at = self._buckets.get(name, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        if level < 1.0:
            self._buckets[name] = (level, now)
            return (1.0 - level) / self.rate
        self._buckets[name] = (level - 1.0, now)
        return 0.0
