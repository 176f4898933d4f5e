"""Task functions for the process-executor tests.

They live in their own importable module (not in the test file) so a forkserver child
can import them by name when it unpickles a task.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from async_processor.errors import NonRetryableError
from async_processor.task import ProcessingTask

#: A module-level ContextVar: its value in the caller's context must reach the child.
REQUEST_ID: ContextVar[str] = ContextVar("REQUEST_ID", default="unset")


class InputRejectedError(NonRetryableError):
    """A NonRetryableError subclass that pickles normally."""


class StubbornError(Exception):
    """An exception whose __init__ signature breaks unpickling (args != constructor args)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code


class StubbornFatalError(NonRetryableError):
    """A NonRetryableError subclass that cannot be rebuilt from its args."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"fatal {code}: {detail}")


def add_one(task: ProcessingTask) -> int:
    return int(task.payload["x"]) + 1


def get_pid(task: ProcessingTask) -> int:
    return os.getpid()


def fail_value_error(task: ProcessingTask) -> None:
    raise ValueError(f"bad input {task.payload.get('x')!r}")


def fail_non_retryable(task: ProcessingTask) -> None:
    raise InputRejectedError("the audio is empty")


def fail_stubborn(task: ProcessingTask) -> None:
    raise StubbornError(7, "does not round-trip")


def fail_stubborn_fatal(task: ProcessingTask) -> None:
    raise StubbornFatalError(9, "does not round-trip either")


def exit_3(task: ProcessingTask) -> None:
    os._exit(3)


def segfault(task: ProcessingTask) -> None:
    ctypes.string_at(0)


def sleep_then_pid(task: ProcessingTask) -> int:
    time.sleep(float(task.payload.get("seconds", 60)))
    return os.getpid()


def rendezvous(task: ProcessingTask) -> int:
    """Mark ``folder/me``, then wait (30 s at most) until ``folder/other`` is marked too."""
    folder = Path(task.payload["folder"])
    (folder / task.payload["me"]).touch()
    give_up = time.monotonic() + 30.0
    while not (folder / task.payload["other"]).exists():
        if time.monotonic() > give_up:
            raise TimeoutError(f"{task.payload['other']} never arrived: the slots ran in turn")
        time.sleep(0.005)
    return os.getpid()


def wait_for_release(task: ProcessingTask) -> int:
    """Wait (30 s at most) until ``folder/release`` exists, then mark ``folder/done``."""
    folder = Path(task.payload["folder"])
    give_up = time.monotonic() + 30.0
    while not (folder / "release").exists() and time.monotonic() < give_up:
        time.sleep(0.005)
    (folder / "done").touch()
    return os.getpid()


def describe_data(task: ProcessingTask) -> tuple[str, int, str]:
    """Type name, size and sha256 of ``payload["data"]`` as the child sees it."""
    data = task.payload["data"]
    view = memoryview(data)
    return type(data).__name__, view.nbytes, hashlib.sha256(view.cast("B")).hexdigest()


def describe_view(task: ProcessingTask) -> tuple[str, str, tuple[int, ...], int]:
    view = task.payload["view"]
    return type(view).__name__, view.format, tuple(view.shape or ()), view.nbytes


def describe_array(task: ProcessingTask) -> tuple[str, str, tuple[int, ...], float, bool]:
    array = task.payload["array"]
    return (
        f"{type(array).__module__}.{type(array).__name__}",
        array.dtype.str,
        tuple(array.shape),
        float(array.sum()),
        bool(array.flags.f_contiguous and not array.flags.c_contiguous),
    )


def echo_data(task: ProcessingTask) -> Any:
    return task.payload["data"]


def make_bytes(task: ProcessingTask) -> bytes:
    """``payload["size"]`` deterministic bytes, made in the child."""
    size = int(task.payload["size"])
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def sum_items(task: ProcessingTask) -> int:
    return sum(task.payload["items"])


def read_request_id(task: ProcessingTask) -> str:
    return REQUEST_ID.get()


def dependency_keys(task: ProcessingTask) -> list[str]:
    return sorted(task.dependency_results)


def fail_with_cause(task: ProcessingTask) -> None:
    """A KeyError on a missing payload field, re-raised as ValueError from it."""
    try:
        task.payload["text"]
    except KeyError as exc:
        raise ValueError("the payload has no text") from exc
