"""One synchronous OpenAI SDK client per provider settings and process, shared by the
processors that call an OpenAI-compatible API from a worker thread (transcription, image
generation); a client keeps its connection pool between tasks. Its connections obey the egress
policy of the settings (see :mod:`.egress`)."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ProviderRequestError
from . import egress_http
from .egress import EgressPolicy
from .extras import require
from .settings import ProviderSettings

__all__ = ["sync_client"]

_clients: dict[tuple[ProviderSettings, tuple[str, ...]], Any] = {}
_lock = threading.Lock()


def sync_client(provider: ProviderSettings, purpose: str, egress_allow: tuple[str, ...]) -> Any:
    """The ``openai.OpenAI`` client for ``provider``, made on first use, that connects only
    where ``egress_allow`` (:attr:`Settings.egress_allow`) lets it.

    Raises:
        MissingExtraError: the ``ai`` extra is not installed.
        ProviderRequestError: the SDK refuses the settings (no API key, a bad URL).
    """
    with _lock:
        key = (provider, egress_allow)
        client = _clients.get(key)
        if client is None:
            openai = require("openai", "ai", purpose)
            http_client = egress_http.sync_client(
                EgressPolicy(egress_allow),
                egress_http.http_family(openai),
                timeout=provider.timeout,
                follow_redirects=True,
            )
            try:
                client = openai.OpenAI(
                    api_key=provider.api_key,
                    base_url=provider.base_url,
                    timeout=provider.timeout,
                    max_retries=provider.max_retries,
                    http_client=http_client,
                )
            except openai.OpenAIError as exc:
                raise ProviderRequestError(
                    f"{purpose}: the provider is not usable as configured: {exc} (set "
                    "OPENAI_API_KEY, or ProviderSettings.api_key; any value for a server that "
                    "needs none)"
                ) from exc
            _clients[key] = client
        return client
