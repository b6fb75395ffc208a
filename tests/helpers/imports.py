"""The fraudpipe modules a file imports, read from its syntax tree (function-level imports included).

Shared by the dvc.yaml test (a stage lists every module it runs), tools/sync_dvc_deps.py (which
writes those lists) and the layering test (nothing imports a package above its own).
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


#: A folder stands for its modules in a stage's deps when the stage imports all of them but at most
#: this share. DVC rereads and rewrites the whole dvc.lock after every stage it runs (a round-trip
#: YAML parse and dump, the largest part of its own time in a rerun), and each listed file is an
#: entry there; the price is a rerun of the stage when a module of the folder it does not import
#: changes (model/engines.py or the Dask fit, for the stages that score with the bundle).
FOLDER_UNUSED_SHARE = 1 / 8


def declared_deps(files: set[str], all_modules: set[str]) -> list[str]:
    """The library deps dvc.yaml lists for a stage that imports ``files`` (paths relative to the
    repository): each folder whose modules it imports but at most `FOLDER_UNUSED_SHARE` of
    (deepest first), as the folder; the other files one by one."""
    out = set(files)
    folders = sorted({str(Path(f).parent) for f in all_modules}, key=lambda d: -d.count("/"))
    for folder in folders:
        if folder == "src/fraudpipe":
            continue
        inside = {f for f in all_modules if f.startswith(folder + "/")}
        if inside & files and len(inside - files) <= FOLDER_UNUSED_SHARE * len(inside):
            out = {f for f in out if not f.startswith(folder + "/")} | {folder}
    return sorted(out)
