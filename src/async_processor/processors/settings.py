"""How the built-in processors are configured: engines, provider APIs, databases, mail.

Nothing here is read from a task's payload: a task cannot switch a processor to a provider
or point it at another server. ``Settings()`` is the offline default; ``Settings.from_env()``
reads the environment variables listed on each field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import InvalidArgumentError
from .egress import ALLOW_VARIABLE, parse_allow

__all__ = ["ProviderSettings", "Settings", "SmtpSettings", "default_database_path"]

PROVIDER_KINDS = ("openai", "anthropic", "hume", "http")
#: What a repr shows instead of a key, password, token or secret.
HIDDEN = "***"
#: How ``Settings.moderation`` is asked: the moderation endpoint, or a guard chat model.
MODERATION_APIS = ("moderations", "guard")


def _hidden(_: object) -> str:
    return HIDDEN


def _url_without_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:{HIDDEN}@{host}"))


def _masked_repr(obj: Any, masks: Mapping[str, Callable[[Any], Any]]) -> str:
    """A dataclass repr in which the fields named in ``masks`` are shown masked."""
    shown = []
    for item in fields(obj):
        value = getattr(obj, item.name)
        if value is not None and item.name in masks:
            value = masks[item.name](value)
        shown.append(f"{item.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


@dataclass(frozen=True, repr=False)
class ProviderSettings:
    """One provider API.

    ``kind`` is ``"openai"`` (also any OpenAI-compatible server: llama.cpp, vLLM, Ollama,
    faster-whisper-server), ``"anthropic"``, ``"hume"`` or ``"http"`` (a plain JSON endpoint,
    for SMS and push gateways). ``timeout`` bounds one HTTP request; the task's own timeout
    bounds the whole call. ``max_retries`` is how often the client retries a 429 or 5xx
    itself before the task fails with :class:`~async_processor.ProviderError`.
    """

    kind: str
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    timeout: float = 30.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.kind not in PROVIDER_KINDS:
            raise InvalidArgumentError(
                f"provider kind must be one of {', '.join(PROVIDER_KINDS)}, got {self.kind!r}"
            )
        if self.timeout <= 0:
            raise InvalidArgumentError(f"provider timeout must be > 0 s, got {self.timeout!r}")
        if self.max_retries < 0:
            raise InvalidArgumentError(f"max_retries must be >= 0, got {self.max_retries!r}")

    def __repr__(self) -> str:
        return _masked_repr(self, {"api_key": _hidden, "base_url": _url_without_password})


@dataclass(frozen=True, repr=False)
class SmtpSettings:
    """An SMTP server for email notifications; its repr hides the password."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    sender: str = "teddy@localhost"
    use_tls: bool = False
    start_tls: bool | None = None
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, sender: str | None = None) -> SmtpSettings:
        """``smtp://user:password@host:port`` (``smtps://`` for TLS from the start)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise InvalidArgumentError(
                f"an SMTP URL looks like smtp://user:password@host:587, got {url!r}"
            )
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=sender or cls.sender,
            use_tls=tls,
        )

    def __repr__(self) -> str:
        return _masked_repr(self, {"password": _hidden})


def default_database_path() -> Path:
    """Where the ``default`` SQLite database lives unless configured otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "async-processor" / "default.sqlite3"


#: Seconds a heavy built-in may run when its task sets no timeout (``Settings.default_timeouts``).
DEFAULT_TIMEOUTS = {
    "audio_enhancement": 60.0,
    "audio_transcription": 300.0,
    "emotion_analysis": 120.0,
    "image_generation": 120.0,
    "image_processing": 60.0,
    "speech_synthesis": 120.0,
}


def _default_databases() -> dict[str, str]:
    return {"default": f"sqlite:///{default_database_path()}"}


@dataclass(frozen=True, repr=False)
class Settings:
    """Configuration of every built-in processor.

    Its repr (and those of :class:`ProviderSettings` and :class:`SmtpSettings`) shows
    ``***`` for API keys, passwords, tokens, the webhook secret and URL passwords, so that
    settings in a log line or a traceback leak none of them.

    Attributes:
        llm: the language model for ``AI_RESPONSE``; None means the offline retrieval
            responder. Env: ``ASYNC_PROCESSOR_LLM`` = ``openai`` | ``anthropic``, with
            ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` or ``ANTHROPIC_API_KEY``/
            ``ANTHROPIC_BASE_URL``, and ``ASYNC_PROCESSOR_LLM_MODEL``.
        speech_to_text: an OpenAI-compatible ``/v1/audio/transcriptions`` provider; None
            means local Whisper (or pocketsphinx). Env: ``ASYNC_PROCESSOR_STT=openai``.
        transcription_engine: ``"auto"`` (Whisper if installed, else pocketsphinx),
            ``"whisper"`` or ``"pocketsphinx"``. Env: ``ASYNC_PROCESSOR_STT``.
        whisper_model: a CTranslate2 model directory or a size name such as ``"base.en"``
            (a name downloads from the Hugging Face hub); None is the bundled tiny.en.
            Env: ``ASYNC_PROCESSOR_WHISPER_MODEL``.
        speech: an OpenAI-compatible ``/v1/audio/speech`` provider for
            ``SPEECH_SYNTHESIS``; None is the offline Piper voice. Env:
            ``ASYNC_PROCESSOR_TTS=openai`` (``piper`` is the default), with
            ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` and ``ASYNC_PROCESSOR_TTS_MODEL``.
        emotion: a Hume provider for ``EMOTION_ANALYSIS``; None is local. Env:
            ``HUME_API_KEY`` (and ``HUME_BASE_URL``).
        images: an OpenAI-compatible images provider for ``IMAGE_GENERATION``; None draws a
            procedural illustration. Env: ``ASYNC_PROCESSOR_IMAGES=openai``.
        databases: name -> URL (``sqlite:///path`` or ``postgresql://...``) for
            ``DATABASE_OPERATION``. Env: ``ASYNC_PROCESSOR_DATABASES="main=postgresql://..,
            logs=sqlite:///logs.db"``; ``default`` is a SQLite file unless overridden.
        statement_timeout: seconds one database statement may run.
        database_statements: name -> SQL with ``:name`` parameters, run by a payload
            ``{"statement": name, "params": {...}}``: the only SQL a service client can
            run (the service fills this from ``[database.statements]``).
        database_allow_ddl: let a payload's raw ``query`` change the schema (CREATE, DROP,
            ALTER, ...). Off by default; configured statements may always.
        default_timeouts: task type -> seconds, the timeout of a built-in's task that sets
            none (:data:`DEFAULT_TIMEOUTS`: the heavy image and audio types); ``{}`` for
            none.
        max_result_bytes: the largest result a built-in may return, counted while a
            database result is fetched (text and blob lengths, 8 bytes for other values);
            a larger one fails its task. Env: ``ASYNC_PROCESSOR_MAX_RESULT_BYTES``.
        smtp: the mail server for email notifications. Env: ``ASYNC_PROCESSOR_SMTP_URL``,
            ``ASYNC_PROCESSOR_MAIL_FROM``.
        webhook_secret: the HMAC-SHA256 key that signs webhook bodies. Env:
            ``ASYNC_PROCESSOR_WEBHOOK_SECRET``.
        sms, push: HTTP gateways for SMS and push notifications. Env:
            ``ASYNC_PROCESSOR_SMS_URL`` and ``_SMS_TOKEN``, ``ASYNC_PROCESSOR_PUSH_URL`` and
            ``_PUSH_TOKEN``.
        max_audio_seconds: longer clips are refused rather than tying up a worker.
        max_image_pixels: larger images (decompression bombs) are refused.
        egress_allow: internal hosts (exact names) and networks (CIDRs) that webhooks,
            gateways, SMTP and providers may connect to; empty by default, so only public
            addresses are reached (see :mod:`async_processor.processors.egress`). A
            comma-separated string is accepted. Env: ``ASYNC_PROCESSOR_EGRESS_ALLOW``.
        moderation: a provider moderation check that every ``AI_RESPONSE`` provider reply
            also passes (fail closed); None means the offline classifier only. An
            OpenAI-compatible provider: with ``moderation_api="moderations"`` its
            ``/v1/moderations`` endpoint, with ``"guard"`` a guard model (Llama Guard)
            answering ``safe`` or ``unsafe`` through chat completions. Env:
            ``ASYNC_PROCESSOR_MODERATION`` = ``openai`` | ``guard``, with
            ``ASYNC_PROCESSOR_MODERATION_URL`` (else ``OPENAI_BASE_URL``),
            ``OPENAI_API_KEY`` and ``ASYNC_PROCESSOR_MODERATION_MODEL``.
        moderation_api: ``"moderations"`` or ``"guard"`` (see ``moderation``).
        safeguarding_channel: where a safeguarding alert goes (a HIGH-severity risk in a
            child's words): an ``http(s)://`` webhook URL, ``mailto:address``,
            ``sms:+number`` or ``push:token``; None sends it to ``parent_webhook``. Route it
            away from the parent account when the person a child names may hold it (see
            docs/processors/safeguarding.md). Env: ``ASYNC_PROCESSOR_SAFEGUARDING_CHANNEL``.
        parent_webhook: the parent's app webhook, the default safeguarding channel. Env:
            ``ASYNC_PROCESSOR_PARENT_WEBHOOK``.
        safeguarding_include_words: put the child's own words in a safeguarding alert
            (default off: the alert says what kind of risk, not what was said). Env:
            ``ASYNC_PROCESSOR_SAFEGUARDING_INCLUDE_WORDS=1``.
    """

    llm: ProviderSettings | None = None
    speech_to_text: ProviderSettings | None = None
    transcription_engine: str = "auto"
    whisper_model: str | None = None
    speech: ProviderSettings | None = None
    emotion: ProviderSettings | None = None
    images: ProviderSettings | None = None
    databases: Mapping[str, str] = field(default_factory=_default_databases)
    statement_timeout: float = 10.0
    database_statements: Mapping[str, str] = field(default_factory=dict)
    database_allow_ddl: bool = False
    max_result_bytes: int = 10 * 1024 * 1024
    default_timeouts: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    smtp: SmtpSettings | None = None
    webhook_secret: str | None = None
    sms: ProviderSettings | None = None
    push: ProviderSettings | None = None
    max_audio_seconds: float = 120.0
    max_image_pixels: int = 40_000_000
    egress_allow: tuple[str, ...] = ()
    moderation: ProviderSettings | None = None
    moderation_api: str = "moderations"
    safeguarding_channel: str | None = None
    parent_webhook: str | None = None
    safeguarding_include_words: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "egress_allow", parse_allow(self.egress_allow))
        if self.transcription_engine not in ("auto", "whisper", "pocketsphinx"):
            raise InvalidArgumentError(
                "transcription_engine must be 'auto', 'whisper' or 'pocketsphinx', got "
                f"{self.transcription_engine!r}"
            )
        for name in ("statement_timeout", "max_audio_seconds"):
            if getattr(self, name) <= 0:
                raise InvalidArgumentError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("max_image_pixels", "max_result_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
        self._check_databases()
        self._check_safeguarding()
        for name, seconds in self.default_timeouts.items():
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 < seconds < float("inf")
            ):
                raise InvalidArgumentError(
                    f"default_timeouts[{name!r}] must be a number of seconds > 0, got {seconds!r}"
                )

    def _check_safeguarding(self) -> None:
        if self.moderation_api not in MODERATION_APIS:
            raise InvalidArgumentError(
                f"moderation_api must be one of {', '.join(MODERATION_APIS)}, got "
                f"{self.moderation_api!r}"
            )
        if self.moderation is not None and self.moderation.kind != "openai":
            raise InvalidArgumentError(
                "Settings.moderation must be an OpenAI-compatible ProviderSettings('openai', "
                f"...), got kind {self.moderation.kind!r}"
            )
        for name in ("safeguarding_channel", "parent_webhook"):
            value = getattr(self, name)
            if value is not None:
                _alert_target(value, name)

    def _check_databases(self) -> None:
        for name, url in self.databases.items():
            if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
                raise InvalidArgumentError(
                    f"database {name!r}: use sqlite:///path or postgresql://user@host/db, "
                    f"got {url!r}"
                )
        for name, sql in self.database_statements.items():
            if not isinstance(name, str) or not name.strip():
                raise InvalidArgumentError(
                    f"database_statements: a statement name must be a non-empty string, "
                    f"got {name!r}"
                )
            if not isinstance(sql, str) or not sql.strip():
                raise InvalidArgumentError(
                    f"database_statements[{name!r}] must be one SQL statement, got {sql!r}"
                )

    def __repr__(self) -> str:
        def databases(urls: Mapping[str, str]) -> dict[str, str]:
            return {name: _url_without_password(url) for name, url in urls.items()}

        return _masked_repr(
            self,
            {
                "webhook_secret": _hidden,
                "databases": databases,
                "safeguarding_channel": _url_without_password,
                "parent_webhook": _url_without_password,
            },
        )

    def safeguarding_target(self) -> tuple[str, str] | None:
        """(notification channel, recipient) for safeguarding alerts, or None when neither
        ``safeguarding_channel`` nor ``parent_webhook`` is set."""
        if self.safeguarding_channel is not None:
            return _alert_target(self.safeguarding_channel, "safeguarding_channel")
        if self.parent_webhook is not None:
            return _alert_target(self.parent_webhook, "parent_webhook")
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (see the attributes); unset means offline."""
        env = os.environ if environ is None else environ
        llm = _llm_from_env(env)
        stt_choice = env.get("ASYNC_PROCESSOR_STT", "auto")
        speech_to_text = None
        if stt_choice == "openai":
            speech_to_text = _openai_from_env(env, env.get("ASYNC_PROCESSOR_STT_MODEL"))
            stt_choice = "auto"
        emotion = None
        if env.get("HUME_API_KEY"):
            emotion = ProviderSettings(
                "hume", env.get("HUME_BASE_URL", "https://api.hume.ai"), env["HUME_API_KEY"]
            )
        images = None
        if env.get("ASYNC_PROCESSOR_IMAGES") == "openai":
            images = _openai_from_env(env, env.get("ASYNC_PROCESSOR_IMAGE_MODEL"))
        databases = _default_databases()
        for item in filter(None, env.get("ASYNC_PROCESSOR_DATABASES", "").split(",")):
            name, sep, url = item.partition("=")
            if not sep or not name.strip():
                raise InvalidArgumentError(
                    f"ASYNC_PROCESSOR_DATABASES takes name=url pairs separated by commas, "
                    f"got {item!r}"
                )
            databases[name.strip()] = url.strip()
        max_result_bytes = cls.max_result_bytes
        if env.get("ASYNC_PROCESSOR_MAX_RESULT_BYTES"):
            max_result_bytes = _int_from_env(env, "ASYNC_PROCESSOR_MAX_RESULT_BYTES")
        smtp_url = env.get("ASYNC_PROCESSOR_SMTP_URL")
        smtp = None
        if smtp_url:
            smtp = SmtpSettings.from_url(smtp_url, env.get("ASYNC_PROCESSOR_MAIL_FROM"))
        return cls(
            llm=llm,
            speech_to_text=speech_to_text,
            transcription_engine=stt_choice,
            whisper_model=env.get("ASYNC_PROCESSOR_WHISPER_MODEL") or None,
            speech=_speech_from_env(env),
            emotion=emotion,
            images=images,
            databases=databases,
            smtp=smtp,
            webhook_secret=env.get("ASYNC_PROCESSOR_WEBHOOK_SECRET") or None,
            sms=_http_from_env(env, "SMS"),
            push=_http_from_env(env, "PUSH"),
            egress_allow=parse_allow(env.get(ALLOW_VARIABLE, "")),
            max_result_bytes=max_result_bytes,
            **_safeguarding_from_env(env),
        )


def _int_from_env(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a whole number, got {env[name]!r}") from None


def _openai_from_env(env: Mapping[str, str], model: str | None) -> ProviderSettings:
    return ProviderSettings(
        "openai", env.get("OPENAI_BASE_URL"), env.get("OPENAI_API_KEY"), model or None
    )


def _speech_from_env(env: Mapping[str, str]) -> ProviderSettings | None:
    choice = env.get("ASYNC_PROCESSOR_TTS", "piper")
    if choice == "piper":
        return None
    if choice == "openai":
        return _openai_from_env(env, env.get("ASYNC_PROCESSOR_TTS_MODEL"))
    raise InvalidArgumentError(f"ASYNC_PROCESSOR_TTS must be piper or openai, got {choice!r}")


def _llm_from_env(env: Mapping[str, str]) -> ProviderSettings | None:
    choice = env.get("ASYNC_PROCESSOR_LLM", "offline")
    model = env.get("ASYNC_PROCESSOR_LLM_MODEL") or None
    if choice == "offline":
        return None
    if choice == "openai":
        return _openai_from_env(env, model)
    if choice == "anthropic":
        return ProviderSettings(
            "anthropic", env.get("ANTHROPIC_BASE_URL"), env.get("ANTHROPIC_API_KEY"), model
        )
    raise InvalidArgumentError(
        f"ASYNC_PROCESSOR_LLM must be offline, openai or anthropic, got {choice!r}"
    )


def _http_from_env(env: Mapping[str, str], name: str) -> ProviderSettings | None:
    url = env.get(f"ASYNC_PROCESSOR_{name}_URL")
    if not url:
        return None
    return ProviderSettings("http", url, env.get(f"ASYNC_PROCESSOR_{name}_TOKEN") or None)


def _safeguarding_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The moderation and safeguarding-alert fields of :meth:`Settings.from_env`."""
    choice = env.get("ASYNC_PROCESSOR_MODERATION", "")
    moderation = None
    if choice:
        if choice not in ("openai", "guard"):
            raise InvalidArgumentError(
                f"ASYNC_PROCESSOR_MODERATION must be openai (the moderation endpoint) or guard "
                f"(a guard model behind an OpenAI-compatible server), got {choice!r}"
            )
        moderation = ProviderSettings(
            "openai",
            env.get("ASYNC_PROCESSOR_MODERATION_URL") or env.get("OPENAI_BASE_URL"),
            env.get("OPENAI_API_KEY"),
            env.get("ASYNC_PROCESSOR_MODERATION_MODEL") or None,
        )
    include = env.get("ASYNC_PROCESSOR_SAFEGUARDING_INCLUDE_WORDS", "").strip().lower()
    if include not in ("", "0", "1", "true", "false", "yes", "no"):
        raise InvalidArgumentError(
            f"ASYNC_PROCESSOR_SAFEGUARDING_INCLUDE_WORDS must be 1 or 0, got {include!r}"
        )
    return {
        "moderation": moderation,
        "moderation_api": "guard" if choice == "guard" else "moderations",
        "safeguarding_channel": env.get("ASYNC_PROCESSOR_SAFEGUARDING_CHANNEL") or None,
        "parent_webhook": env.get("ASYNC_PROCESSOR_PARENT_WEBHOOK") or None,
        "safeguarding_include_words": include in ("1", "true", "yes"),
    }


_ALERT_SCHEMES = {"mailto": "email", "sms": "sms", "push": "push"}


def _alert_target(value: str, name: str) -> tuple[str, str]:
    """``value`` as (notification channel, recipient)."""
    scheme, _, rest = value.partition(":")
    if scheme in ("http", "https") and urlsplit(value).hostname:
        return "webhook", value
    if scheme in _ALERT_SCHEMES and rest.strip():
        if name == "parent_webhook":
            raise InvalidArgumentError(f"parent_webhook must be an http(s) URL, got {value!r}")
        return _ALERT_SCHEMES[scheme], rest.strip()
    raise InvalidArgumentError(
        f"{name} must be an http(s):// webhook URL, mailto:address, sms:+number or "
        f"push:token, got {value!r}"
    )
