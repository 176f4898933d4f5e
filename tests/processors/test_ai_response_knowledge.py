"""AI_RESPONSE offline with the knowledge base: a question gets its answer, or a kind "not
sure" instead of a confident reply about something else; concerns come first; other talk
keeps the reply-bank intents. Through a real processor. None of these sentences is from the
held-out sets in ``tests/data/answers``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingType,
    Settings,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import ai_response, embeddings, knowledge, safeguarding, safety

pytestmark = pytest.mark.skipif(
    not embeddings.model_available(), reason="the MiniLM model wheel is not installed"
)


@asynccontextmanager
async def running() -> AsyncIterator[AdvancedAsyncProcessor]:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        yield processor
    finally:
        await processor.shutdown(timeout=5)


async def reply(processor: AdvancedAsyncProcessor, text: str, age: int = 7) -> dict[str, Any]:
    task = create_task(
        ProcessingType.AI_RESPONSE,
        {"prompt": text, "context": {"child_age": age, "session_id": "k"}},
    )
    await processor.submit_task(task)
    result = await processor.wait_for_task(task.id, timeout=60)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert isinstance(result.result, dict)
    return result.result


async def test_a_question_is_answered_from_the_knowledge_base_through_a_task() -> None:
    async with running() as processor:
        answered = await reply(processor, "Teddy, how do bees make their honey?")
        unknown = await reply(processor, "how much does a new sofa cost")
        news = await reply(processor, "I built a really tall tower with my blocks today!")
    entry = next(entry for entry in knowledge.entries() if entry.id == "bee-honey")
    assert answered["intent"] == ai_response.KNOWLEDGE_INTENT
    assert answered["knowledge"]["id"] == "bee-honey"
    assert answered["knowledge"]["answered"] is True
    assert answered["response"] == entry.answer
    assert answered["model"] == "teddy-knowledge/all-MiniLM-L6-v2"
    assert answered["safety"]["action"] == "allowed"

    assert unknown["intent"] == ai_response.NOT_SURE_INTENT
    assert unknown["response"] in knowledge.NOT_SURE
    assert unknown["knowledge"]["answered"] is False
    assert unknown["knowledge"]["similarity"] < knowledge.THRESHOLD

    assert news["knowledge"] is None
    assert news["intent"] != ai_response.KNOWLEDGE_INTENT
    assert news["model"].startswith("teddy-reply-bank/")


def test_the_childs_concerns_come_before_the_knowledge_base() -> None:
    chosen = ai_response.offline_reply("why did the man say it's our little secret")
    assert chosen.intent.startswith("safeguarding:"), chosen
    assert chosen.knowledge is None


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("can you tell me a story about a brave mouse", "story_request"),
        ("how old are you, teddy?", "about_bear"),
        ("do you know any jokes", "joke_request"),
    ],
)
def test_questions_for_the_bear_keep_their_intents(text: str, intent: str) -> None:
    chosen = ai_response.offline_reply(text)
    assert chosen.intent == intent


def test_a_tell_me_request_is_answered_and_a_question_can_be_wrapped() -> None:
    told = ai_response.offline_reply("tell me about rainbows")
    wrapped = ai_response.offline_reply("can you tell me why the sky is blue")
    assert (told.intent, told.knowledge and told.knowledge["id"]) == ("knowledge", "rainbow")
    assert (wrapped.intent, wrapped.knowledge and wrapped.knowledge["id"]) == (
        "knowledge",
        "sky-blue",
    )


def test_the_not_sure_reply_is_deterministic_and_varies() -> None:
    texts = [
        "what's the name of the shop on the corner",
        "who lives in the blue house down the road",
        "what did the postman bring to our house today",
        "how many windows has the big castle got",
        "what is my uncle's favourite film",
        "which bus goes to my auntie's town",
    ]
    replies = [ai_response.offline_reply(text, session="s").text for text in texts]
    assert set(replies) <= set(knowledge.NOT_SURE)
    assert len(set(replies)) > 1
    assert replies == [ai_response.offline_reply(text, session="s").text for text in texts]


def test_without_the_knowledge_base_the_intents_answer_as_before() -> None:
    chosen = ai_response.offline_reply("why is the sky blue", use_knowledge=False)
    assert chosen.intent == "sky_colour"
    assert chosen.knowledge is None


@pytest.mark.parametrize("age", [4, 8, None])
def test_every_answer_passes_the_safety_check(age: int | None) -> None:
    for entry in knowledge.load_entries():
        verdict = safety.check_reply(entry.answer, age, None, child_message=entry.questions[0])
        assert verdict.passed, (entry.id, verdict.reasons)
        assert verdict.action in (("allowed", "shortened") if age == 4 else ("allowed",)), (
            entry.id,
            verdict.to_dict(),
        )


def test_an_uncertain_question_is_looked_up_and_risk_is_not() -> None:
    uncertain = safeguarding.Assessment(safeguarding.Side.CHILD, (), True)
    answered = ai_response.offline_reply("why do bees buzz", assessment=uncertain)
    assert answered.intent == ai_response.KNOWLEDGE_INTENT
    assert answered.knowledge is not None and answered.knowledge["id"] == "bee-buzz"
    risky = ai_response.offline_reply("why did the man say it's our little secret")
    assert risky.intent.startswith("safeguarding:") and risky.knowledge is None
