"""The README describes the pipeline that dvc.yaml defines: its graph and every stage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from helpers.repo import env

ROOT = Path(__file__).resolve().parents[1]


def test_readme_stage_graph_is_dvc_dag():
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"<!-- dag:start: `dvc dag --md` -->\n(.*?)<!-- dag:end -->", readme, re.S)
    assert section, "README has no dag:start/dag:end section"
    dag = subprocess.run(
        [sys.executable, "-m", "dvc", "dag", "--md"], cwd=ROOT, env=env(), capture_output=True, text=True, check=True
    )
    assert section.group(1).strip() == dag.stdout.strip(), (
        "README's graph is stale: paste `dvc dag --md` between the markers"
    )


def test_readme_stage_table_lists_every_stage():
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| stage |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip())
    assert rows == list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]), (
        "the README's stage table is not dvc.yaml's stages, in order"
    )
