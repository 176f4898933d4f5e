"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic chat APIs.

The official SDKs are pointed at it with ``base_url``. It answers
``POST /v1/chat/completions`` (OpenAI, streaming SSE or one JSON body), ``POST /v1/messages``
(Anthropic, streaming SSE events or one JSON body) and ``POST /v1/moderations`` (OpenAI's
moderation endpoint). What it does next is scripted: queue :class:`Reply`, :class:`Fail`,
:class:`Hang` or :class:`Raw` behaviours, one per request, in order; when the queue is empty
it sends ``default``. The moderation endpoint has its own script (:meth:`LLMServer.moderate`
with :class:`Flag`, :class:`Fail` or :class:`Hang`; :class:`Flag` ``(False)`` by default).
Every request is recorded. Played as a misbehaving model, it says what it is told to.

    async with LLMServer() as server:
        server.queue(Fail(429), Reply("Hello!"))
        client = openai.AsyncOpenAI(api_key="k", base_url=server.openai_url)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["Fail", "Flag", "Hang", "LLMServer", "Raw", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """Answer with ``text`` (streamed word by word when the request asks for a stream)."""

    text: str
    input_tokens: int = 12
    output_tokens: int | None = None


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error in the provider's error format."""

    status: int
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=lambda: {"retry-after-ms": "10"})


@dataclass(frozen=True)
class Hang:
    """Accept the request and send nothing for ``seconds`` (or until the server closes)."""

    seconds: float = 60.0


@dataclass(frozen=True)
class Raw:
    """Send ``body`` as it is, with status 200 and ``content_type``."""

    body: bytes
    content_type: str = "text/event-stream"


@dataclass(frozen=True)
class Flag:
    """A moderation verdict: ``flagged`` with these ``categories`` (OpenAI's names)."""

    flagged: bool
    categories: tuple[str, ...] = ()


Behaviour = Reply | Fail | Hang | Raw
ModerationBehaviour = Flag | Fail | Hang

#: Every category of OpenAI's moderation result, by its JSON name.
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class LLMServer:
    """An aiohttp app on 127.0.0.1 with a free port, run on the current event loop."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default: Behaviour = default if default is not None else Reply("Hi! I am a bear.")
        self.requests: list[RecordedRequest] = []
        #: Set when a request arrives (clear it to wait for the next one).
        self.request_arrived = asyncio.Event()
        self._script: deque[Behaviour] = deque()
        self.moderation_default: ModerationBehaviour = Flag(False)
        self._moderation_script: deque[ModerationBehaviour] = deque()
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/moderations", self._moderations)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """The ``base_url`` for ``openai.AsyncOpenAI``."""
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        """The ``base_url`` for ``anthropic.AsyncAnthropic``."""
        return self.url

    def queue(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order."""
        self._script.extend(behaviours)

    def moderate(self, *behaviours: ModerationBehaviour) -> None:
        """Answer the next moderation requests with these behaviours, in order."""
        self._moderation_script.extend(behaviours)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._closing.set()
        await self._runner.cleanup()

    async def __aenter__(self) -> LLMServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _next(self, request: web.Request) -> tuple[Behaviour, dict[str, Any]]:
        body = await request.json()
        self.requests.append(
            RecordedRequest(request.path, dict(request.headers), body, time.monotonic())
        )
        self.request_arrived.set()
        behaviour = self._script.popleft() if self._script else self.default
        if isinstance(behaviour, Hang):
            try:
                async with asyncio.timeout(behaviour.seconds):
                    await self._closing.wait()
            except TimeoutError:
                pass
        return behaviour, body

    async def _moderations(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            RecordedRequest(request.path, dict(request.headers), body, time.monotonic())
        )
        self.request_arrived.set()
        script = self._moderation_script
        behaviour = script.popleft() if script else self.moderation_default
        if isinstance(behaviour, Hang):
            try:
                async with asyncio.timeout(behaviour.seconds):
                    await self._closing.wait()
            except TimeoutError:
                pass
            return _openai_error(503, "the server closed while hanging", {})
        if isinstance(behaviour, Fail):
            return _openai_error(behaviour.status, behaviour.message, behaviour.headers)
        flags = {name: name in behaviour.categories for name in MODERATION_CATEGORIES}
        result = {
            "flagged": behaviour.flagged,
            "categories": flags,
            "category_scores": {name: 0.9 if on else 0.01 for name, on in flags.items()},
            "category_applied_input_types": {name: ["text"] for name in flags},
        }
        model = body.get("model", "omni-moderation-latest")
        return web.json_response({"id": "modr-fake", "model": model, "results": [result]})

    @staticmethod
    def _authorised(request: web.Request) -> bool:
        # anthropic 2.x sends Authorization: Bearer; older SDKs send x-api-key.
        return bool(request.headers.get("x-api-key") or request.headers.get("Authorization"))

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        behaviour, body = await self._next(request)
        if not self._authorised(request):
            return _openai_error(401, "missing API key", {})
        if isinstance(behaviour, Fail):
            return _openai_error(behaviour.status, behaviour.message, behaviour.headers)
        if isinstance(behaviour, Raw):
            return web.Response(body=behaviour.body, content_type=behaviour.content_type)
        if isinstance(behaviour, Hang):
            return _openai_error(503, "the server closed while hanging", {})
        model = body.get("model", "fake-model")
        words = _pieces(behaviour.text)
        usage = {
            "prompt_tokens": behaviour.input_tokens,
            "completion_tokens": behaviour.output_tokens or len(words),
            "total_tokens": behaviour.input_tokens + (behaviour.output_tokens or len(words)),
        }
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": behaviour.text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        response = await _sse(request)

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        await _data(response, chunk({"role": "assistant", "content": ""}, None))
        for word in words:
            await _data(response, chunk({"content": word}, None))
        await _data(response, chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            final = chunk({}, None)
            final["choices"] = []
            final["usage"] = usage
            await _data(response, final)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        behaviour, body = await self._next(request)
        if not self._authorised(request):
            return _anthropic_error(401, "missing API key", {})
        if isinstance(behaviour, Fail):
            return _anthropic_error(behaviour.status, behaviour.message, behaviour.headers)
        if isinstance(behaviour, Raw):
            return web.Response(body=behaviour.body, content_type=behaviour.content_type)
        if isinstance(behaviour, Hang):
            return _anthropic_error(529, "the server closed while hanging", {})
        model = body.get("model", "fake-model")
        words = _pieces(behaviour.text)
        output_tokens = behaviour.output_tokens or len(words)
        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": behaviour.input_tokens, "output_tokens": 1},
        }
        if not body.get("stream"):
            message["content"] = [{"type": "text", "text": behaviour.text}]
            message["stop_reason"] = "end_turn"
            message["usage"]["output_tokens"] = output_tokens
            return web.json_response(message)
        response = await _sse(request)
        await _event(response, "message_start", {"type": "message_start", "message": message})
        await _event(
            response,
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await _event(response, "ping", {"type": "ping"})
        for word in words:
            await _event(
                response,
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
            )
        await _event(response, "content_block_stop", {"type": "content_block_stop", "index": 0})
        await _event(
            response,
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        await _event(response, "message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


def _pieces(text: str) -> list[str]:
    """``text`` cut into word-sized stream deltas that join back to it exactly."""
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


async def _sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


async def _data(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())


async def _event(response: web.StreamResponse, name: str, payload: dict[str, Any]) -> None:
    await response.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())


def _openai_error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    body = {"error": {"message": message, "type": "fake_error", "code": str(status)}}
    return web.json_response(body, status=status, headers=headers)


def _anthropic_error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers=headers)
