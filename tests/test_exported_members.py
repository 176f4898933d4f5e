"""The package root's __all__: sorted, exactly its public names, and the CONTRACT's names."""

from __future__ import annotations
import __future__

import inspect
from types import ModuleType

import async_processor
from async_processor import errors

#: Named by the CONTRACT ("Exported from the package root, with __all__").
CONTRACT_NAMES = {
    "AdvancedAsyncProcessor",
    "ProcessingTask",
    "TaskResult",
    "TaskStatus",
    "TaskPriority",
    "ProcessingType",
    "TaskManager",
    "PerformanceMonitor",
    "create_processor",
    "create_task",
}


#: The public read and event API of the processor (issue 16); the service relies on them.
READ_API_NAMES = {"TaskView", "TaskEvent"}


def public_names() -> set[str]:
    return {
        name
        for name, value in vars(async_processor).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)  # submodules bound by the imports
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }


def test_all_is_sorted_and_unique() -> None:
    names = list(async_processor.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_all_equals_the_public_names() -> None:
    assert set(async_processor.__all__) == public_names() | {"__version__"}


def test_every_exported_name_exists() -> None:
    for name in async_processor.__all__:
        assert hasattr(async_processor, name), name


def test_contract_names_are_exported() -> None:
    assert set(async_processor.__all__) >= CONTRACT_NAMES


def test_read_api_names_are_exported() -> None:
    assert set(async_processor.__all__) >= READ_API_NAMES
    for method in ("view", "tasks", "dependents", "add_listener"):
        assert callable(getattr(async_processor.AdvancedAsyncProcessor, method)), method


def test_every_error_class_is_exported() -> None:
    error_classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.AsyncProcessorError)
    }
    assert error_classes == set(errors.__all__)
    assert set(async_processor.__all__) >= error_classes
    for name in error_classes:
        assert getattr(async_processor, name) is getattr(errors, name)


def test_signal_helper_and_version_are_exported() -> None:
    assert "install_signal_handlers" in async_processor.__all__
    assert isinstance(async_processor.__version__, str) and async_processor.__version__


def test_issue_13_names_are_exported() -> None:
    for method in ("wait_for_tasks", "as_completed", "__aenter__", "__aexit__"):
        assert callable(getattr(async_processor.AdvancedAsyncProcessor, method)), method
    assert {"error_type", "traceback"} <= set(async_processor.TaskResult.__dataclass_fields__)
