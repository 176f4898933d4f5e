"""The trained emotion classifier: its features, its shipped weights and their digest."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from async_processor.errors import MissingExtraError
from async_processor.processors import embeddings
from async_processor.processors import emotion_classifier as ec

np = pytest.importorskip("numpy")

DATA = Path(__file__).resolve().parent.parent / "data" / "emotion"
needs_model = pytest.mark.skipif(
    not embeddings.model_available(),
    reason="the MiniLM wheel is not installed (requirements/models.txt)",
)


def spoken(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        ("It was fun until Max broke my castle and now I'm so mad!", "I'm so mad!"),
        ("I was scared but I did it", "I did it"),
        ("Yay!", "Yay!"),
        ("I love my puppy.", "I love my puppy."),
        ("Wow. Look at that!", "Look at that!"),
        ("It rained but then sun", "It rained"),
    ],
)
def test_last_clause(text: str, clause: str) -> None:
    assert ec.last_clause(text) == clause


def test_speech_style_drops_case_and_punctuation() -> None:
    assert ec.speech_style("No way, you can TALK?!  It's magic.") == "no way you can talk its magic"


def test_the_training_set_is_big_balanced_and_apart_from_the_held_out_sets() -> None:
    """Set A joined the training set after its one scoring (see tests/data/emotion/README.md);
    set B and labelled.jsonl stay apart from it."""
    examples = ec.read_examples()
    for label in ec.LABELS:
        assert sum(example.emotion == label for example in examples) >= 240
    for kind in ec.KINDS:
        assert sum(example.kind == kind for example in examples) >= 200
    training = {spoken(example.text) for example in examples}
    set_b = [json.loads(line) for line in (DATA / "heldout_text_b.jsonl").read_text().splitlines()]
    labelled = [json.loads(line) for line in (DATA / "labelled.jsonl").read_text().splitlines()]
    assert not training & {spoken(row["text"]) for row in set_b + labelled}


def test_read_examples_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"text": "Yay!", "emotion": "happy", "kind": "interjection"}\n'
        '{"text": "Meh", "emotion": "bored", "kind": "plain"}\n'
    )
    with pytest.raises(ValueError, match=r"train.jsonl:2 must be"):
        ec.read_examples(path)


def test_the_shipped_weights_match_their_pinned_digest() -> None:
    digest = hashlib.sha256(ec.WEIGHTS_PATH.read_bytes()).hexdigest()
    assert digest == ec.WEIGHTS_SHA256
    classifier = ec.load(ec.WEIGHTS_PATH, ec.WEIGHTS_SHA256)
    assert classifier.weights.shape == (768, len(ec.LABELS))
    assert classifier.to_bytes() == ec.WEIGHTS_PATH.read_bytes()


def test_damaged_or_missing_weights_are_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "weights.npz"
    data = bytearray(ec.WEIGHTS_PATH.read_bytes())
    data[-100] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(MissingExtraError, match="not the pinned"):
        ec.load(damaged, ec.WEIGHTS_SHA256)
    with pytest.raises(MissingExtraError, match="are missing"):
        ec.load(tmp_path / "absent.npz", ec.WEIGHTS_SHA256)


def test_weights_for_other_labels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    shipped = ec.load(ec.WEIGHTS_PATH, ec.WEIGHTS_SHA256)
    np.savez(
        path,
        mean=shipped.mean,
        weights=shipped.weights,
        bias=shipped.bias,
        temperature=np.array(1.0),
        l2=np.array(1e-4),
        labels=np.array(["yes", "no"]),
    )
    with pytest.raises(MissingExtraError, match="not a classifier for"):
        ec.load(path, hashlib.sha256(path.read_bytes()).hexdigest())


@needs_model
def test_predict_gives_calibrated_rows_for_each_text() -> None:
    probabilities = ec.predict(["Yay, a puppy!", "Ow, my knee!", "Grr, give it back!"])
    assert probabilities.shape == (3, len(ec.LABELS))
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(3))
    assert [ec.LABELS[row] for row in probabilities.argmax(axis=1)] == ["happy", "sad", "angry"]
