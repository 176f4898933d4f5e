"""The demo's ``--provider`` path against a real local server speaking the provider's API."""

from __future__ import annotations

import json

import pytest
from llm_server import LLMServer, Reply

from async_processor import TaskStatus
from async_processor.demo import load_clips, run_demo

pytest.importorskip("faster_whisper")
pytest.importorskip("openai")


async def test_demo_provider_openai_answers_through_the_configured_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--provider openai`` with OPENAI_BASE_URL at a real local OpenAI-speaking server."""
    async with LLMServer(default=Reply("What a tall tower! Tell me about the top block.")) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_url)
        monkeypatch.setenv("ASYNC_PROCESSOR_EGRESS_ALLOW", "127.0.0.1")  # the local LLM server
        monkeypatch.setenv("ASYNC_PROCESSOR_LLM_MODEL", "local-model")
        clips = [clip for clip in load_clips() if clip.name == "tower"]
        report = await run_demo("openai", clips=clips, out=lambda line: None)
    reply = report.turns[0].results["reply"]
    assert reply.status is TaskStatus.COMPLETED, reply.error
    assert reply.result["provider"] == "openai"
    # The model's first sentence reaches the child. The second, "Tell me about the top
    # block.", is a known false positive of the safeguarding classifier (personal
    # information; docs/processors/safeguarding.md), so only the first is asserted here.
    assert reply.result["response"].startswith("What a tall tower!")
    prompts = [json.dumps(request.body) for request in fake.requests]
    assert any("I built a tall tower" in prompt for prompt in prompts)  # the child's words
