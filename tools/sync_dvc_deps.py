"""Rewrite the library entries of every stage's deps in dvc.yaml from what the stage script imports.

Run after moving or adding a module: `python tools/sync_dvc_deps.py`. Only the `src/fraudpipe`
lines of each `deps:` list are replaced (a package whose modules the stage imports all of, or all
but an eighth, is listed as its folder: `helpers.imports.declared_deps`); data, model and report
paths and their comments are kept. tests/test_dvc_yaml.py checks the result.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.imports import declared_deps, library_files  # noqa: E402

DVC_YAML = ROOT / "dvc.yaml"


def main() -> None:
    all_modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src/fraudpipe").rglob("*.py")}
    out: list[str] = []
    stage, in_deps, inserted = None, False, False
    for line in DVC_YAML.read_text().splitlines(keepends=True):
        if m := re.match(r"^  ([a-z_]+):\s*$", line):
            stage, in_deps = m.group(1), False
        if re.match(r"^    deps:", line):
            in_deps, inserted = True, False
            out.append(line)
            continue
        if in_deps and re.match(r"^    [a-z]", line):
            in_deps = False
        if in_deps and re.match(r"^      - src/fraudpipe", line):
            if not inserted:
                needed = {p.as_posix() for p in library_files(ROOT / "stages" / f"{stage}.py")}
                out.extend(f"      - {path}\n" for path in declared_deps(needed, all_modules))
                inserted = True
            continue
        out.append(line)
    DVC_YAML.write_text("".join(out))


if __name__ == "__main__":
    main()
