"""The fraudpipe modules a file imports, read from its syntax tree (function-level imports included).

Shared by the dvc.yaml test (a stage lists every module it runs) and the layering test (nothing
imports a package above its own).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@cache
def direct_imports(path: Path) -> frozenset[str]:
    """The fraudpipe modules a file imports (each package on the way is imported too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = ".".join(path.relative_to(SRC).with_suffix("").parts) if path.is_relative_to(SRC) else ""
    if path.name == "__init__.py":
        package += ".__init__"
    names: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(package.split(".")[: -node.level] + ([module] if module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "fraudpipe":
            continue
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(".".join(parts[:i])))
    return frozenset(out)


def library_files(script: Path) -> set[Path]:
    """Every file of src/fraudpipe that running ``script`` imports, transitively."""
    seen: set[str] = set()
    todo = list(direct_imports(script))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(direct_imports(module_file(name)))
    return {module_file(n).relative_to(ROOT) for n in seen}


def library_modules() -> dict[str, Path]:
    """Every module of the fraudpipe package, by dotted name."""
    return {module_name(p): p for p in sorted((SRC / "fraudpipe").rglob("*.py"))}
