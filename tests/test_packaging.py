"""A non-editable install has every file the package reads: each non-Python file under
src/fraudpipe is declared package data in pyproject.toml (else a wheel leaves it out, and the
code that reads it with importlib.resources fails only once installed)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from fraudpipe.serve.stores.redis import scripts
from helpers.imports import ROOT, SRC

PACKAGE_DATA = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]


def _data_files() -> list[str]:
    return sorted(
        p.relative_to(SRC).as_posix()
        for p in (SRC / "fraudpipe").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )


def test_every_data_file_of_the_package_is_declared_package_data():
    files = _data_files()
    assert "fraudpipe/serve/stores/redis/add.lua" in files
    undeclared = [
        f
        for f in files
        if not any(fnmatch(f.rsplit("/", 1)[1], g) for g in PACKAGE_DATA.get(f.rsplit("/", 1)[0].replace("/", "."), []))
    ]
    assert not undeclared, f"not in [tool.setuptools.package-data] of pyproject.toml: {undeclared}"


def test_the_redis_scripts_load_from_the_package():
    assert "local function prune" in scripts.ADD and "return {1, seq}" in scripts.ADD
    assert "local function prune" in scripts.PRUNE_NOW  # prune.lua is prepended to both
    assert "redis.call('DEL', KEYS[1])" in scripts.RELEASE and "ZADD" in scripts.LABEL
