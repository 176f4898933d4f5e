"""ServiceConfig: TOML file + environment, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_processor.service import ConfigError, ServiceConfig, build_processor, create_app

GOOD = """
[service]
host = "0.0.0.0"
port = 9000
rate_limit = 5.0

[service.tokens]
backend = "backend-token-0123456789"

[service.processors]
echo = "json:dumps"

[processor]
max_workers = 4
queue_size = 50

[database.statements]
child_name = "SELECT name FROM children WHERE id = :id"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.toml"
    path.write_text(text)
    return path


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = ServiceConfig.load(path, env={})
    assert (config.host, config.port, config.rate_limit) == ("0.0.0.0", 9000, 5.0)
    assert config.tokens == {"backend": "backend-token-0123456789"}
    assert config.processor == {"max_workers": 4, "queue_size": 50}
    env = {
        "ASYNC_PROCESSOR_API_TOKENS": "ops:ops-token-0123456789ab:admin, ci:ci-token-0123456789abc",
        "ASYNC_PROCESSOR_PORT": "9100",
    }
    config = ServiceConfig.load(path, env=env, host="127.0.0.1")
    assert config.port == 9100 and config.host == "127.0.0.1"
    assert set(config.tokens) == {"backend", "ops", "ci"}
    assert config.tokens["ops"] == "ops-token-0123456789ab" and config.admins == ["ops"]
    processor = build_processor(config)
    assert processor.queue_size == 50
    assert processor.settings.database_statements == {
        "child_name": "SELECT name FROM children WHERE id = :id"
    }


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[service]\nport = 'eighty'\n", {}, "port must be a whole number"),
        ("[service]\nport = 70000\n", {}, "port must be a whole number from 0 to 65535"),
        ("[service]\nmax_wait = -1\n", {}, "max_wait must be a finite number > 0"),
        ("[service]\nbody_limit = 1\n", {}, "unknown [service] key(s) body_limit"),
        ("[server]\n", {}, "unknown table(s) server"),
        ("[database]\nurl = 'x'\n", {}, "[database] may hold only a [database.statements]"),
        ("[database.statements]\nx = 1\n", {}, "database.statements must be a table"),
        ("[service.tokens]\nx = 'short'\n", {}, "at least 16 characters"),
        ("[service.tokens]\n'bad name' = 'long-enough-token-123'\n", {}, "name 'bad name'"),
        ("[service.processors]\necho = 'not a spec'\n", {}, "'package.module:function'"),
        ("[processor]\nworkers = 3\n", {}, "unknown argument(s) workers"),
        ("[service\n", {}, "is not valid TOML"),
        ("[service]\nadmins = ['ghost']\n", {}, "admins names 'ghost', which is not a"),
        ("[service]\nadmins = 'ops'\n", {}, "admins must be a list of token names"),
        ("[service]\ntimeout_request_head = 0\n", {}, "timeout_request_head must be a finite"),
        ("[service]\nlimit_concurrency = 0\n", {}, "limit_concurrency must be a whole number"),
        ("[service]\ntrusted_proxies = '10.0.0.1'\n", {}, "trusted_proxies must be a list"),
        ("", {"ASYNC_PROCESSOR_API_TOKENS": "no-colon-here"}, "name:token pairs"),
        ("", {"ASYNC_PROCESSOR_PORT": "http"}, "ASYNC_PROCESSOR_PORT must be a port number"),
    ],
)
def test_bad_config_is_explained(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        ServiceConfig.load(path, env=env)
    assert message in str(caught.value)
    if "TOKENS" not in str(env):
        assert str(path) in str(caught.value) or "ASYNC_PROCESSOR" in str(caught.value)
    assert "no-colon-here" not in str(caught.value)  # a token is never echoed


def test_missing_file_and_missing_tokens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ServiceConfig.load(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="no API tokens configured"):
        create_app(None, ServiceConfig.load(env={}))


def test_processor_settings_are_checked_when_built(tmp_path: Path) -> None:
    config = ServiceConfig.load(write(tmp_path, "[processor]\nmax_workers = 0\n"), env={})
    with pytest.raises(ConfigError, match=r"\[processor\]: max_workers"):
        build_processor(config)
    config = ServiceConfig(processors={"x": "no_such_module_here:func"})
    with pytest.raises(ConfigError, match="cannot be loaded"):
        build_processor(config)
