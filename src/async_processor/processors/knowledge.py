"""Short, true answers to children's questions, from a curated knowledge base.

The knowledge base is data, ``data/knowledge/child_qa.jsonl`` beside this module: one entry a
line, ``{"id", "topic", "questions": [2-4 phrasings], "answer"}``, written for children aged
3-10. A child's question is embedded with all-MiniLM-L6-v2 (:mod:`.embeddings`); an entry's
score is a weighted mean of the cosine similarity to its nearest phrasing and to its answer
(:data:`ANSWER_WEIGHT`: the answer names what the question is about in more words than a
short phrasing does). The best entry is given if its score reaches :data:`THRESHOLD`; below
it the bear should not answer with a confident guess, and the caller says kindly that it is
not sure.

Phrasings and answers are embedded once per process (:func:`warm_up`, or the first
:func:`lookup`), or read from ``child_qa_vectors.npz`` beside the data when that file was
made from the same knowledge base and model (``tools/build_knowledge_vectors.py``): a
knowledge base edited without rebuilding it is embedded at warm-up instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import embeddings, extras
from .risk_replies import is_question

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ANSWER_WEIGHT",
    "KNOWLEDGE_FILE",
    "NOT_SURE",
    "THRESHOLD",
    "VECTORS_FILE",
    "Entry",
    "Match",
    "digest",
    "embed",
    "entries",
    "entry_scores",
    "is_question",
    "load_entries",
    "lookup",
    "not_sure_reply",
    "subject",
    "warm_up",
]

#: Lowest entry score (see the module docstring) for the entry to be given as the answer.
#: This and :data:`ANSWER_WEIGHT` were chosen by ``tools/tune_knowledge.py`` on the knowledge
#: base's own phrasings (leave one out) and ``tools/knowledge_tuning.jsonl``.
THRESHOLD = 0.55
#: Weight of the similarity to the answer against that to the nearest phrasing (weight 1).
ANSWER_WEIGHT = 6.0

#: Said instead of a confident guess when no entry matches well enough.
NOT_SURE = (
    "I'm not sure! Shall we ask a grown-up together?",
    "Hmm, I don't know that one. Let's ask a grown-up together!",
    "That's a great question, and I'm not sure of the answer. Shall we ask a grown-up?",
)

#: "Can you tell me", "do you know", "tell me about"...: a wrapper around what is asked.
_WRAPPER = re.compile(
    r"^\W*(?:(?:can|could|will|would) you (?:please )?(?:tell|teach|show) me|do you know|"
    r"i (?:want to know|wonder)|tell me)(?: about)?\b\W*",
    re.IGNORECASE,
)
_TO_THE_BEAR = re.compile(r"\b(?:you|your|yours|yourself|you're|youre)\b", re.IGNORECASE)
_MIN_QUESTIONS = 2
KNOWLEDGE_FILE = "child_qa.jsonl"
VECTORS_FILE = "child_qa_vectors.npz"
_MAX_QUESTIONS = 4
_FIELDS = frozenset(("id", "topic", "questions", "answer"))


@dataclass(frozen=True)
class Entry:
    """One question a child asks, in a few phrasings, and the bear's answer."""

    id: str
    topic: str
    questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Match:
    """The nearest entry to the child's words, and whether it is close enough to answer."""

    nearest: Entry
    similarity: float
    threshold: float

    @property
    def entry(self) -> Entry | None:
        """The entry to answer with, or None when nothing matches well enough."""
        return self.nearest if self.similarity >= self.threshold else None

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "topic", "similarity", "answered"}`` for a task's result."""
        return {
            "id": self.nearest.id,
            "topic": self.nearest.topic,
            "similarity": round(self.similarity, 4),
            "answered": self.entry is not None,
        }


def subject(text: str) -> str | None:
    """What to look up for ``text``: a question or a "tell me about ..." request, without the
    wrapper ("can you tell me why cats purr" -> "why cats purr"). None when ``text`` asks
    nothing, or asks about the bear itself ("do you sleep?"): that is for the reply bank."""
    unwrapped = _WRAPPER.sub("", text, count=1).strip()
    if not unwrapped or _TO_THE_BEAR.search(unwrapped):
        return None
    if unwrapped != text.strip() or is_question(text):
        return unwrapped
    return None


def not_sure_reply(seed: int) -> str:
    """One of :data:`NOT_SURE`, the same for the same ``seed``."""
    return NOT_SURE[seed % len(NOT_SURE)]


def load_entries(lines: Iterable[str] | None = None) -> tuple[Entry, ...]:
    """The entries in ``lines`` (JSON Lines), or in the shipped knowledge base.

    Raises:
        ValueError: a line is not a valid entry, or an id repeats (the message names the
            line and what to fix).
    """
    if lines is None:
        lines = _knowledge_text().splitlines()
    parsed: list[Entry] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = _entry(line, number)
        if entry.id in seen:
            raise ValueError(f"knowledge base line {number}: id {entry.id!r} is used twice")
        seen.add(entry.id)
        parsed.append(entry)
    if not parsed:
        raise ValueError("knowledge base: no entries; each line needs one JSON entry")
    return tuple(parsed)


def _knowledge_text() -> str:
    source = resources.files(__package__) / "data" / "knowledge" / KNOWLEDGE_FILE
    return source.read_text(encoding="utf-8")


def _entry(line: str, number: int) -> Entry:
    where = f"knowledge base line {number}"
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
    if not isinstance(item, dict) or set(item) != _FIELDS:
        raise ValueError(f"{where}: needs exactly the keys {sorted(_FIELDS)}")
    for key in ("id", "topic", "answer"):
        if not isinstance(item[key], str) or not item[key].strip():
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
    questions = item["questions"]
    if (
        not isinstance(questions, list)
        or not _MIN_QUESTIONS <= len(questions) <= _MAX_QUESTIONS
        or not all(isinstance(q, str) and q.strip() for q in questions)
    ):
        raise ValueError(
            f"{where}: 'questions' must be a list of {_MIN_QUESTIONS}-{_MAX_QUESTIONS} "
            "non-empty phrasings"
        )
    return Entry(item["id"], item["topic"], tuple(questions), item["answer"])


@dataclass(frozen=True)
class _Index:
    entries: tuple[Entry, ...]
    phrasings: npt.NDArray[np.float32]  # one L2-normalised row per phrasing
    owners: npt.NDArray[np.intp]  # the entry (index into ``entries``) of each phrasing
    answers: npt.NDArray[np.float32]  # one row per entry


_lock = threading.Lock()
_index: _Index | None = None


def _build_index(knowledge: Sequence[Entry], digest: str | None = None) -> _Index:
    """The index of ``knowledge``; its vectors from the shipped file when ``digest`` (of the
    knowledge base's text) matches the file's, else embedded now."""
    np = extras.require("numpy", "nlp", "The knowledge base's index")
    owners = np.array([i for i, entry in enumerate(knowledge) for _ in entry.questions])
    shipped = _shipped_vectors(digest) if digest is not None else None
    if shipped is not None and shipped[0].shape[0] == len(owners):
        return _Index(tuple(knowledge), shipped[0], owners, shipped[1])
    phrasings, answers = embed(knowledge)
    return _Index(tuple(knowledge), phrasings, owners, answers)


def embed(
    knowledge: Sequence[Entry],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(one row per phrasing, in order; one row per answer) for ``knowledge``."""
    phrasings = [question for entry in knowledge for question in entry.questions]
    return embeddings.encode(phrasings), embeddings.encode([entry.answer for entry in knowledge])


def digest(text: str) -> str:
    """What the shipped vectors must have been made from: the knowledge base's text and the
    embedding model's weights."""
    return hashlib.sha256(f"{embeddings.MODEL_SHA256}\n{text}".encode()).hexdigest()


def _shipped_vectors(
    expected: str,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    np = extras.require("numpy", "nlp", "The knowledge base's index")
    source = resources.files(__package__) / "data" / "knowledge" / VECTORS_FILE
    if not source.is_file():
        return None
    with source.open("rb") as stream, np.load(stream, allow_pickle=False) as stored:
        if str(stored["digest"]) != expected:
            return None
        return stored["phrasings"], stored["answers"]


def entry_scores(
    to_phrasings: npt.NDArray[np.float32],
    owners: npt.NDArray[np.intp],
    to_answers: npt.NDArray[np.float32],
    answer_weight: float = ANSWER_WEIGHT,
) -> npt.NDArray[np.float64]:
    """Each entry's score from a text's similarities to every phrasing (``owners`` says
    whose) and to every answer: the weighted mean of its best phrasing and its answer."""
    numpy = extras.require("numpy", "nlp", "The knowledge base's scores")
    nearest = numpy.full(len(to_answers), -1.0)
    numpy.maximum.at(nearest, owners, to_phrasings)
    result: npt.NDArray[np.float64] = (nearest + answer_weight * to_answers) / (1 + answer_weight)
    return result


def _shared_index() -> _Index:
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                text = _knowledge_text()
                _index = _build_index(load_entries(text.splitlines()), digest(text))
    return _index


def warm_up() -> None:
    """Index the knowledge base and load the embedding model now, not at the first question.

    Raises:
        MissingExtraError: the ``nlp`` extra or the model wheel is not installed.
    """
    if _index is None:  # later calls cost nothing
        _shared_index()
        embeddings.encode(["warm up"])


def entries() -> tuple[Entry, ...]:
    """The shipped knowledge base's entries (as indexed)."""
    return _shared_index().entries


def lookup(text: str, threshold: float = THRESHOLD) -> Match:
    """The entry nearest to ``text`` and its similarity.

    CPU-bound (one sentence embedding): call it from a worker thread.

    Raises:
        ValueError: ``text`` is empty.
        MissingExtraError: the ``nlp`` extra or the model wheel is not installed.
    """
    if not text.strip():
        raise ValueError("knowledge lookup needs the child's words, got an empty text")
    index = _shared_index()
    vector = embeddings.encode([text])[0]
    scores = entry_scores(index.phrasings @ vector, index.owners, index.answers @ vector)
    best = int(scores.argmax())
    return Match(index.entries[best], float(scores[best]), threshold)
