"""Train the safeguarding classifier from the shipped training data, choose its thresholds by
cross-validation, and write the weights and the manifest.

    python tools/build_safeguarding_data.py      # corpus -> train_*.jsonl (when the corpus changed)
    python tools/train_safeguarding.py           # -> model.npz + model.json, prints CV figures
    python tools/train_safeguarding.py --check   # retrain and compare with the shipped weights

Only the training files are read (``processors/data/safeguarding/train_{child,reply}.jsonl``);
no evaluation set is. Per side: 5-fold cross-validation, grouped by corpus line so that the
variants of one template never sit on both sides of a split, gives out-of-fold
probabilities for every sentence; the thresholds are chosen on those; the final weights are
trained on all of the side's data. The figures printed are cross-validated on training data,
not a held-out result. Embeddings are cached in ``artifacts/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_safeguarding import Prediction, print_report, score  # noqa: E402

from async_processor.processors import (  # noqa: E402
    embeddings,
    safeguarding_model,
    safeguarding_rules,
    safeguarding_text,
)
from async_processor.processors.safeguarding import (  # noqa: E402
    SEVERITY,
    Category,
    Severity,
    Side,
)

LABELS = ("safe", *(category.value for category in Category))
FOLDS = 5
#: The flag threshold lets through at most this share of the safe near misses (out of fold).
FLAG_FALSE_POSITIVES = 0.05
#: The uncertain band reaches down until this share of the risks is flagged or uncertain.
UNCERTAIN_RECALL = 0.97
#: A second category is reported when its probability reaches this.
CATEGORY_PROBABILITY = 0.3
CACHE = ROOT / "artifacts" / "safeguarding_embeddings.npz"


def read_rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows if limit is None else rows[:: max(1, len(rows) // limit)][:limit]


def label_of(row: dict[str, Any]) -> int:
    return 0 if row.get("safe") else LABELS.index(row["category"])


def embed(texts: list[str]) -> np.ndarray:
    """Embeddings of ``texts``, from the cache where it has them."""
    cache: dict[str, np.ndarray] = {}
    if CACHE.is_file():
        with np.load(CACHE) as stored:
            cache = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cache}.items())
    if missing:
        vectors = embeddings.encode([t for _, t in missing])
        cache.update(zip([k for k, _ in missing], vectors, strict=True))
        CACHE.parent.mkdir(exist_ok=True)
        np.savez(CACHE, keys=np.array(list(cache)), vectors=np.stack(list(cache.values())))
    return np.stack([cache[k] for k in keys])


def folds_of(rows: list[dict[str, Any]]) -> np.ndarray:
    """Fold of each row: corpus lines dealt round-robin per label, in a fixed order."""
    groups: dict[int, list[str]] = {}
    for row in rows:
        source = row.get("source", row["text"])
        groups.setdefault(label_of(row), [])
        if source not in groups[label_of(row)]:
            groups[label_of(row)].append(source)
    fold_of_group = {
        source: index % FOLDS
        for sources in groups.values()
        for index, source in enumerate(
            sorted(sources, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
        )
    }
    return np.array([fold_of_group[row.get("source", row["text"])] for row in rows])


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    probabilities = np.zeros((len(y), len(LABELS)), dtype=np.float32)
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        model = _side_model(safeguarding_model.fit(x[train], y[train], len(LABELS)), None)
        probabilities[test] = safeguarding_model.probabilities(model, x[test])
    return probabilities


def _side_model(params: tuple[Any, ...], thresholds: Any) -> safeguarding_model.SideModel:
    return safeguarding_model.SideModel(LABELS, *params, thresholds=thresholds)


def high_severity(side: str) -> np.ndarray:
    """Per label (``LABELS`` order): is it a HIGH-severity category on ``side``?"""
    severity = SEVERITY[Side(side)]
    return np.array([False, *(severity[Category(n)] is Severity.HIGH for n in LABELS[1:])])


def choose_thresholds(
    probabilities: np.ndarray, y: np.ndarray, high: np.ndarray
) -> safeguarding_model.SideThresholds:
    """Out of fold: together, the flag thresholds let FLAG_FALSE_POSITIVES of the safe near
    misses through. The threshold for pieces whose most likely category is HIGH (``high``)
    is searched on a 0.01 grid, the other one takes the rest of the false-positive budget,
    and the pair that flags the most risks wins (recall first for disclosures and
    self-harm). The uncertain band reaches down to where UNCERTAIN_RECALL of the risks are
    flagged or uncertain."""
    score = 1.0 - probabilities[:, 0]
    top_high = high[probabilities[:, 1:].argmax(axis=1) + 1]
    safe = y == 0
    budget = int(FLAG_FALSE_POSITIVES * safe.sum())
    rest = np.sort(score[safe & ~top_high])[::-1]
    best: tuple[float, float, float] | None = None
    for candidate in np.round(np.arange(0.5, 1.0, 0.01), 2):
        allowed = budget - int((safe & top_high & (score >= candidate)).sum())
        if allowed < 0:
            continue
        flag = np.floor(float(rest[allowed]) * 1e4 + 1) / 1e4 if allowed < len(rest) else 0.0
        flag = max(float(flag), float(candidate))
        recall = float(np.where(top_high, score >= candidate, score >= flag)[~safe].mean())
        if best is None or recall >= best[0]:
            best = (recall, flag, float(candidate))
    if best is None:
        raise SystemExit("no flag threshold keeps the false positives within the budget")
    _, flag, high_flag = best
    uncertain = float(np.quantile(score[~safe], 1.0 - UNCERTAIN_RECALL))
    return safeguarding_model.SideThresholds(
        flag=flag,
        uncertain=round(min(uncertain, high_flag), 4),
        category=CATEGORY_PROBABILITY,
        high=high_flag,
    )


def predictions(
    probabilities: np.ndarray,
    limits: safeguarding_model.SideThresholds,
    texts: list[str],
    side: str,
) -> list[Prediction]:
    """What assess_child / assess_reply would say given these probabilities: the model's
    categories, then the exact rules' (a text of one sentence; the rules always run)."""
    high = high_severity(side)
    out = []
    for row, text in zip(probabilities, texts, strict=True):
        risk = 1.0 - float(row[0])
        chosen: list[str] = []
        if risk >= limits.flag_for(bool(high[int(row[1:].argmax()) + 1])):
            order = np.argsort(-row[1:]) + 1
            chosen = [LABELS[i] for i in order if i == order[0] or row[i] >= limits.category]
        rules = [hit.category for hit in safeguarding_rules.find(text, side)]
        chosen += [category for category in rules if category not in chosen]
        out.append(Prediction(tuple(chosen), not chosen and risk >= limits.uncertain))
    return out


def train_side(side: str, limit: int | None) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    path = safeguarding_model.data_directory() / safeguarding_model.DATA_FILES[side]
    rows = read_rows(path, limit)
    x = embed([safeguarding_text.normalise(row["text"]) for row in rows])
    y = np.array([label_of(row) for row in rows])
    oof = out_of_fold(x, y, folds_of(rows))
    limits = choose_thresholds(oof, y, high_severity(side))
    report = score(rows, predictions(oof, limits, [row["text"] for row in rows], side))
    params = safeguarding_model.fit(x, y, len(LABELS))
    arrays = dict(
        zip(
            (f"{side}_{n}" for n in ("hidden", "hidden_bias", "output", "output_bias")),
            params,
            strict=True,
        )
    )
    thresholds = dataclasses.asdict(limits)
    return (
        arrays,
        {"thresholds": thresholds, "report": report},
        safeguarding_model.file_sha256(path),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped weights")
    parser.add_argument("--limit", type=int, help="train on about this many rows per side")
    parser.add_argument("--misses", action="store_true", help="list the out-of-fold misses")
    args = parser.parse_args(argv)
    arrays: dict[str, np.ndarray] = {}
    manifest: dict[str, Any] = {"labels": list(LABELS), "thresholds": {}, "data_sha256": {}}
    for side in safeguarding_model.SIDES:
        side_arrays, result, data_sha = train_side(side, args.limit)
        arrays.update(side_arrays)
        manifest["thresholds"][side] = result["thresholds"]
        manifest["data_sha256"][safeguarding_model.DATA_FILES[side]] = data_sha
        print(f"\n== {side}: thresholds {result['thresholds']} (cross-validated on training data)")
        print_report(result["report"], misses=args.misses)
    if args.check:
        return _check(arrays)
    if args.limit is not None:
        print("\n--limit given: nothing written")
        return 0
    _write(arrays, manifest)
    return 0


def _write(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    directory = safeguarding_model.data_directory()
    (directory / "model.npz").write_bytes(buffer.getvalue())
    manifest["weights_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    manifest["encoder_sha256"] = embeddings.MODEL_SHA256
    manifest["training"] = {
        "folds": FOLDS,
        "flag_false_positives": FLAG_FALSE_POSITIVES,
        "uncertain_recall": UNCERTAIN_RECALL,
        **dataclasses.asdict(safeguarding_model.TrainingSettings()),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (directory / "model.json").write_text(text, encoding="utf-8")
    print(
        f"\nwrote model.npz ({len(buffer.getvalue())} bytes, sha256 {manifest['weights_sha256']})"
    )


def _check(arrays: dict[str, np.ndarray]) -> int:
    with np.load(safeguarding_model.data_directory() / "model.npz") as shipped:
        worst = max(float(np.abs(shipped[name] - value).max()) for name, value in arrays.items())
    print(f"\nlargest difference from the shipped weights: {worst:.2e}")
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
