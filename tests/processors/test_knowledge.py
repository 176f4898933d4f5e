"""The knowledge base: its data file's schema, retrieval of obvious questions, the "not sure"
threshold and warm-up. The questions here are not from the held-out sets in
``tests/data/answers`` (those are only for ``benchmarks/eval_answers.py``)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from async_processor.processors import embeddings, knowledge

needs_model = pytest.mark.skipif(
    not embeddings.model_available(), reason="the MiniLM model wheel is not installed"
)

TOPICS = {
    "animals",
    "space",
    "weather",
    "seasons",
    "body",
    "sleep",
    "feelings",
    "how_why",
    "plants",
    "food",
    "vehicles",
    "colours",
    "music",
}


def _line(**changes: object) -> str:
    entry: dict[str, object] = {
        "id": "sky-blue",
        "topic": "space",
        "questions": ["why is the sky blue", "what makes the sky blue"],
        "answer": "Sunlight bounces off tiny bits of air, and blue bounces the most.",
    }
    entry.update(changes)
    return json.dumps({key: value for key, value in entry.items() if value is not None})


def test_the_shipped_knowledge_base_is_a_few_hundred_short_answers() -> None:
    entries = knowledge.load_entries()
    assert len(entries) >= 300
    assert {entry.topic for entry in entries} == TOPICS
    for entry in entries:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", entry.id), entry.id
        assert 2 <= len(entry.questions) <= 4, entry.id
        assert len(set(entry.questions)) == len(entry.questions), entry.id
        sentences = re.findall(r"[.!?](?:\s|$)", entry.answer)
        assert 1 <= len(sentences) <= 3, (entry.id, entry.answer)
        assert len(entry.answer.split()) <= 50, (entry.id, entry.answer)


def test_a_valid_line_loads() -> None:
    (entry,) = knowledge.load_entries([_line(), ""])
    assert entry == knowledge.Entry(
        "sky-blue",
        "space",
        ("why is the sky blue", "what makes the sky blue"),
        "Sunlight bounces off tiny bits of air, and blue bounces the most.",
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "line 1: not JSON"),
        (["[1, 2]"], "line 1: needs exactly the keys"),
        ([_line(answer=None)], "needs exactly the keys"),
        ([_line(extra="x")], "needs exactly the keys"),
        ([_line(id="")], "'id' must be a non-empty string"),
        ([_line(topic=3)], "'topic' must be a non-empty string"),
        ([_line(questions=["only one"])], "'questions' must be a list of 2-4"),
        ([_line(questions=["a", "b", "c", "d", "e"])], "'questions' must be a list of 2-4"),
        ([_line(questions=["a", " "])], "'questions' must be a list of 2-4"),
        ([_line(questions="why is the sky blue")], "'questions' must be a list of 2-4"),
        ([_line(), _line()], "line 2: id 'sky-blue' is used twice"),
        (["", "  "], "no entries"),
    ],
)
def test_a_bad_knowledge_base_says_what_to_fix(lines: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        knowledge.load_entries(lines)


def test_an_empty_question_is_refused() -> None:
    with pytest.raises(ValueError, match="empty text"):
        knowledge.lookup("  ")


@needs_model
def test_warm_up_builds_the_index_once() -> None:
    knowledge.warm_up()
    index = knowledge._index
    assert index is not None
    assert len(index.entries) == len(knowledge.load_entries())
    assert index.phrasings.shape[0] == sum(len(entry.questions) for entry in index.entries)
    knowledge.warm_up()
    knowledge.lookup("why is the grass green")
    assert knowledge._index is index
    assert knowledge.entries() is index.entries


@needs_model
def test_the_shipped_vectors_are_those_of_the_shipped_knowledge_base() -> None:
    text = knowledge._knowledge_text()
    shipped = knowledge._shipped_vectors(knowledge.digest(text))
    assert shipped is not None, "rebuild them: python tools/build_knowledge_vectors.py"
    phrasings, answers = shipped
    entries = knowledge.load_entries()
    assert phrasings.shape == (sum(len(e.questions) for e in entries), embeddings.DIMENSION)
    assert answers.shape == (len(entries), embeddings.DIMENSION)
    fresh = embeddings.encode([*entries[0].questions, entries[-1].answer])
    assert np.allclose(
        fresh[: len(entries[0].questions)], phrasings[: len(entries[0].questions)], atol=1e-4
    )
    assert np.allclose(fresh[-1], answers[-1], atol=1e-4)
    assert knowledge._shipped_vectors(knowledge.digest(text + " ")) is None


@needs_model
def test_an_edited_knowledge_base_is_embedded_at_warm_up() -> None:
    edited = knowledge.load_entries([_line()])
    index = knowledge._build_index(edited, knowledge.digest("not the shipped text"))
    assert index.phrasings.shape == (2, embeddings.DIMENSION)
    assert index.answers.shape == (1, embeddings.DIMENSION)
    assert float(index.phrasings[0] @ embeddings.encode(["why is the sky blue"])[0]) > 0.99


@needs_model
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("why is the sky blue?", "sky-blue"),
        ("teddy, how do bees make their honey", "bee-honey"),
        ("what's a rainbow made of", "rainbow"),
        ("why must we brush our teeth every day", "brush-teeth"),
        ("how do planes fly so high", "plane-fly"),
        ("what does my heart do all day", "heart"),
    ],
)
def test_obvious_questions_reach_their_entry(text: str, expected: str) -> None:
    match = knowledge.lookup(text)
    assert match.entry is not None, match.to_dict()
    assert match.entry.id == expected
    assert match.to_dict() == {
        "id": expected,
        "topic": match.entry.topic,
        "similarity": round(match.similarity, 4),
        "answered": True,
    }


@needs_model
@pytest.mark.parametrize(
    "text",
    [
        "what's the name of my neighbour's cat",
        "how much does a new sofa cost",
        "who won the tennis on tuesday",
    ],
)
def test_a_question_outside_the_base_is_not_answered(text: str) -> None:
    match = knowledge.lookup(text)
    assert match.similarity < knowledge.THRESHOLD
    assert match.entry is None
    assert match.to_dict()["answered"] is False


@needs_model
def test_the_threshold_decides_whether_the_nearest_entry_is_given() -> None:
    match = knowledge.lookup("why is the sky blue")
    assert match.entry is not None
    strict = knowledge.lookup("why is the sky blue", threshold=match.similarity + 0.01)
    assert strict.nearest == match.nearest
    assert strict.entry is None


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("why is the grass green", True),
        ("grass is green?", True),
        ("  How do kites fly", True),
        ("the grass is green", False),
        ("tell me about kites", False),
    ],
)
def test_a_question_is_a_question_word_first_or_a_question_mark(text: str, question: bool) -> None:
    assert knowledge.is_question(text) is question


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("why is the grass green", "why is the grass green"),
        ("can you tell me why cats purr", "why cats purr"),
        ("could you please tell me about volcanoes?", "volcanoes?"),
        ("do you know what a comet is", "what a comet is"),
        ("tell me about kites", "kites"),
        ("do you sleep?", None),
        ("what's your favourite colour", None),
        ("I like kites", None),
    ],
)
def test_what_is_looked_up(text: str, subject: str | None) -> None:
    assert knowledge.subject(text) == subject


def test_the_not_sure_reply_depends_only_on_the_seed() -> None:
    replies = [knowledge.not_sure_reply(seed) for seed in range(6)]
    assert set(replies) == set(knowledge.NOT_SURE)
    assert replies == [knowledge.not_sure_reply(seed) for seed in range(6)]
