"""Module-level task functions for tests/test_processor_process.py.

A forkserver worker process imports them by name when it unpickles a task, so they live
in an importable module rather than in the test file.
"""

from __future__ import annotations

import os
import time
from contextvars import ContextVar

from async_processor.task import ProcessingTask

#: A module-level ContextVar: its value in the submitter's context must reach the process.
TENANT: ContextVar[str] = ContextVar("TENANT", default="unset")


def get_pid(task: ProcessingTask) -> int:
    return os.getpid()


def exit_hard(task: ProcessingTask) -> None:
    os._exit(3)


def hang(task: ProcessingTask) -> None:
    """Sleep far longer than any test waits; only a kill ends it early."""
    time.sleep(60)


def add_to_dependencies(task: ProcessingTask) -> int:
    total = int(task.payload.get("x", 0))
    for value in task.dependency_results.values():
        total += int(value["v"])
    return total


def read_tenant(task: ProcessingTask) -> tuple[str, int]:
    return TENANT.get(), os.getpid()


def hang_signalled(task: ProcessingTask) -> None:
    """Write this process's pid into the FIFO ``payload["fifo"]``, then hang like :func:`hang`."""
    fd = os.open(task.payload["fifo"], os.O_WRONLY)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    time.sleep(60)
