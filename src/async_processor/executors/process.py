"""Run task functions in worker processes: one process per slot, each with its own pipe.

Design
------
Every slot owns exactly one child process and one duplex :func:`multiprocessing.Pipe`.
:meth:`ProcessExecutor.run` sends one task to the slot's child and awaits the reply on
the same event loop: the parent end of the pipe is non-blocking and watched with
``loop.add_reader`` for the lifetime of the child, so no helper thread waits for replies
and a child that dies while idle is noticed (and replaced) at once.

Why not ``concurrent.futures.ProcessPoolExecutor``, pebble or loky?  They all feed their
workers from a shared call queue and prefetch work into it, so once a job is submitted
the pool, not the scheduler, decides the order: a CRITICAL task submitted later waits
behind the prefetched backlog.  Their cancellation story is also too coarse: a running
job cannot be stopped without killing the worker, and one killed worker breaks a whole
``ProcessPoolExecutor`` (``BrokenProcessPool``).  Here the scheduler hands a task to a
slot only when that slot is free, so priority order is exact; cancelling the awaiting
coroutine (timeouts, ``cancel_task``) SIGKILLs that one child and starts a replacement,
and a crash (segfault, ``os._exit``, OOM kill) fails only the task that was running.

Large data travels through shared memory
----------------------------------------
Each slot owns one reused :class:`~multiprocessing.shared_memory.SharedMemory` segment,
created on first need and replaced by a bigger one only when a message does not fit; the
child attaches once and keeps it mapped until told about a new one.  Tasks are pickled
with protocol 5 into a *splitting writer*: the pickler writes any single item of 64 KiB or
more (``bytes``, ``bytearray``, ``str``, numpy arrays and anything else pickled through
``PickleBuffer``) straight to its file object without copying it into its own buffer, and
flushes long runs of small items in ~64 KiB frames.  Every write of at least
``shm_threshold`` bytes is copied once into the segment; the rest, usually one small
pickle, goes through the pipe with the offsets of the big pieces.  The child unpickles
from the pipe bytes and the segment with ``readinto`` straight into the new objects, so a
1 MiB ``bytes`` payload costs one memcpy on each side instead of a trip through the pipe
(``bytes`` arrive as ``bytes``, numpy arrays as arrays).  Results take the same way back
through the same segment (which is free once the child has read its task).

The hook this replaces, ``Pickler.reducer_override`` + ``buffer_callback``, cannot see
the most common large payload: CPython's C pickler never calls ``reducer_override`` for
exact ``bytes``, ``bytearray``, ``str``, ``dict``, ``list`` or ``tuple``.  A
``persistent_id`` hook would, but it is a Python call per pickled object (measured here:
+50 % on a small task, 4.5x on a 100k-item list).  The splitting writer costs nothing per
object.  ``reducer_override`` is still used, for ``memoryview`` (which stdlib pickle
refuses), so memoryviews arrive as memoryviews.

Segments are created by the parent (registered with ``multiprocessing``'s resource
tracker, unregistered when unlinked) and attached by children without registering, so
no "leaked shared_memory" warning appears and :meth:`ProcessExecutor.shutdown` leaves
nothing in ``/dev/shm``.  Space is reserved with ``posix_fallocate`` so a full
``/dev/shm`` (64 MiB in a default Docker container) makes the message fall back to the
pipe instead of killing the process with SIGBUS.

Functions that stdlib pickle cannot send (lambdas, nested functions) are sent with
cloudpickle when it is installed (``async-processor[process]``).  Module-level
``ContextVar`` values of the caller are copied to the child and set in a fresh context
around the call.  The child ignores SIGINT (the parent handles Ctrl-C) and exits when
its pipe closes.  POSIX only (``add_reader`` on a pipe needs a selector event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import importlib
import logging
import mmap
import multiprocessing
import os
import pickle
import secrets
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from typing import TYPE_CHECKING, Any, cast

from ..errors import NonRetryableError, UnsendableTaskError, WorkerCrashedError
from ..task import ProcessingTask
from .base import Executor, TaskFunction

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["ProcessExecutor", "RemoteTraceback"]

_log = logging.getLogger(__name__)

#: Names of this module's shared-memory segments start with this (then the parent's pid).
_SEGMENT_PREFIX = "apx_"
_ALIGN = 64
_MIN_SEGMENT = 1 << 20
_SHRINK_ABOVE = 64 << 20  # a segment this big is replaced by a smaller one ...
_SHRINK_AFTER = 32  # ... after this many messages in a row that used under a quarter of it
_MAX_CONTEXT_VALUE = 64 * 1024
_MAX_CLOUD_TASKS = 4096
_START_TIMEOUT = 60.0
_EXIT_GRACE = 1.0
_KILL_WAIT = 5.0
_MAX_IOV = 512
_SCRATCH = 1 << 16

# Frame tags. Parent -> child: A attach segment, T task (all inline), M task (pieces).
# Child -> parent: R ready, O value (inline), B value (inline, wanted a bigger segment),
# P value (pieces), E error.
_ATTACH, _TASK, _TASK_PIECES = b"A", b"T", b"M"
_READY, _OK, _OK_WANT, _OK_PIECES, _ERROR = b"R", b"O", b"B", b"P", b"E"

_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes, bytearray})

_cloudpickle: Any = None
_cloudpickle_checked = False


def _load_cloudpickle() -> Any:
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


class _ChildGone(Exception):
    """The pipe to the child reached EOF or broke: the child is dead or dying."""


# --------------------------------------------------------------------------- pickling


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
    cloudpickle = _load_cloudpickle()
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


class _SplitWriter:
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


class _NullWriter:
    """File object that only counts: pickling into it checks sendability without copies."""

    __slots__ = ()

    def write(self, data: ReadableBuffer) -> int:
        return _nbytes(data)


def _dump(obj: Any, file: Any, cloud: bool) -> None:
    pickler = _cloud_pickler(file) if cloud else _Pickler(file, protocol=5)
    pickler.dump(obj)


def _place_pieces(
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


def _load_pieces(spec: list[bytes | tuple[int, int]], view: memoryview | None) -> Any:
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


def _frame(parts: list[ReadableBuffer]) -> list[ReadableBuffer]:
    """``multiprocessing.Connection`` framing: a signed 32-bit length, or -1 + 64-bit."""
    n = sum(_nbytes(p) for p in parts)
    header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
    return [header, *parts]


class _IOVec:
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


def _write_all(fd: int, parts: list[ReadableBuffer]) -> None:
    """Blocking write of whole frames (child side)."""
    _IOVec(parts).write(fd)


class _Receiver:
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


# --------------------------------------------------------------------------- context vars


class _ContextVarIndex:
    """Finds where module-level ContextVars live, so the child can look them up by name."""

    _MAX_UNKNOWN = 4096

    def __init__(self) -> None:
        self._where: dict[ContextVar[Any], tuple[str, str]] = {}
        self._unknown: set[ContextVar[Any]] = set()
        self._too_big: set[ContextVar[Any]] = set()
        self._modules_seen = -1

    def locate(self, var: ContextVar[Any]) -> tuple[str, str] | None:
        where = self._where.get(var)
        if where is not None or var in self._unknown:
            return where
        if len(sys.modules) != self._modules_seen:
            self._scan()
            where = self._where.get(var)
        if where is None:
            if len(self._unknown) >= self._MAX_UNKNOWN:
                self._unknown.clear()
            self._unknown.add(var)
        return where

    def _scan(self) -> None:
        self._modules_seen = len(sys.modules)
        self._unknown.clear()
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if type(namespace) is not dict:
                continue
            try:
                items = list(namespace.items())
            except RuntimeError:  # the module is being imported by another thread
                continue
            for attr, value in items:
                if type(value) is ContextVar:
                    known = self._where.get(value)
                    if known is None or (attr == value.name and known[1] != value.name):
                        self._where[value] = (module_name, attr)

    def items(self) -> list[tuple[str, str, bytes]]:
        """The caller's module-level ContextVar values, as (module, attribute, pickle).

        Values that do not pickle, or pickle to more than 64 KiB (context variables are
        for request ids, locales and trace context, not data), are skipped.
        """
        found: list[tuple[str, str, bytes]] = []
        for var, value in contextvars.copy_context().items():
            where = self.locate(var)
            if where is None:
                continue
            try:
                data = pickle.dumps(value, protocol=5)
            except Exception:
                continue
            if len(data) > _MAX_CONTEXT_VALUE:
                if var not in self._too_big:
                    self._too_big.add(var)
                    _log.warning(
                        "context variable %s.%s holds %d pickled bytes; not copied to worker "
                        "processes",
                        *where,
                        len(data),
                    )
                continue
            found.append((where[0], where[1], data))
        return found


# --------------------------------------------------------------------------- child side


def _describe_error(exc: BaseException) -> tuple[bytes | None, str, str, str, bool]:
    kind = type(exc)
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    try:
        message = str(exc)
    except Exception:
        message = f"<str() of {type_name} failed>"
    tb = "".join(traceback.format_exception(exc))
    data: bytes | None = None
    if isinstance(exc, Exception):
        try:
            data = pickle.dumps(exc, protocol=5)
            pickle.loads(data)
        except Exception:
            data = None
    return data, type_name, message, tb, isinstance(exc, NonRetryableError)


def _error_frame(exc: BaseException) -> list[ReadableBuffer]:
    return _frame([_ERROR, pickle.dumps(_describe_error(exc), protocol=5)])


class _Child:
    """The loop a worker process runs: one request in, one reply out, until EOF."""

    def __init__(self, conn: Connection, threshold: int) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        self.threshold = threshold
        self.mapping: mmap.mmap | None = None
        self.view: memoryview | None = None
        self.vars: dict[tuple[str, str], ContextVar[Any] | None] = {}

    def serve(self) -> None:
        _write_all(self.fd, _frame([_READY]))
        while True:
            try:
                message = self.conn.recv_bytes()
            except (EOFError, OSError):
                return
            tag = message[:1]
            if tag == _ATTACH:
                self.attach(message[1:].decode())
                continue
            reply = self.handle(tag, memoryview(message)[1:])
            del message
            try:
                _write_all(self.fd, reply)
            except OSError:
                return

    def attach(self, name: str) -> None:
        self.detach()
        shm = importlib.import_module("_posixshmem")
        # Attach without SharedMemory(): on Python < 3.13 it would register the segment
        # with the resource tracker the parent shares, and unregistering it again would
        # also drop the parent's registration.
        try:
            fd = shm.shm_open("/" + name, os.O_RDWR, mode=0o600)
        except OSError:
            _log.warning("worker %d could not attach shared memory %s", os.getpid(), name)
            return
        try:
            self.mapping = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        self.view = memoryview(self.mapping)

    def detach(self) -> None:
        if self.view is not None:
            self.view.release()
            self.view = None
        if self.mapping is not None:
            with contextlib.suppress(BufferError):  # still viewed: leave it mapped
                self.mapping.close()
            self.mapping = None

    def handle(self, tag: bytes, body: memoryview) -> list[ReadableBuffer]:
        try:
            if tag == _TASK:
                fn, task, context_items = pickle.loads(body)
            elif tag == _TASK_PIECES:
                fn, task, context_items = _load_pieces(pickle.loads(body), self.view)
            else:
                raise RuntimeError(f"unknown request tag {tag!r}")
        except BaseException as exc:
            return _error_frame(exc)
        finally:
            body.release()
        try:
            result = contextvars.Context().run(self.call, fn, task, context_items)
        except BaseException as exc:
            return _error_frame(exc)
        del fn, task
        return self.result_frame(result)

    def call(
        self, fn: TaskFunction, task: ProcessingTask, items: list[tuple[str, str, bytes]]
    ) -> Any:
        for module, name, data in items:
            var = self.resolve(module, name)
            if var is not None:
                try:
                    var.set(pickle.loads(data))
                except Exception:
                    continue
        return fn(task)

    def resolve(self, module: str, name: str) -> ContextVar[Any] | None:
        key = (module, name)
        if key not in self.vars:
            var: Any = None
            try:
                var = getattr(importlib.import_module(module), name, None)
            except Exception:
                var = None
            self.vars[key] = var if isinstance(var, ContextVar) else None
        return self.vars[key]

    def result_frame(self, result: Any) -> list[ReadableBuffer]:
        writer = _SplitWriter(self.threshold)
        try:
            _dump(result, writer, cloud=False)
        except Exception as exc:
            writer = _SplitWriter(self.threshold)
            try:
                if _load_cloudpickle() is None:
                    raise
                _dump(result, writer, cloud=True)
            except Exception:
                error = TypeError(
                    f"the task function returned a {type(result).__qualname__} that cannot "
                    f"be pickled back to the parent process: {exc}"
                )
                return _error_frame(error)
        if writer.big_total == 0:
            return _frame([_OK, *writer.pieces])
        if self.view is not None and writer.big_total <= len(self.view):
            spec = _place_pieces(writer.pieces, self.threshold, self.view)
            return _frame([_OK_PIECES, pickle.dumps(spec, protocol=5)])
        return _frame([_OK_WANT, writer.big_total.to_bytes(8, "big"), *writer.pieces])


def _child_main(conn: Connection, threshold: int, inherited: list[int]) -> None:
    """Entry point of a worker process.

    ``inherited`` lists the parent's ends of the other slots' pipes, which a ``fork``
    child inherits: they are closed so that each child sees EOF when the parent closes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    child = _Child(conn, threshold)
    try:
        child.serve()
    finally:
        child.detach()
        conn.close()


# --------------------------------------------------------------------------- parent side


class _Worker:
    """Parent-side state of one slot."""

    __slots__ = (
        "attached",
        "conn",
        "fd",
        "pid",
        "process",
        "restart_task",
        "rx",
        "segment",
        "slot",
        "small_uses",
        "state",
        "waiter",
        "want",
    )

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.state = "stopped"
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.fd = -1
        self.pid: int | None = None
        self.rx = _Receiver()
        self.waiter: asyncio.Future[bytes | bytearray] | None = None
        self.restart_task: asyncio.Task[None] | None = None
        self.segment: SharedMemory | None = None
        self.attached: str | None = None
        self.want = 0
        self.small_uses = 0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "its exit status is unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        text = f"it was killed by signal {-code} ({name})"
        if -code == signal.SIGKILL:
            text += ", for example by the out-of-memory killer"
        return text
    return f"it exited with exit code {code}"


def _qualname(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def _picklable(value: Any, cloud: bool) -> bool:
    try:
        _dump(value, _NullWriter(), cloud)
    except Exception:
        return False
    return True


def _find_unpicklable(path: str, value: Any, cloud: bool, depth: int = 0) -> tuple[str, Any]:
    """The deepest container path below ``path`` whose value does not pickle."""
    if depth < 20:
        children: list[tuple[str, Any]] = []
        if isinstance(value, Mapping):
            children = [(f"{path}[{k!r}]", v) for k, v in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        for child_path, child in children:
            if not _picklable(child, cloud):
                return _find_unpicklable(child_path, child, cloud, depth + 1)
    return path, value


def _locate_unpicklable(task: ProcessingTask, cloud: bool) -> tuple[str, Any]:
    """Name the payload / dependency_results entry that does not pickle (or the task)."""
    for field_name in ("payload", "dependency_results"):
        mapping: dict[Any, Any] = getattr(task, field_name)
        for key, item in mapping.items():
            if not _picklable(item, cloud):
                return _find_unpicklable(f"{field_name}[{key!r}]", item, cloud)
    return "the task", task


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class ProcessExecutor(Executor):
    """Slots backed by one worker process each; see the module docstring for the design."""

    name = "process"

    def __init__(
        self,
        max_workers: int,
        *,
        start_method: str = "forkserver",
        shm_threshold: int = 64 * 1024,
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
                f"got {start_method!r}"
            )
        if (
            isinstance(shm_threshold, bool)
            or not isinstance(shm_threshold, int)
            or shm_threshold < 1
        ):
            raise ValueError(f"shm_threshold must be a whole number >= 1, got {shm_threshold!r}")
        self._max_workers = max_workers
        self._start_method = start_method
        self._threshold = shm_threshold
        self._ctx: Any = multiprocessing.get_context(start_method)
        self._workers = [_Worker(slot) for slot in range(max_workers)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._restarts = 0
        self._crashes = 0
        self._fn_cloud: dict[Any, bool] = {}
        self._cloud_tasks: dict[str, None] = {}  # ids of tasks only cloudpickle can send
        self._vars = _ContextVarIndex()

    # ------------------------------------------------------------------ interface

    @property
    def capacity(self) -> int:
        """The number of slots (= worker processes)."""
        return self._max_workers

    async def start(self) -> None:
        """Start one worker process per slot (concurrently) and wait until all are ready."""
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this ProcessExecutor was shut down; create a new one")
        self._loop = asyncio.get_running_loop()
        self._started = True
        for worker in self._workers:
            worker.state = "restarting"
        results = await asyncio.gather(
            *(self._spawn(worker) for worker in self._workers), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.shutdown()
            raise errors[0]

    async def run(self, slot: int, fn: TaskFunction, task: ProcessingTask) -> Any:
        """Run ``fn(task)`` in the slot's process; return its value or raise its exception.

        Raises:
            WorkerCrashedError: the process died while running the task (it is replaced).
            UnsendableTaskError: ``fn`` or the task cannot be pickled.
            asyncio.CancelledError: the caller was cancelled; the process was killed and
                a replacement is starting (``release`` waits for it).
        """
        worker = self._worker(slot)
        if self._closed or not self._started:
            raise RuntimeError("ProcessExecutor is not running: call start() first")
        if worker.state == "busy":
            raise RuntimeError(f"slot {slot} is already running a task")
        if worker.restart_task is not None:
            await asyncio.shield(worker.restart_task)
        if worker.process is None:
            await self._respawn_now(worker, task)
        loop = self._running_loop()
        parts = self._encode_request(worker, fn, task)
        pid = worker.pid
        worker.state = "busy"
        reply: asyncio.Future[bytes | bytearray] = loop.create_future()
        worker.waiter = reply
        try:
            await self._send(worker, parts)
            del parts
            frame = await reply
        except asyncio.CancelledError:
            if reply.done() and not reply.cancelled() and reply.exception() is None:
                worker.state = "idle"  # the reply arrived: the child is idle again
            elif worker.state == "busy":
                self._begin_restart(worker, kill=True, crashed=False)
            raise
        except _ChildGone:
            if self._closed:
                raise WorkerCrashedError(
                    f"the process executor was shut down while task {task.id} was running "
                    f"in worker process {pid} (slot {slot})"
                ) from None
            reaped = self._begin_restart(worker, kill=False, crashed=True)
            code = await asyncio.shield(reaped)
            raise WorkerCrashedError(
                f"worker process {pid} (slot {slot}) died while running task {task.id}: "
                f"{_describe_exit(code)}; a replacement process has been started"
            ) from None
        finally:
            worker.waiter = None
        worker.state = "idle"
        return self._decode_reply(worker, frame, task)

    async def release(self, slot: int) -> None:
        """Return once the slot can run again (waits for a replacement process to be ready)."""
        worker = self._worker(slot)
        restart = worker.restart_task
        if restart is not None:
            await asyncio.shield(restart)

    def check_sendable(self, fn: TaskFunction, task: ProcessingTask) -> None:
        """Raise UnsendableTaskError if ``fn`` or the task cannot be pickled to a worker."""
        self._needs_cloudpickle(fn)
        if all(type(v) in _PLAIN_TYPES for v in task.payload.values()) and all(
            type(v) in _PLAIN_TYPES for v in task.dependency_results.values()
        ):
            return
        try:
            _dump(task, _NullWriter(), cloud=False)
        except Exception as exc:
            if _load_cloudpickle() is not None and _picklable(task, cloud=True):
                # remember it, so run() goes straight to cloudpickle for this task
                if len(self._cloud_tasks) >= _MAX_CLOUD_TASKS:
                    del self._cloud_tasks[next(iter(self._cloud_tasks))]
                self._cloud_tasks[task.id] = None
                return
            raise self._payload_error(task, exc) from exc

    def slot_state(self, slot: int) -> str:
        """Return "idle", "busy", "restarting" (no ready process yet) or "stopped" (not running)."""
        return self._worker(slot).state

    def statistics(self) -> dict[str, int]:
        """``{"restarts": replacement processes started, "crashes": unexpected deaths}``."""
        return {"restarts": self._restarts, "crashes": self._crashes}

    async def shutdown(self, timeout: float = _EXIT_GRACE) -> None:
        """Close every pipe, give children ``timeout`` seconds (at most 1 s) to exit,
        SIGKILL the rest, unlink the segments."""
        if self._shutdown_task is None:
            self._closed = True
            grace = min(timeout, _EXIT_GRACE)
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown(grace))
        await asyncio.shield(self._shutdown_task)

    # ------------------------------------------------------------------ processes

    def _worker(self, slot: int) -> _Worker:
        if not 0 <= slot < self._max_workers:
            raise IndexError(f"slot must be in 0..{self._max_workers - 1}, got {slot}")
        return self._workers[slot]

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            raise RuntimeError("ProcessExecutor is not running: call start() first")
        return loop

    async def _spawn(self, worker: _Worker) -> None:
        """Start a child for ``worker`` and wait for its ready frame."""
        loop = self._running_loop()
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        inherited = []
        if self._start_method == "fork":
            inherited = [w.fd for w in self._workers if w.fd >= 0] + [parent_conn.fileno()]
        process: BaseProcess = self._ctx.Process(
            target=_child_main,
            args=(child_conn, self._threshold, inherited),
            name=f"async-processor-{worker.slot}",
            daemon=True,
        )
        try:
            if self._start_method == "fork":
                process.start()
            else:
                await self._start_in_thread(process)
        except BaseException:
            parent_conn.close()
            raise
        finally:
            child_conn.close()
        fd = parent_conn.fileno()
        os.set_blocking(fd, False)
        worker.process, worker.conn, worker.fd, worker.pid = process, parent_conn, fd, process.pid
        worker.rx = _Receiver()
        worker.attached = None
        ready: asyncio.Future[bytes | bytearray] = loop.create_future()
        worker.waiter = ready
        loop.add_reader(fd, self._on_readable, worker)
        try:
            frame = await asyncio.wait_for(ready, _START_TIMEOUT)
        except (_ChildGone, TimeoutError) as exc:
            worker.waiter = None
            self._detach(worker)
            code = await self._reap(process, kill=True)
            reason = (
                f"it did not report ready within {_START_TIMEOUT:.0f} s"
                if isinstance(exc, TimeoutError)
                else _describe_exit(code)
            )
            raise WorkerCrashedError(
                f"worker process {worker.pid} for slot {worker.slot} did not start: {reason}"
            ) from None
        except BaseException:
            worker.waiter = None
            self._detach(worker)
            process.kill()
            raise
        worker.waiter = None
        if frame != _READY:
            self._detach(worker)
            await self._reap(process, kill=True)
            raise WorkerCrashedError(f"worker process {worker.pid} sent {frame[:20]!r} on start-up")
        worker.state = "idle"

    async def _start_in_thread(self, process: BaseProcess) -> None:
        """``Process.start()`` blocks until the fork server answers; keep it off the loop."""
        loop = self._running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def target() -> None:
            error: BaseException | None = None
            try:
                process.start()
            except BaseException as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(_set_result, done, error)
            except RuntimeError:  # the loop is closed
                if error is None:
                    process.kill()

        threading.Thread(target=target, name="async-processor-spawn", daemon=True).start()
        try:
            error = await asyncio.shield(done)
        except asyncio.CancelledError:
            # The thread still runs start(); kill the child as soon as it exists.
            def kill_when_started(fut: asyncio.Future[BaseException | None]) -> None:
                if fut.result() is None:
                    self._kill(process)

            done.add_done_callback(kill_when_started)
            raise
        if error is not None:
            raise error

    async def _respawn_now(self, worker: _Worker, task: ProcessingTask) -> None:
        """A previous replacement failed to start: try once more for this task."""
        worker.state = "restarting"
        self._restarts += 1
        try:
            await self._spawn(worker)
        except Exception as exc:
            worker.state = "stopped"
            raise WorkerCrashedError(
                f"could not start a worker process for slot {worker.slot} to run task "
                f"{task.id}: {exc}"
            ) from exc

    def _on_readable(self, worker: _Worker) -> None:
        try:
            frames = worker.rx.read(worker.fd)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            frames = None
        if frames is None:  # EOF: the child died or closed its pipe
            self._running_loop().remove_reader(worker.fd)
            waiter = worker.waiter
            if waiter is not None:
                if not waiter.done():
                    waiter.set_exception(_ChildGone())
            elif worker.state == "idle" and not self._closed:
                _log.warning(
                    "idle worker process %s (slot %d) died; starting a replacement",
                    worker.pid,
                    worker.slot,
                )
                self._begin_restart(worker, kill=False, crashed=True)
            return
        for frame in frames:
            waiter = worker.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)
            else:
                _log.warning("unexpected message from worker process %s ignored", worker.pid)

    def _detach(self, worker: _Worker) -> BaseProcess | None:
        """Stop watching the worker's pipe and close it; return its process."""
        process, conn = worker.process, worker.conn
        if conn is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.remove_reader(worker.fd)
                loop.remove_writer(worker.fd)
            conn.close()
        worker.process = worker.conn = None
        worker.fd = -1
        worker.attached = None
        return process

    def _begin_restart(
        self, worker: _Worker, *, kill: bool, crashed: bool
    ) -> asyncio.Task[int | None]:
        """Detach the current child, kill it if asked, and start a replacement in the background.

        Returns the task that reaps the old child (its result is the exit code).
        """
        loop = self._running_loop()
        process = self._detach(worker)
        if kill and process is not None:
            self._kill(process)
        worker.state = "restarting"
        if crashed:
            self._crashes += 1
        reaped = loop.create_task(self._reap(process, kill=False))
        worker.restart_task = loop.create_task(self._restart(worker, reaped))
        return reaped

    async def _restart(self, worker: _Worker, reaped: asyncio.Task[int | None]) -> None:
        try:
            try:
                await reaped
            except Exception:
                _log.exception("reaping the worker process of slot %d failed", worker.slot)
            if self._closed:
                worker.state = "stopped"
                return
            self._restarts += 1
            try:
                await self._spawn(worker)
            except Exception:
                worker.state = "stopped"
                _log.exception("could not start a replacement worker for slot %d", worker.slot)
        finally:
            worker.restart_task = None

    @staticmethod
    def _kill(process: BaseProcess) -> None:
        with contextlib.suppress(ValueError, OSError):  # closed, or already gone
            process.kill()

    async def _wait_exit(self, process: BaseProcess, timeout: float) -> bool:
        """Wait (without blocking the loop) until ``process`` has exited and been reaped."""
        if process.exitcode is not None:
            return True
        loop = self._running_loop()
        gone: asyncio.Future[None] = loop.create_future()
        sentinel = process.sentinel
        loop.add_reader(sentinel, _set_result, gone, None)
        try:
            await asyncio.wait_for(gone, timeout)
        except TimeoutError:
            return process.exitcode is not None
        finally:
            loop.remove_reader(sentinel)
        for _ in range(200):  # fork start method: waitpid may lag the sentinel briefly
            if process.exitcode is not None:
                return True
            await asyncio.sleep(0.005)
        return False

    async def _reap(self, process: BaseProcess | None, *, kill: bool) -> int | None:
        """Wait for ``process`` to exit (SIGKILL it first if asked, or if it lingers)."""
        if process is None:
            return None
        if kill:
            self._kill(process)
        if not await self._wait_exit(process, _KILL_WAIT if kill else _EXIT_GRACE * 5):
            self._kill(process)
            await self._wait_exit(process, _KILL_WAIT)
        code = process.exitcode
        if code is not None:
            process.join(0)
            process.close()
        return code

    # ------------------------------------------------------------------ messages

    def _needs_cloudpickle(self, fn: TaskFunction) -> bool:
        """Whether ``fn`` must travel by cloudpickle; UnsendableTaskError if it cannot travel."""
        try:
            cached = self._fn_cloud.get(fn)
        except TypeError:  # unhashable callable
            cached = None
        if cached is not None:
            return cached
        needs = False
        problem: BaseException | None = None
        main = sys.modules.get("__main__")
        if getattr(fn, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
            needs = True  # defined interactively: a child cannot import it by name
            problem = RuntimeError("it is defined in an interactive session (__main__)")
        else:
            try:
                pickle.dumps(fn, protocol=5)
            except Exception as exc:
                needs, problem = True, exc
        if needs:
            cloud = _load_cloudpickle()
            cloud_error: BaseException | None = None
            if cloud is not None:
                try:
                    cloud.dumps(fn, protocol=5)
                except Exception as exc:
                    cloud_error = exc
            if cloud is None or cloud_error is not None:
                advice = (
                    f"even cloudpickle could not send it ({cloud_error}); define it at module level"
                    if cloud is not None
                    else "define it at module level (not a lambda or a nested function), or "
                    "install async-processor[process] so cloudpickle can send it"
                )
                raise UnsendableTaskError(
                    f"the processor function {_qualname(fn)} cannot be pickled to a worker "
                    f"process ({problem}); {advice}"
                )
        try:
            if len(self._fn_cloud) >= 512:
                self._fn_cloud.clear()
            self._fn_cloud[fn] = needs
        except TypeError:
            pass
        return needs

    def _payload_error(self, task: ProcessingTask, exc: BaseException) -> UnsendableTaskError:
        cloud = _load_cloudpickle() is not None
        where, value = _locate_unpicklable(task, cloud)
        if callable(value) and not isinstance(value, type):
            advice = "define it at module level (not a lambda or a nested function)"
            if not cloud:
                advice += ", or install async-processor[process] so cloudpickle can send it"
        else:
            advice = (
                "pass the data differently: plain types, bytes or numpy arrays, or a path, URL "
                "or id the processor can open itself (or run this task type in the thread pool)"
            )
            if not cloud:
                advice += "; installing async-processor[process] adds cloudpickle, which sends more"
        return UnsendableTaskError(
            f"task {task.id}: {where} ({type(value).__qualname__}) cannot be pickled to a "
            f"worker process ({type(exc).__name__}: {exc}); {advice}"
        )

    def _encode_request(
        self, worker: _Worker, fn: TaskFunction, task: ProcessingTask
    ) -> list[ReadableBuffer]:
        cloud = self._needs_cloudpickle(fn) or task.id in self._cloud_tasks
        message = (fn, task, self._vars.items())
        writer = _SplitWriter(self._threshold)
        try:
            _dump(message, writer, cloud)
        except Exception as exc:
            if cloud or _load_cloudpickle() is None:
                raise self._payload_error(task, exc) from exc
            writer = _SplitWriter(self._threshold)
            try:
                _dump(message, writer, cloud=True)
            except Exception as exc2:
                raise self._payload_error(task, exc2) from exc2
        parts: list[ReadableBuffer] = []
        segment = self._ensure_segment(worker, max(writer.big_total, worker.want))
        if segment is not None and worker.attached != segment.name:
            parts += _frame([_ATTACH, segment.name.encode()])
            worker.attached = segment.name
        view = segment.buf if segment is not None else None
        if writer.big_total and view is not None and len(view) >= writer.big_total:
            spec = _place_pieces(writer.pieces, self._threshold, view)
            parts += _frame([_TASK_PIECES, pickle.dumps(spec, protocol=5)])
        else:
            parts += _frame([_TASK, *writer.pieces])
        return parts

    def _decode_reply(self, worker: _Worker, frame: bytes | bytearray, task: ProcessingTask) -> Any:
        tag = frame[:1]
        body = memoryview(frame)[1:]
        if tag == _ERROR:
            self._raise_remote(task, body)
        try:
            if tag == _OK:
                return pickle.loads(body)
            if tag == _OK_WANT:
                worker.want = max(worker.want, int.from_bytes(body[:8], "big"))
                return pickle.loads(body[8:])
            if tag == _OK_PIECES:
                segment = worker.segment
                return _load_pieces(
                    pickle.loads(body),
                    segment.buf if segment is not None else None,
                )
        except Exception as exc:
            raise RuntimeError(
                f"the result of task {task.id} could not be unpickled in the parent process: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        raise RuntimeError(f"unexpected reply {frame[:20]!r} from worker process {worker.pid}")

    @staticmethod
    def _raise_remote(task: ProcessingTask, body: memoryview) -> None:
        data, type_name, message, tb, nonretryable = pickle.loads(body)
        remote = RemoteTraceback(tb)
        exc: Any = None
        if data is not None:
            try:
                exc = pickle.loads(data)
            except Exception:
                exc = None
        if isinstance(exc, Exception):
            raise exc from remote
        text = (
            f"task {task.id} raised {type_name}: {message} (the exception could not be "
            f"rebuilt in the parent process)\n\nRemote traceback:\n{tb}"
        )
        if nonretryable:
            raise NonRetryableError(text) from remote
        raise RuntimeError(text) from remote

    async def _send(self, worker: _Worker, parts: list[ReadableBuffer]) -> None:
        """Write whole frames to the child's pipe without blocking the loop."""
        pending = _IOVec(parts)
        fd = worker.fd
        try:
            pending.write(fd)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            raise _ChildGone() from exc
        if not pending:
            return
        loop = self._running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_writable() -> None:
            try:
                pending.write(fd)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                loop.remove_writer(fd)
                if not done.done():
                    done.set_exception(_ChildGone())
                return
            loop.remove_writer(fd)
            _set_result(done, None)

        loop.add_writer(fd, on_writable)
        try:
            await done
        finally:
            if worker.fd == fd:
                loop.remove_writer(fd)

    # ------------------------------------------------------------------ shared memory

    def _ensure_segment(self, worker: _Worker, need: int) -> SharedMemory | None:
        """The slot's segment, (re)created so that ``need`` bytes fit; None if impossible."""
        worker.want = 0
        current = worker.segment
        if current is None:
            if need == 0:
                return None
        elif current.size >= need:
            if current.size <= _SHRINK_ABOVE or need > current.size // 4:
                worker.small_uses = 0
                return current
            worker.small_uses += 1
            if worker.small_uses < _SHRINK_AFTER:
                return current
            worker.small_uses = 0
        size = max(need, _MIN_SEGMENT)
        if current is not None and current.size < need:
            size = max(size, 2 * current.size)
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        segment = self._create_segment(worker.slot, size)
        if segment is None:
            return current if current is not None and current.size >= need else None
        if current is not None:
            self._drop_segment(current)
        worker.segment = segment
        return segment

    @staticmethod
    def _create_segment(slot: int, size: int) -> SharedMemory | None:
        for _ in range(3):
            name = f"{_SEGMENT_PREFIX}{os.getpid()}_{slot}_{secrets.token_hex(4)}"
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
                        ProcessExecutor._drop_segment(segment)
                        return None
            return segment
        return None

    @staticmethod
    def _drop_segment(segment: SharedMemory) -> None:
        try:
            segment.close()
        except BufferError:
            _log.warning("shared memory segment %s still in use; unlinking it anyway", segment.name)
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(self, grace: float) -> None:
        await self._settle_restarts()
        processes: list[BaseProcess] = []
        for worker in self._workers:
            waiter = worker.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(_ChildGone())
            process = self._detach(worker)  # closing the pipe asks the child to exit
            if process is not None:
                processes.append(process)
            worker.state = "stopped"
        if processes:
            loop = self._running_loop()
            deadline = loop.time() + grace
            for process in processes:
                await self._wait_exit(process, max(0.0, deadline - loop.time()))
            await asyncio.gather(*(self._reap(p, kill=True) for p in processes))
        # A run() cancelled meanwhile may have started a restart: it only reaps now.
        await self._settle_restarts()
        for worker in self._workers:
            worker.state = "stopped"
            if worker.segment is not None:
                self._drop_segment(worker.segment)
                worker.segment = None

    async def _settle_restarts(self) -> None:
        """Wait for replacements in progress (cancel them if they hang)."""
        while restarts := [w.restart_task for w in self._workers if w.restart_task is not None]:
            _done, pending = await asyncio.wait(restarts, timeout=_START_TIMEOUT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
