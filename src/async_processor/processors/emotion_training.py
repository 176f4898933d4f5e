"""Training of the emotion classifier (:mod:`.emotion_classifier`), numpy only.

Every training sentence is used twice, as written and in speech-to-text style
(:func:`~.emotion_classifier.speech_style`); both copies share a cross-validation group, so
no sentence is ever scored by a model that saw its other copy. The L2 strength is the one
of :data:`~.emotion_classifier.L2_GRID` with the lowest out-of-fold log-loss over
:data:`~.emotion_classifier.FOLDS` folds, and the softmax temperature the one that
minimises the same out-of-fold log-loss. Then the model is fitted on everything.
Nothing outside the training set is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .emotion_classifier import (
    FOLDS,
    L2_GRID,
    LABELS,
    MAX_ITERATIONS,
    SEED,
    TEMPERATURE_GRID,
    TOLERANCE,
    Classifier,
    Example,
    features,
    speech_style,
)
from .extras import require

if TYPE_CHECKING:
    from .emotion_classifier import Encode, Matrix


@dataclass(frozen=True)
class TrainingSet:
    """Encoded training rows: each sentence, then its speech-style copy when it differs."""

    features: Matrix
    labels: Any
    groups: Any
    original: Any
    examples: list[Example]


@dataclass(frozen=True)
class CrossValidation:
    """What k-fold cross-validation on the training set found."""

    l2: float
    temperature: float
    log_loss_by_l2: dict[float, float]
    #: Out-of-fold probabilities of the written sentences (not the copies), calibrated.
    probabilities: Matrix


def training_set(examples: Sequence[Example], encode: Encode | None = None) -> TrainingSet:
    """Encode ``examples`` and their speech-style copies."""
    np = require("numpy", "nlp", "emotion training")
    texts: list[str] = []
    labels: list[int] = []
    groups: list[int] = []
    original: list[bool] = []
    for group, example in enumerate(examples):
        for text in dict.fromkeys((example.text, speech_style(example.text))):
            texts.append(text)
            labels.append(LABELS.index(example.emotion))
            groups.append(group)
            original.append(text == example.text)
    return TrainingSet(
        features(texts, encode),
        np.array(labels),
        np.array(groups),
        np.array(original),
        list(examples),
    )


def fit(x: Matrix, labels: Any, l2: float) -> Classifier:
    """Softmax regression with L2 on the weights (not the bias).

    The centred features are rotated onto their principal axes, which leaves the L2 penalty
    unchanged and makes the gradient's Lipschitz bound diagonal; Nesterov's accelerated
    gradient descent then steps each coordinate by the inverse of its bound.
    """
    np = require("numpy", "nlp", "emotion training")
    mean = x.mean(axis=0)
    _, singular, axes = np.linalg.svd(x - mean, full_matrices=False)
    design = np.hstack([(x - mean) @ axes.T, np.ones((len(x), 1))])
    targets = np.eye(len(LABELS))[labels]
    penalty = np.append(np.full(len(singular), l2), 0.0)[:, None]
    step = 1.0 / (0.5 * np.append(singular**2 / len(x), 1.0)[:, None] + penalty)
    current = np.zeros((design.shape[1], len(LABELS)))
    ahead = current
    for iteration in range(MAX_ITERATIONS):
        gradient = design.T @ (_softmax(design @ ahead) - targets) / len(x) + penalty * ahead
        if np.abs(gradient).max() < TOLERANCE:
            current = ahead
            break
        following = ahead - step * gradient
        ahead = following + iteration / (iteration + 3) * (following - current)
        current = following
    return Classifier(mean, axes.T @ current[:-1], current[-1], 1.0, l2)


def cross_validate(data: TrainingSet) -> CrossValidation:
    """Choose the L2 strength and the temperature by out-of-fold log-loss (module docstring)."""
    np = require("numpy", "nlp", "emotion training")
    folds = _fold_of_rows(data.groups)
    losses: dict[float, float] = {}
    best_logits = None
    for l2 in L2_GRID:
        logits = np.zeros((len(data.labels), len(LABELS)))
        for fold in range(FOLDS):
            held = folds == fold
            model = fit(data.features[~held], data.labels[~held], l2)
            logits[held] = _logits(model, data.features[held])
        losses[l2] = log_loss(_softmax(logits), data.labels)
        if losses[l2] == min(losses.values()):
            best_logits = logits
    assert best_logits is not None
    l2 = min(losses, key=lambda value: losses[value])
    temperature = min(
        TEMPERATURE_GRID,
        key=lambda value: log_loss(_softmax(best_logits / value), data.labels),
    )
    calibrated = _softmax(best_logits / temperature)[data.original]
    return CrossValidation(l2, temperature, losses, calibrated)


def train(data: TrainingSet) -> tuple[Classifier, CrossValidation]:
    """Cross-validate, then fit on the whole training set with the chosen settings."""
    report = cross_validate(data)
    model = fit(data.features, data.labels, report.l2)
    calibrated = Classifier(model.mean, model.weights, model.bias, report.temperature, report.l2)
    return calibrated, report


def log_loss(probabilities: Matrix, labels: Any) -> float:
    """Mean negative log-probability of the true labels."""
    np = require("numpy", "nlp", "emotion training")
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, 1e-12)).mean())


def _fold_of_rows(groups: Any) -> Any:
    """A fold per row: the groups, shuffled with :data:`SEED`, are dealt round the folds."""
    np = require("numpy", "nlp", "emotion training")
    unique = np.unique(groups)
    order = np.random.default_rng(SEED).permutation(len(unique))
    fold_of_group = dict(
        zip(unique[order].tolist(), (np.arange(len(unique)) % FOLDS).tolist(), strict=True)
    )
    return np.array([fold_of_group[group] for group in groups.tolist()])


def _logits(model: Classifier, x: Matrix) -> Matrix:
    result: Matrix = (x - model.mean) @ model.weights + model.bias
    return result


def _softmax(logits: Any) -> Any:
    np = require("numpy", "nlp", "emotion training")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
