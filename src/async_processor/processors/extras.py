"""Optional dependencies: import on first use, or fail the task with the pip command."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..errors import MissingExtraError

__all__ = ["has_module", "require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the {module!r} package, which is not installed "
            f"({exc}); install it with: pip install 'async-processor[{extra}]'"
        ) from exc


def has_module(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
