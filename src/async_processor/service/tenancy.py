"""Who may see which task: every task submitted over HTTP carries its owner's token name.

The owner is kept in a reserved tag (``@owner:<name>``), so that it travels with the task
into a durable store and into its result, and survives a restart. Clients cannot set tags
that start with :data:`RESERVED_TAG_PREFIX`, and never see them in answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RESERVED_TAG_PREFIX",
    "Caller",
    "fingerprint_of",
    "owner_of",
    "owner_tag",
    "public_tags",
    "public_view",
    "request_tag",
]

#: Tags the service keeps for itself.
RESERVED_TAG_PREFIX = "@"
_OWNER = "@owner:"
_REQUEST = "@request:"


@dataclass(frozen=True, slots=True)
class Caller:
    """The token behind a request: its name, and whether it may see every task."""

    name: str
    admin: bool = False

    def sees(self, tags: Iterable[str]) -> bool:
        """True if this caller may see a task with these tags."""
        return self.admin or owner_of(tags) == self.name


def owner_tag(name: str) -> str:
    return f"{_OWNER}{name}"


def request_tag(fingerprint: str) -> str:
    """The tag holding the digest of the request that created a task (idempotency)."""
    return f"{_REQUEST}{fingerprint}"


def owner_of(tags: Iterable[str]) -> str | None:
    """The token name that submitted a task, or None (submitted in process)."""
    for tag in tags:
        if tag.startswith(_OWNER):
            return tag[len(_OWNER) :]
    return None


def fingerprint_of(tags: Iterable[str]) -> str | None:
    for tag in tags:
        if tag.startswith(_REQUEST):
            return tag[len(_REQUEST) :]
    return None


def public_tags(tags: Iterable[str]) -> list[str]:
    """The tags a client set, sorted, without the service's own."""
    return sorted(t for t in tags if not t.startswith(RESERVED_TAG_PREFIX))


def public_view(view: dict[str, Any]) -> dict[str, Any]:
    """A task view as a client sees it: without the service's own tags."""
    return {**view, "tags": public_tags(view["tags"])}
