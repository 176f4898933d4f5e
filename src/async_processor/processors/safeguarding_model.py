"""The safeguarding classifier's model: a softmax over "safe" and the risk categories,
on MiniLM sentence embeddings, one set of weights per side (the child's words, a reply).

The weights are trained by ``tools/train_safeguarding.py`` from the labelled sentences in
``processors/data/safeguarding/train_*.jsonl`` and shipped beside them as ``model.npz``,
with ``model.json`` (the weights' sha256, the training data's sha256, the thresholds
chosen by cross-validation). :func:`load` checks the digest before it uses the weights.

Training is deterministic (zero initial weights, full-batch Adam, fixed step count), so
the same embeddings always give the same weights. Needs numpy (the ``nlp`` extra).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from .extras import require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DATA_FILES",
    "SIDES",
    "SideModel",
    "SideThresholds",
    "TrainingSettings",
    "data_directory",
    "file_sha256",
    "fit",
    "load",
    "probabilities",
]

#: The sides with their own weights, in the order of ``model.json``.
SIDES = ("child", "reply")
#: The training data files, by side.
DATA_FILES = {"child": "train_child.jsonl", "reply": "train_reply.jsonl"}
_PURPOSE = "the safeguarding classifier"
_RETRAIN = "retrain with: python tools/train_safeguarding.py, or reinstall async-processor"


def data_directory() -> Path:
    """The folder that holds the training data, the weights and the manifest."""
    return Path(str(resources.files("async_processor.processors") / "data" / "safeguarding"))


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class SideThresholds:
    """Decision points on the risk score ``1 - p(safe)`` (chosen by cross-validation).

    Attributes:
        flag: a score at or above this is a risk.
        uncertain: a score from this up to the flag threshold is the low-confidence band.
        category: besides the most likely category, any category whose probability
            reaches this is reported too.
        high: the flag threshold when the most likely category is of HIGH severity on
            the side (recall first for disclosures and self-harm); at most ``flag``.
            ``None``: the same as ``flag``.
    """

    flag: float
    uncertain: float
    category: float
    high: float | None = None

    def flag_for(self, high_severity: bool) -> float:
        """The flag threshold for a piece whose most likely category is (or is not) HIGH."""
        if high_severity and self.high is not None:
            return min(self.high, self.flag)
        return self.flag


@dataclass(frozen=True, slots=True)
class SideModel:
    """One side's weights: ``hidden`` (384 x h) and ``output`` (h x classes) with biases;
    class 0 is "safe", the rest are the categories in ``labels`` order."""

    labels: tuple[str, ...]
    hidden: Any
    hidden_bias: Any
    output: Any
    output_bias: Any
    thresholds: SideThresholds


def probabilities(model: SideModel, vectors: npt.NDArray[np.float32]) -> Any:
    """Class probabilities for each row of ``vectors`` (shape ``(n, 1 + categories)``)."""
    np = require("numpy", "nlp", _PURPOSE)
    hidden = np.maximum(vectors @ model.hidden + model.hidden_bias, 0.0)
    return _softmax(np, hidden @ model.output + model.output_bias)


def _softmax(np: Any, logits: Any) -> Any:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def load(directory: Path | None = None) -> dict[str, SideModel]:
    """Both sides' models from ``directory`` (default: the shipped data), after checking the
    weights file against the sha256 in ``model.json``.

    Raises:
        MissingExtraError: numpy is missing, or a file is missing, damaged or not the one
            the manifest names.
    """
    np = require("numpy", "nlp", _PURPOSE)
    directory = data_directory() if directory is None else directory
    manifest_path, weights_path = directory / "model.json", directory / "model.npz"
    for path in (manifest_path, weights_path):
        if not path.is_file():
            raise MissingExtraError(f"{_PURPOSE} has no {path.name} in {directory}; {_RETRAIN}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    raw = weights_path.read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != manifest.get("weights_sha256"):
        raise MissingExtraError(
            f"{_PURPOSE}'s weights {weights_path} have sha256 {actual}, not the "
            f"{manifest.get('weights_sha256')} that model.json names: the file is damaged or "
            f"was changed by hand; {_RETRAIN}"
        )
    with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
        return {
            side: SideModel(
                labels=tuple(manifest["labels"]),
                hidden=arrays[f"{side}_hidden"],
                hidden_bias=arrays[f"{side}_hidden_bias"],
                output=arrays[f"{side}_output"],
                output_bias=arrays[f"{side}_output_bias"],
                thresholds=SideThresholds(**manifest["thresholds"][side]),
            )
            for side in SIDES
        }


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    """The fixed training recipe (changing it changes the shipped weights)."""

    hidden: int = 128
    steps: int = 400
    learning_rate: float = 0.01
    l2: float = 1e-4
    seed: int = 9


def fit(
    vectors: npt.NDArray[np.float32],
    classes: Sequence[int],
    n_classes: int,
    settings: TrainingSettings = TrainingSettings(),
) -> tuple[Any, Any, Any, Any]:
    """Train the two-layer network: (hidden, hidden_bias, output, output_bias).

    Each class weighs the same in the loss whatever its size (safe sentences outnumber
    each category). Deterministic for the same inputs and BLAS (float32 throughout).
    """
    np = require("numpy", "nlp", _PURPOSE)
    x = np.asarray(vectors, dtype=np.float32)
    y = np.asarray(classes, dtype=np.int64)
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    sample_weight = (len(y) / (n_classes * np.maximum(counts, 1.0)))[y] / len(y)
    rng = np.random.default_rng(settings.seed)
    params = [
        rng.normal(0.0, (2.0 / x.shape[1]) ** 0.5, (x.shape[1], settings.hidden)),
        np.zeros(settings.hidden),
        rng.normal(0.0, (1.0 / settings.hidden) ** 0.5, (settings.hidden, n_classes)),
        np.zeros(n_classes),
    ]
    params = [p.astype(np.float32) for p in params]
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for step in range(1, settings.steps + 1):
        grads = _gradients(np, x, onehot, sample_weight, params, settings.l2)
        for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
            first, second = moments[index]
            first = np.float32(0.9) * first + np.float32(0.1) * grad
            second = np.float32(0.999) * second + np.float32(0.001) * grad * grad
            moments[index] = (first, second)
            corrected = first / (1 - 0.9**step)
            scale = np.sqrt(second / (1 - 0.999**step)) + 1e-8
            param -= (settings.learning_rate * corrected / scale).astype(np.float32)
    return params[0], params[1], params[2], params[3]


def _gradients(
    np: Any, x: Any, onehot: Any, weight: Any, params: list[Any], l2: float
) -> list[Any]:
    """Gradients of the weighted cross-entropy plus L2 on the two weight matrices."""
    hidden_w, hidden_b, out_w, out_b = params
    pre = x @ hidden_w + hidden_b
    hidden = np.maximum(pre, 0.0)
    error = (_softmax(np, hidden @ out_w + out_b) - onehot) * weight[:, None]
    back = (error @ out_w.T) * (pre > 0)
    return [
        x.T @ back + l2 * hidden_w,
        back.sum(axis=0),
        hidden.T @ error + l2 * out_w,
        error.sum(axis=0),
    ]
