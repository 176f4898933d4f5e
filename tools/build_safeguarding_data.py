"""Expand the hand-written safeguarding corpus into the shipped training files.

    python tools/build_safeguarding_data.py    # -> processors/data/safeguarding/train_*.jsonl

The corpus (``tools/safeguarding_corpus/{child,reply}_{unsafe,safe}.txt``) is written by
the project for training only. A line ``== category kind`` starts a section (category
``safe`` for the near misses); every other line is a sentence in which ``{a|b|c}`` is a
choice. A line with many combinations gives at most ``--per-line`` of them, picked with a
fixed seed, so that no one template outweighs the hand-written lines. Output objects:
``{"text", "category", "kind"}`` for a risk, ``{"text", "safe": true, "kind"}`` for a near
miss, each with ``"source"``: the corpus line it came from (cross-validation keeps the
sentences of one line in the same fold). The same text with two labels is an error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tools" / "safeguarding_corpus"
OUTPUT = ROOT / "src" / "async_processor" / "processors" / "data" / "safeguarding"
SIDES = ("child", "reply")
_CHOICE = re.compile(r"\{([^{}]*)\}")


def expand(line: str, per_line: int) -> list[str]:
    """The sentences a corpus line stands for (at most ``per_line``, chosen with a seed)."""
    parts = _CHOICE.split(line)
    fixed, choices = parts[0::2], [p.split("|") for p in parts[1::2]]
    combos = list(itertools.product(*choices))
    if len(combos) > per_line:
        combos = random.Random(line).sample(combos, per_line)
    out = []
    for combo in combos:
        text = "".join(f + c for f, c in zip(fixed, [*combo, ""], strict=True))
        out.append(re.sub(r"\s+", " ", text).strip())
    return out


def read_corpus(path: Path, per_line: int) -> list[dict[str, object]]:
    """The labelled sentences of one corpus file."""
    rows: list[dict[str, object]] = []
    label: dict[str, object] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("=="):
            category, kind = line[2:].split()
            label = {"safe": True} if category == "safe" else {"category": category}
            label["kind"] = kind
            continue
        if label is None:
            raise SystemExit(f"{path}:{number}: a sentence before any '== category kind' line")
        source = f"{path.name}:{number}"
        rows.extend({"text": text, **label, "source": source} for text in expand(line, per_line))
    return rows


def build(side: str, per_line: int) -> list[dict[str, object]]:
    """Both corpus files of a side, duplicates dropped, conflicting labels refused."""
    seen: dict[str, dict[str, object]] = {}
    for part in ("unsafe", "safe"):
        for row in read_corpus(CORPUS / f"{side}_{part}.txt", per_line):
            key = str(row["text"]).casefold()
            previous = seen.get(key)
            if previous is not None and previous.get("category") != row.get("category"):
                raise SystemExit(f"{side}: {row['text']!r} has two labels: {previous}, {row}")
            seen.setdefault(key, row)
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-line", type=int, default=10)
    args = parser.parse_args(argv)
    for side in SIDES:
        rows = build(side, args.per_line)
        path = OUTPUT / f"train_{side}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        counts: dict[str, int] = {}
        for row in rows:
            name = str(row.get("category", "safe"))
            counts[name] = counts.get(name, 0) + 1
        print(f"{path.relative_to(ROOT)}: {len(rows)} sentences", json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
