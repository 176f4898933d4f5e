"""The default store: nothing is kept beyond the processor's own memory."""

from __future__ import annotations

from typing import Any

from .base import TaskStore

__all__ = ["MemoryStore"]


class MemoryStore(TaskStore):
    """Keeps only idempotency keys; a crash loses every unfinished task.

    The processor calls it only for submits that carry an idempotency key, so the default
    path costs nothing. Keys are kept for the processor's life (one small dict entry each).
    """

    durable = False

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    def find_key(self, key: str) -> str | None:
        return self._keys.get(key)

    def add(self, prepared: Any) -> None:
        for task, key in prepared:
            if key is not None:
                self._keys[key] = task.id
