"""Running stage scripts as `dvc repro` runs them, and checking how they fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_stage(cwd: Path, name: str) -> subprocess.CompletedProcess:
    """`python stages/<name>.py` in ``cwd``, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_line_failure(proc: subprocess.CompletedProcess, stage: str, *names: str) -> str:
    """Exit code 1 and one line `stage '<stage>' failed: …` naming each of ``names``; returns the line."""
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"stage '{stage}' failed: "), lines[0]
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]
