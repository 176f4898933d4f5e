"""Optional dependencies: import on first use, or fail the task with the pip command."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from types import ModuleType

from ..errors import MissingExtraError

__all__ = ["has_module", "require", "require_off_loop"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the {module!r} package, which is not installed "
            f"({exc}); install it with: pip install 'async-processor[{extra}]'"
        ) from exc


async def require_off_loop(module: str, extra: str, purpose: str) -> ModuleType:
    """:func:`require` for code on the event loop: a library's first import takes 30-70 ms,
    which would stall every task on the loop, so it happens in a worker thread."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    return await asyncio.to_thread(require, module, extra, purpose)


def has_module(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
