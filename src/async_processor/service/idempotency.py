"""The API's idempotency keys (in memory): (token name, key) -> (fingerprint, answer)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .responses import ApiError

__all__ = ["Idempotency"]


class Idempotency:
    """(token name, key) -> (fingerprint, answer), the newest ``limit`` kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: OrderedDict[tuple[str, str], tuple[str, dict[str, Any]]] = OrderedDict()

    def lookup(self, owner: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        entry = self.entries.get((owner, key))
        if entry is None:
            return None
        if entry[0] != fingerprint:
            raise ApiError(
                409,
                "idempotency_conflict",
                f"idempotency_key {key!r} was used before with a different request body; "
                "use a new key for a new request",
            )
        return entry[1]

    def store(self, owner: str, key: str, fingerprint: str, answer: dict[str, Any]) -> None:
        self.entries[(owner, key)] = (fingerprint, answer)
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)
