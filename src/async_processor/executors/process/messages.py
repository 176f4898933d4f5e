"""What travels to a worker process and back, and how: :class:`MessageCodec`.

How a task travels is decided once, when it is submitted (:meth:`MessageCodec.plan`):
stdlib pickle when it can, cloudpickle (``async-processor[process]``) when only it can
(a lambda, a nested function, a function defined interactively). The processor keeps the
answer with the task's record and hands it back to every run. Dependency results arrive
after that decision, so a request that stdlib pickle then refuses still falls back to
cloudpickle.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import NonRetryableError, UnsendableTaskError
from ...task import ProcessingTask
from ..base import TaskFunction
from .contextvars_index import ContextVarIndex
from .segments import SlotSegment
from .wire import (
    ATTACH,
    ERROR,
    OK,
    OK_PIECES,
    OK_WANT,
    TASK,
    TASK_PIECES,
    NullWriter,
    RemoteTraceback,
    SplitWriter,
    dump,
    frame,
    load_cloudpickle,
    load_pieces,
    place_pieces,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["PLAIN_TYPES", "MessageCodec"]

#: Values of these types always pickle: a task holding only them needs no trial pickling.
PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes, bytearray})

#: How many functions' pickling decisions are remembered.
_MAX_FUNCTIONS = 512


class MessageCodec:
    """Encodes requests and decodes replies for the children of one executor."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._fn_cloud: dict[Any, bool] = {}
        self._vars = ContextVarIndex()

    def plan(self, fn: TaskFunction, task: ProcessingTask) -> bool:
        """Decide once how ``fn`` and ``task`` travel: True for cloudpickle.

        Raises:
            UnsendableTaskError: they cannot travel at all (the message says what to do).
        """
        cloud = self.needs_cloudpickle(fn)
        if all(type(v) in PLAIN_TYPES for v in task.payload.values()) and all(
            type(v) in PLAIN_TYPES for v in task.dependency_results.values()
        ):
            return cloud
        try:
            dump(task, NullWriter(), cloud=False)
        except Exception as exc:
            if load_cloudpickle() is not None and picklable(task, cloud=True):
                return True
            raise self.payload_error(task, exc) from exc
        return cloud

    def needs_cloudpickle(self, fn: TaskFunction) -> bool:
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
            cloud = load_cloudpickle()
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
                    f"the processor function {qualname(fn)} cannot be pickled to a worker "
                    f"process ({problem}); {advice}"
                )
        try:
            if len(self._fn_cloud) >= _MAX_FUNCTIONS:
                self._fn_cloud.clear()
            self._fn_cloud[fn] = needs
        except TypeError:
            pass
        return needs

    def payload_error(self, task: ProcessingTask, exc: BaseException) -> UnsendableTaskError:
        cloud = load_cloudpickle() is not None
        where, value = locate_unpicklable(task, cloud)
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

    def encode(
        self, shm: SlotSegment, fn: TaskFunction, task: ProcessingTask, cloud: bool
    ) -> list[ReadableBuffer]:
        """The frames that carry ``fn(task)`` to a child, big pieces through ``shm``."""
        message = (fn, task, self._vars.items())
        writer = SplitWriter(self.threshold)
        try:
            dump(message, writer, cloud)
        except Exception as exc:
            if cloud or load_cloudpickle() is None:
                raise self.payload_error(task, exc) from exc
            writer = SplitWriter(self.threshold)
            try:
                dump(message, writer, cloud=True)
            except Exception as exc2:
                raise self.payload_error(task, exc2) from exc2
        parts: list[ReadableBuffer] = []
        segment = shm.ensure(max(writer.big_total, shm.want))
        if segment is not None and shm.attached != segment.name:
            parts += frame([ATTACH, segment.name.encode()])
            shm.attached = segment.name
        view = segment.buf if segment is not None else None
        if writer.big_total and view is not None and len(view) >= writer.big_total:
            spec = place_pieces(writer.pieces, self.threshold, view)
            parts += frame([TASK_PIECES, pickle.dumps(spec, protocol=5)])
        else:
            parts += frame([TASK, *writer.pieces])
        return parts

    def decode(
        self, shm: SlotSegment, pid: int | None, reply: bytes | bytearray, task: ProcessingTask
    ) -> Any:
        """The value a child's reply carries; raises the error it carries."""
        tag = reply[:1]
        body = memoryview(reply)[1:]
        if tag == ERROR:
            _raise_remote(task, body)
        try:
            if tag == OK:
                return pickle.loads(body)
            if tag == OK_WANT:
                shm.want = max(shm.want, int.from_bytes(body[:8], "big"))
                return pickle.loads(body[8:])
            if tag == OK_PIECES:
                segment = shm.segment
                return load_pieces(
                    pickle.loads(body),
                    segment.buf if segment is not None else None,
                )
        except Exception as exc:
            raise RuntimeError(
                f"the result of task {task.id} could not be unpickled in the parent process: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        raise RuntimeError(f"unexpected reply {reply[:20]!r} from worker process {pid}")


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
    error: Exception = NonRetryableError(text) if nonretryable else RuntimeError(text)
    setattr(error, "remote_error_type", type_name.removeprefix("builtins."))  # noqa: B010
    raise error from remote


def qualname(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def picklable(value: Any, cloud: bool) -> bool:
    try:
        dump(value, NullWriter(), cloud)
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
            if not picklable(child, cloud):
                return _find_unpicklable(child_path, child, cloud, depth + 1)
    return path, value


def locate_unpicklable(task: ProcessingTask, cloud: bool) -> tuple[str, Any]:
    """Name the payload / dependency_results entry that does not pickle (or the task)."""
    for field_name in ("payload", "dependency_results"):
        mapping: dict[Any, Any] = getattr(task, field_name)
        for key, item in mapping.items():
            if not picklable(item, cloud):
                return _find_unpicklable(f"{field_name}[{key!r}]", item, cloud)
    return "the task", task
