"""ServeConfig: the serve command's options, checked like every config."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudpipe.errors import ConfigError
from fraudpipe.serve.config import ServeConfig

OPTIONS = {
    "model": Path("m"),
    "state": Path("s"),
    "journal_dir": Path("j"),
    "host": "127.0.0.1",
    "port": 8000,
    "max_batch": 100,
    "max_body_bytes": 1 << 20,
    "max_amount": 1e5,
    "late_days": 1,
    "max_future_seconds": 300,
    "api_key_env": "FRAUDPIPE_API_KEY",
}


def test_mistakes_name_the_option():
    with pytest.raises(ConfigError, match=r"serve.port: must be <= 65535, got 70000"):
        ServeConfig.parse(OPTIONS | {"port": 70000}, "serve")
    with pytest.raises(ConfigError, match=r"serve.api_key_env: must be an environment variable name"):
        ServeConfig.parse(OPTIONS | {"api_key_env": "not a name"}, "serve")
    with pytest.raises(ConfigError, match=r"serve.late_days: must be >= 0"):
        ServeConfig.parse(OPTIONS | {"late_days": -1}, "serve")


def test_the_api_key_comes_from_the_environment(monkeypatch):
    config = ServeConfig.parse(OPTIONS | {"api_key_env": "FRAUDPIPE_TEST_KEY"}, "serve")
    monkeypatch.delenv("FRAUDPIPE_TEST_KEY", raising=False)
    assert config.api_key() is None
    monkeypatch.setenv("FRAUDPIPE_TEST_KEY", "s3cret")
    assert config.api_key() == b"s3cret"
    monkeypatch.setenv("FRAUDPIPE_TEST_KEY", " ")
    with pytest.raises(ConfigError, match="FRAUDPIPE_TEST_KEY is set but empty"):
        config.api_key()


def test_the_store_is_memory_or_a_redis_url_and_several_workers_need_redis():
    assert not ServeConfig.parse(OPTIONS, "serve").shared  # the default: in process, one worker
    for url in ("redis://127.0.0.1:6379/0", "rediss://cache.example:6380/2", "unix:///run/redis.sock?db=1"):
        config = ServeConfig.parse(OPTIONS | {"store": url, "workers": 4}, "serve")
        assert config.shared and config.workers == 4
    with pytest.raises(
        ConfigError, match=r"serve.store: must be 'memory' \(the in-process store\) or a Redis URL: .*got 'http://x'"
    ):
        ServeConfig.parse(OPTIONS | {"store": "http://x"}, "serve")
    with pytest.raises(
        ConfigError,
        match=r"^serve.workers: --workers 2 needs a shared state store: .*add --store redis://host:port/db .*got 2$",
    ):
        ServeConfig.parse(OPTIONS | {"workers": 2}, "serve")
    with pytest.raises(ConfigError, match=r"serve.redis_prefix: must be letters, digits"):
        ServeConfig.parse(OPTIONS | {"store": "redis://h/0", "redis_prefix": "a b"}, "serve")
    # the configuration the parent hands its worker processes comes back the same
    config = ServeConfig.parse(OPTIONS | {"store": "redis://h:1/0", "workers": 2}, "serve")
    assert ServeConfig.model_validate_json(config.model_dump_json(), strict=False) == config
