"""Settings: the offline default, the environment, and refused values."""

from __future__ import annotations

import pickle

import pytest

from async_processor import InvalidArgumentError, ProviderSettings, Settings, SmtpSettings


def test_default_is_offline() -> None:
    settings = Settings()
    assert settings.llm is None and settings.speech_to_text is None
    assert settings.emotion is None and settings.images is None and settings.smtp is None
    assert settings.databases["default"].startswith("sqlite:///")


def test_empty_environment_is_offline() -> None:
    assert Settings.from_env({}) == Settings()


def test_environment_configures_providers() -> None:
    settings = Settings.from_env(
        {
            "ASYNC_PROCESSOR_LLM": "anthropic",
            "ANTHROPIC_API_KEY": "k",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
            "ASYNC_PROCESSOR_LLM_MODEL": "claude-test",
            "ASYNC_PROCESSOR_STT": "openai",
            "OPENAI_API_KEY": "o",
            "HUME_API_KEY": "h",
            "ASYNC_PROCESSOR_IMAGES": "openai",
            "ASYNC_PROCESSOR_DATABASES": "main=postgresql://u@localhost/db, logs=sqlite:///l.db",
            "ASYNC_PROCESSOR_SMTP_URL": "smtp://me:p%40ss@mail.local:587",
            "ASYNC_PROCESSOR_MAIL_FROM": "bear@example.org",
            "ASYNC_PROCESSOR_WEBHOOK_SECRET": "s",
            "ASYNC_PROCESSOR_SMS_URL": "http://127.0.0.1:9/sms",
            "ASYNC_PROCESSOR_SMS_TOKEN": "t",
        }
    )
    assert settings.llm == ProviderSettings("anthropic", "http://127.0.0.1:9", "k", "claude-test")
    assert settings.speech_to_text is not None and settings.speech_to_text.kind == "openai"
    assert settings.emotion is not None and settings.emotion.kind == "hume"
    assert settings.images is not None and settings.images.api_key == "o"
    assert settings.databases["main"] == "postgresql://u@localhost/db"
    assert settings.databases["logs"] == "sqlite:///l.db"
    assert "default" in settings.databases
    assert settings.smtp == SmtpSettings(
        "mail.local", 587, "me", "p@ss", "bear@example.org", use_tls=False
    )
    assert settings.webhook_secret == "s"
    assert settings.sms is not None and settings.sms.api_key == "t"
    assert settings.push is None


def test_settings_pickle_for_the_process_pool() -> None:
    settings = Settings.from_env({"ASYNC_PROCESSOR_LLM": "openai", "OPENAI_API_KEY": "x"})
    assert pickle.loads(pickle.dumps(settings)) == settings


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ASYNC_PROCESSOR_LLM": "gpt"}, "offline, openai or anthropic"),
        ({"ASYNC_PROCESSOR_DATABASES": "nourl"}, "name=url"),
        ({"ASYNC_PROCESSOR_DATABASES": "x=mysql://h/db"}, "sqlite:///path or postgresql"),
        ({"ASYNC_PROCESSOR_SMTP_URL": "mail.local:25"}, "smtp://"),
        ({"ASYNC_PROCESSOR_STT": "vosk"}, "transcription_engine"),
    ],
)
def test_bad_environment_is_refused_with_a_hint(environ: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cohere"}, "provider kind"),
        ({"kind": "openai", "timeout": 0}, "timeout"),
        ({"kind": "openai", "max_retries": -1}, "max_retries"),
    ],
)
def test_bad_provider_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        ProviderSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_audio_seconds": 0}, "max_audio_seconds"),
        ({"statement_timeout": -1}, "statement_timeout"),
        ({"max_image_pixels": 0}, "max_image_pixels"),
    ],
)
def test_bad_limits(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_smtps_url_defaults_to_tls_port() -> None:
    smtp = SmtpSettings.from_url("smtps://mail.local")
    assert (smtp.port, smtp.use_tls, smtp.username) == (465, True, None)


def test_environment_chooses_the_speech_engine() -> None:
    assert Settings.from_env({"ASYNC_PROCESSOR_TTS": "piper"}).speech is None
    settings = Settings.from_env(
        {
            "ASYNC_PROCESSOR_TTS": "openai",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "OPENAI_API_KEY": "o",
            "ASYNC_PROCESSOR_TTS_MODEL": "tts-1-hd",
        }
    )
    assert settings.speech == ProviderSettings("openai", "http://127.0.0.1:9/v1", "o", "tts-1-hd")
    with pytest.raises(InvalidArgumentError, match="ASYNC_PROCESSOR_TTS must be piper or openai"):
        Settings.from_env({"ASYNC_PROCESSOR_TTS": "espeak"})
