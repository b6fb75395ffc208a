"""`dvc plots show` / `dvc plots diff` draw every plot offline, in the page .dvc/config names.

DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN; .dvc/plots/offline.html (written by
tools/vendor_vega.py) carries them. The commands run in a small git repository holding what they
read (dvc.yaml, .dvc/config and .dvc/plots/ with the project's templates, the git-tracked plot files,
and confusion.json, which DVC caches and a fresh clone lacks, from made-up scores, and a made-up
monitoring history). The pages
are opened in headless Chromium that resolves no host name (tests/helpers/browser.py): DVC's own page
is loaded there first, to prove that a page needing the network fails in that browser and that the
checks see it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fraudpipe.evaluation.plots import (
    calibration_records,
    confusion_records,
    records_json,
    roc_records,
    score_distribution_records,
)
from fraudpipe.io import write_json, write_text
from helpers.browser import CHROMEDRIVER, CHROMIUM, MISSING, console_errors, offline_chromium
from helpers.repo import sh

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"
#: The evaluate stage's plots drawn by the project's own templates (.dvc/plots/bars, calibration, score_histogram).
DRAWN_BY_US = ("feature_importance", "calibration", "score_distribution")

#: The div of each Vega plot in dvc.yaml (DVC names it after the file, or the top-level plot's id): the
#: training curves, ROC, precision-recall, confusion matrix, feature importance, calibration, the score
#: distribution, the monitoring history.
VEGA_PLOTS = {
    "reports_train_plots_metrics_train_aucpr_tsv",
    "reports_train_plots_metrics_train_logloss_tsv",
    "reports_train_plots_metrics_validation_aucpr_tsv",
    "reports_train_plots_metrics_validation_logloss_tsv",
    "reports_plots_roc_json",
    "reports_plots_precision_recall_json",
    "reports_plots_confusion_json",
    "reports_plots_feature_importance_json",
    "reports_plots_calibration_json",
    "reports_plots_score_distribution_json",
    "monitoring_history",
}

#: Per Vega plot: the size of what Vega drew into and how many of its pixels are coloured (a data
#: mark: a curve, a heatmap cell; axes, grid lines and labels are grey).
DRAWN = """
return arguments[0].map(id => {
  const marks = document.querySelector('#' + id + ' .marks');
  if (!marks) return {id, kind: null};
  if (marks.tagName === 'svg') {
    const box = marks.getBoundingClientRect();
    return {id, kind: 'svg', width: box.width, height: box.height,
            coloured: marks.querySelectorAll('path, rect, line, text').length};
  }
  let coloured = 0;
  if (!marks.width || !marks.height) return {id, kind: 'canvas', width: marks.width, height: marks.height, coloured};
  const pixels = marks.getContext('2d').getImageData(0, 0, marks.width, marks.height).data;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b, a] = pixels.slice(i, i + 4);
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
  }
  return {id, kind: 'canvas', width: marks.width, height: marks.height, coloured};
});
"""


#: What Vega made of a spec (rendered off-screen, no canvas): each data mark's type, item count, texts
#: and horizontal positions, so a test sees the series, points, labels and rules a template draws.
MARKS = """
const [spec, done] = arguments;
vegaEmbed(document.createElement('div'), spec, {renderer: 'none', actions: false}).then(result => {
  const marks = [];
  const walk = mark => {
    if (mark.role === 'mark') marks.push({type: mark.marktype, n: mark.items.length, x: mark.items.map(i => i.x),
                                         texts: mark.marktype === 'text' ? mark.items.map(i => i.text) : []});
    for (const item of mark.items) for (const child of item.items || []) walk(child);
  };
  walk(result.view.scenegraph().root);
  done(marks);
}).catch(error => done(String(error)));
"""


def plots_repo(dest: Path) -> Path:
    """A git repository with what `dvc plots` reads (dvc.yaml interpolates params.yaml), committed."""
    tracked = subprocess.run(
        [
            "git",
            "ls-files",
            "-z",
            "dvc.yaml",
            "params.yaml",
            ".dvc/config",
            ".dvc/plots",
            "reports/plots",
            "reports/train/plots",
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, tracked.split("\0")):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    for rel in (".dvc/config", ".dvc/plots/offline.html", "reports/plots/roc.json"):  # before they are committed
        assert (dest / rel).is_file(), f"{rel} is not in git"
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=2000) < 0.1).astype(int)
    scores = np.clip(rng.beta(1, 8, size=2000) + 0.5 * labels * rng.uniform(size=2000), 0, 1)
    (dest / "reports" / "plots" / "confusion.json").write_text(records_json(confusion_records(labels, scores, 0.5)))
    write_json(  # a history of four monitoring runs (the monitor stage adds one point per window and model)
        [
            {
                "run": i + 1,
                "window": f"week {i + 1}",
                "model": "m-1",
                "drift_share": 0.1 * i,
                "prediction_psi": 0.02 * i,
                "alert_rate": 0.006 + 0.001 * i,
                "live_average_precision": 0.7 - 0.05 * i,
            }
            for i in range(4)
        ],
        dest / "reports" / "monitoring" / "history.json",
    )
    for div in DRAWN_BY_US:  # the stage's records, git-tracked
        assert json.loads((dest / "reports" / "plots" / f"{div}.json").read_text()), div
    sh(dest, "git", "init", "-q", "-b", "main")
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-q", "-m", "plots")
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return plots_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def shown(repo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("show")
    sh(repo, "dvc", "plots", "show", "--out", str(out))
    return out / "index.html"


@pytest.fixture(scope="module")
def diffed(repo, tmp_path_factory) -> Path:
    """`dvc plots diff main` after a change of the ROC curve, the calibration and the score distribution
    in a copy of the repository."""
    work = tmp_path_factory.mktemp("diff") / "repo"
    shutil.copytree(repo, work)
    labels = np.array([0, 0, 1, 0, 1, 1, 0, 1])
    scores = np.linspace(0, 1, labels.size)
    plots = work / "reports" / "plots"
    write_json(roc_records(labels, scores), plots / "roc.json")
    write_text(records_json(calibration_records(labels, scores)), plots / "calibration.json")
    write_text(records_json(score_distribution_records(labels, scores, 0.5)), plots / "score_distribution.json")
    out = work.parent / "page"
    sh(work, "dvc", "plots", "diff", "main", "--out", str(out))
    return out / "index.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    driver = offline_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def vega_divs(html: str) -> set[str]:
    return set(re.findall(r"vegaEmbed\('#(\w+)'", html))


def spec(html: str, div: str) -> dict:
    """One plot's Vega-Lite spec, as DVC filled its template."""
    found = re.search(
        rf'<div id = "{div}">\s*<script type = "text/javascript">\s*var spec = (.*?);\s*vegaEmbed', html, re.S
    )
    assert found, div
    return json.loads(found.group(1))


def revisions(html: str, div: str) -> set[str]:
    """The revisions whose data DVC put into one plot's Vega-Lite spec."""
    return {row["rev"] for row in spec(html, div)["data"]["values"]}


def drawn(browser, page: Path) -> dict[str, dict]:
    """Open the page, wait until Vega drew every plot, and say what it drew."""
    from selenium.webdriver.support.ui import WebDriverWait

    ids = sorted(vega_divs(page.read_text()))
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "return arguments[0].every(id => document.querySelector('#' + id + ' .marks'))", ids
        ),
        message=f"Vega drew not every plot of {page} within 30 s",
    )
    return {plot["id"]: plot for plot in browser.execute_script(DRAWN, ids)}


def test_the_config_names_the_offline_page():
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"^\[plots\]\n\s+html_template = plots/offline.html$", config, re.MULTILINE), config
    page = TEMPLATE.read_text()
    assert page.count("{plot_divs}") == 1
    assert "{scripts}" not in page  # where DVC puts its CDN <script> tags
    for library in ("vega 5.", "vega-lite 5.", "vega-embed 6."):
        assert f"<script>/* {library}" in page
    for library in ("vega", "vega-lite", "vega-embed"):
        assert "Interactive Data Lab" in (TEMPLATE.parent / f"LICENSE-{library}").read_text()
    bundled = (TEMPLATE.parent / "THIRD_PARTY_LICENSES").read_text()
    assert "d3-array (ISC, in vega)" in bundled and "semver (ISC, in vega-embed)" in bundled


@pytest.mark.integration
def test_dvc_plots_show_writes_every_plot_into_a_page_that_names_no_host(shown):
    html = shown.read_text()
    assert vega_divs(html) == VEGA_PLOTS
    assert not re.findall(r'<img src="static/', html)  # every plot is data DVC draws, none a picture
    assert "<DVC_METRIC" not in html  # every anchor of the project's templates (.dvc/plots/*.json) filled
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html) == []


@pytest.mark.integration
def test_the_offline_browser_shows_dvcs_own_page_blank(browser, repo, tmp_path):
    from dvc_render.html import PAGE_HTML

    template = tmp_path / "dvc.html"
    template.write_text(PAGE_HTML)
    sh(repo, "dvc", "plots", "show", "--out", str(tmp_path / "page"), "--html-template", str(template))
    page = tmp_path / "page" / "index.html"
    browser.get(page.as_uri())
    errors = console_errors(browser)
    assert any("cdn.jsdelivr.net" in e and "ERR_NAME_NOT_RESOLVED" in e for e in errors), errors
    assert any("vegaEmbed is not defined" in e for e in errors), errors
    assert all(plot["kind"] is None for plot in browser.execute_script(DRAWN, sorted(VEGA_PLOTS)))


@pytest.mark.integration
def test_every_plot_draws_offline(browser, shown, tmp_path):
    plots = drawn(browser, shown)
    assert console_errors(browser) == []
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith("file://") for url in fetched), fetched
    assert set(plots) == VEGA_PLOTS
    for plot in plots.values():
        assert plot["width"] > 100 and plot["height"] > 100 and plot["coloured"] > 300, plot
    shot = tmp_path / "plots.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


@pytest.mark.integration
def test_the_evaluation_summaries_draw_what_their_figures_showed(browser, repo, shown):
    """Feature importance a bar per feature, largest first; calibration a point per bin labelled with its
    rows over the diagonal; the score distribution a step line per class and the threshold as a rule."""
    html = shown.read_text()
    browser.get(shown.as_uri())
    plots = {div: browser.execute_async_script(MARKS, spec(html, f"reports_plots_{div}_json")) for div in DRAWN_BY_US}
    records = {div: json.loads((repo / "reports" / "plots" / f"{div}.json").read_text()) for div in DRAWN_BY_US}

    assert [(m["type"], m["n"]) for m in plots["feature_importance"]] == [("rect", len(records["feature_importance"]))]
    importance = spec(html, "reports_plots_feature_importance_json")
    assert importance["encoding"]["y"]["sort"] == "-x" and importance["height"] == {"step": 16}

    bins = records["calibration"]
    assert [(m["type"], m["n"]) for m in plots["calibration"]] == [
        ("line", 2),  # the diagonal
        ("line", len(bins)),
        ("symbol", len(bins)),
        ("text", len(bins)),
    ]
    assert plots["calibration"][-1]["texts"] == [f"{b['rows']:,}" for b in bins]

    histogram = records["score_distribution"]
    lines = [m for m in plots["score_distribution"] if m["type"] == "line"]
    assert [m["n"] for m in lines] == [sum(r["class"] == c for r in histogram) for c in ("genuine", "fraud")]
    (rule,) = [m for m in plots["score_distribution"] if m["type"] == "rule"]
    threshold = histogram[0]["threshold"]
    assert rule["n"] == 1 and rule["x"][0] == pytest.approx(300 * threshold, abs=0.5)  # 300 px for scores 0..1


@pytest.mark.integration
def test_dvc_plots_diff_draws_both_revisions_offline(browser, diffed):
    html = diffed.read_text()
    for plot in ("roc", "calibration", "score_distribution"):
        assert revisions(html, f"reports_plots_{plot}_json") == {"main", "workspace"}, plot
    plots = drawn(browser, diffed)
    assert console_errors(browser) == []
    assert set(plots) == VEGA_PLOTS
    assert all(plot["coloured"] > 300 for plot in plots.values()), plots
