"""The reused shared-memory segment of each slot, as the parent keeps it.

A slot's segment is created on first need and replaced by a bigger one only when a
message does not fit (or by a smaller one after a long run of small messages). The parent
creates segments (registered with ``multiprocessing``'s resource tracker, unregistered
when unlinked); children attach without registering, so no "leaked shared_memory" warning
appears and shutdown leaves nothing in ``/dev/shm``. Space is reserved with
``posix_fallocate``, so a full ``/dev/shm`` (64 MiB in a default Docker container) makes
the message fall back to the pipe instead of killing the process with SIGBUS.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import secrets
from multiprocessing.shared_memory import SharedMemory

__all__ = ["SEGMENT_PREFIX", "SlotSegment", "create_segment", "drop_segment"]

_log = logging.getLogger("async_processor.executors.process")

#: Names of these shared-memory segments start with this (then the parent's pid).
SEGMENT_PREFIX = "apx_"
_MIN_SEGMENT = 1 << 20
_SHRINK_ABOVE = 64 << 20  # a segment this big is replaced by a smaller one ...
_SHRINK_AFTER = 32  # ... after this many messages in a row that used under a quarter of it


class SlotSegment:
    """One slot's segment, and what the parent knows of the child's view of it."""

    __slots__ = ("attached", "segment", "slot", "small_uses", "want")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.segment: SharedMemory | None = None
        #: The name of the segment the child has attached (None: none, or a new child).
        self.attached: str | None = None
        #: How big a segment the child last wished for, to send a result through.
        self.want = 0
        self.small_uses = 0

    def ensure(self, need: int) -> SharedMemory | None:
        """The segment, (re)created so that ``need`` bytes fit; None if impossible."""
        self.want = 0
        current = self.segment
        if current is None:
            if need == 0:
                return None
        elif current.size >= need:
            if current.size <= _SHRINK_ABOVE or need > current.size // 4:
                self.small_uses = 0
                return current
            self.small_uses += 1
            if self.small_uses < _SHRINK_AFTER:
                return current
            self.small_uses = 0
        size = max(need, _MIN_SEGMENT)
        if current is not None and current.size < need:
            size = max(size, 2 * current.size)
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        segment = create_segment(self.slot, size)
        if segment is None:
            return current if current is not None and current.size >= need else None
        if current is not None:
            drop_segment(current)
        self.segment = segment
        return segment

    def drop(self) -> None:
        if self.segment is not None:
            drop_segment(self.segment)
            self.segment = None


def create_segment(slot: int, size: int) -> SharedMemory | None:
    """A new segment of ``size`` bytes with its pages reserved, or None (logged)."""
    for _ in range(3):
        name = f"{SEGMENT_PREFIX}{os.getpid()}_{slot}_{secrets.token_hex(4)}"
        try:
            segment = SharedMemory(name=name, create=True, size=size)
        except FileExistsError:
            continue
        except OSError as exc:
            _log.warning("could not create a %d-byte shared memory segment: %s", size, exc)
            return None
        fd = getattr(segment, "_fd", -1)
        if fd >= 0 and hasattr(os, "posix_fallocate"):
            try:
                # Reserve the pages now: writing to a tmpfs that is full raises SIGBUS.
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    _log.warning(
                        "no room for a %d-byte shared memory segment (%s); large data "
                        "goes through the pipe",
                        size,
                        exc,
                    )
                    drop_segment(segment)
                    return None
        return segment
    return None


def drop_segment(segment: SharedMemory) -> None:
    """Close and unlink a segment."""
    try:
        segment.close()
    except BufferError:
        _log.warning("shared memory segment %s still in use; unlinking it anyway", segment.name)
    with contextlib.suppress(FileNotFoundError):
        segment.unlink()
