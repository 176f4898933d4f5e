"""The process lane's executor: one worker process per slot (see ``executor.py``)."""

from __future__ import annotations

from .executor import ProcessExecutor
from .wire import RemoteTraceback

__all__ = ["ProcessExecutor", "RemoteTraceback"]
