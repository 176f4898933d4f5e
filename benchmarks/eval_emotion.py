"""Accuracy of the emotion text engines on a held-out set, in one run.

    PYTHONPATH=src python benchmarks/eval_emotion.py [--set a|b] [--md FILE]

The held-out sets (``tests/data/emotion/heldout_text.jsonl`` = A,
``heldout_text_b.jsonl`` = B) were written before any training and are never used to choose
anything (``tests/data/emotion/README.md``). Three engines see the same sentences: the
shipped trained classifier (``minilm-softmax``), the MiniLM centroid engine it replaced
(``benchmarks/emotion_centroid.py``) and the VADER + keywords fallback. For each it prints
the accuracy per label and per kind, the confusion matrix and every miss with its
confidence.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))

from emotion_centroid import centroid_probabilities

from async_processor.processors import embeddings
from async_processor.processors import emotion_analysis as ea
from async_processor.processors import emotion_classifier as ec

DATA = Path(__file__).parents[1] / "tests" / "data" / "emotion"
SETS = {"a": DATA / "heldout_text.jsonl", "b": DATA / "heldout_text_b.jsonl"}
Probabilities = npt.NDArray[np.float64]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SETS), default="a")
    parser.add_argument("--md", type=Path, help="also write the report as Markdown")
    args = parser.parse_args(argv)
    examples = ec.read_examples(SETS[args.set])
    texts = [example.text for example in examples]
    encode = memo_encoder()
    engines: dict[str, Callable[[], Probabilities]] = {
        ea.ENGINE_MINILM: lambda: ec.shipped().probabilities(ec.features(texts, encode)),
        "minilm-centroid (before)": lambda: centroid_probabilities(texts, encode),
        "vader-keywords": lambda: keyword_probabilities(texts),
    }
    lines = [f"held-out set {args.set.upper()}: {SETS[args.set].name}, {len(examples)} sentences"]
    for name, run in engines.items():
        lines += report(name, examples, run())
    print("\n".join(lines))
    if args.md:
        args.md.write_text("```\n" + "\n".join(lines) + "\n```\n", encoding="utf-8")
    return 0


def report(name: str, examples: Sequence[ec.Example], probabilities: Probabilities) -> list[str]:
    """Accuracy per label and kind, the confusion matrix and the misses of one engine."""
    truth = np.array([ec.LABELS.index(example.emotion) for example in examples])
    guess = probabilities.argmax(axis=1)
    right = guess == truth
    lines = ["", f"== {name}: accuracy {right.mean():.3f} ({right.sum()}/{len(right)})"]
    for index, label in enumerate(ec.LABELS):
        chosen = truth == index
        lines.append(
            f"  {label:13} {right[chosen].mean():.3f} ({right[chosen].sum()}/{chosen.sum()})"
        )
    kinds = np.array([example.kind for example in examples])
    for kind in ec.KINDS:
        chosen = kinds == kind
        lines.append(
            f"  {kind:13} {right[chosen].mean():.3f} ({right[chosen].sum()}/{chosen.sum()})"
        )
    lines.append("  confusion (rows: true label, columns: guess) " + " ".join(ec.LABELS))
    for index, label in enumerate(ec.LABELS):
        counts = np.bincount(guess[truth == index], minlength=len(ec.LABELS))
        lines.append(f"  {label:10} " + " ".join(f"{count:4d}" for count in counts))
    lines.append("  misses:")
    for example, wrong, row in zip(examples, guess, probabilities, strict=True):
        if ec.LABELS[wrong] != example.emotion:
            lines.append(
                f"    [{example.kind}] {example.emotion} -> {ec.LABELS[wrong]} "
                f"({row[wrong]:.2f}): {example.text}"
            )
    return lines


def keyword_probabilities(texts: Sequence[str]) -> Probabilities:
    rows = [ea.keyword_scores(text).scores for text in texts]
    return np.array([[row[label] for label in ec.LABELS] for row in rows])


def memo_encoder() -> ec.Encode:
    """``embeddings.encode`` remembering every vector, so both MiniLM engines share them."""
    memo: dict[str, npt.NDArray[np.float32]] = {}

    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [text for text in dict.fromkeys(texts) if text not in memo]
        if missing:
            memo.update(zip(missing, embeddings.encode(missing), strict=True))
        return np.stack([memo[text] for text in texts])

    return encode


if __name__ == "__main__":
    sys.exit(main())
