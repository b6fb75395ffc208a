"""The monitoring report: one self-contained, deterministic HTML page, and what a real browser shows.

The browser tests load the page in headless Chromium through chromedriver (Debian's `chromium` and
`chromium-driver`; .ci/run installs them): one reads the console log, checks the per-feature table is
displayed and every chart drawn with its labels inside it, and takes a screenshot; one opens the page
in a laptop's window (1280 x 800) and checks that its first screen holds the verdict, what to do and
the daily charts. A page with a script error is loaded the same way first, to prove that the console
check sees errors.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.config import compose
from fraudpipe.monitoring.challenger import compare_shadow, scored_at
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.first_screen import ACTIONS
from fraudpipe.monitoring.monitor import monitor
from fraudpipe.monitoring.report import feature_records, render
from fraudpipe.monitoring.statistics import NUMERIC, STATISTICS
from fraudpipe.monitoring.window import Shadow
from helpers.browser import CHROMEDRIVER, CHROMIUM, MISSING, console_errors, offline_chromium
from helpers.scenario import SIZES, run_scenario

ROOT = Path(__file__).resolve().parents[1]
SVG = {"svg": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def drifted():
    """The tiny simulator with every drift of conf/data/simulated_drift.yaml on in the live period."""
    return run_scenario(SIZES["tiny"], drift=["amount_factor", "terminals_per_day", "night_fraud_share"], seed=1)


@pytest.fixture(scope="module")
def quiet():
    rng = np.random.default_rng(0)

    def window(start: str, n: int) -> pd.DataFrame:
        times = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.integers(0, 14 * 86400, n)), unit="s")
        return pd.DataFrame(
            {
                "tx_datetime": times.astype("datetime64[us]"),
                "customer_id": rng.integers(0, 300, n),
                "tx_amount": rng.gamma(2, 30, n),
                "tx_fraud": (rng.random(n) < 0.02).astype(np.int8),
            }
        )

    reference, current = window("2018-07-25", 3000), window("2018-08-15", 3000)
    config = MonitorConfig.parse(compose(ROOT / "conf")["monitor"], "monitor")
    return monitor(
        reference,
        rng.random(3000) * 0.3,
        current,
        rng.random(3000) * 0.3,
        np.zeros(3000, dtype=np.int8),
        features=["tx_amount"],
        threshold=0.5,
        delay_days=7,
        remove_known=True,
        config=config,
        test_metrics={"average_precision": 0.5, "card_precision_at_k": 0.2, "card_precision_k": 10},
    )


@pytest.fixture(scope="module")
def drifted_page(drifted) -> str:
    """``render(drifted)`` once for the tests that only read it (each render draws every figure again)."""
    return render(drifted)


@pytest.fixture(scope="module")
def quiet_page(quiet) -> str:
    return render(quiet)


@pytest.fixture(scope="module")
def shadowed(quiet):
    """A challenger scored in the shadow of 10 days, better than the champion: its comparison."""
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame(
        {
            "tx_datetime": (
                pd.Timestamp("2018-08-15") + pd.to_timedelta(np.sort(rng.integers(0, 10 * 86400, n)), "s")
            ).astype("datetime64[us]"),
            "customer_id": rng.integers(0, 300, n),
            "tx_fraud": pd.array((rng.random(n) < 0.05).astype(np.int8), dtype="Int8"),
        }
    )
    fraud = frame["tx_fraud"].to_numpy(np.float64)
    champion, challenger = (
        scored_at(v, 0.5 * fraud + rng.random(n) * noise, 0.9) for v, noise in (("m-1", 1.0), ("m-2", 0.6))
    )
    config = MonitorConfig.parse(compose(ROOT / "conf")["monitor"], "monitor")
    shadow = Shadow(challenger.scores, np.full(n, "m-2", dtype=object), challenger.alerts)
    return compare_shadow(
        frame,
        champion,
        shadow,
        k=10,
        delay_days=0,
        remove_known=False,
        reference_alert_rate=float(champion.alerts.mean()),
        alert_rate_change=2.0,
        config=config.challenger,
    )


def test_a_challenger_in_the_shadow_gets_a_section_and_a_line_on_the_first_screen(quiet, shadowed):
    page = render(quiet, "the service log", shadowed)
    assert shadowed.verdict == "promote", shadowed.reason
    line = re.search(r'<p id="challenger">(.*?)</p>', page, re.S).group(1)
    assert "Challenger m-2, scored in the shadow:</strong> promote it, on 3,000 labelled rows" in line
    assert 'href="#champion-and-challenger"' in line
    section = page[page.index('<h2 id="champion-and-challenger">') :]
    rules = shadowed.reason.removeprefix("promote the challenger: ").replace("'", "&#x27;")
    assert f'<p id="challenger-verdict"><strong>Promote the challenger:</strong> {rules}</p>' in section
    table = re.search(r'<table id="challenger-table">(.*?)</table>', section, re.S).group(1)
    cells = re.findall(
        r"<tr><td class=\"text\">([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", table
    )
    assert [c[0] for c in cells] == ["average precision", "card precision@10 (per day)", "alert rate"]
    m = shadowed.metrics
    ap = f"{m['champion_average_precision']:.4f} [{m['champion_average_precision_ci_low']:.4f}, "
    assert cells[0][1].startswith(ap)
    diff = f"{m['diff_average_precision']:+.4f} [{m['diff_average_precision_ci_low']:+.4f}, "
    assert cells[0][3].startswith(diff) and cells[2][3].endswith("%]")
    # no challenger: the page is the one monitoring wrote before it compared challengers, byte for byte
    none = replace(shadowed, metrics=shadowed.metrics | {"verdict": "no shadow"})
    plain = render(quiet, "x")
    assert render(quiet, "x", none) == plain and 'id="challenger' not in plain


def test_the_page_fetches_nothing_and_runs_no_script(drifted, drifted_page):
    page = drifted_page
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert re.findall(r'\b(?:src|href)="([^"]*)"', page) == [] and "<img" not in page  # the figures are inline SVG
    # the two daily charts, the score, the calibration, one distribution per drifted feature (to report_max_plots)
    assert len(re.findall("<svg ", page)) == len(charts(page)) == 4 + len(drifted.samples) >= 7


def charts(page: str) -> dict[str, ET.Element]:
    """Every inline chart of the page by its title, parsed: each must be well-formed SVG."""
    roots = [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.S)]
    return {root.find("svg:title", SVG).text: root for root in roots}


def drawn(chart: ET.Element) -> dict[str, int]:
    """Each series' label and the points it draws."""
    return {
        g.get("data-label"): int(g.get("data-points"))
        for g in chart.iter(f"{{{SVG['svg']}}}g")
        if g.get("class") == "series"
    }


def words(chart: ET.Element, css: str) -> list[str]:
    return ["".join(t.itertext()) for t in chart.iter(f"{{{SVG['svg']}}}text") if t.get("class") == css]


def test_each_chart_draws_its_series_with_their_points_and_axis_labels(drifted):
    found = charts(render(drifted))
    per_day = drifted.daily.groupby("sample", sort=False)
    rate = found["Alert rate per day (share of transactions flagged)"]
    assert drawn(rate) == {sample: len(part) for sample, part in per_day} and set(drawn(rate)) == {
        "reference",
        "current",
    }
    precision = found["Precision per day (share of flagged ones that were fraud)"]
    assert drawn(precision) == {sample: int(part["precision"].notna().sum()) for sample, part in per_day}
    assert (
        len([line for line in rate.iter(f"{{{SVG['svg']}}}line") if line.get("class") == "rule"]) == 2
    )  # overall rates
    scores = found["Score distribution"]
    assert drawn(scores) == {"reference (training period)": 50, "current": 50}
    assert (words(scores, "x-label"), words(scores, "y-label")) == (["predicted fraud probability"], ["density"])
    legend = "".join(next(g for g in scores.iter() if g.get("class") == "legend").itertext())
    assert f"alert threshold {drifted.threshold:.3f}" in legend
    calibration = found["Calibration by score decile"]
    deciles = {sample: len(part) for sample, part in drifted.calibration.groupby("sample", sort=False)}
    assert drawn(calibration) == {"perfectly calibrated": 2, **deciles}
    assert words(calibration, "y-label") == ["observed fraud rate"]
    kinds = dict(zip(drifted.features["feature"], drifted.features["kind"]))
    for name, (reference, current) in drifted.samples.items():
        bins = 40 if kinds[name] == NUMERIC else len(np.unique(np.concatenate([reference, current])))
        assert drawn(found[name]) == {"reference": bins, "current": bins}, name


def test_the_page_says_what_the_current_window_is(drifted, drifted_page):
    assert re.search(
        r"current [^<]*, 4,321 transactions the service scored with m-1 &amp; co,",
        render(drifted, "4,321 transactions the service scored with m-1 & co"),
    )
    assert f"{drifted.metrics['n_current']:,} rows," in drifted_page


def test_the_verdict_is_the_first_thing_on_the_page(drifted, drifted_page, quiet_page):
    page = drifted_page
    body = page[page.index("<body>") :]
    assert body.index('id="summary"') < body.index("<table")
    summary = re.search(r'<p id="summary" class="(\w+)">(.*?)</p>', page, re.S)
    assert summary.group(1) == "alert" and summary.group(2).startswith("ALERT: ")
    assert "<title>fraudpipe monitoring: ALERT</title>" in page
    calm = re.search(r'<p id="summary" class="(\w+)">(.*?)</p>', quiet_page, re.S)
    assert calm.group(1) == "ok" and calm.group(2).startswith("No alert") and "No feature drifted." in quiet_page
    # the verdict in plain words, then its reason, then what to do, then the daily chart: before any evidence
    order = [body.index(s) for s in ('id="headline"', 'id="summary"', 'id="todo"', 'id="cards"', 'id="daily"')]
    assert order == sorted(order) and order[-1] < body.index('<table id="figures">')
    todo = re.search(r'<p id="todo"><strong>What to do:</strong> (.*?)</p>', page, re.S).group(1).lower()
    kinds = {reason.split(":")[0] for reason in drifted.reasons}
    assert kinds and all(ACTIONS[kind] in todo for kind in kinds), (kinds, todo)
    assert "Nothing to do: keep the model" in quiet_page or "Nothing urgent" in quiet_page


def test_flags_are_words_and_changes_say_what_happened(drifted_page):
    page = drifted_page
    figures = re.search(r'<table id="figures">(.*?)</table>', page, re.S).group(1)
    cells = dict(re.findall(r'<tr><td class="text">([^<]+)</td><td>([^<]*)</td>', figures))
    assert (
        cells["alert"] == "yes"
        and cells["dataset drift"] in ("yes", "no")
        and cells["prediction drift"]
        in (
            "yes",
            "no",
        )
    )
    assert "drop -" not in page and "+" not in re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    assert re.search(r"(rose|fell) \d+%|held steady", figures)


def test_each_statistic_used_says_what_it_means(drifted, drifted_page):
    page = drifted_page
    legend = re.search(r'<table id="statistics">(.*?)</table>', page, re.S).group(1)
    for name in {*drifted.features["test"], "psi"}:
        assert f'<td class="text">{STATISTICS[name].meaning}</td>' in legend


def test_segment_gaps_above_the_limit_are_flagged(drifted, drifted_page):
    page = drifted_page
    gaps = re.search(r'<table id="segment-gaps">(.*?)</table>', page, re.S).group(1)
    flagged = set(re.findall(r'<tr class="flagged"><td class="text">([^<]+)</td>', gaps))
    assert flagged == set(drifted.segment_gaps.loc[drifted.segment_gaps["flagged"], "segment"])
    limit = drifted.gap_limit
    over = drifted.segment_gaps[["recall_gap", "alert_rate_gap"]].max(axis=1) > limit
    assert flagged == set(drifted.segment_gaps.loc[over, "segment"])
    assert f"flagged (above {limit:g})" in gaps
    # named for what they are, never map codes alone
    assert {"transaction amount", "customer history"} <= set(drifted.segments["segment"])


def test_the_feature_table_has_every_feature_drifted_ones_first(drifted, drifted_page):
    page = drifted_page
    table = re.search(r'<table id="feature-table">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr( class=\"drifted\")?><td class=\"text\">([^<]+)</td>", table)
    assert sorted(name for _, name in rows) == sorted(drifted.features["feature"])
    marked = [name for css, name in rows if css]
    assert set(marked) == set(drifted.features.loc[drifted.features["drifted"], "feature"])
    assert [name for _, name in rows][: len(marked)] == marked  # drifted rows come first
    for section in ("segment-table", "performance", "calibration-table", "figures"):
        assert f'<table id="{section}">' in page


def test_an_empty_window_still_renders(quiet):

    from fraudpipe.monitoring.checks import FEATURE_TABLE_COLUMNS
    from fraudpipe.monitoring.segments import SEGMENT_COLUMNS

    # as the monitor builds it for an empty window: tables with their columns and no rows (object dtypes)
    empty = replace(
        quiet,
        features=pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS)),
        segments=pd.DataFrame(columns=list(SEGMENT_COLUMNS)),
        samples={},
        daily=quiet.daily.iloc[:0],
        current_scores=np.zeros(0),
        summary="Nothing monitored: the current window holds no transactions.",
        metrics=quiet.metrics | {"n_current": 0, "n_drifted": 0},
    )
    page = render(empty)
    assert '<table id="feature-table">' in page and "Nothing to compare" in page
    # neither the green of a healthy window nor "no alert" in the title: an empty window says so
    summary = re.search(r'<p id="summary" class="(\w+)">(.*?)</p>', page, re.S)
    assert summary.group(1) == "empty" and summary.group(2).startswith("Nothing monitored")
    assert "<title>fraudpipe monitoring: nothing monitored</title>" in page and "No feature drifted." not in page
    assert "No days to draw" in page and 'id="todo"' in page


def test_same_result_same_bytes(drifted, drifted_page):
    assert render(drifted) == drifted_page  # rendered again: the same bytes
    records = feature_records(drifted)
    assert [r["feature"] for r in records] == drifted.features["feature"].tolist()
    assert all(isinstance(r["drifted"], bool) for r in records)


# --------------------------------------------------------------------------------------------
# In a real browser


#: Per chart of the page: its figure's label, its size on screen, the size of what each series drew, and
#: the texts (title, legend, ticks, axis labels) whose box reaches out of the chart's.
SHOWN = """
return Array.from(document.querySelectorAll('figure svg')).map(svg => {
  const box = svg.getBoundingClientRect();
  const series = Array.from(svg.querySelectorAll('g.series')).map(g => {
    const b = g.getBBox();
    return b.width + b.height;
  });
  const outside = Array.from(svg.querySelectorAll('text')).filter(t => {
    const r = t.getBoundingClientRect();
    return r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1;
  }).map(t => t.textContent);
  return {title: svg.parentElement.getAttribute('aria-label'), width: box.width, height: box.height, series, outside};
});
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    driver = offline_chromium(tmp_path_factory.mktemp("chromium-profile"), "1200,2000")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def laptop(tmp_path_factory):
    """A browser with a laptop's window, 1280 x 800: what the first screen is."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    driver = offline_chromium(tmp_path_factory.mktemp("chromium-laptop"), "1280,800")
    # the page's viewport itself 1280 x 800 (a window of that size loses its frame's height to the page)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        yield driver
    finally:
        driver.quit()


def test_the_console_check_sees_a_script_error(browser, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    browser.get(broken.as_uri())
    errors = console_errors(browser)
    assert any("undefinedFunction" in e for e in errors), errors


def test_a_browser_shows_the_report_withoutconsole_errors(browser, drifted, drifted_page, tmp_path):
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    page.write_text(drifted_page, encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.title == "fraudpipe monitoring: ALERT"
    assert console_errors(browser) == []
    summary = browser.find_element(By.ID, "summary")
    assert summary.is_displayed() and summary.text.startswith("ALERT: ")
    table = browser.find_element(By.ID, "feature-table")
    assert table.is_displayed()
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == len(drifted.features)
    assert (
        rows[0].find_elements(By.TAG_NAME, "td")[0].text
        == drifted.features.sort_values("psi", ascending=False).loc[lambda t: t["drifted"], "feature"].iloc[0]
    )
    shown = browser.execute_script(SHOWN)
    assert len(shown) == 4 + len(drifted.samples), shown
    for chart in shown:
        assert chart["width"] > 300 and chart["height"] > 200 and chart["series"], chart
        assert all(size > 0 for size in chart["series"]), chart  # every series drew something
        assert chart["outside"] == [], chart  # no label runs off its chart
    # the calibration section, the page's last, is whole: its figure and every row of its table inside the page
    calibration = browser.find_element(By.ID, "calibration")
    browser.execute_script("arguments[0].scrollIntoView()", calibration)
    box = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); "
        "return {right: r.right, width: document.documentElement.clientWidth}",
        calibration,
    )
    assert box["right"] <= box["width"], box
    rows = browser.find_elements(By.CSS_SELECTOR, "#calibration-table tbody tr")
    assert len(rows) == len(drifted.calibration) and all(row.is_displayed() for row in rows)
    shot = tmp_path / "screenshot.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@pytest.mark.parametrize("which", ["drifted", "quiet", "quiet+shadowed"])
def test_the_first_screen_holds_the_verdict_what_to_do_and_the_daily_chart(laptop, which, request, tmp_path):
    from selenium.webdriver.common.by import By

    name, _, challenger = which.partition("+")
    result = request.getfixturevalue(name)
    page = tmp_path / "report.html"
    page.write_text(render(result, "", request.getfixturevalue(challenger) if challenger else None), encoding="utf-8")
    laptop.get(page.as_uri())
    assert console_errors(laptop) == []
    height = laptop.execute_script("return window.innerHeight")
    assert height == 800, height  # a laptop's screen, not a tall window that would hold anything

    def bottom(element_id: str) -> float:
        return laptop.execute_script(f"return document.getElementById('{element_id}').getBoundingClientRect().bottom")

    for element_id in ("headline", "summary", "todo", "cards", "daily", *(["challenger"] if challenger else [])):
        element = laptop.find_element(By.ID, element_id)
        assert element.is_displayed() and bottom(element_id) <= height, (element_id, bottom(element_id), height)
    headline = laptop.find_element(By.ID, "headline").text
    assert headline.startswith("Alert:" if name == "drifted" else "No alert:")
    assert laptop.find_element(By.ID, "todo").text.startswith("What to do:")
    daily = [chart for chart in laptop.execute_script(SHOWN) if "per day" in chart["title"]]
    assert len(daily) == 2 and all(chart["width"] > 300 and chart["outside"] == [] for chart in daily), daily
    # the evidence starts below the first screen
    top = laptop.execute_script("return document.getElementById('figures').getBoundingClientRect().top")
    assert top >= bottom("daily")
