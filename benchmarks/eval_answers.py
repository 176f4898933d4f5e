"""On-topic offline answers on a held-out set of child questions (issue 15).

Runs the offline responder twice on every line of ``tests/data/answers/heldout_questions.jsonl``
(set A) or ``heldout_questions_b.jsonl`` (set B, ``--set b``): without the knowledge base (the
old responder: reply-bank intents only) and with it. A reply is labelled ``kb:<id>`` (a
knowledge-base answer), ``intent:<name>`` (a reply-bank intent), ``not-sure`` (the kind "I'm
not sure, shall we ask a grown-up?" for a question, or "say it another way") or
``safeguarding``; it is on-topic when its label is one of the line's hand-written
``expected_topic`` labels. A confident off-topic reply is a ``kb:`` or ``intent:`` label that
is not expected (for an unanswerable line, any of them).

Run from the repository root: ``PYTHONPATH=src python benchmarks/eval_answers.py [--set b]``.
``--misses`` also lists the new responder's misses (looking at them makes the set training
data for whatever is changed next).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from async_processor.processors import ai_response, knowledge

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "answers"
SETS = {"a": "heldout_questions.jsonl", "b": "heldout_questions_b.jsonl"}
TALK = frozenset(("proud_news", "play"))
NOT_SURE = frozenset(("question", "unsure", "fallback"))


@dataclass(frozen=True)
class Line:
    text: str
    topic: str
    answerable: bool
    expected: frozenset[str]


def load(name: str) -> list[Line]:
    lines = []
    for raw in (DATA / SETS[name]).read_text(encoding="utf-8").splitlines():
        item = json.loads(raw)
        expected = frozenset(item["expected_topic"])
        lines.append(Line(item["text"], item["topic"], item["answerable"], expected))
    return lines


def label(text: str, use_knowledge: bool) -> str:
    """What the offline responder answered ``text`` with (see the module docstring)."""
    chosen = ai_response.offline_reply(text, session="eval", use_knowledge=use_knowledge)
    if chosen.knowledge is not None and chosen.intent == ai_response.KNOWLEDGE_INTENT:
        return f"kb:{chosen.knowledge['id']}"
    if chosen.intent in NOT_SURE:
        return "not-sure"
    if chosen.intent.startswith("safeguarding:"):
        return "safeguarding"
    return f"intent:{chosen.intent}"


def confident(result: str) -> bool:
    return result.startswith(("kb:", "intent:"))


def tally(lines: list[Line], labels: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line, result in zip(lines, labels, strict=True):
        group = "unanswerable" if not line.answerable else "talk" if line.topic in TALK else "q"
        counts[f"{group}:n"] += 1
        if result in line.expected:
            counts[f"{group}:on"] += 1
        elif confident(result):
            counts[f"{group}:off"] += 1
        elif result == "not-sure":
            counts[f"{group}:unsure"] += 1
        else:
            counts[f"{group}:other"] += 1
    return counts


def share(part: int, total: int) -> str:
    return f"{part / total:.3f} ({part}/{total})" if total else "- (0/0)"


def report(name: str, counts: Counter[str]) -> None:
    """Print one responder's figures (Markdown list)."""

    def of(group: str, key: str) -> str:
        return share(counts[f"{group}:{key}"], counts[f"{group}:n"])

    answerable_on = counts["q:on"] + counts["talk:on"]
    off = counts["q:off"] + counts["talk:off"] + counts["unanswerable:off"]
    other = counts["q:other"] + counts["talk:other"] + counts["unanswerable:other"]
    print(f"\n## {name}")
    print(f"- answerable, on-topic: {share(answerable_on, counts['q:n'] + counts['talk:n'])}")
    print(f"  - questions: on-topic {of('q', 'on')}, not sure {of('q', 'unsure')}")
    print(f"  - proud news and play talk: on-topic {of('talk', 'on')}")
    print(f"- unanswerable, not sure: {of('unanswerable', 'unsure')}")
    print(
        f"- confident off-topic replies: {off} (answerable questions {counts['q:off']}, talk "
        f"{counts['talk:off']}, unanswerable {counts['unanswerable:off']}); safeguarding or "
        f"other: {other}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="a")
    parser.add_argument("--misses", action="store_true", help="list the new responder's misses")
    arguments = parser.parse_args()
    lines = load(arguments.set)
    knowledge.warm_up()
    print(f"set {arguments.set.upper()}: {SETS[arguments.set]}, {len(lines)} lines")
    for use_knowledge, name in ((False, "old: reply-bank intents"), (True, "new: knowledge base")):
        labels = [label(line.text, use_knowledge) for line in lines]
        report(name, tally(lines, labels))
        if use_knowledge and arguments.misses:
            for line, result in zip(lines, labels, strict=True):
                if result not in line.expected and (line.answerable or confident(result)):
                    print(f"  miss: {line.text!r} -> {result} (expected {sorted(line.expected)})")


if __name__ == "__main__":
    main()
