"""Choose the knowledge base's answer weight and threshold (``processors.knowledge``).

Tuning data only, never the held-out sets in ``tests/data/answers``:

- the knowledge base's own phrasings, leave one out: each phrasing, removed from the index,
  is scored against every entry; it should reach its own entry;
- ``tools/knowledge_tuning.jsonl``: questions outside the knowledge base; they should score
  below the threshold and get "I'm not sure".

A (weight, threshold) pair scores (share of phrasings answered with their own entry)
- COST x (share answered with another entry + share of outside questions answered); the best
pair is printed with the threshold curve around it. Run from the repository root:
``PYTHONPATH=src python tools/tune_knowledge.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from async_processor.processors import embeddings, knowledge

#: A confident wrong answer costs this many right ones (the issue: no confident off-topic reply).
COST = 3.0
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 6.0)
THRESHOLDS = np.round(np.arange(0.40, 0.91, 0.01), 2)
TUNING = Path(__file__).with_name("knowledge_tuning.jsonl")


@dataclass(frozen=True)
class Vectors:
    phrasings: np.ndarray
    owners: np.ndarray
    answers: np.ndarray
    outside: np.ndarray


def embed(entries: tuple[knowledge.Entry, ...]) -> Vectors:
    texts = [json.loads(line)["text"] for line in TUNING.read_text().splitlines() if line]
    return Vectors(
        embeddings.encode([q for entry in entries for q in entry.questions]),
        np.array([i for i, entry in enumerate(entries) for _ in entry.questions]),
        embeddings.encode([entry.answer for entry in entries]),
        embeddings.encode(texts),
    )


def best_scores(vectors: Vectors, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best score, reached own entry) per phrasing left out; best score per outside text."""
    inside, right = [], []
    for row, vector in enumerate(vectors.phrasings):
        to_phrasings = vectors.phrasings @ vector
        to_phrasings[row] = -1.0
        scores = knowledge.entry_scores(
            to_phrasings, vectors.owners, vectors.answers @ vector, weight
        )
        inside.append(scores.max())
        right.append(scores.argmax() == vectors.owners[row])
    outside = [
        knowledge.entry_scores(
            vectors.phrasings @ vector, vectors.owners, vectors.answers @ vector, weight
        ).max()
        for vector in vectors.outside
    ]
    return np.array(inside), np.array(right), np.array(outside)


def curve(inside: np.ndarray, right: np.ndarray, outside: np.ndarray) -> list[tuple[float, ...]]:
    """(score, threshold, right answered, wrong answered, outside answered) per threshold."""
    rows = []
    for threshold in THRESHOLDS:
        answered_right = float(((inside >= threshold) & right).mean())
        answered_wrong = float(((inside >= threshold) & ~right).mean())
        outside_answered = float((outside >= threshold).mean())
        score = answered_right - COST * (answered_wrong + outside_answered)
        rows.append((score, float(threshold), answered_right, answered_wrong, outside_answered))
    return rows


def main() -> None:
    entries = knowledge.load_entries()
    vectors = embed(entries)
    print(f"{len(vectors.phrasings)} phrasings of {len(entries)} entries (leave one out), ")
    print(f"{len(vectors.outside)} tuning questions outside the base; wrong answer cost {COST}")
    print("weight  top-1 own entry  best threshold  right  wrong  outside  score")
    results = {}
    for weight in WEIGHTS:
        inside, right, outside = best_scores(vectors, weight)
        rows = curve(inside, right, outside)
        best = max(rows)
        results[weight] = (best, rows)
        print(
            f"{weight:6.1f}  {right.mean():15.3f}  {best[1]:14.2f}  {best[2]:.3f}  "
            f"{best[3]:.3f}  {best[4]:7.3f}  {best[0]:.3f}"
        )
    weight = max(results, key=lambda w: results[w][0])
    best, rows = results[weight]
    print(f"\nchosen: ANSWER_WEIGHT = {weight}, THRESHOLD = {best[1]:.2f}")
    print("threshold  right  wrong  outside  score")
    for score, threshold, r, w, o in rows:
        if abs(threshold - best[1]) <= 0.05 + 1e-9:
            print(f"{threshold:9.2f}  {r:.3f}  {w:.3f}  {o:7.3f}  {score:.3f}")


if __name__ == "__main__":
    main()
