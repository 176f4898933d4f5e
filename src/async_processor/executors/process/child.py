"""The worker process's side: its main loop, one task at a time.

The child ignores SIGINT (the parent handles Ctrl-C), reads a frame, runs the function in
a fresh context holding the caller's ContextVar values, and answers with the value or the
error (with its traceback). It exits when its pipe closes.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import mmap
import os
import pickle
import signal
import traceback
from contextvars import ContextVar
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ...errors import NonRetryableError
from ...task import ProcessingTask
from ..base import TaskFunction
from .wire import (
    ATTACH,
    ERROR,
    OK,
    OK_PIECES,
    OK_WANT,
    READY,
    TASK,
    TASK_PIECES,
    SplitWriter,
    dump,
    frame,
    load_cloudpickle,
    load_pieces,
    place_pieces,
    write_all,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["child_main"]

_log = logging.getLogger("async_processor.executors.process")


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
    return frame([ERROR, pickle.dumps(_describe_error(exc), protocol=5)])


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
        write_all(self.fd, frame([READY]))
        while True:
            try:
                message = self.conn.recv_bytes()
            except (EOFError, OSError):
                return
            tag = message[:1]
            if tag == ATTACH:
                self.attach(message[1:].decode())
                continue
            reply = self.handle(tag, memoryview(message)[1:])
            del message
            try:
                write_all(self.fd, reply)
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
            if tag == TASK:
                fn, task, context_items = pickle.loads(body)
            elif tag == TASK_PIECES:
                fn, task, context_items = load_pieces(pickle.loads(body), self.view)
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
        writer = SplitWriter(self.threshold)
        try:
            dump(result, writer, cloud=False)
        except Exception as exc:
            writer = SplitWriter(self.threshold)
            try:
                if load_cloudpickle() is None:
                    raise
                dump(result, writer, cloud=True)
            except Exception:
                error = TypeError(
                    f"the task function returned a {type(result).__qualname__} that cannot "
                    f"be pickled back to the parent process: {exc}"
                )
                return _error_frame(error)
        if writer.big_total == 0:
            return frame([OK, *writer.pieces])
        if self.view is not None and writer.big_total <= len(self.view):
            spec = place_pieces(writer.pieces, self.threshold, self.view)
            return frame([OK_PIECES, pickle.dumps(spec, protocol=5)])
        return frame([OK_WANT, writer.big_total.to_bytes(8, "big"), *writer.pieces])


def child_main(conn: Connection, threshold: int, inherited: list[int]) -> None:
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
