"""Safeguarding over HTTP: ``ai_response`` tasks submitted to the real service, answered by a
real local OpenAI-compatible server that plays a misbehaving model, with the safeguarding
alert reaching a real signed-webhook receiver."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from async_processor import ProviderSettings, Settings
from async_processor.processors import safeguarding_alerts, safety
from async_processor.processors.risk_replies import REPLIES
from async_processor.processors.safeguarding import Category

from .conftest import TOKENS, start_service

sys.path.insert(0, str(Path(__file__).parent.parent / "processors"))
from llm_server import LLMServer, Reply
from servers import HttpReceiver

pytest.importorskip("openai")
pytest.importorskip("aiohttp")

T = TypeVar("T")
SECRET = "http-alert-secret"


class Servers:
    """The fake model and the alert receiver, on an event loop in a thread of their own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, llm: LLMServer, hook: HttpReceiver):
        self.loop, self.llm, self.hook = loop, llm, hook

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


@contextmanager
def local_servers() -> Iterator[Servers]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[LLMServer, HttpReceiver]:
        llm = LLMServer()
        await llm.start()
        hook = HttpReceiver(secret=SECRET)
        await hook.__aenter__()
        return llm, hook

    servers = Servers(loop, *asyncio.run_coroutine_threadsafe(start(), loop).result(30))
    try:
        yield servers
    finally:
        servers.run(servers.llm.close())
        servers.run(servers.hook.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def local_settings(servers: Servers) -> Settings:
    """Settings for servers on 127.0.0.1: the one place to allow loopback egress."""
    return Settings(
        llm=ProviderSettings("openai", servers.llm.openai_url, "k", "teddy", max_retries=0),
        webhook_secret=SECRET,
        parent_webhook=servers.hook.url("/parent"),
        egress_allow=("127.0.0.1",),
    )


def reply_over_http(base_url: str, words: str, session: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        created = client.post(
            "/tasks",
            json={
                "task_type": "ai_response",
                "priority": "critical",
                "payload": {
                    "prompt": f'The child said: "{words}"',
                    "context": {"child_age": 6, "session_id": session},
                },
            },
        )
        assert created.status_code == 201, created.text
        done = client.get(f"/tasks/{created.json()['id']}/wait", params={"timeout": 60})
    body: dict[str, Any] = done.json()
    assert body["status"] == "completed", body
    return body


def test_over_http_a_misbehaving_model_is_gated_and_a_disclosure_alerts() -> None:
    safeguarding_alerts.forget_sessions()
    with local_servers() as servers:
        servers.llm.queue(Reply("Stars are far away. Call me on 555 123 4567 tonight!"))
        with start_service(builtin_processors=True, settings=local_settings(servers)) as svc:
            unsafe = reply_over_http(svc.base_url, "what shall we play?", "http-1")
            told = reply_over_http(svc.base_url, "I want to kill myself", "http-1")
            again = reply_over_http(svc.base_url, "I want to kill myself", "http-1")
        received = servers.hook.received
    reply = unsafe["result"]
    assert reply["response"].startswith("Stars are far away. ")
    assert reply["response"].endswith(tuple(safety.SAFE_REPLIES.values()))
    assert "555" not in reply["response"] and reply["safety"]["action"] == "replaced"
    assert told["result"]["response"] in REPLIES.categories[Category.SELF_HARM].older
    assert told["result"]["safeguarding"]["alert"]["sent"] is True
    assert again["result"]["safeguarding"]["alert"]["duplicate"] is True
    assert len(servers.llm.requests) == 1  # the disclosures never went to the model
    assert [posted.path for posted in received] == ["/parent"]
    assert received[0].json()["data"]["category"] == "self_harm"
