"""The README and docs/ describe the pipeline that dvc.yaml defines, and the docs site builds."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.repo import env

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PIPELINE_PAGE = DOCS / "pipeline.md"
#: What a newcomer reads in the first ten minutes; the rest belongs in docs/.
README_MAX_LINES = 150


class _MkdocsLoader(yaml.SafeLoader):
    """mkdocs.yml with its `!!python/name:` tags read as None (the nav is all this file needs)."""


_MkdocsLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def _nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_stage_graph_is_dvc_dag():
    page = PIPELINE_PAGE.read_text()
    section = re.search(r"<!-- dag:start: `dvc dag --md` -->\n(.*?)<!-- dag:end -->", page, re.S)
    assert section, "docs/pipeline.md has no dag:start/dag:end section"
    dag = subprocess.run(
        [sys.executable, "-m", "dvc", "dag", "--md"], cwd=ROOT, env=env(), capture_output=True, text=True, check=True
    )
    assert section.group(1).strip() == dag.stdout.strip(), (
        "docs/pipeline.md's graph is stale: paste `dvc dag --md` between the markers"
    )


def test_stage_table_lists_every_stage():
    lines = PIPELINE_PAGE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| stage |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip())
    assert rows == list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]), (
        "docs/pipeline.md's stage table is not dvc.yaml's stages, in order"
    )
    for table_start in (
        i for i, line in enumerate(lines) if line.startswith("|---")
    ):  # every row has the header's cells
        width = lines[table_start].count("|")
        for row in lines[table_start + 1 :]:
            if not row.startswith("|"):
                break
            assert row.count("|") == width, row


def test_every_docs_page_is_in_the_nav():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_MkdocsLoader)
    nav = _nav_pages(config["nav"])
    assert sorted(nav) == sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert len(nav) == len(set(nav))


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path):
    """Links out of docs/ (../reports/...) the site build only notes: they are checked here, anchors too."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.name}: {target} has no such heading"


def test_docs_site_builds_strict(tmp_path: Path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]' installs it)")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**env(), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "site" / "pipeline" / "index.html").is_file()
