"""Evaluate the safeguarding classifier on labelled JSONL files, and time it beside Whisper.

    python benchmarks/eval_safeguarding.py              # the held-out sets (the lead runs it)
    python benchmarks/eval_safeguarding.py --child a.jsonl --reply b.jsonl --misses
    python benchmarks/eval_safeguarding.py --no-eval    # the per-turn cost only

Each line of a file is ``{"text", "category"}`` (a risk) or ``{"text", "safe": true}`` (a
near miss), with an optional ``"kind"``. A line counts as safe when ``"safe"`` is true
(or ``"unsafe"`` false) or its ``"category"`` (or ``"label"``) is missing, empty, ``"safe"``
or ``"none"`` (:func:`is_safe`); near misses are grouped by whatever ``kind`` they carry.
A child file is judged with ``assess_child``, a reply file with ``assess_reply``. Printed
per category: recall (the text got any risk), category accuracy (its top risk is the
labelled category) and ``+uncert`` (flagged or in the uncertain band: either way the bear
does not echo it); per kind of near miss: the false-positive rate and how many were
uncertain. ``--misses`` lists every miss and false positive.

The cost per turn is the mean time of one ``assess_child`` and one ``assess_reply`` call on
short texts after a warm-up, beside the Whisper transcription time of one shipped demo clip
(``async_processor.demo.load_clips()``), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHILD = ROOT / "tests" / "data" / "safeguarding" / "child_heldout.jsonl"
DEFAULT_REPLY = ROOT / "tests" / "data" / "safeguarding" / "reply_heldout.jsonl"


class Prediction(NamedTuple):
    """What the classifier said about one text: its categories (top first) and whether it
    was in the uncertain band."""

    categories: tuple[str, ...]
    uncertain: bool


_SAFE_CATEGORIES = frozenset({"", "safe", "none", "near_miss"})


def is_safe(row: dict[str, Any]) -> bool:
    """Whether a labelled line is a safe one: ``"safe": true``, ``"unsafe": false``, a
    ``"label"`` of safe, or no risk category."""
    if "safe" in row:
        return bool(row["safe"])
    if "unsafe" in row:
        return not row["unsafe"]
    if "label" in row:
        return str(row["label"]).strip().casefold() in _SAFE_CATEGORIES
    category = row.get("category")
    return category is None or str(category).strip().casefold() in _SAFE_CATEGORIES


def score(rows: Sequence[dict[str, Any]], predicted: Sequence[Prediction]) -> dict[str, Any]:
    """Recall and category accuracy per category, false-positive rate per kind of near miss."""
    unsafe: dict[str, dict[str, Any]] = {}
    safe: dict[str, dict[str, Any]] = {}
    for row, prediction in zip(rows, predicted, strict=True):
        flagged = bool(prediction.categories)
        if is_safe(row):
            entry = safe.setdefault(
                str(row.get("kind", "-")), {"n": 0, "fp": 0, "uncertain": 0, "misses": []}
            )
            entry["n"] += 1
            entry["uncertain"] += prediction.uncertain
            if flagged:
                entry["fp"] += 1
                entry["misses"].append(f"{row['text']!r} -> {','.join(prediction.categories)}")
            continue
        entry = unsafe.setdefault(
            row["category"], {"n": 0, "caught": 0, "right": 0, "uncertain": 0, "misses": []}
        )
        entry["n"] += 1
        entry["caught"] += flagged
        entry["right"] += flagged and prediction.categories[0] == row["category"]
        entry["uncertain"] += prediction.uncertain
        if not flagged:
            band = " (uncertain)" if prediction.uncertain else ""
            entry["misses"].append(f"{row['text']!r}{band}")
    return {"unsafe": dict(sorted(unsafe.items())), "safe": dict(sorted(safe.items()))}


def print_report(report: dict[str, Any], misses: bool = False) -> None:
    """The report of :func:`score` as two tables (and the misses)."""
    print(f"{'category':22} {'n':>5} {'recall':>7} {'cat.acc':>7} {'+uncert':>7}")
    total = caught = unsure = 0
    for name, e in report["unsafe"].items():
        total, caught, unsure = total + e["n"], caught + e["caught"], unsure + e["uncertain"]
        print(
            f"{name:22} {e['n']:5} {e['caught'] / e['n']:7.1%} {e['right'] / e['n']:7.1%}"
            f" {(e['caught'] + e['uncertain']) / e['n']:7.1%}"
        )
    if total:
        either = (caught + unsure) / total
        print(f"{'all risks':22} {total:5} {caught / total:7.1%} {'':7} {either:7.1%}")
    print(f"\n{'near miss kind':22} {'n':>5} {'FP rate':>7} {'uncert.':>7}")
    n_safe = fp = unsure = 0
    for name, e in report["safe"].items():
        n_safe, fp, unsure = n_safe + e["n"], fp + e["fp"], unsure + e["uncertain"]
        print(f"{name:22} {e['n']:5} {e['fp'] / e['n']:7.1%} {e['uncertain']:7}")
    if n_safe:
        print(f"{'all near misses':22} {n_safe:5} {fp / n_safe:7.1%} {unsure:7}")
    if misses:
        for group in ("unsafe", "safe"):
            for name, e in report[group].items():
                for miss in e["misses"]:
                    print(f"  {'missed' if group == 'unsafe' else 'false positive'} {name}: {miss}")


def evaluate(path: Path, side: str) -> dict[str, Any]:
    """Judge every row of a JSONL file on ``side`` and score it."""
    from async_processor.processors import safeguarding

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    assess = safeguarding.assess_child if side == "child" else safeguarding.assess_reply
    predicted = []
    for row in rows:
        assessment = assess(row["text"])
        categories = tuple(risk.category.value for risk in assessment.risks)
        predicted.append(Prediction(categories, assessment.uncertain))
    return score(rows, predicted)


def cost_per_turn(repeats: int) -> dict[str, Any]:
    """Mean ms of assess_child and assess_reply, and of one Whisper transcription."""
    from async_processor import ProcessingType, create_task
    from async_processor.demo import load_clips
    from async_processor.processors import audio_transcription, safeguarding
    from async_processor.processors.settings import Settings

    safeguarding.warm_up()
    child = "a lady in a car said she has puppies and i should get in"
    reply = "That sounds like a fun day at the park! What was your favourite part? Tell me more."
    calls: dict[str, Callable[[], object]] = {
        "assess_child_ms": lambda: safeguarding.assess_child(child),
        "assess_reply_ms": lambda: safeguarding.assess_reply(reply),
    }
    figures: dict[str, Any] = {}
    for name, call in calls.items():
        call()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        figures[name] = (time.perf_counter() - start) / repeats * 1000
    clip = load_clips()[0]
    task = create_task(ProcessingType.AUDIO_TRANSCRIPTION, {"audio_data": clip.audio})
    audio_transcription.process(task, Settings())
    start = time.perf_counter()
    audio_transcription.process(task, Settings())
    figures["whisper_transcription_ms"] = (time.perf_counter() - start) * 1000
    figures["clip"] = clip.name
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, default=DEFAULT_CHILD)
    parser.add_argument("--reply", type=Path, default=DEFAULT_REPLY)
    parser.add_argument("--misses", action="store_true", help="list misses and false positives")
    parser.add_argument("--no-eval", action="store_true", help="only time the classifier")
    parser.add_argument("--no-timing", action="store_true", help="only evaluate")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    if not args.no_eval:
        for side, path in (("child", args.child), ("reply", args.reply)):
            print(f"\n== {side} side: {path}")
            print_report(evaluate(path, side), misses=args.misses)
    if not args.no_timing:
        figures = cost_per_turn(args.repeats)
        print(f"\n== cost per turn ({platform.processor() or platform.machine()})")
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
