"""Run task functions on a Dask cluster through the async ``distributed`` client.

``AdvancedAsyncProcessor(cluster="tcp://scheduler:8786")`` (or ``cluster=client``) puts a
:class:`DaskExecutor` behind the process lane, so ``cpu_intensive`` tasks run on the
cluster's workers. Needs ``async-processor[dask]``; see docs/dask.md.

The scheduler still decides the order: a slot submits one task at a time, and the lane has
as many slots as the executor's ``capacity`` (by default the cluster's total threads when
the executor is built). Each submission carries the task's priority as Dask ``priority=``
(CRITICAL 5 ... BATCH 1, higher runs first), ``pure=False`` (every attempt really runs) and,
when configured for the task's type, Dask ``resources=`` such as ``{"GPU": 1}``.

Large top-level values of ``payload`` and ``dependency_results`` (``bytes``, ``bytearray``,
``memoryview`` and numpy arrays of ``scatter_threshold`` bytes or more) are scattered to
the cluster once, under a key made from a hash of their content, and the task refers to
them: a retry, or another task with the same bytes, sends no data again. The executor keeps
the most recently used blobs up to ``scatter_cache_bytes`` and releases the rest.

Retries stay the processor's job. Cancelling the coroutine awaiting :meth:`DaskExecutor.run`
(a timeout, ``cancel_task``) cancels the Dask future; Dask cannot stop a function already
running in a worker thread, so that thread finishes it and its result is dropped. A worker
that dies while running a task fails it with :class:`WorkerCrashedError` once the scheduler
gives up on it (``KilledWorker``; set ``distributed.scheduler.allowed-failures`` to 0 so
Dask does not rerun it behind the processor's back).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..errors import UnsendableTaskError, WorkerCrashedError
from ..task import ProcessingTask
from .base import Executor, SlotState, TaskFunction

__all__ = ["DaskExecutor"]

_log = logging.getLogger(__name__)

_PROBE_TIMEOUT = 10.0
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes, bytearray})


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "the Dask executor needs dask.distributed; install async-processor[dask]"
        ) from exc
    return distributed


def dask_priority(task: ProcessingTask) -> int:
    """The Dask priority of a task: CRITICAL 5 ... BATCH 1 (Dask runs higher first)."""
    return 6 - task.priority.value


def _blob(value: Any, threshold: int) -> tuple[str, Any, Any] | None:
    """``(content key, object to scatter, rebuild spec)`` for a large buffer, else None."""
    kind = type(value)
    if kind is bytes or kind is bytearray:
        if len(value) < threshold:
            return None
        digest = hashlib.blake2b(value, digest_size=20).hexdigest()
        return f"apx-{kind.__name__}-{digest}", value, kind.__name__
    if kind is memoryview:
        if value.nbytes < threshold:
            return None
        data = value.tobytes()
        digest = hashlib.blake2b(data, digest_size=20).hexdigest()
        return f"apx-bytes-{digest}", data, ("memoryview", value.format, value.shape)
    if kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        if value.nbytes < threshold or value.dtype.hasobject:
            return None
        data = value.data.cast("B") if value.flags.c_contiguous else value.tobytes(order="A")
        head = f"{value.dtype.str}|{value.shape}|{value.flags.f_contiguous}".encode()
        digest = hashlib.blake2b(head + bytes(data), digest_size=20).hexdigest()
        return f"apx-ndarray-{digest}", value, "ndarray"
    return None


def _rebuild(spec: Any, data: Any) -> Any:
    if isinstance(spec, tuple):  # a memoryview sent as bytes
        _, fmt, shape = spec
        view = memoryview(data)
        with contextlib.suppress(TypeError, ValueError):
            return view.cast(fmt, shape) if (fmt, len(shape)) != ("B", 1) else view
        return view
    return data


def _run_remote(
    fn: TaskFunction,
    task: ProcessingTask,
    places: list[tuple[str, str, Any]],
    *blobs: Any,
) -> Any:
    """On a worker: put the scattered values back into the task, then call ``fn(task)``."""
    if places:
        payload = dict(task.payload)
        results = dict(task.dependency_results)
        for (where, name, spec), data in zip(places, blobs, strict=True):
            target = payload if where == "payload" else results
            target[name] = _rebuild(spec, data)
        task.payload = payload
        task.dependency_results = results
    return fn(task)


async def _probe_threads(address: str) -> int:
    distributed = _import_distributed()
    async with distributed.rpc(address) as scheduler:
        identity = await asyncio.wait_for(scheduler.identity(n_workers=0), _PROBE_TIMEOUT)
    return int(identity.get("total_threads", 0))


def _threads_at(address: str) -> int:
    """Ask the scheduler at ``address`` for its total worker threads (blocking)."""
    box: list[Any] = []

    def probe() -> None:
        try:
            box.append(asyncio.run(_probe_threads(address)))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=probe, name="async-processor dask probe", daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT + 5)
    if not box or isinstance(box[0], BaseException):
        reason = box[0] if box else "no answer"
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} to learn its thread count "
            f"({reason}); start the scheduler first or pass capacity="
        )
    return int(box[0])


class DaskExecutor(Executor):
    """Slots that submit their task to a Dask cluster; see the module docstring.

    Args:
        cluster: the scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``
            (asynchronous, on the processor's loop). A client passed in is never closed here.
        capacity: tasks submitted at once (the lane's slots); None asks the cluster for its
            total worker threads now.
        resources: Dask resources per task type name, e.g. ``{"embedding": {"GPU": 1}}``.
        scatter_threshold: payload buffers of at least this many bytes are scattered once.
        scatter_cache_bytes: most bytes of scattered buffers kept referenced on the cluster.
    """

    name = "dask"

    def __init__(
        self,
        cluster: Any,
        capacity: int | None = None,
        *,
        resources: Mapping[str, Mapping[str, float]] | None = None,
        scatter_threshold: int = 64 * 1024,
        scatter_cache_bytes: int = 256 << 20,
    ) -> None:
        distributed = _import_distributed()
        if isinstance(cluster, str):
            if not cluster:
                raise ValueError("cluster must be a scheduler address such as tcp://host:8786")
            self._address: str | None = cluster
            self._given: Any = None
        elif isinstance(cluster, distributed.Client):
            if not cluster.asynchronous:
                raise ValueError(
                    "cluster must be an asynchronous distributed.Client "
                    "(Client(..., asynchronous=True)) or a scheduler address"
                )
            self._address = None
            self._given = cluster
        else:
            raise ValueError(
                f"cluster must be a scheduler address or a distributed.Client, got "
                f"{type(cluster).__name__}"
            )
        for label, number, low in (
            ("scatter_threshold", scatter_threshold, 1),
            ("scatter_cache_bytes", scatter_cache_bytes, 0),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < low:
                raise ValueError(f"{label} must be a whole number >= {low}, got {number!r}")
        self._resources = self._check_resources(resources)
        if capacity is None:
            capacity = self._cluster_threads()
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a whole number >= 1, got {capacity!r}")
        self._capacity = capacity
        self._threshold = scatter_threshold
        self._cache_limit = scatter_cache_bytes
        self._client: Any = self._given
        self._states = [SlotState.STOPPED] * capacity
        self._started = False
        self._closed = False
        self._blobs: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._blob_bytes = 0
        self._scattering: dict[str, asyncio.Future[Any]] = {}
        self._stats = dict.fromkeys(
            ("submitted", "scattered", "scattered_bytes", "scatter_hits", "crashes", "cancelled"),
            0,
        )

    @staticmethod
    def _check_resources(
        resources: Mapping[str, Mapping[str, float]] | None,
    ) -> dict[str, dict[str, float]]:
        if resources is None:
            return {}
        if not isinstance(resources, Mapping):
            raise ValueError(
                "resources must map task type names to Dask resources, e.g. "
                "{'embedding': {'GPU': 1}}"
            )
        checked: dict[str, dict[str, float]] = {}
        for type_name, needs in resources.items():
            if not isinstance(type_name, str) or not isinstance(needs, Mapping) or not needs:
                raise ValueError(
                    f"resources[{type_name!r}] must be a non-empty mapping such as {{'GPU': 1}}"
                )
            for resource, amount in needs.items():
                if (
                    not isinstance(resource, str)
                    or isinstance(amount, bool)
                    or not isinstance(amount, int | float)
                    or not amount > 0
                ):
                    raise ValueError(
                        f"resources[{type_name!r}][{resource!r}] must be a positive number, "
                        f"got {amount!r}"
                    )
            checked[type_name] = dict(needs)
        return checked

    def _cluster_threads(self) -> int:
        if self._given is not None:
            info = self._given.scheduler_info()
            threads = int(info.get("total_threads", 0) or 0)
            where = "the client's cluster"
        else:
            assert self._address is not None
            threads = _threads_at(self._address)
            where = f"the Dask cluster at {self._address}"
        if threads < 1:
            raise ValueError(
                f"{where} has no worker threads yet; wait for its workers or pass capacity="
            )
        return threads

    # ------------------------------------------------------------------ interface

    @property
    def capacity(self) -> int:
        """How many tasks this executor submits at once."""
        return self._capacity

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` in use (None before :meth:`start`)."""
        return self._client

    async def start(self) -> None:
        """Connect to the scheduler (unless a client was given)."""
        if self._closed:
            raise RuntimeError("this DaskExecutor was shut down; create a new one")
        if self._started:
            return
        if self._given is None:
            distributed = _import_distributed()
            self._client = await distributed.Client(
                self._address, asynchronous=True, set_as_default=False
            )
        self._started = True
        self._states = [SlotState.IDLE] * self._capacity

    async def run(
        self, slot: int, fn: TaskFunction, task: ProcessingTask, plan: object = None
    ) -> Any:
        """Submit ``fn(task)`` to the cluster and return its value or raise its exception.

        Raises:
            WorkerCrashedError: the worker running it died (``KilledWorker``) or the
                cluster cancelled or lost it.
            UnsendableTaskError: ``fn`` or the task cannot be pickled.
            asyncio.CancelledError: the caller was cancelled; the Dask future is cancelled.
        """
        self._check_slot(slot)
        if not self._started or self._closed:
            raise RuntimeError("DaskExecutor is not running: call start() first")
        if self._states[slot] is SlotState.BUSY:
            raise RuntimeError(f"slot {slot} is already running a task")
        distributed = _import_distributed()
        self._states[slot] = SlotState.BUSY
        future: Any = None
        try:
            sent, places, blobs = await self._prepare(task)
            options: dict[str, Any] = {"priority": dask_priority(task), "pure": False}
            needs = self._resources.get(task.type_name)
            if needs:
                options["resources"] = needs
            future = self._client.submit(_run_remote, fn, sent, places, *blobs, **options)
            self._stats["submitted"] += 1
            return await future
        except asyncio.CancelledError:
            if future is not None and not future.done():
                self._stats["cancelled"] += 1
                with contextlib.suppress(Exception):
                    await asyncio.shield(future.cancel(reason="cancelled by async-processor"))
            raise
        except distributed.KilledWorker as exc:
            self._stats["crashes"] += 1
            raise WorkerCrashedError(
                f"the Dask worker running task {task.id} died ({exc}); the scheduler gave up on it"
            ) from None
        except distributed.client.FutureCancelledError as exc:
            self._stats["crashes"] += 1
            raise WorkerCrashedError(
                f"the Dask cluster dropped task {task.id} ({exc}); is the scheduler up?"
            ) from None
        finally:
            if self._states[slot] is SlotState.BUSY:
                self._states[slot] = SlotState.IDLE
            del future

    def check_sendable(self, fn: TaskFunction, task: ProcessingTask) -> None:
        """Raise UnsendableTaskError if cloudpickle cannot send ``fn`` or the task (all of
        it travels by cloudpickle: there is nothing to plan)."""
        import cloudpickle

        try:
            cloudpickle.dumps(fn, protocol=5)
        except Exception as exc:
            raise UnsendableTaskError(
                f"the processor function {getattr(fn, '__qualname__', fn)!r} cannot be sent to "
                f"a Dask worker ({type(exc).__name__}: {exc}); define it at module level"
            ) from exc
        for where, values in (
            ("payload", task.payload),
            ("dependency_results", task.dependency_results),
        ):
            for key, value in values.items():
                if type(value) in _PLAIN_TYPES:
                    continue
                try:
                    cloudpickle.dumps(value, protocol=5)
                except Exception as exc:
                    raise UnsendableTaskError(
                        f"task {task.id}: {where}[{key!r}] ({type(value).__qualname__}) cannot "
                        f"be sent to a Dask worker ({type(exc).__name__}: {exc}); pass plain "
                        "data, bytes or numpy arrays, or a path or URL the processor opens"
                    ) from exc

    def slot_state(self, slot: int) -> SlotState:
        """IDLE, BUSY, or STOPPED (not started or shut down)."""
        self._check_slot(slot)
        return self._states[slot]

    def statistics(self) -> dict[str, int]:
        """Submissions, scatters (count, bytes, cache hits), crashes and cancellations."""
        return {**self._stats, "scatter_cached_bytes": self._blob_bytes}

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Release scattered data and close the client if this executor created it."""
        if self._closed:
            return
        self._closed = True
        self._states = [SlotState.STOPPED] * self._capacity
        blobs = [future for future, _ in self._blobs.values()]
        self._blobs.clear()
        self._blob_bytes = 0
        client, self._client = self._client, None
        if client is not None and blobs and client.status == "running":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.cancel(blobs), timeout)
        del blobs
        if client is not None and self._given is None:
            await asyncio.wait_for(client.close(timeout=timeout), timeout + 1)

    # ------------------------------------------------------------------ scattering

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self._capacity:
            raise IndexError(f"slot must be in 0..{self._capacity - 1}, got {slot}")

    async def _prepare(
        self, task: ProcessingTask
    ) -> tuple[ProcessingTask, list[tuple[str, str, Any]], list[Any]]:
        """The task to send (large buffers taken out), where they go, and their futures."""
        places: list[tuple[str, str, Any]] = []
        blobs: list[Any] = []
        parts: dict[str, dict[str, Any]] = {}
        for where, values in (
            ("payload", task.payload),
            ("dependency_results", task.dependency_results),
        ):
            for name, value in values.items():
                found = _blob(value, self._threshold)
                if found is None:
                    continue
                key, data, spec = found
                blobs.append(await self._scatter(key, data))
                places.append((where, name, spec))
                parts.setdefault(where, dict(values)).pop(name)
        if not places:
            return task, places, blobs
        sent = copy.copy(task)
        if "payload" in parts:
            sent.payload = parts["payload"]
        if "dependency_results" in parts:
            sent.dependency_results = parts["dependency_results"]
        return sent, places, blobs

    async def _scatter(self, key: str, data: Any) -> Any:
        """The future of ``data`` on the cluster, scattering it only if not there yet."""
        cached = self._blobs.get(key)
        if cached is not None:
            self._blobs.move_to_end(key)
            self._stats["scatter_hits"] += 1
            return cached[0]
        pending = self._scattering.get(key)
        if pending is not None:
            self._stats["scatter_hits"] += 1
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        self._scattering[key] = done
        try:
            futures = await self._client.scatter({key: data}, hash=False)
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: other waiters re-raise it themselves
            raise
        finally:
            del self._scattering[key]
        future = futures[key]
        done.set_result(future)
        size = len(data) if isinstance(data, bytes | bytearray) else int(data.nbytes)
        self._stats["scattered"] += 1
        self._stats["scattered_bytes"] += size
        self._blobs[key] = (future, size)
        self._blob_bytes += size
        while self._blob_bytes > self._cache_limit and len(self._blobs) > 1:
            _, (_, dropped) = self._blobs.popitem(last=False)
            self._blob_bytes -= dropped
        return future
