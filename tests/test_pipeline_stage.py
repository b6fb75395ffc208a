"""fraudpipe.pipeline.stage: a pipeline error is one line and exit 1; a bug keeps its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fraudpipe.errors import (
    BundleError,
    ConfigError,
    DataError,
    GateFailed,
    OutputError,
    PipelineError,
    SourceError,
)


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "stage_script.py"
    script.write_text("from fraudpipe.pipeline.stage import run\n" + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "error",
    [
        "ConfigError('model.max_depth: must be >= 1, got 0')",
        "DataError('column tx_amount:\\n  3 rows are negative')",
        "SourceError('csv source x.csv', 'the file does not exist', 'Fix data.path.')",
        "BundleError('no bundle')",
        "GateFailed('gate')",
    ],
)
def test_every_pipeline_error_ends_in_one_line_and_exit_1(tmp_path, error):
    proc = run_script(
        tmp_path,
        f"""
        from fraudpipe.errors import *
        def main():
            raise {error}
        run(main, "demo")
    """,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stage 'demo' failed: "), proc.stderr


def test_a_bug_keeps_its_traceback(tmp_path):
    proc = run_script(
        tmp_path,
        """
        def main():
            {}["missing"]
        run(main, "demo")
    """,
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError" in proc.stderr


def test_every_error_of_the_family_is_a_pipeline_error():
    for cls in (ConfigError, DataError, BundleError, GateFailed, SourceError, OutputError):
        assert issubclass(cls, PipelineError)
    assert not issubclass(ValueError, PipelineError)


def test_with_FRAUDPIPE_PROFILE_a_stage_that_ends_well_records_its_time_and_peak_memory(tmp_path):
    import json
    import os

    script = tmp_path / "stage_script.py"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from fraudpipe.errors import DataError
        from fraudpipe.pipeline.stage import run
        def main():
            block = b"x" * (200 * 2**20)  # 200 MiB written: the peak must show it
            time.sleep(0.3)
            if sys.argv[1] == "fail":
                raise DataError("no")
        run(main, sys.argv[1])
    """)
    )
    env = dict(os.environ, FRAUDPIPE_PROFILE=str(tmp_path / "profile"))
    for name, code in (("demo", 0), ("fail", 1)):
        proc = subprocess.run(
            [sys.executable, str(script), name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == code, proc.stderr
    assert sorted(p.name for p in (tmp_path / "profile").iterdir()) == ["demo.json"]  # a failed stage records nothing
    record = json.loads((tmp_path / "profile" / "demo.json").read_text())
    assert record["stage"] == "demo"
    assert 0.3 <= record["seconds"] < 60  # from the process's start: the sleep and the imports included
    assert record["peak_rss_bytes"] >= 200 * 2**20


def test_without_FRAUDPIPE_PROFILE_nothing_is_recorded(tmp_path):
    proc = run_script(
        tmp_path,
        """
        def main():
            pass
        run(main, "demo")
    """,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage_script.py"]


def test_a_stage_that_cannot_write_its_output_fails_in_one_line_naming_the_path(tmp_path):
    """`python stages/check_config.py` with reports/check/config.json unwritable: a directory where
    the file goes (root writes into a chmod 0o500 directory all the same), then, when not root, a
    read-only reports/check."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text())
    blocked = tmp_path / "reports" / "check" / "config.json"
    blocked.mkdir(parents=True)

    def stage_error() -> str:
        proc = subprocess.run(
            [sys.executable, str(root / "stages" / "check_config.py")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        return lines[0]

    assert stage_error() == (
        "stage 'check_config' failed: cannot write reports/check/config.json: Is a directory; "
        "a directory stands where the file goes: move it away"
    )
    if os.geteuid() == 0:
        return
    blocked.rmdir()
    blocked.parent.chmod(0o500)
    try:
        assert stage_error() == (
            "stage 'check_config' failed: cannot write reports/check/config.json: Permission denied; "
            "check the permissions of reports/check"
        )
    finally:
        blocked.parent.chmod(0o700)
