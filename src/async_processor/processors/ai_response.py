"""AI_RESPONSE: the teddy bear's reply to what a child said.

Every turn first passes :func:`.safeguarding.assess_child`. A risk in the child's words is
answered by its category's vetted reply (:mod:`.risk_replies`), never by the reply bank or a
language model, and a HIGH-severity risk raises a safeguarding alert
(:mod:`.safeguarding_alerts`). Words the classifier is unsure about are never echoed back;
a provider is told to be careful with them.

Offline (``Settings.llm`` is None) a retrieval responder answers from a curated bank
(:mod:`.reply_bank`): the child's words are matched to an intent by all-MiniLM-L6-v2 cosine
similarity (``engine: "embedding-retrieval"``) or, without the embedding model, by shared
keywords (``"keyword-retrieval"``); a reply is picked deterministically per session and turn
and shaped by the child's emotion and age. Below the match threshold the child's words are
never echoed back: the bear asks to hear it another way, or to ask a grown-up together.
Offline replies pass :func:`.safety.check_reply`, which may shorten or replace them.

With ``Settings.llm`` the reply comes from an OpenAI-compatible chat API or Anthropic
Messages (:mod:`.llm_replies`), streamed, and checked sentence by sentence before release
(:mod:`.reply_gate`). The provider and the model name come only from the settings: a
payload's ``model`` is recorded as ``requested_model`` and changes nothing.

Payload: ``prompt`` or ``prompt_template`` (a ``str.format_map`` template over ``context``
and the dependencies' results, or the name of a built-in template such as
``"child_interaction"``), ``context`` (``child_age``, ``emotion``, ``session_id``, ``turn``,
``child_name``), ``model``, ``max_tokens``. Without a prompt, or when the prompt is an
instruction ("Generate response based on emotion"), the reply answers the ``text`` of the
dependencies (a transcription), shaped by their ``emotion``.

Result: ``response``, ``model``, ``provider`` (``offline``, ``openai`` or ``anthropic``),
``safety``, ``engine``, and beyond the contract: ``input_text`` (the words answered),
``emotion``, ``child_age``, ``requested_model``; offline also ``intent``, ``similarity`` and
``input_flags`` (safeguarding categories in the child's words); providers also ``usage``
(``input_tokens``, ``output_tokens``) and ``stop_reason``; always ``safeguarding``
(``assessment``, ``reply_assessment``, ``alert``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from math import log
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..task import ProcessingTask
from . import embeddings, extras, inputs, knowledge, risk_replies, safeguarding, safety
from .llm_replies import DEFAULT_MODELS, ChatRequest, provider_reply, system_prompt
from .reply_bank import CLARIFY, EMOTION_OPENERS, INTENTS, REFLECT, YOUNG_AGE, Intent
from .safeguarding_alerts import AlertContext, raise_alert
from .settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DEFAULT_MODELS",
    "EMBEDDING_THRESHOLD",
    "KEYWORD_THRESHOLD",
    "KNOWLEDGE_INTENT",
    "NAMED_TEMPLATES",
    "NEAREST",
    "NOT_SURE_INTENT",
    "OfflineReply",
    "offline_reply",
    "process",
]

#: Cosine similarity under which no intent fits and the bear asks to hear more.
EMBEDDING_THRESHOLD = 0.33
#: ``intent`` of a reply from the knowledge base (:mod:`.knowledge`), and of the kind "I'm not
#: sure, shall we ask a grown-up?" for a question that neither it nor the bank answers.
KNOWLEDGE_INTENT = "knowledge"
NOT_SURE_INTENT = "question"
#: The intents that answer a question the knowledge base does not ("can you tell me a
#: story?", "how old are you?", a trusted grown-up when something may be wrong); any other
#: question it cannot answer gets "not sure".
_QUESTION_INTENTS = frozenset(
    (
        "about_bear",
        "bored_play",
        "counting_learning",
        "danger",
        "friendship",
        "goodbye",
        "greeting",
        "joke_request",
        "love_thanks",
        "privacy",
        "sick_hurt",
        "song_request",
        "story_request",
    )
)
#: How many of an intent's examples nearest to the child's words make its score.
NEAREST = 3
#: Share of the child's (idf-weighted) content words an intent must cover without embeddings.
KEYWORD_THRESHOLD = 0.3
#: ``prompt_template`` may name one of these instead of spelling out a template.
NAMED_TEMPLATES = {
    "child_interaction": 'The child said: "{text}"',
    "child_said": 'The child said: "{text}"',
}
#: The longest ``max_tokens`` a payload may ask for.
MAX_TOKENS_LIMIT = 4096
#: The longest prompt (after filling a template) a payload may give, in characters.
MAX_PROMPT_CHARS = 8000
#: Provider replies default to this many tokens (a teddy's answer is short).
DEFAULT_MAX_TOKENS = 200

_EMOTION_WORDS = {
    "joy": "happy",
    "joyful": "happy",
    "excited": "happy",
    "sadness": "sad",
    "anger": "angry",
    "mad": "angry",
    "fear": "scared",
    "afraid": "scared",
    "fearful": "scared",
    "surprise": "surprised",
    "calm": "neutral",
}
# Words a child's sentence almost always has; without any, the input is not echoed back.
# fmt: off
_COMMON_WORDS = frozenset((
    "i", "me", "my", "we", "our", "you", "your", "he", "she", "it", "they", "the", "a", "an", "is",
    "am", "are", "was", "were", "to", "and", "of", "in", "on", "at", "with", "for", "have", "has",
    "had", "do", "did", "can", "like", "want", "went", "go", "got", "see", "saw", "this", "that",
    "there", "what", "today", "mom", "dad",
))
# Words the keyword matcher ignores.
_STOPWORDS = frozenset((
    "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "it", "is", "am", "are", "was",
    "be", "to", "of", "in", "on", "at", "for", "and", "or", "with", "do", "does", "did", "can",
    "could", "will", "would", "please", "some", "any", "this", "that", "there", "so", "just",
    "really", "very", "im", "its", "dont", "teddy",
))
# fmt: on
_INSTRUCTION = re.compile(
    r"\b(generate|respond|reply|response|answer|based on|transcri\w*|emotion)\b", re.IGNORECASE
)
_QUOTED = re.compile(r"[\"\u201c]([^\"\u201d]+)[\"\u201d]")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SPOKEN_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")
_NAME = re.compile(r"[^\W\d_][\w' -]{0,29}")
_SWAPS = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "am": "are",
    "i'm": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "you": "me",
    "your": "my",
    "yours": "mine",
    "you're": "I'm",
}
_FALLBACK = "fallback"
_UNSURE = "unsure"
_QUESTION = "question"
_ADDRESS = re.compile(r"\b(?:teddy bear|teddy|mr\.? bear)\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Request:
    """A task's inputs, checked."""

    input_text: str
    user_message: str
    instruction: str | None
    child_age: int | None
    emotion: str | None
    child_name: str | None
    session: str
    max_tokens: int | None
    requested_model: str | None
    task_id: str
    session_id: str | None
    turn: Any


@dataclass(frozen=True)
class OfflineReply:
    """What the retrieval responder chose, before the safety check."""

    text: str
    intent: str
    similarity: float
    engine: str
    input_flags: tuple[str, ...]
    assessment: safeguarding.Assessment | None = None
    knowledge: dict[str, Any] | None = None


async def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    """Reply to the child: offline retrieval, or the configured LLM provider.

    Raises:
        InvalidInputError: the payload is wrong (see the module docstring).
        ProviderError: the provider failed for now (429, 5xx, timeout, no connection).
        ProviderRequestError: the provider refused the request or answered nonsense.
        MissingExtraError: the ``nlp`` or ``ai`` extra is not installed.
    """
    request = _parse(task)
    child = await asyncio.to_thread(safeguarding.assess_child, request.input_text)
    if settings.llm is None or not child.safe:  # a risk never goes to the model
        result = await asyncio.to_thread(_offline_result, request, child)
    else:
        result = await _provider_result(request, settings, child.uncertain)
    result.update(
        input_text=request.input_text,
        emotion=request.emotion,
        child_age=request.child_age,
        requested_model=request.requested_model,
    )
    context = AlertContext(
        request.task_id,
        request.session_id,
        request.turn,
        request.child_age,
        request.input_text,
        result["response"],
    )
    result["safeguarding"] = {
        "assessment": child.to_dict(),
        "reply_assessment": result.pop("reply_assessment", None),
        "alert": await raise_alert(child, context, settings),
    }
    return result


async def _provider_result(
    request: _Request, settings: Settings, uncertain: bool
) -> dict[str, Any]:
    chat = ChatRequest(
        system=system_prompt(request.child_age, request.emotion, request.instruction, uncertain),
        user_message=request.user_message,
        child_message=request.input_text,
        child_age=request.child_age,
        emotion=request.emotion,
        max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
    )
    return await provider_reply(chat, settings)


# -- inputs ------------------------------------------------------------------------------------


def _parse(task: ProcessingTask) -> _Request:
    payload = task.payload
    context = payload.get("context")
    if context is None:
        context = {}
    if not isinstance(context, Mapping):
        raise InvalidInputError(
            f"payload['context'] must be a dict such as {{'child_age': 5, 'emotion': 'happy'}}, "
            f"got {type(context).__name__}"
        )
    prompt = _optional_str(payload, "prompt")
    template = _optional_str(payload, "prompt_template")
    if prompt is not None and template is not None:
        raise InvalidInputError("give payload['prompt'] or payload['prompt_template'], not both")
    dependency_text = inputs.optional_text(task, "text")
    if dependency_text is not None and not dependency_text.strip():
        dependency_text = None
    instruction = None
    if template is not None:
        prompt = _fill_template(task, template, context)
        input_text = _quoted(prompt) or prompt
        user_message = prompt
    elif prompt is None:
        if dependency_text is None:
            raise InvalidInputError(
                "ai_response needs payload['prompt'] or payload['prompt_template'] (a "
                "non-empty string), or a dependency whose result has 'text' (a transcription)"
            )
        input_text = dependency_text
        user_message = f'The child said: "{dependency_text}"'
    elif dependency_text is not None and _quoted(prompt) is None and _INSTRUCTION.search(prompt):
        input_text = dependency_text
        user_message = f'The child said: "{dependency_text}"'
        instruction = prompt
    else:
        input_text = _quoted(prompt) or prompt
        user_message = prompt
    if len(user_message) > MAX_PROMPT_CHARS:
        raise InvalidInputError(
            f"the prompt has {len(user_message)} characters; at most {MAX_PROMPT_CHARS} are "
            "accepted (a child's turn is short)"
        )
    session = context.get("session_id", payload.get("session_id", ""))
    return _Request(
        input_text=input_text.strip(),
        user_message=user_message,
        instruction=instruction,
        child_age=_child_age(context.get("child_age")),
        emotion=_emotion(task, context),
        child_name=_child_name(context.get("child_name")),
        session=f"{session}|{context.get('turn', '')}",
        max_tokens=_max_tokens(payload.get("max_tokens")),
        requested_model=_optional_str(payload, "model"),
        task_id=task.id,
        session_id=str(session) if session not in (None, "") else None,
        turn=context.get("turn"),
    )


def _optional_str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"payload[{key!r}] must be a non-empty string, got {type(value).__name__} {value!r:.40}"
        )
    return value


def _quoted(prompt: str) -> str | None:
    """The child's words when the prompt quotes them (``Child said: "I am happy"``)."""
    match = _QUOTED.search(prompt)
    if match is None:
        return None
    return match.group(1).strip() or None


#: A template's pieces: an escaped brace, a ``{field}``, or a lone brace.
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FIELD_NAME = re.compile(r"[^\W\d]\w*")


def _fill_template(task: ProcessingTask, template: str, context: Mapping[str, Any]) -> str:
    """``template`` (or the named one) filled from the context and the dependencies.

    Only plain ``{name}`` fields (and ``{{``/``}}`` for braces): no format specs, conversions,
    attributes or indexes, so a template cannot ask for a 100 MB padding; the filled prompt
    is refused as soon as it passes :data:`MAX_PROMPT_CHARS`.
    """
    template = NAMED_TEMPLATES.get(template, template)
    values: dict[str, Any] = {}
    for dependency in reversed(list(task.depends_on)):  # the first dependency wins
        result = task.dependency_results.get(dependency)
        if isinstance(result, Mapping):
            values.update(result)
    values.update({k: v for k, v in task.payload.items() if k not in ("prompt_template",)})
    values.update(context)
    pieces = _template_pieces(template)
    missing = sorted({name for _, name in pieces if name and values.get(name) is None})
    if missing:
        raise InvalidInputError(
            f"payload['prompt_template'] needs {', '.join(missing)}, which neither "
            f"payload['context'] nor a dependency's result provides (available: "
            f"{', '.join(sorted(k for k, v in values.items() if v is not None)) or 'none'})"
        )
    filled: list[str] = []
    length = 0
    for literal, name in pieces:
        for text in (literal, str(values[name]) if name else ""):
            length += len(text)
            if length > MAX_PROMPT_CHARS:
                raise InvalidInputError(
                    f"the filled payload['prompt_template'] is longer than the prompt limit: "
                    f"at most {MAX_PROMPT_CHARS} characters are accepted"
                )
            filled.append(text)
    if not "".join(filled).strip():
        raise InvalidInputError("payload['prompt_template'] produced an empty prompt")
    return "".join(filled)


def _template_pieces(template: str) -> list[tuple[str, str | None]]:
    """``template`` as (literal text, field name or None) pairs, or InvalidInputError."""
    pieces: list[tuple[str, str | None]] = []
    literal: list[str] = []
    position = 0
    for match in _TEMPLATE_PART.finditer(template):
        literal.append(template[position : match.start()])
        position = match.end()
        part, name = match.group(), match.group(1)
        if part in ("{{", "}}"):
            literal.append(part[0])
        elif name is None:
            raise InvalidInputError(
                f"payload['prompt_template'] is not a valid template: a lone {part!r} at "
                f"character {match.start()} (write {part * 2} for a brace)"
            )
        elif _FIELD_NAME.fullmatch(name):
            pieces.append(("".join(literal), name))
            literal = []
        else:
            raise InvalidInputError(
                f"payload['prompt_template'] field {part} is refused: templates take only "
                "plain named fields such as {text} or {child_age}: no positional fields, "
                "format specs (:...), conversions (!r), attributes or indexes"
            )
    pieces.append(("".join(literal) + template[position:], None))
    return pieces


def _child_age(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 18:
        raise InvalidInputError(
            f"context['child_age'] must be a whole number of years from 0 to 18, got {value!r}"
        )
    return value


def _emotion(task: ProcessingTask, context: Mapping[str, Any]) -> str | None:
    value = context.get("emotion")
    if value is None:
        value = inputs.get_input(task, "emotion")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(
            f"the emotion must be a string such as 'happy' or 'sad', got {type(value).__name__}"
        )
    label = value.strip().lower()
    return _EMOTION_WORDS.get(label, label) or None


def _child_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(
            f"context['child_name'] must be a string, got {type(value).__name__}"
        )
    name = value.strip()
    return name if _NAME.fullmatch(name) else None


def _max_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise InvalidInputError(
            f"payload['max_tokens'] must be a whole number from 1 to {MAX_TOKENS_LIMIT}, "
            f"got {value!r}"
        )
    return value


# -- the offline responder ---------------------------------------------------------------------


def offline_reply(
    text: str,
    *,
    child_age: int | None = None,
    emotion: str | None = None,
    child_name: str | None = None,
    session: str = "",
    max_tokens: int | None = None,
    use_embeddings: bool | None = None,
    assessment: safeguarding.Assessment | None = None,
    use_knowledge: bool = True,
) -> OfflineReply:
    """The offline reply to ``text`` (before the safety check).

    The child's words are assessed first (``assessment``, or :func:`.safeguarding.assess_child`):
    a risk is answered by its category's reply from :mod:`.risk_replies` (intent
    ``safeguarding:<category>``, engine ``safeguarding``). Then a question is answered from
    the knowledge base (:func:`_ask_knowledge`, with the embedding model and ``use_knowledge``:
    its answers are vetted text, so a turn the classifier is uncertain about may get one).
    Then the reply bank is searched; without a confident match the bear never echoes
    (:func:`_not_understood`), and the ``sharing`` intent echoes only a statement the
    classifier is sure is safe.

    ``use_embeddings`` None uses the embedding model when it is installed; False forces the
    keyword matcher. CPU-bound (sentence embeddings): call it from a worker thread.
    """
    if assessment is None:
        assessment = safeguarding.assess_child(text)
    seed = _seed(session, text)
    flags = tuple(dict.fromkeys(risk.category.value for risk in assessment.risks))
    top = assessment.top
    if top is not None:  # vetted words, never cut short
        reply = risk_replies.risk_reply(top.category, child_age, seed)
        name = f"safeguarding:{top.category.value}"
        return OfflineReply(reply, name, top.confidence, "safeguarding", flags, assessment)
    intent, similarity, engine, use_embeddings = _match_intent(text, use_embeddings)
    max_sentences, max_words = safety.length_limit(child_age)
    if max_tokens is not None:
        max_words = min(max_words, max(1, int(max_tokens * 0.75)))
    asked = None
    if use_embeddings and use_knowledge:
        asked = _ask_knowledge(text, intent, seed)
    if asked is not None and asked.reply is not None:
        reply = _fit(asked.reply, max_sentences, max_words)
        return OfflineReply(
            reply, asked.intent, asked.similarity, engine, flags, assessment, asked.match
        )
    found = asked.match if asked is not None else None
    question = risk_replies.is_question(text)
    if intent is None or (intent.reflect and (assessment.uncertain or question)):
        reply, name = _not_understood(text, question, assessment.uncertain, child_age, seed)
    elif intent.reflect and _echoable(text):
        reply, name = _fit(_reflect(text, seed), max_sentences, max_words), intent.name
    else:
        reply = _compose(intent, child_age, emotion, child_name, seed, max_sentences, max_words)
        name = intent.name
    return OfflineReply(reply, name, round(similarity, 4), engine, flags, assessment, found)


def _match_intent(text: str, use_embeddings: bool | None) -> tuple[Intent | None, float, str, bool]:
    """(intent, similarity, engine, whether embeddings were used) for ``text``."""
    if use_embeddings is None:
        use_embeddings = embeddings.model_available()
    if use_embeddings:
        intent, similarity = _embedding_match(text)
        return intent, similarity, "embedding-retrieval", True
    intent, similarity = _keyword_match(text)
    return intent, similarity, "keyword-retrieval", False


@dataclass(frozen=True)
class _Asked:
    """What the knowledge base made of a question."""

    reply: str | None  # None: leave the question to the intents
    intent: str
    similarity: float
    match: dict[str, Any] | None


def _ask_knowledge(text: str, intent: Intent | None, seed: int) -> _Asked | None:
    """The knowledge base's answer to a question or a "tell me about" request; for a question
    it cannot answer, "not sure" unless one of :data:`_QUESTION_INTENTS` fits. None leaves
    ``text`` to the intents as it is (not a question). The first call embeds the knowledge
    base, whatever ``text`` is, so that a warm-up turn also warms it."""
    knowledge.warm_up()
    words = _without_address(text)
    asked = knowledge.subject(words)
    match = knowledge.lookup(asked) if asked is not None else None
    found = match.to_dict() if match is not None else None
    similarity = found["similarity"] if found is not None else 0.0
    if match is not None and match.entry is not None:
        return _Asked(match.entry.answer, KNOWLEDGE_INTENT, similarity, found)
    if not knowledge.is_question(words):
        return _Asked(None, "", similarity, found) if found is not None else None
    if intent is not None and intent.name in _QUESTION_INTENTS:
        return _Asked(None, intent.name, similarity, found)
    return _Asked(knowledge.not_sure_reply(seed), NOT_SURE_INTENT, similarity, found)


def _not_understood(
    text: str, question: bool, uncertain: bool, child_age: int | None, seed: int
) -> tuple[str, str]:
    """(reply, intent) when the bank has no confident answer: never the child's words back.

    Gibberish is asked to be said again; a question goes to a grown-up together; words the
    classifier is unsure about get the ``unsure`` reply; anything else a gentle "say it
    another way" (the echo is kept for the ``sharing`` intent, on words judged safe).
    """
    if not _echoable(text):
        return CLARIFY[seed % len(CLARIFY)], _FALLBACK
    if question:
        return risk_replies.question_reply(child_age, seed), _QUESTION
    if uncertain:
        return risk_replies.unsure_reply(child_age, seed), _UNSURE
    return CLARIFY[seed % len(CLARIFY)], _FALLBACK


def _offline_result(request: _Request, child: safeguarding.Assessment) -> dict[str, Any]:
    chosen = offline_reply(
        request.input_text,
        child_age=request.child_age,
        emotion=request.emotion,
        child_name=request.child_name,
        session=request.session,
        max_tokens=request.max_tokens,
        assessment=child,
    )
    if chosen.engine == "safeguarding" or chosen.intent in (_QUESTION, _UNSURE):
        verdict = safety.SafetyVerdict(True, (), "allowed", (), chosen.text)  # vetted replies
        model = "teddy-risk-replies"
    else:
        verdict = safety.check_reply(
            chosen.text, request.child_age, request.emotion, child_message=request.input_text
        )
        matcher = "all-MiniLM-L6-v2" if chosen.engine == "embedding-retrieval" else "keywords"
        bank = "teddy-knowledge" if chosen.intent == KNOWLEDGE_INTENT else "teddy-reply-bank"
        model = f"{bank}/{matcher}"
    return {
        "response": verdict.text,
        "model": model,
        "provider": "offline",
        "engine": chosen.engine,
        "safety": verdict.to_dict(),
        "intent": chosen.intent,
        "similarity": chosen.similarity,
        "input_flags": list(chosen.input_flags),
        "knowledge": chosen.knowledge,
    }


_INTENTS_BY_NAME = {intent.name: intent for intent in INTENTS}


@dataclass(frozen=True)
class _EmbeddingIndex:
    vectors: npt.NDArray[np.float32]  # one L2-normalised row per example utterance
    rows: tuple[npt.NDArray[np.intp], ...]  # per intent (INTENTS order), its rows


_index_lock = threading.Lock()
_index: _EmbeddingIndex | None = None


def _without_address(text: str) -> str:
    """``text`` without the words that name the bear ("hi teddy" -> "hi"): they say who is
    spoken to, not what about, and would pull every sentence towards examples that have them.
    """
    stripped = _ADDRESS.sub(" ", text)
    stripped = re.sub(r"\s+([,.!?])", r"\1", stripped).strip(" ,")
    return stripped if re.search(r"[^\W\d_]", stripped) else text


def _embedding_index() -> _EmbeddingIndex:
    """The example utterances embedded once per process (the first caller builds it)."""
    global _index
    if _index is None:
        with _index_lock:
            if _index is None:
                np = extras.require("numpy", "nlp", "The AI responder's intent index")
                examples = [_without_address(e) for intent in INTENTS for e in intent.examples]
                owners = np.array([i for i, intent in enumerate(INTENTS) for _ in intent.examples])
                rows = tuple(np.flatnonzero(owners == i) for i in range(len(INTENTS)))
                _index = _EmbeddingIndex(embeddings.encode(examples), rows)
    return _index


def _embedding_match(text: str) -> tuple[Intent | None, float]:
    """The intent whose closest examples are nearest, by cosine similarity.

    An intent's score is the mean of its :data:`NEAREST` highest similarities: one
    look-alike example (``"how do you spell cat"`` for ``"my cat is called Fluffy"``) does not
    win on its own.
    """
    index = _embedding_index()
    similarities = index.vectors @ embeddings.encode([_without_address(text)])[0]
    scores = [
        float(similarities[rows][similarities[rows].argsort()[-NEAREST:]].mean())
        for rows in index.rows
    ]
    best = max(range(len(scores)), key=scores.__getitem__)
    return (INTENTS[best] if scores[best] >= EMBEDDING_THRESHOLD else None), scores[best]


def _words(text: str) -> list[str]:
    """Lower-case content words, apostrophes dropped, a plural ``s`` stripped."""
    words = []
    for word in _WORD.findall(text.lower()):
        word = word.replace("'", "")
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return words


@dataclass(frozen=True)
class _KeywordIndex:
    vocabularies: tuple[frozenset[str], ...]  # per intent, in INTENTS order
    idf: Mapping[str, float]


def _build_keyword_index() -> _KeywordIndex:
    vocabularies = tuple(
        frozenset(_words(" ".join(intent.examples + intent.keywords))) for intent in INTENTS
    )
    counts: dict[str, int] = {}
    for vocabulary in vocabularies:
        for word in vocabulary:
            counts[word] = counts.get(word, 0) + 1
    idf = {word: log(1 + len(INTENTS) / count) for word, count in counts.items()}
    return _KeywordIndex(vocabularies, idf)


_KEYWORDS = _build_keyword_index()


def _keyword_match(text: str) -> tuple[Intent | None, float]:
    """The intent sharing the largest idf-weighted share of the child's content words."""
    words = set(_words(text))
    # A word no intent knows still counts, as much as the rarest known word.
    unknown = max(_KEYWORDS.idf.values())
    total = sum(_KEYWORDS.idf.get(word, unknown) for word in words)
    if not total:
        return None, 0.0
    scores = [
        sum(_KEYWORDS.idf[word] for word in words & vocabulary) / total
        for vocabulary in _KEYWORDS.vocabularies
    ]
    best = max(range(len(scores)), key=scores.__getitem__)
    score = scores[best]
    return (INTENTS[best] if score >= KEYWORD_THRESHOLD else None), score


def _seed(session: str, text: str) -> int:
    """A stable number for this session, turn and utterance (no randomness)."""
    normalised = " ".join(_WORD.findall(text.lower()))
    return int.from_bytes(hashlib.sha256(f"{session}\x00{normalised}".encode()).digest()[:8])


def _compose(
    intent: Intent,
    age: int | None,
    emotion: str | None,
    name: str | None,
    seed: int,
    max_sentences: int,
    max_words: int,
) -> str:
    """A reply of ``intent`` for this age, within the length limits, after an emotion opener
    when the opener and the reply's first sentence fit together."""
    young = age is not None and age <= YOUNG_AGE
    pool = intent.young if young and intent.young else intent.replies
    reply = pool[seed % len(pool)].replace("{name}", name or "friend")
    openers = EMOTION_OPENERS.get(emotion or "")
    if openers and emotion not in intent.addresses:
        opener = openers[(seed >> 16) % len(openers)]
        first = safety.split_sentences(reply)[0]
        if _fits(f"{opener} {first}", max_sentences, max_words):
            reply = f"{opener} {reply}"
    return _fit(reply, max_sentences, max_words)


def _echoable(text: str) -> bool:
    """Whether the child's (safe) words may be said back: real words, not gibberish."""
    return bool(_COMMON_WORDS.intersection(_WORD.findall(text.lower())))


def _reflect(text: str, seed: int) -> str:
    """The child's words seen from the bear's side ("my dog" -> "your dog"), as a question."""
    words = []
    for index, word in enumerate(_SPOKEN_WORD.findall(text)[:12]):
        lower = word.lower()
        if lower in _SWAPS:
            word = _SWAPS[lower]
        elif index == 0 and lower in _COMMON_WORDS:
            word = lower  # the start of the child's sentence, not a name
        words.append(word)
    reply = REFLECT[seed % len(REFLECT)].format(echo=" ".join(words))
    return reply[0].upper() + reply[1:]


def _fits(text: str, max_sentences: int, max_words: int) -> bool:
    return len(safety.split_sentences(text)) <= max_sentences and (
        safety.word_count(text) <= max_words
    )


def _fit(reply: str, max_sentences: int, max_words: int) -> str:
    """The first whole sentences of ``reply`` within the limits (at least the first, cut)."""
    kept: list[str] = []
    for sentence in safety.split_sentences(reply)[:max_sentences]:
        if not _fits(" ".join([*kept, sentence]), max_sentences, max_words):
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    return " ".join(reply.split()[:max_words]).rstrip(",;:") + "..."
