"""Running a GitHub Actions workflow's own shell steps here, as the runner would.

GitHub's actions (checkout, setup-python, upload-artifact) cannot run on this machine; a test
reproduces what they leave behind with git and runs the `run:` steps for real: the workflow's and
the step's environment, expressions given by the test, `bash --noprofile --norc -eo pipefail`.
"""

from __future__ import annotations

import os
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


#: A stand-in for the GitHub CLI that also keeps what it was asked to post: each call is appended to
#: $GH_CALLS and the file of each --body-file to $GH_BODIES.
RECORDING_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GH_CALLS"
previous=
for arg in "$@"; do
  if [ "$previous" = --body-file ]; then cat "$arg" >> "$GH_BODIES"; fi
  previous=$arg
done
"""


def runner(tmp_path: Path, gh: str = RECORDING_GH) -> dict[str, str]:
    """What a GitHub runner gives a job's steps: RUNNER_TEMP, the step-summary and output files, and a
    stand-in `gh` first on PATH (it records into GH_CALLS and GH_BODIES, under ``tmp_path``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = {
        "GITHUB_STEP_SUMMARY": tmp_path / "step_summary.md",
        "GITHUB_OUTPUT": tmp_path / "output.txt",
        "GH_CALLS": tmp_path / "gh_calls.txt",
        "GH_BODIES": tmp_path / "gh_bodies.md",
    }
    for f in files.values():
        f.write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gh").write_text(gh)
    (bin_dir / "gh").chmod(0o755)
    paths = {k: str(v) for k, v in files.items()}
    return {"RUNNER_TEMP": str(tmp_path), **paths, "PATH": f"{bin_dir}{os.pathsep}{env()['PATH']}"}


def outputs(github: dict[str, str]) -> dict[str, str]:
    """The step outputs written so far (`echo name=value >> "$GITHUB_OUTPUT"`), the last value of each."""
    lines = Path(github["GITHUB_OUTPUT"]).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def checkout(origin: Path, dest: Path, ref: str = "main") -> Path:
    """What actions/checkout leaves with ``fetch-depth: 0`` and ``fetch-tags: true``: ``ref`` checked out,
    every branch of ``origin`` as refs/remotes/origin/*, its tags, `origin` as the remote to push to."""
    dest.mkdir(parents=True)
    for args in (
        ("init", "-q"),
        ("remote", "add", "origin", str(origin)),
        ("fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"),
        ("checkout", "-q", "-B", ref, f"origin/{ref}"),
    ):
        subprocess.run(["git", *args], cwd=dest, env=env(), check=True, capture_output=True)
    return dest
