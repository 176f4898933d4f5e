"""The wire format between the parent and a worker process.

Frames on the pipe: a 4-byte big-endian length, then a one-byte tag and a body. Parent ->
child: ``A`` attach a shared-memory segment, ``T`` a task (all inline), ``M`` a task whose
big pieces lie in the segment. Child -> parent: ``R`` ready, ``O`` a value (inline), ``B``
a value (inline, and the child wanted a bigger segment), ``P`` a value (pieces), ``E`` an
error.

Messages are pickled with protocol 5 into a :class:`SplitWriter`: the pickler writes any
single item of 64 KiB or more straight to it without copying it into its own buffer, so
each big item can be copied once into shared memory (:func:`place_pieces`) and read back
with ``readinto`` (:func:`load_pieces`); the rest travels through the pipe.
``reducer_override`` is used for ``memoryview`` only (stdlib pickle refuses it): the C
pickler never calls it for exact ``bytes``, ``str``, ``dict`` or ``list``. Functions that
stdlib pickle cannot send travel by cloudpickle when it is installed.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "ATTACH",
    "ERROR",
    "OK",
    "OK_PIECES",
    "OK_WANT",
    "READY",
    "TASK",
    "TASK_PIECES",
    "ChildGone",
    "IOVec",
    "NullWriter",
    "Receiver",
    "RemoteTraceback",
    "SplitWriter",
    "dump",
    "frame",
    "load_cloudpickle",
    "load_pieces",
    "place_pieces",
    "write_all",
]

_ALIGN = 64
_MAX_IOV = 512
_SCRATCH = 1 << 16

ATTACH, TASK, TASK_PIECES = b"A", b"T", b"M"
READY, OK, OK_WANT, OK_PIECES, ERROR = b"R", b"O", b"B", b"P", b"E"

_cloudpickle: Any = None
_cloudpickle_checked = False


def load_cloudpickle() -> Any:
    """The cloudpickle module, or None when it is not installed (imported on first need)."""
    global _cloudpickle, _cloudpickle_checked
    if not _cloudpickle_checked:
        try:
            _cloudpickle = importlib.import_module("cloudpickle")
        except ImportError:
            _cloudpickle = None
        _cloudpickle_checked = True
    return _cloudpickle


class RemoteTraceback(Exception):
    """Set as ``__cause__`` of an exception re-raised from a worker: the child's traceback."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class ChildGone(Exception):
    """The pipe to the child reached EOF or broke: the child is dead or dying."""


def _align(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


def _nbytes(buf: ReadableBuffer) -> int:
    return len(buf) if type(buf) is bytes else memoryview(buf).nbytes


def _rebuild_memoryview(data: bytes | bytearray, fmt: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(data)
    if fmt == "B" and len(shape) == 1:
        return view
    flat: Any = view
    try:
        return cast(memoryview, flat.cast(fmt, shape))
    except (TypeError, ValueError):
        return view


def _reduce_memoryview(view: memoryview) -> tuple[Any, ...]:
    if view.contiguous:
        data: Any = pickle.PickleBuffer(view)
    else:
        data = view.tobytes()
    return (_rebuild_memoryview, (data, view.format, view.shape))


def _reduce_extra(obj: Any) -> Any:
    """The reduction stdlib pickle lacks: ``memoryview``."""
    if type(obj) is memoryview:
        return _reduce_memoryview(obj)
    return NotImplemented


class _Pickler(pickle.Pickler):
    """Stdlib pickler that also sends ``memoryview``."""

    def reducer_override(self, obj: Any) -> Any:
        return _reduce_extra(obj)


_cloud_pickler_class: Any = None


def _cloud_pickler(file: Any) -> Any:
    global _cloud_pickler_class
    cloudpickle = load_cloudpickle()
    if cloudpickle is None:
        raise RuntimeError("cloudpickle is not installed")
    if _cloud_pickler_class is None:

        class _CloudPickler(cloudpickle.Pickler):  # type: ignore[misc,name-defined]
            def reducer_override(self, obj: Any) -> Any:
                reduced = _reduce_extra(obj)
                if reduced is NotImplemented:
                    return super().reducer_override(obj)
                return reduced

        _cloud_pickler_class = _CloudPickler
    return _cloud_pickler_class(file, protocol=5)


class SplitWriter:
    """File object for a pickler: keeps every write, sums the big ones (>= threshold).

    The pickler passes large items as the original object (no copy); they stay
    referenced only until they are copied into the segment or written to the pipe.
    """

    __slots__ = ("big_total", "pieces", "threshold")

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.pieces: list[bytes | memoryview] = []
        self.big_total = 0

    def write(self, data: ReadableBuffer) -> int:
        if type(data) is bytes:
            piece: bytes | memoryview = data
            n = len(data)
        else:
            piece = pickle.PickleBuffer(data).raw()
            n = piece.nbytes
        if n >= self.threshold:
            self.big_total += _align(n)
        self.pieces.append(piece)
        return n


class NullWriter:
    """File object that only counts: pickling into it checks sendability without copies."""

    __slots__ = ()

    def write(self, data: ReadableBuffer) -> int:
        return _nbytes(data)


def dump(obj: Any, file: Any, cloud: bool) -> None:
    pickler = _cloud_pickler(file) if cloud else _Pickler(file, protocol=5)
    pickler.dump(obj)


def place_pieces(
    pieces: list[bytes | memoryview], threshold: int, view: memoryview
) -> list[bytes | tuple[int, int]]:
    """Copy the big pieces into ``view``; return the spec the reader rebuilds the stream from."""
    spec: list[bytes | tuple[int, int]] = []
    offset = 0
    for piece in pieces:
        n = _nbytes(piece)
        if n >= threshold:
            view[offset : offset + n] = piece
            spec.append((offset, n))
            offset += _align(n)
        else:
            spec.append(piece if type(piece) is bytes else bytes(piece))
    return spec


class _PieceReader:
    """A read-only file over pieces of pipe bytes and shared memory, for ``pickle.Unpickler``.

    ``read`` returns copies (so nothing keeps the segment exported); large ``bytes`` and
    ``bytearray`` items are filled by ``readinto`` straight from the segment.
    """

    __slots__ = ("_index", "_pieces", "_pos")

    def __init__(self, pieces: list[memoryview]) -> None:
        self._pieces = pieces
        self._index = 0
        self._pos = 0

    def readinto(self, buffer: memoryview) -> int:
        target = memoryview(buffer).cast("B")
        wanted = target.nbytes
        done = 0
        pieces = self._pieces
        while done < wanted and self._index < len(pieces):
            piece = pieces[self._index]
            take = min(len(piece) - self._pos, wanted - done)
            target[done : done + take] = piece[self._pos : self._pos + take]
            done += take
            self._pos += take
            if self._pos == len(piece):
                self._index += 1
                self._pos = 0
        return done

    def read(self, n: int = -1) -> bytes:
        pieces = self._pieces
        if n < 0:
            n = sum(len(p) for p in pieces[self._index :]) - self._pos
        if self._index < len(pieces):
            piece = pieces[self._index]
            end = self._pos + n
            if end < len(piece):
                data = piece[self._pos : end].tobytes()
                self._pos = end
                return data
        out = bytearray(n)
        got = self.readinto(memoryview(out))
        del out[got:]
        return bytes(out)

    def readline(self) -> bytes:
        out = bytearray()
        while self._index < len(self._pieces):
            piece = self._pieces[self._index]
            byte = piece[self._pos]
            out.append(byte)
            self._pos += 1
            if self._pos == len(piece):
                self._index += 1
                self._pos = 0
            if byte == 10:
                break
        return bytes(out)


def load_pieces(spec: list[bytes | tuple[int, int]], view: memoryview | None) -> Any:
    pieces: list[memoryview] = []
    try:
        for item in spec:
            if isinstance(item, tuple):
                if view is None:
                    raise RuntimeError("message refers to a shared-memory segment not attached")
                offset, n = item
                pieces.append(view[offset : offset + n])
            else:
                pieces.append(memoryview(item))
        return pickle.Unpickler(_PieceReader(pieces)).load()
    finally:
        for piece in pieces:
            piece.release()


def frame(parts: list[ReadableBuffer]) -> list[ReadableBuffer]:
    """``multiprocessing.Connection`` framing: a signed 32-bit length, or -1 + 64-bit."""
    n = sum(_nbytes(p) for p in parts)
    header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
    return [header, *parts]


class IOVec:
    """Buffers still to be written with ``os.writev``."""

    __slots__ = ("views",)

    def __init__(self, parts: list[ReadableBuffer]) -> None:
        self.views = [memoryview(p).cast("B") for p in parts]

    def __bool__(self) -> bool:
        return bool(self.views)

    def write(self, fd: int) -> None:
        """Write as much as the fd takes; BlockingIOError when it takes nothing."""
        views = self.views
        while views:
            n = os.writev(fd, views[:_MAX_IOV])
            while n:
                head = views[0]
                if n >= len(head):
                    n -= len(head)
                    views.pop(0)
                else:
                    views[0] = head[n:]
                    n = 0


def write_all(fd: int, parts: list[ReadableBuffer]) -> None:
    """Blocking write of whole frames (child side)."""
    IOVec(parts).write(fd)


class Receiver:
    """Splits the non-blocking byte stream from a child into frames."""

    __slots__ = ("body", "body_pos", "body_view", "fill", "scratch", "view")

    def __init__(self) -> None:
        self.scratch = bytearray(_SCRATCH)
        self.view = memoryview(self.scratch)
        self.fill = 0
        self.body: bytearray | None = None
        self.body_view: memoryview | None = None
        self.body_pos = 0

    def read(self, fd: int) -> list[bytes | bytearray] | None:
        """Read once; return the complete frames, or None at EOF."""
        frames: list[bytes | bytearray] = []
        if self.body is not None and self.body_view is not None:
            n = os.readv(fd, [self.body_view[self.body_pos :]])
            if n == 0:
                return None
            self.body_pos += n
            if self.body_pos == len(self.body):
                frames.append(self.body)
                self.body_view.release()
                self.body = self.body_view = None
            return frames
        n = os.readv(fd, [self.view[self.fill :]])
        if n == 0:
            return None
        self.fill += n
        start = 0
        view = self.view
        while True:
            avail = self.fill - start
            if avail < 4:
                break
            size = int.from_bytes(view[start : start + 4], "big", signed=True)
            header = 4
            if size == -1:
                if avail < 12:
                    break
                size = int.from_bytes(view[start + 4 : start + 12], "big")
                header = 12
            if avail - header >= size:
                frames.append(view[start + header : start + header + size].tobytes())
                start += header + size
                continue
            if header + size > len(self.scratch):
                body = bytearray(size)
                got = avail - header
                body[:got] = view[start + header : self.fill]
                self.body = body
                self.body_view = memoryview(body)
                self.body_pos = got
                start = self.fill
            break
        if start:
            rest = self.fill - start
            view[:rest] = view[start : self.fill]
            self.fill = rest
        return frames
