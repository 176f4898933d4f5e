"""TEXT_ANALYSIS: word and sentence counts, VADER sentiment, keywords and safeguarding.

Payload: ``text`` (or a dependency's ``text``, e.g. a transcription's), and optionally
``max_keywords`` (1-100, default 10). Result: ``word_count``, ``sentence_count``,
``sentiment`` ({"compound", "pos", "neu", "neg", "label"}), ``keywords`` (most frequent
words first), ``safeguarding`` (the child-side
:func:`~async_processor.processors.safeguarding.assess_child` verdict as a dict) and
``safety_flags`` (the category ids of its risks, sorted: the same categories).

Sentiment and safeguarding need the ``nlp`` extra (vaderSentiment, numpy) and the MiniLM
model wheel; without them the task fails with MissingExtraError rather than returning a
result without the sentiment or the safety verdict the contract promises. VADER is
scored per sentence and averaged: it is built for short texts, and on one long text its
compound score saturates at +-1 and its run time grows with the square of the length.

Keywords are the words that occur most often once :data:`STOPWORDS` and words under three
letters are left out, ties broken by first occurrence: simple to explain and to check.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from . import extras, inputs, safeguarding
from .safety import FUNCTION_WORDS, split_sentences, word_count

if TYPE_CHECKING:
    from ..task import ProcessingTask
    from .settings import Settings

__all__ = ["MAX_TEXT_CHARS", "STOPWORDS", "analyse", "process"]

#: Longer texts are refused rather than tying up a worker.
MAX_TEXT_CHARS = 100_000
_DEFAULT_KEYWORDS = 10
_MAX_KEYWORDS = 100

_COMMON_WORDS = """also always another anything because come comes did does doing done even
ever get gets getting got go goes going gone good great just know like liked likes little
lot lots make makes made many maybe might must need never nothing said say says see seen
something still take thing things think today told tell really want wanted way went will yes"""

#: Words that are never keywords: function words, plus common verbs and fillers.
STOPWORDS = FUNCTION_WORDS | frozenset(_COMMON_WORDS.split())

_KEYWORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_POSITIVE, _NEGATIVE = 0.05, -0.05  # VADER's own thresholds for the compound score

_analyser: Any = None
_analyser_lock = threading.Lock()


def _sentiment_analyser() -> Any:
    """VADER's analyser, loaded once per process."""
    global _analyser
    with _analyser_lock:
        if _analyser is None:
            vader = extras.require(
                "vaderSentiment.vaderSentiment", "nlp", "Text analysis (sentiment)"
            )
            _analyser = vader.SentimentIntensityAnalyzer()
        return _analyser


def sentiment(sentences: list[str]) -> dict[str, Any]:
    """The mean VADER scores over ``sentences``, and a label from the compound score."""
    analyser = _sentiment_analyser()
    scores = [analyser.polarity_scores(sentence) for sentence in sentences] or [
        {"compound": 0.0, "pos": 0.0, "neu": 1.0, "neg": 0.0}
    ]
    mean = {
        key: round(sum(float(s[key]) for s in scores) / len(scores), 4)
        for key in ("compound", "pos", "neu", "neg")
    }
    compound = mean["compound"]
    label = (
        "positive" if compound >= _POSITIVE else "negative" if compound <= _NEGATIVE else "neutral"
    )
    return {**mean, "label": label}


def keywords(text: str, limit: int = _DEFAULT_KEYWORDS) -> list[str]:
    """The ``limit`` most frequent non-stopwords of three letters or more, lower-case."""
    words = [
        word
        for word in (
            m.group().casefold().replace("'", "").replace("\u2019", "")
            for m in _KEYWORD.finditer(text)
        )
        if len(word) >= 3 and word not in STOPWORDS
    ]
    counts = Counter(words)  # keeps first-occurrence order among equal counts
    return [word for word, _ in sorted(counts.items(), key=lambda item: -item[1])[:limit]]


def analyse(text: str, max_keywords: int = _DEFAULT_KEYWORDS) -> dict[str, Any]:
    """Analyse ``text`` (already checked); the TEXT_ANALYSIS result."""
    sentences = split_sentences(text)
    verdict = safeguarding.assess_child(text)
    return {
        "word_count": word_count(text),
        "sentence_count": len(sentences),
        "sentiment": sentiment(sentences),
        "keywords": keywords(text, max_keywords),
        "safeguarding": verdict.to_dict(),
        "safety_flags": sorted(risk.category.value for risk in verdict.risks),
    }


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Run TEXT_ANALYSIS on the task's text.

    Raises:
        InvalidInputError: no text, not a string, over :data:`MAX_TEXT_CHARS`, or a bad
            ``max_keywords``.
        MissingExtraError: the ``nlp`` extra or the MiniLM model wheel is not installed.
    """
    text = inputs.require_text(task)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"text_analysis accepts at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}; "
            "split the text into several tasks"
        )
    limit = task.payload.get("max_keywords", _DEFAULT_KEYWORDS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_KEYWORDS:
        raise InvalidInputError(
            f"payload['max_keywords'] must be a whole number from 1 to {_MAX_KEYWORDS}, "
            f"got {limit!r}"
        )
    return analyse(text, limit)
