"""Bearer tokens (compared in constant time), dashboard sessions, and rate limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

__all__ = ["RateLimiter", "Sessions", "TokenAuth", "bearer_token"]


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


#: Buckets kept before the full ones are forgotten (the failed-auth limiter is keyed by
#: client address, which a client does not choose freely but may have many of).
_MAX_BUCKETS = 10_000


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
        level, now = self._level(name)
        if level < 1.0:
            self._buckets[name] = (level, now)
            return (1.0 - level) / self.rate
        self._buckets[name] = (level - 1.0, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._forget_full(now)
        return 0.0

    def waiting(self, name: str) -> float:
        """Seconds until ``name`` may make a request (0.0: now), taking nothing."""
        if self.rate <= 0 or name not in self._buckets:
            return 0.0
        level, _ = self._level(name)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def _level(self, name: str) -> tuple[float, float]:
        """The bucket of ``name`` refilled up to now, and now."""
        now = time.monotonic()
        level, at = self._buckets.get(name, (self.burst, now))
        return min(self.burst, level + (now - at) * self.rate), now

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a new one would not)."""
        for key, (level, at) in list(self._buckets.items()):
            if level + (now - at) * self.rate >= self.burst:
                del self._buckets[key]


class Sessions:
    """Dashboard sessions: a cookie ``name:expiry:nonce:signature`` names the token and an
    expiry, signed with a key that
    lives only in this process (HMAC-SHA256), so the cookie never holds the token itself
    and a restart ends every session."""

    def __init__(self, ttl: float, key: bytes | None = None) -> None:
        self.ttl = ttl
        self._key = key or secrets.token_bytes(32)

    def issue(self, name: str) -> str:
        """A cookie value for the token named ``name``, valid for ``ttl`` seconds."""
        body = f"{name}:{int(time.time() + self.ttl)}:{secrets.token_urlsafe(12)}"
        return f"{body}:{self._sign(body)}"

    def verify(self, value: str | None) -> str | None:
        """The token name of a valid, unexpired session cookie, or None."""
        if not value or value.count(":") != 3:
            return None
        body, _, signature = value.rpartition(":")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        name, expires, _nonce = body.split(":")
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return name

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
