"""Finding 8 of the hardening issue: ``repr(Settings(...))`` showed API keys and passwords,
so any log line or traceback that printed the settings leaked them."""

from __future__ import annotations

import logging

import pytest

from async_processor import Settings
from async_processor.processors import ProviderSettings, SmtpSettings

SECRETS = ("sk-live-123", "smtp-pass-456", "hook-789", "db-pass-000", "gw-tok-111", "url-pw-222")


def settings_full_of_secrets() -> Settings:
    return Settings(
        llm=ProviderSettings("openai", "https://user:url-pw-222@llm.example", "sk-live-123"),
        emotion=ProviderSettings("hume", "https://api.hume.ai", "sk-live-123"),
        smtp=SmtpSettings("mail.example", 587, "teddy", "smtp-pass-456"),
        webhook_secret="hook-789",
        databases={"main": "postgresql://teddy:db-pass-000@db.example:5432/teddy"},
        sms=ProviderSettings("http", "https://sms.example/send", "gw-tok-111"),
    )


def test_reprs_hide_keys_passwords_and_tokens() -> None:
    settings = settings_full_of_secrets()
    for shown in (repr(settings), str(settings), f"{settings!r}", repr(settings.smtp)):
        for secret in SECRETS:
            assert secret not in shown, (secret, shown)
    assert "***" in repr(settings)
    assert "db.example:5432/teddy" in repr(settings)  # what is not secret still shows
    assert "teddy" in repr(settings.smtp) and "mail.example" in repr(settings.smtp)
    assert repr(ProviderSettings("openai", api_key=None)).count("***") == 0


def test_settings_from_the_environment_hide_them_too(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env(
        {
            "ASYNC_PROCESSOR_LLM": "anthropic",
            "ANTHROPIC_API_KEY": "sk-live-123",
            "ASYNC_PROCESSOR_SMTP_URL": "smtp://teddy:smtp-pass-456@mail.example:587",
            "ASYNC_PROCESSOR_WEBHOOK_SECRET": "hook-789",
            "ASYNC_PROCESSOR_PUSH_URL": "https://push.example",
            "ASYNC_PROCESSOR_PUSH_TOKEN": "gw-tok-111",
        }
    )
    with caplog.at_level(logging.INFO):
        logging.getLogger("async_processor.test").info("settings: %s", settings)
    for secret in SECRETS:
        assert secret not in caplog.text
    assert settings.smtp is not None and settings.smtp.password == "smtp-pass-456"  # still usable
