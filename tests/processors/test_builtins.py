"""The registry of built-in processors: every type covered, lazy, picklable, replaceable."""

from __future__ import annotations

import pickle
import sys

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingTask,
    ProcessingType,
    Settings,
    TaskStatus,
    UnknownTaskTypeError,
    create_processor,
    create_task,
)
from async_processor.processors import (
    AsyncBuiltinProcessor,
    BuiltinProcessor,
    builtin_processors,
)


def test_every_type_but_custom_has_a_builtin() -> None:
    builtins = builtin_processors(Settings())
    assert set(builtins) == set(ProcessingType) - {ProcessingType.CUSTOM}
    on_the_loop = {t for t, p in builtins.items() if isinstance(p, AsyncBuiltinProcessor)}
    assert on_the_loop == {
        ProcessingType.AI_RESPONSE,
        ProcessingType.DATABASE_OPERATION,
        ProcessingType.NOTIFICATION,
    }


def test_a_builtin_pickles_with_its_settings() -> None:
    settings = Settings(max_audio_seconds=5)
    builtin = BuiltinProcessor(ProcessingType.DATA_ANALYTICS, settings)
    copy = pickle.loads(pickle.dumps(builtin))
    assert copy.task_type is ProcessingType.DATA_ANALYTICS and copy.settings == settings
    assert "data_analytics" in repr(copy)


def test_constructing_a_processor_imports_no_engine() -> None:
    before = set(sys.modules)
    AdvancedAsyncProcessor(max_process_workers=0, settings=Settings())
    loaded = {name for name in set(sys.modules) - before if name.startswith("async_processor")}
    assert not {
        name for name in loaded if name.rsplit(".", 1)[-1] in ProcessingType._value2member_map_
    }


async def test_registered_processor_replaces_the_builtin() -> None:
    processor = await create_processor(max_process_workers=0)
    try:
        processor.register_processor(ProcessingType.DATA_ANALYTICS, lambda task: "mine")
        task_id = await processor.submit_task(create_task(ProcessingType.DATA_ANALYTICS))
        assert (await processor.wait_for_task(task_id, timeout=10)).result == "mine"
    finally:
        await processor.shutdown()


async def test_missing_extra_fails_the_task_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real import failure (the module set to None in sys.modules), not a fake engine."""
    monkeypatch.setitem(sys.modules, "numpy", None)
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        task = create_task(
            ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": b"\x00\x00", "sample_rate": 16000}
        )
        result = await processor.wait_for_task(await processor.submit_task(task), timeout=30)
        assert result.status is TaskStatus.FAILED
        assert result.error is not None
        assert result.error.startswith("MissingExtraError")
        assert "pip install 'async-processor[audio]'" in result.error
        assert result.attempts == 1  # a missing extra is not worth retrying

        async def still_runs(task: ProcessingTask) -> str:
            return "ok"

        processor.register_processor("ping", still_runs)
        ping = await processor.submit_task(create_task("ping"))
        assert (await processor.wait_for_task(ping, timeout=10)).result == "ok"
    finally:
        await processor.shutdown()


async def test_builtins_can_be_left_out() -> None:
    processor = AdvancedAsyncProcessor(max_process_workers=0, builtin_processors=False)
    assert processor.settings == Settings.from_env()  # no settings given: the environment
    await processor.start()
    try:
        with pytest.raises(UnknownTaskTypeError, match="data_analytics"):
            await processor.submit_task(create_task(ProcessingType.DATA_ANALYTICS))
    finally:
        await processor.shutdown()
