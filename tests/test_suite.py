"""The suite's own rule: a test module imports shared code from tests/helpers/ only, never another
test module, conftest or benchmarks/ (a helper that two files need lives in one place)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FORBIDDEN = ("test_", "conftest", "benchmarks", "_")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted([*TESTS.glob("*.py"), *TESTS.glob("helpers/*.py")]), ids=lambda p: p.name)
def test_imports_no_test_module_and_no_benchmark(path: Path) -> None:
    bad = {n for n in _imported(path) if n.split(".")[0].startswith(FORBIDDEN) and n != "__future__"}
    assert not bad, f"{path.relative_to(TESTS)} imports {sorted(bad)}: move what it shares into tests/helpers/"


def test_the_rule_sees_a_test_module_import(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text("from test_features import text_ids\nimport benchmarks.run\nfrom helpers.model import ROOT\n")
    assert {n for n in _imported(module) if n.startswith(FORBIDDEN)} == {"test_features", "benchmarks.run"}
