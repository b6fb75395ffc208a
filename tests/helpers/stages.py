"""Running stage scripts as `dvc repro` runs them, or in the test's own process, and checking how they fail.

``run_stage`` starts `python stages/<name>.py`: the exit code and the one-line error exactly as a
user sees them. ``run_stage_in_process`` runs the same script as ``__main__`` in the test's
process, for a test that only needs what the stage writes: the libraries it imports (Great
Expectations above all, seconds to import) are loaded once per test process instead of per case.
"""

from __future__ import annotations

import contextlib
import io
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_stage(cwd: Path, name: str) -> subprocess.CompletedProcess:
    """`python stages/<name>.py` in ``cwd``, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def run_stage_in_process(cwd: Path, name: str) -> subprocess.CompletedProcess:
    """``stages/<name>.py`` run as ``__main__`` in this process with ``cwd`` as the working directory;
    its exit code (0 unless it called sys.exit) and what it printed, as ``run_stage`` returns them.
    Any scope may call it (a module's fixture too): the working directory and sys.argv are restored after."""
    script = ROOT / "stages" / f"{name}.py"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [str(script)])
        try:
            runpy.run_path(str(script), run_name="__main__")
            code = 0
        except SystemExit as exc:  # sys.exit(message) prints the message and exits 1, as Python does
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
    return subprocess.CompletedProcess([sys.executable, str(script)], code, out.getvalue(), err.getvalue())


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
