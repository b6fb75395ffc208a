"""ServeConfig: the serve command's options, checked like every config."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudpipe.errors import ConfigError
from fraudpipe.serve.config import ServeConfig

OPTIONS = dict(model=Path("m"), state=Path("s"), journal_dir=Path("j"), host="127.0.0.1", port=8000, max_batch=100,
               max_body_bytes=1 << 20, max_amount=1e5, late_days=1, max_future_seconds=300, api_key_env="FRAUDPIPE_API_KEY")  # fmt: skip


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
