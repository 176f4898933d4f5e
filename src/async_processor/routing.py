"""Which function runs a task, and in which lane: :class:`Routes`.

An ``async def`` processor runs on the loop (the ``async`` lane), whatever the task's
hints: a coroutine cannot be shipped to a thread or process without its event loop. A
plain function runs in the ``thread`` lane, or the ``process`` lane for a
``cpu_intensive`` task. ``ProcessingType.CUSTOM`` without a registered processor runs
``payload["processor"](payload)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .errors import InvalidArgumentError, InvalidTaskError, UnknownTaskTypeError
from .executors.base import Executor
from .task import ProcessingTask, ProcessingType

__all__ = ["Route", "Routes", "TaskProcessor", "run_custom", "run_custom_async"]

TaskProcessor = Callable[[ProcessingTask], Any]

#: (the function, its lane, the lane executor's plan for sending it)
Route = tuple[TaskProcessor, str, object]


class _HasExecutor(Protocol):
    executor: Executor | None


def run_custom(task: ProcessingTask) -> Any:
    """``ProcessingType.CUSTOM``: call ``payload["processor"](payload)``."""
    return task.payload["processor"](task.payload)


async def run_custom_async(task: ProcessingTask) -> Any:
    """``ProcessingType.CUSTOM`` with an ``async def`` processor."""
    return await task.payload["processor"](task.payload)


class Routes:
    """The registered processors, and the route of each task."""

    def __init__(self) -> None:
        #: By task type name: the function and whether it is ``async``.
        self.processors: dict[str, tuple[TaskProcessor, bool]] = {}

    def register(self, task_type: ProcessingType | str, func: TaskProcessor) -> None:
        if isinstance(task_type, ProcessingType):
            name = task_type.value
        elif isinstance(task_type, str) and task_type:
            name = task_type
        else:
            raise InvalidArgumentError(
                f"task_type must be a ProcessingType or a non-empty string, got {task_type!r}"
            )
        if not callable(func):
            raise InvalidArgumentError(f"the processor for {name!r} must be callable, got {func!r}")
        self.processors[name] = (func, is_async(func))

    def register_all(self, processors: Mapping[ProcessingType | str, TaskProcessor]) -> None:
        """Register ``{task_type: function}``; InvalidArgumentError if it is no mapping."""
        if not isinstance(processors, Mapping):
            raise InvalidArgumentError(
                "processors must be a mapping of task type to function, "
                f"e.g. {{'greet': greet}}, got {type(processors).__name__}"
            )
        for task_type, func in processors.items():
            self.register(task_type, func)

    def route(self, task: ProcessingTask, lanes: Mapping[str, _HasExecutor]) -> Route:
        """Find the task's function and lane, and check that it can reach that lane.

        Raises:
            InvalidTaskError: not a ProcessingTask, a CUSTOM task without a processor, or
                no pool for its lane; UnknownTaskTypeError: no processor for its type;
                UnsendableTaskError: the lane's executor cannot send it.
        """
        fn, asynchronous = self._function(task)
        if task.timeout is None:  # a built-in's Settings.default_timeouts (docs/security.md)
            task.timeout = getattr(fn, "default_timeout", None)
        if asynchronous:
            return fn, "async", None
        name = "process" if task.cpu_intensive else "thread"
        lane = lanes.get(name)
        if lane is None:
            setting = "max_process_workers" if name == "process" else "max_thread_workers"
            raise InvalidTaskError(
                f"task {task.id} needs the {name} pool, but this processor has none "
                f"({setting}=0); raise {setting} or make the processor 'async def'"
            )
        plan = None if lane.executor is None else lane.executor.check_sendable(fn, task)
        return fn, name, plan

    def _function(self, task: ProcessingTask) -> tuple[TaskProcessor, bool]:
        if not isinstance(task, ProcessingTask):
            raise InvalidTaskError(
                f"submit_task() takes a ProcessingTask (see create_task()), got "
                f"{type(task).__name__}"
            )
        entry = self.processors.get(task.type_name)
        if entry is not None:
            return entry
        if task.task_type is ProcessingType.CUSTOM:
            custom = task.payload.get("processor")
            if not callable(custom):
                raise InvalidTaskError(
                    "a CUSTOM task needs payload['processor'], a callable that takes the "
                    "payload, or a processor registered for ProcessingType.CUSTOM"
                )
            asynchronous = is_async(custom)
            return (run_custom_async if asynchronous else run_custom), asynchronous
        known = ", ".join(sorted(self.processors)) or "none yet"
        raise UnknownTaskTypeError(
            f"no processor is registered for task type {task.type_name!r} "
            f"(registered: {known}); call processor.register_processor("
            f"{task.type_name!r}, func) first"
        )


def is_async(func: Callable[..., Any]) -> bool:
    """Whether ``func`` (or an object's ``__call__``) is an ``async def``."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
