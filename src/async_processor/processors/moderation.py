"""A provider moderation check for the bear's replies (``Settings.moderation``).

Two ways to ask an OpenAI-compatible server, chosen by ``Settings.moderation_api``:

- ``"moderations"``: the moderation endpoint (``client.moderations.create``, model
  ``omni-moderation-latest`` unless ``ProviderSettings.model`` names another); the reply is
  flagged when the endpoint says ``flagged``.
- ``"guard"``: a guard model such as Llama Guard served behind chat completions (vLLM,
  llama.cpp, Ollama): the child's words and the reply are sent as a conversation, and the
  model's answer must begin with ``safe`` or ``unsafe`` (then the hazard codes, ``S1,S11``).

Any failure (no connection, an HTTP error, a timeout, an answer that is neither) raises
:class:`ModerationFailed`; the caller fails closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..errors import EgressDeniedError
from . import extras
from .egress import EgressPolicy, denial_in
from .settings import ProviderSettings

__all__ = ["DEFAULT_MODERATION_MODEL", "ModerationFailed", "ModerationVerdict", "moderate"]

DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


class ModerationFailed(Exception):
    """The moderation check could not give a verdict."""


@dataclass(frozen=True)
class ModerationVerdict:
    """What the moderation provider said about one text."""

    flagged: bool
    categories: tuple[str, ...]


async def moderate(
    text: str,
    child_message: str | None,
    config: ProviderSettings,
    api: str,
    egress_allow: tuple[str, ...] = (),
) -> ModerationVerdict:
    """Ask the moderation provider about ``text`` (a reply to ``child_message``), through
    connections that obey the egress policy (``egress_allow``).

    Raises:
        ModerationFailed: no verdict within ``config.timeout``, or any error (an egress
            refusal included); its message never carries a response body.
    """
    openai = extras.require("openai", "ai", "The moderation check")
    from . import egress_http  # httpx (or httpx2) comes with the SDK

    http_client = await egress_http.async_client(
        EgressPolicy(egress_allow), egress_http.http_family(openai), timeout=config.timeout
    )
    client = openai.AsyncOpenAI(
        api_key=config.api_key or "unused",
        base_url=config.base_url,
        timeout=config.timeout,
        max_retries=config.max_retries,
        http_client=http_client,
    )
    try:
        async with client, asyncio.timeout(config.timeout * (config.max_retries + 1)):
            if api == "guard":
                return await _guard(client, text, child_message, config)
            return await _endpoint(client, text, config)
    except ModerationFailed:
        raise
    except TimeoutError as exc:
        raise ModerationFailed(f"no moderation verdict within {config.timeout:g} s") from exc
    except EgressDeniedError as exc:
        raise ModerationFailed(f"the moderation check failed: {exc}") from exc
    except Exception as exc:  # an HTTP error, no connection, a malformed answer
        denied = denial_in(exc)
        if denied is not None:
            raise ModerationFailed(f"the moderation check failed: {denied}") from exc
        status = getattr(exc, "status_code", None)
        detail = f" (HTTP {status})" if isinstance(status, int) else ""
        raise ModerationFailed(
            f"the moderation check failed: {type(exc).__name__}{detail}"
        ) from exc


async def _endpoint(client: Any, text: str, config: ProviderSettings) -> ModerationVerdict:
    response = await client.moderations.create(
        model=config.model or DEFAULT_MODERATION_MODEL, input=text
    )
    if not response.results:
        raise ModerationFailed("the moderation endpoint returned no result")
    result = response.results[0]
    flags = result.categories.model_dump(by_alias=True)
    return ModerationVerdict(bool(result.flagged), tuple(sorted(k for k, v in flags.items() if v)))


async def _guard(
    client: Any, text: str, child_message: str | None, config: ProviderSettings
) -> ModerationVerdict:
    if not config.model:
        raise ModerationFailed(
            "a guard model needs its name: set ASYNC_PROCESSOR_MODERATION_MODEL (or "
            "ProviderSettings.model)"
        )
    messages = [
        {"role": "user", "content": child_message or ""},
        {"role": "assistant", "content": text},
    ]
    response = await client.chat.completions.create(
        model=config.model, messages=messages, max_tokens=20, temperature=0
    )
    answer = (response.choices[0].message.content or "").strip() if response.choices else ""
    first, _, rest = answer.partition("\n")
    verdict = first.strip().lower()
    if verdict == "safe":
        return ModerationVerdict(False, ())
    if verdict == "unsafe":
        codes = tuple(code.strip() for code in rest.split(",") if code.strip())
        return ModerationVerdict(True, codes)
    raise ModerationFailed(f"the guard model answered neither safe nor unsafe: {answer[:80]!r}")
