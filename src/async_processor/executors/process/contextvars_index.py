"""Module-level ContextVars, found by name so a worker process can set the caller's values.

A ``ContextVar`` cannot be pickled, but one defined at module level can be found again in
the child by module and attribute name. The index remembers where each variable lives;
values that do not pickle, or pickle to more than 64 KiB, are left out (and logged once).
"""

from __future__ import annotations

import contextvars
import logging
import pickle
import sys
from contextvars import ContextVar
from typing import Any

__all__ = ["ContextVarIndex"]

_log = logging.getLogger("async_processor.executors.process")

_MAX_CONTEXT_VALUE = 64 * 1024


class ContextVarIndex:
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
