"""Running a GitHub Actions workflow's own shell steps here, as the runner would.

GitHub's actions (checkout, setup-python, upload-artifact) cannot run on this machine; a test
reproduces what they leave behind with git and runs the `run:` steps for real: the workflow's and
the step's environment, expressions given by the test, `bash --noprofile --norc -eo pipefail`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from helpers.repo import env

#: GitHub runs `shell: bash` steps as `bash --noprofile --norc -eo pipefail {0}`.
BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail")

#: A recording stand-in for the GitHub CLI (there is no GitHub API here): each call is appended to
#: $GH_CALLS; `gh api --paginate` prints $EXISTING_COMMENT_ID.
FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GH_CALLS"
if [ "$1" = api ] && [ "$2" = --paginate ]; then printf '%s' "${EXISTING_COMMENT_ID:-}"; fi
"""


def steps(workflow: dict) -> dict[str, dict]:
    """The steps of the workflow's one job, by id (else by the action they use)."""
    (job,) = workflow["jobs"].values()
    return {step.get("id") or step["uses"].split("@")[0]: step for step in job["steps"]}


def run_step(workflow: dict, step_id: str, cwd: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one `run:` step as the runner would: workflow env, step env (expressions given by the
    test), bash -eo pipefail."""
    step = steps(workflow)[step_id]
    script = step["run"]
    assert "${{" not in script, f"step {step_id}: expressions in the script cannot be run here"
    step_env = {**workflow.get("env", {}), **step.get("env", {}), **extra_env}
    unresolved = {k: v for k, v in step_env.items() if "${{" in str(v)}
    assert not unresolved, f"step {step_id}: give values for {unresolved}"
    proc = subprocess.run(
        [*BASH, "-c", script],
        cwd=cwd,
        env={**env(), **{k: str(v) for k, v in step_env.items()}},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"step {step_id} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def md_table(text: str, header: list[str]) -> list[list[str]]:
    """The rows of the Markdown table in `text` whose header is `header`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and [c.strip() for c in line.strip("|").split("|")] == header:
            assert re.fullmatch(r"\|[-|: ]+\|", lines[i + 1]), lines[i + 1]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip("|").split("|")])
            return rows
    raise AssertionError(f"no table with header {header} in:\n{text}")
