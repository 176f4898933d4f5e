"""One synchronous OpenAI SDK client per provider settings and process, shared by the
processors that call an OpenAI-compatible API from a worker thread (transcription, image
generation); a client keeps its connection pool between tasks."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ProviderRequestError
from .extras import require
from .settings import ProviderSettings

__all__ = ["sync_client"]

_clients: dict[ProviderSettings, Any] = {}
_lock = threading.Lock()


def sync_client(provider: ProviderSettings, purpose: str) -> Any:
    """The ``openai.OpenAI`` client for ``provider``, made on first use.

    Raises:
        MissingExtraError: the ``ai`` extra is not installed.
        ProviderRequestError: the SDK refuses the settings (no API key, a bad URL).
    """
    with _lock:
        client = _clients.get(provider)
        if client is None:
            openai = require("openai", "ai", purpose)
            try:
                client = openai.OpenAI(
                    api_key=provider.api_key,
                    base_url=provider.base_url,
                    timeout=provider.timeout,
                    max_retries=provider.max_retries,
                )
            except openai.OpenAIError as exc:
                raise ProviderRequestError(
                    f"{purpose}: the provider is not usable as configured: {exc} (set "
                    "OPENAI_API_KEY, or ProviderSettings.api_key; any value for a server that "
                    "needs none)"
                ) from exc
            _clients[provider] = client
        return client
