"""Train the emotion classifier and write its weights into the package.

    PYTHONPATH=src python tools/train_emotion.py [--cache FILE] [--check]

Reads ``processors/data/emotion/train.jsonl`` only (never the held-out sets in
``tests/data/emotion``), chooses the L2 strength and the temperature by cross-validation
(:mod:`async_processor.processors.emotion_training`), fits on every training sentence and
writes ``processors/data/emotion/weights.npz``. It prints the cross-validated accuracy per
label and per kind, and the weights' sha256, which goes into
``emotion_classifier.WEIGHTS_SHA256``. With ``--check`` it writes nothing and fails unless
the new weights are byte for byte the shipped ones. ``--cache`` keeps the sentence
embeddings in a file between runs (encoding is the slow part).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Small matrices: one BLAS thread is faster than several fighting over two cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

from async_processor.processors import embeddings
from async_processor.processors import emotion_classifier as ec
from async_processor.processors import emotion_training as et


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="npz file of cached sentence embeddings")
    parser.add_argument("--check", action="store_true", help="compare with the shipped weights")
    args = parser.parse_args(argv)
    examples = ec.read_examples(ec.TRAIN_PATH)
    encode = cached_encoder(args.cache) if args.cache else embeddings.encode
    data = et.training_set(examples, encode)
    classifier, report = et.train(data)
    print_report(examples, data, report)
    weights = classifier.to_bytes()
    digest = hashlib.sha256(weights).hexdigest()
    if args.check:
        shipped = ec.WEIGHTS_PATH.read_bytes() if ec.WEIGHTS_PATH.is_file() else b""
        same = shipped == weights and digest == ec.WEIGHTS_SHA256
        print(f"sha256 {digest}: {'the same as' if same else 'DIFFERENT from'} the shipped weights")
        return 0 if same else 1
    ec.WEIGHTS_PATH.write_bytes(weights)
    print(f"wrote {ec.WEIGHTS_PATH} ({len(weights)} bytes), sha256 {digest}")
    if digest != ec.WEIGHTS_SHA256:
        print("set emotion_classifier.WEIGHTS_SHA256 to that digest")
    return 0


def print_report(
    examples: Sequence[ec.Example], data: et.TrainingSet, report: et.CrossValidation
) -> None:
    """Cross-validated figures of the written sentences (their copies are not counted)."""
    truth = data.labels[data.original]
    guess = report.probabilities.argmax(axis=1)
    kinds = np.array([example.kind for example in examples])
    losses = ", ".join(f"{l2:g}: {loss:.3f}" for l2, loss in report.log_loss_by_l2.items())
    print(f"{len(examples)} sentences, {len(data.labels)} rows with the speech-style copies")
    print(f"out-of-fold log-loss by L2: {losses}")
    print(f"chosen L2 {report.l2:g}, temperature {report.temperature:g}")
    print(f"cross-validated accuracy {np.mean(guess == truth):.3f}")
    for index, label in enumerate(ec.LABELS):
        print(f"  {label:10} {np.mean(guess[truth == index] == index):.3f}")
    for kind in ec.KINDS:
        chosen = kinds == kind
        print(f"  {kind:13} {np.mean(guess[chosen] == truth[chosen]):.3f} of {chosen.sum()}")


def cached_encoder(path: Path) -> ec.Encode:
    """``embeddings.encode`` that keeps every vector it made in ``path``."""
    cache: dict[str, npt.NDArray[np.float32]] = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            cache = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [text for text in dict.fromkeys(texts) if text not in cache]
        if missing:
            cache.update(zip(missing, embeddings.encode(missing), strict=True))
            np.savez(path, texts=np.array(list(cache)), vectors=np.stack(list(cache.values())))
        return np.stack([cache[text] for text in texts])

    return encode


if __name__ == "__main__":
    sys.exit(main())
