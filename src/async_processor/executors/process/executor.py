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

The parts: the wire format (``wire.py``), what travels and how it is pickled
(``messages.py``), the slots' shared memory (``segments.py``), the caller's ContextVars
(``contextvars_index.py``) and the child's main loop (``child.py``). Functions that stdlib
pickle cannot send (lambdas, nested functions) are sent with
cloudpickle when it is installed (``async-processor[process]``).  Module-level
``ContextVar`` values of the caller are copied to the child and set in a fresh context
around the call.  The child ignores SIGINT (the parent handles Ctrl-C) and exits when
its pipe closes.  POSIX only (``add_reader`` on a pipe needs a selector event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from ...errors import WorkerCrashedError
from ...task import ProcessingTask
from ..base import Executor, SlotState, TaskFunction
from .child import child_main
from .messages import MessageCodec
from .segments import SlotSegment
from .wire import READY, ChildGone, IOVec, Receiver

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["ProcessExecutor"]

_log = logging.getLogger("async_processor.executors.process")

_START_TIMEOUT = 60.0
_EXIT_GRACE = 1.0
_KILL_WAIT = 5.0


class ChildProcess:
    """The parent's side of one slot: its child process, pipe and shared memory."""

    __slots__ = (
        "conn",
        "fd",
        "pid",
        "process",
        "restart_task",
        "rx",
        "shm",
        "slot",
        "state",
        "waiter",
    )

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.state = SlotState.STOPPED
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.fd = -1
        self.pid: int | None = None
        self.rx = Receiver()
        self.waiter: asyncio.Future[bytes | bytearray] | None = None
        self.restart_task: asyncio.Task[None] | None = None
        self.shm = SlotSegment(slot)


def describe_exit(code: int | None) -> str:
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


def set_result(fut: asyncio.Future[Any], value: Any) -> None:
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
        self._workers = [ChildProcess(slot) for slot in range(max_workers)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._restarts = 0
        self._crashes = 0
        self._codec = MessageCodec(shm_threshold)

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
            worker.state = SlotState.RESTARTING
        results = await asyncio.gather(
            *(self._spawn(worker) for worker in self._workers), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.shutdown()
            raise errors[0]

    async def run(
        self, slot: int, fn: TaskFunction, task: ProcessingTask, plan: object = None
    ) -> Any:
        """Run ``fn(task)`` in the slot's process; return its value or raise its exception.

        ``plan`` is what :meth:`check_sendable` answered (decided now when None).

        Raises:
            WorkerCrashedError: the process died while running the task (it is replaced).
            UnsendableTaskError: ``fn`` or the task cannot be pickled.
            asyncio.CancelledError: the caller was cancelled; the process was killed and
                a replacement is starting (``release`` waits for it).
        """
        worker = self._worker(slot)
        if self._closed or not self._started:
            raise RuntimeError("ProcessExecutor is not running: call start() first")
        if worker.state is SlotState.BUSY:
            raise RuntimeError(f"slot {slot} is already running a task")
        if worker.restart_task is not None:
            await asyncio.shield(worker.restart_task)
        if worker.process is None:
            await self._respawn_now(worker, task)
        loop = self._running_loop()
        cloud = self._codec.plan(fn, task) if plan is None else bool(plan)
        parts = self._codec.encode(worker.shm, fn, task, cloud)
        pid = worker.pid
        worker.state = SlotState.BUSY
        reply: asyncio.Future[bytes | bytearray] = loop.create_future()
        worker.waiter = reply
        try:
            await self._send(worker, parts)
            del parts
            frame = await reply
        except asyncio.CancelledError:
            if reply.done() and not reply.cancelled() and reply.exception() is None:
                worker.state = SlotState.IDLE  # the reply arrived: the child is idle again
            elif worker.state is SlotState.BUSY:
                self._begin_restart(worker, kill=True, crashed=False)
            raise
        except ChildGone:
            if self._closed:
                raise WorkerCrashedError(
                    f"the process executor was shut down while task {task.id} was running "
                    f"in worker process {pid} (slot {slot})"
                ) from None
            reaped = self._begin_restart(worker, kill=False, crashed=True)
            code = await asyncio.shield(reaped)
            raise WorkerCrashedError(
                f"worker process {pid} (slot {slot}) died while running task {task.id}: "
                f"{describe_exit(code)}; a replacement process has been started"
            ) from None
        finally:
            worker.waiter = None
        worker.state = SlotState.IDLE
        return self._codec.decode(worker.shm, worker.pid, frame, task)

    async def release(self, slot: int) -> None:
        """Return once the slot can run again (waits for a replacement process to be ready)."""
        worker = self._worker(slot)
        restart = worker.restart_task
        if restart is not None:
            await asyncio.shield(restart)

    def check_sendable(self, fn: TaskFunction, task: ProcessingTask) -> bool:
        """Raise UnsendableTaskError if ``fn`` or the task cannot be pickled to a worker.

        Returns the plan kept with the task's record: True when it travels by cloudpickle.
        """
        return self._codec.plan(fn, task)

    def slot_state(self, slot: int) -> SlotState:
        """IDLE, BUSY, RESTARTING (no ready process yet) or STOPPED (not running)."""
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

    def _worker(self, slot: int) -> ChildProcess:
        if not 0 <= slot < self._max_workers:
            raise IndexError(f"slot must be in 0..{self._max_workers - 1}, got {slot}")
        return self._workers[slot]

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            raise RuntimeError("ProcessExecutor is not running: call start() first")
        return loop

    async def _spawn(self, worker: ChildProcess) -> None:
        """Start a child for ``worker`` and wait for its ready frame."""
        loop = self._running_loop()
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        inherited = []
        if self._start_method == "fork":
            inherited = [w.fd for w in self._workers if w.fd >= 0] + [parent_conn.fileno()]
        process: BaseProcess = self._ctx.Process(
            target=child_main,
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
        worker.rx = Receiver()
        worker.shm.attached = None
        ready: asyncio.Future[bytes | bytearray] = loop.create_future()
        worker.waiter = ready
        loop.add_reader(fd, self._on_readable, worker)
        try:
            frame = await asyncio.wait_for(ready, _START_TIMEOUT)
        except (ChildGone, TimeoutError) as exc:
            worker.waiter = None
            self._detach(worker)
            code = await self._reap(process, kill=True)
            reason = (
                f"it did not report ready within {_START_TIMEOUT:.0f} s"
                if isinstance(exc, TimeoutError)
                else describe_exit(code)
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
        if frame != READY:
            self._detach(worker)
            await self._reap(process, kill=True)
            raise WorkerCrashedError(f"worker process {worker.pid} sent {frame[:20]!r} on start-up")
        worker.state = SlotState.IDLE

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
                loop.call_soon_threadsafe(set_result, done, error)
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

    async def _respawn_now(self, worker: ChildProcess, task: ProcessingTask) -> None:
        """A previous replacement failed to start: try once more for this task."""
        worker.state = SlotState.RESTARTING
        self._restarts += 1
        try:
            await self._spawn(worker)
        except Exception as exc:
            worker.state = SlotState.STOPPED
            raise WorkerCrashedError(
                f"could not start a worker process for slot {worker.slot} to run task "
                f"{task.id}: {exc}"
            ) from exc

    def _on_readable(self, worker: ChildProcess) -> None:
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
                    waiter.set_exception(ChildGone())
            elif worker.state is SlotState.IDLE and not self._closed:
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

    def _detach(self, worker: ChildProcess) -> BaseProcess | None:
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
        worker.shm.attached = None
        return process

    def _begin_restart(
        self, worker: ChildProcess, *, kill: bool, crashed: bool
    ) -> asyncio.Task[int | None]:
        """Detach the current child, kill it if asked, and start a replacement in the background.

        Returns the task that reaps the old child (its result is the exit code).
        """
        loop = self._running_loop()
        process = self._detach(worker)
        if kill and process is not None:
            self._kill(process)
        worker.state = SlotState.RESTARTING
        if crashed:
            self._crashes += 1
        reaped = loop.create_task(self._reap(process, kill=False))
        worker.restart_task = loop.create_task(self._restart(worker, reaped))
        return reaped

    async def _restart(self, worker: ChildProcess, reaped: asyncio.Task[int | None]) -> None:
        try:
            try:
                await reaped
            except Exception:
                _log.exception("reaping the worker process of slot %d failed", worker.slot)
            if self._closed:
                worker.state = SlotState.STOPPED
                return
            self._restarts += 1
            try:
                await self._spawn(worker)
            except Exception:
                worker.state = SlotState.STOPPED
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
        loop.add_reader(sentinel, set_result, gone, None)
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

    async def _send(self, worker: ChildProcess, parts: list[ReadableBuffer]) -> None:
        """Write whole frames to the child's pipe without blocking the loop."""
        pending = IOVec(parts)
        fd = worker.fd
        try:
            pending.write(fd)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            raise ChildGone() from exc
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
                    done.set_exception(ChildGone())
                return
            loop.remove_writer(fd)
            set_result(done, None)

        loop.add_writer(fd, on_writable)
        try:
            await done
        finally:
            if worker.fd == fd:
                loop.remove_writer(fd)

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(self, grace: float) -> None:
        await self._settle_restarts()
        processes: list[BaseProcess] = []
        for worker in self._workers:
            waiter = worker.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ChildGone())
            process = self._detach(worker)  # closing the pipe asks the child to exit
            if process is not None:
                processes.append(process)
            worker.state = SlotState.STOPPED
        if processes:
            loop = self._running_loop()
            deadline = loop.time() + grace
            for process in processes:
                await self._wait_exit(process, max(0.0, deadline - loop.time()))
            await asyncio.gather(*(self._reap(p, kill=True) for p in processes))
        # A run() cancelled meanwhile may have started a restart: it only reaps now.
        await self._settle_restarts()
        for worker in self._workers:
            worker.state = SlotState.STOPPED
            worker.shm.drop()

    async def _settle_restarts(self) -> None:
        """Wait for replacements in progress (cancel them if they hang)."""
        while restarts := [w.restart_task for w in self._workers if w.restart_task is not None]:
            _done, pending = await asyncio.wait(restarts, timeout=_START_TIMEOUT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
