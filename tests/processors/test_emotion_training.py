"""Training the emotion classifier: the optimiser's optimum, the folds, determinism."""

from __future__ import annotations

from typing import Any

import pytest

from async_processor.processors import embeddings
from async_processor.processors import emotion_classifier as ec
from async_processor.processors import emotion_training as et

np = pytest.importorskip("numpy")

needs_model = pytest.mark.skipif(
    not embeddings.model_available(),
    reason="the MiniLM wheel is not installed (requirements/models.txt)",
)


def toy(rows: int = 240, dimension: int = 20) -> tuple[Any, Any]:
    """Six noisy clusters, one per label."""
    rng = np.random.default_rng(0)
    labels = np.arange(rows) % len(ec.LABELS)
    centres = rng.normal(size=(len(ec.LABELS), dimension))
    return centres[labels] + rng.normal(scale=1.5, size=(rows, dimension)), labels


def test_fit_reaches_the_regularised_optimum() -> None:
    x, labels = toy()
    model = et.fit(x, labels, 1e-2)
    logits = (x - model.mean) @ model.weights + model.bias
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    residual = shifted / shifted.sum(axis=1, keepdims=True) - np.eye(len(ec.LABELS))[labels]
    gradient = (x - model.mean).T @ residual / len(x) + 1e-2 * model.weights
    assert np.abs(gradient).max() < 1e-5
    assert np.abs(residual.sum(axis=0)).max() / len(x) < 1e-5  # the bias's gradient
    assert (model.probabilities(x).argmax(axis=1) == labels).mean() > 0.8


def test_stronger_l2_gives_smaller_weights() -> None:
    x, labels = toy()
    weak, strong = et.fit(x, labels, 1e-4), et.fit(x, labels, 1e-1)
    assert np.linalg.norm(strong.weights) < np.linalg.norm(weak.weights)


def test_a_sentence_and_its_copy_share_a_fold() -> None:
    groups = np.repeat(np.arange(50), 2)
    folds = et._fold_of_rows(groups)
    assert (folds[::2] == folds[1::2]).all()
    assert sorted(set(folds.tolist())) == list(range(ec.FOLDS))


@needs_model
def test_training_on_a_slice_is_deterministic() -> None:
    examples = ec.read_examples()
    sliced = [
        example
        for label in ec.LABELS
        for example in [e for e in examples if e.emotion == label][:6]
    ]
    data = et.training_set(sliced)
    assert data.original.sum() == len(sliced)
    first, report = et.train(data)
    second, _ = et.train(data)
    assert first.to_bytes() == second.to_bytes()
    assert report.l2 in ec.L2_GRID and report.temperature in ec.TEMPERATURE_GRID
    assert report.probabilities.shape == (len(sliced), len(ec.LABELS))
