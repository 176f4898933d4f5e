"""The built-in processors: one module per ``ProcessingType``, each behind its own extra.

Every processor works offline with no configuration, on engines that ship inside registry
packages, and switches to a provider API only through :class:`Settings`. A processor whose
extra is missing fails its task with :class:`~async_processor.MissingExtraError` (naming the
pip command); nothing heavy is imported until a task of that type runs.

=====================  ============================  =========  ==========================
task type              module                        runs on    extra
=====================  ============================  =========  ==========================
audio_transcription    audio_transcription           thread     stt (or stt-lite), audio
audio_enhancement      audio_enhancement             thread     audio
emotion_analysis       emotion_analysis              thread     nlp, audio; ai for Hume
ai_response            ai_response                   loop       nlp; ai for providers
text_analysis          text_analysis                 thread     nlp
image_processing       image_processing              thread     image
image_generation       image_generation              thread     image; ai for providers
data_analytics         data_analytics                thread     (none)
database_operation     database_operation            loop       db; postgres
notification           notification                  loop       notify
speech_synthesis       speech_synthesis              thread     tts; ai for providers
=====================  ============================  =========  ==========================

"thread" processors run in the process pool instead when a task sets ``cpu_intensive``.

Every built-in's result is refused (InvalidInputError) when it holds more than
``Settings.max_result_bytes``, and a task of a heavy type that sets no timeout gets the one
in ``Settings.default_timeouts`` when it is submitted (the processor reads
:attr:`BuiltinProcessor.default_timeout`).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..task import ProcessingTask, ProcessingType
from .result_size import check_result_size
from .settings import ProviderSettings, Settings, SmtpSettings

__all__ = [
    "AsyncBuiltinProcessor",
    "BuiltinProcessor",
    "ProviderSettings",
    "Settings",
    "SmtpSettings",
    "builtin_processors",
]

#: Built-ins that wait on the network or a database, so they run on the event loop.
_ON_THE_LOOP = frozenset(
    {
        ProcessingType.AI_RESPONSE,
        ProcessingType.DATABASE_OPERATION,
        ProcessingType.NOTIFICATION,
    }
)


class BuiltinProcessor:
    """Runs ``async_processor.processors.<task type>.process(task, settings)``.

    A plain object of module-level state, so it pickles into the process pool; the module
    (and its engine) is imported in whichever process runs the task.
    """

    __slots__ = ("settings", "task_type")

    def __init__(self, task_type: ProcessingType, settings: Settings) -> None:
        self.task_type = task_type
        self.settings = settings

    def __getstate__(self) -> tuple[ProcessingType, Settings]:
        return self.task_type, self.settings

    def __setstate__(self, state: tuple[ProcessingType, Settings]) -> None:
        self.task_type, self.settings = state

    def __repr__(self) -> str:
        return f"<built-in {self.task_type.value} processor>"

    @property
    def default_timeout(self) -> float | None:
        """Seconds a task of this type may run when it sets no timeout of its own."""
        return self.settings.default_timeouts.get(self.task_type.value)

    def _module(self) -> Any:
        return importlib.import_module(f"{__name__}.{self.task_type.value}")

    def _checked(self, result: Any) -> Any:
        return check_result_size(self.task_type.value, result, self.settings.max_result_bytes)

    def __call__(self, task: ProcessingTask) -> Any:
        return self._checked(self._module().process(task, self.settings))


class AsyncBuiltinProcessor(BuiltinProcessor):
    """A built-in that awaits I/O on the event loop."""

    __slots__ = ()

    async def __call__(self, task: ProcessingTask) -> Any:
        return self._checked(await self._module().process(task, self.settings))


def builtin_processors(settings: Settings) -> dict[ProcessingType, BuiltinProcessor]:
    """A processor for every ``ProcessingType`` but ``CUSTOM``, configured by ``settings``."""
    return {
        task_type: (AsyncBuiltinProcessor if task_type in _ON_THE_LOOP else BuiltinProcessor)(
            task_type, settings
        )
        for task_type in ProcessingType
        if task_type is not ProcessingType.CUSTOM
    }
