"""The vetted replies to risk: complete, written to child-protection guidance, and chosen
deterministically; and the offline bear uses them instead of the echo."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

import pytest

from async_processor.processors import ai_response, risk_replies, safeguarding, safety
from async_processor.processors.risk_replies import REPLIES, load_risk_replies
from async_processor.processors.safeguarding import Category

ALL_POOLS = [
    pytest.param(category, band, id=f"{category.value}-{band}")
    for category in Category
    for band in risk_replies.BANDS
]
#: Disclosures of harm: the child must hear that it is not their fault.
NOT_YOUR_FAULT = {Category.SEXUAL_ABUSE, Category.PHYSICAL_ABUSE, Category.NEGLECT}
#: Words that would probe, doubt, or promise secrecy (questions are ruled out by "?").
NEVER = re.compile(
    r"\b(what happened|are you sure|^really,|i won'?t tell|our (little )?secret|"
    r"tell me (more|all)|why did)",
    re.IGNORECASE,
)
AGES = {"young": (3, 4, 5), "older": (6, 7, 8, 9, 10)}


def pool(category: Category, band: str) -> tuple[str, ...]:
    variants = REPLIES.categories[category]
    return variants.young if band == "young" else variants.older


@pytest.mark.parametrize(("category", "band"), ALL_POOLS)
def test_every_category_has_three_vetted_replies_per_age_band(
    category: Category, band: str
) -> None:
    replies = pool(category, band)
    assert len(replies) >= 3 and len(set(replies)) == len(replies)
    for reply in replies:
        assert "?" not in reply, reply  # never a question: no probing, no yes/no
        assert not NEVER.search(reply), reply
        assert "grown-up" in reply, reply  # a trusted grown-up, every time
        if category in NOT_YOUR_FAULT:
            assert "not your fault" in reply or "None of this is your fault" in reply, reply
        if REPLIES.categories[category].urgent:
            assert "right away" in reply or "right now" in reply, reply
        for age in AGES[band]:
            sentences, words = safety.length_limit(age)
            assert len(safety.split_sentences(reply)) <= sentences, (age, reply)
            assert safety.word_count(reply) <= words, (age, reply)


def test_urgent_categories_are_the_ones_that_can_be_immediate() -> None:
    urgent = {c for c, v in REPLIES.categories.items() if v.urgent}
    assert urgent >= {
        Category.SEXUAL_ABUSE,
        Category.PHYSICAL_ABUSE,
        Category.SELF_HARM,
        Category.DANGEROUS_ACTS,
        Category.STRANGERS,
    }


def test_the_choice_is_deterministic_by_seed_and_follows_the_age_band() -> None:
    for seed in range(6):
        young = risk_replies.risk_reply(Category.SELF_HARM, 4, seed)
        assert young == risk_replies.risk_reply(Category.SELF_HARM, 4, seed)
        assert young in REPLIES.categories[Category.SELF_HARM].young
        assert risk_replies.risk_reply(Category.SELF_HARM, 8, seed) in (
            REPLIES.categories[Category.SELF_HARM].older
        )
        assert risk_replies.risk_reply(Category.SELF_HARM, None, seed) in (
            REPLIES.categories[Category.SELF_HARM].older
        )
    assert len({risk_replies.risk_reply(Category.BULLYING, 7, s) for s in range(9)}) == 3


def shipped() -> dict[str, Any]:
    text = (resources.files(risk_replies.__package__) / "data" / "risk_replies.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def test_a_malformed_reply_file_says_what_is_wrong() -> None:
    missing = copy.deepcopy(shipped())
    del missing["categories"]["neglect"]
    with pytest.raises(ValueError, match="no replies for neglect"):
        load_risk_replies(missing)
    empty = copy.deepcopy(shipped())
    empty["categories"]["bullying"]["young"] = []
    with pytest.raises(ValueError, match="bullying: 'young' must be a non-empty list"):
        load_risk_replies(empty)
    assert load_risk_replies(shipped()) == REPLIES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where do clouds come from", True),
        ("Why is the sky blue?", True),
        ("the sky is blue", False),
        ("I went to the park", False),
        ("  can we play", True),
    ],
)
def test_questions_are_recognised_without_a_question_mark(text: str, expected: bool) -> None:
    assert risk_replies.is_question(text) is expected


# -- the offline bear --------------------------------------------------------------------------


def risky(category: Category) -> safeguarding.Assessment:
    risk = safeguarding.Risk(category, safeguarding.Severity.HIGH, 0.9, "test")
    return safeguarding.Assessment(safeguarding.Side.CHILD, (risk,), False)


UNSURE = safeguarding.Assessment(safeguarding.Side.CHILD, (), True)
SAFE = safeguarding.Assessment(safeguarding.Side.CHILD, (), False)


@pytest.mark.parametrize("category", list(Category))
def test_a_risk_is_answered_by_its_category_never_the_echo(category: Category) -> None:
    text = "I went to the park with my uncle"  # echoable words; the assessment decides
    for age in (4, 8):
        chosen = ai_response.offline_reply(
            text, child_age=age, session="s|1", assessment=risky(category), max_tokens=5
        )
        assert chosen.intent == f"safeguarding:{category.value}"
        assert chosen.engine == "safeguarding"
        band = "young" if age <= 5 else "older"
        assert chosen.text in pool(category, band)  # whole: never cut by max_tokens
        assert "uncle" not in chosen.text and "park" not in chosen.text


def test_an_uncertain_turn_gets_a_safe_simple_reply_not_the_echo() -> None:
    for use_embeddings in (False, None):
        chosen = ai_response.offline_reply(
            "I went to the park with my uncle",
            child_age=7,
            assessment=UNSURE,
            use_embeddings=use_embeddings,
        )
        assert chosen.intent == "unsure"
        assert chosen.text in REPLIES.unsure.older
        assert "park" not in chosen.text and "Tell me all about it" not in chosen.text
    sure = ai_response.offline_reply("I went to the park with my uncle", assessment=SAFE)
    assert "you went to the park with your uncle" in sure.text  # the same words, judged safe


def test_an_uncertain_turn_still_gets_a_confident_bank_answer() -> None:
    chosen = ai_response.offline_reply("tell me a joke", assessment=UNSURE, use_embeddings=False)
    assert chosen.intent == "joke_request"


def test_without_a_confident_match_the_words_are_never_echoed() -> None:
    text = "my grandad zorbled the flibbertigibbet yesterday"
    chosen = ai_response.offline_reply(text, assessment=SAFE, use_embeddings=False)
    assert chosen.intent == "fallback"
    assert "zorbled" not in chosen.text and "grandad" not in chosen.text


def test_a_question_the_bank_cannot_answer_is_not_echoed() -> None:
    text = "where is the big box in the attic"
    chosen = ai_response.offline_reply(text, child_age=4, assessment=SAFE, use_embeddings=False)
    assert chosen.intent == "question"
    assert chosen.text in REPLIES.question.young
    assert "attic" not in chosen.text


def test_a_safe_statement_is_still_echoed() -> None:
    chosen = ai_response.offline_reply(
        "I built a tower with my blocks", assessment=SAFE, use_embeddings=False
    )
    assert chosen.intent in ("fallback", "sharing")
    assert "you built a tower with your blocks" in chosen.text
