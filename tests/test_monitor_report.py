"""The monitoring report: one self-contained, deterministic HTML page, and what a real browser shows.

The browser test loads the page in headless Chromium through chromedriver (Debian's `chromium` and
`chromium-driver`; .ci/run installs them), reads the console log, checks the per-feature table is
displayed and every figure decoded, and takes a screenshot. A page with a script error is loaded
the same way first, to prove that the console check sees errors.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.config import compose
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.monitor import monitor
from fraudpipe.monitoring.report import feature_records, render
from helpers.scenario import SIZES, run_scenario

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


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


def test_the_page_fetches_nothing_and_runs_no_script(drifted):
    page = render(drifted)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), [s[:40] for s in sources]
    # the score, the calibration, and one distribution per drifted feature (up to report_max_plots)
    assert len(sources) == 2 + len(drifted.samples) and len(drifted.samples) >= 3


def test_the_page_says_what_the_current_window_is(drifted):
    assert re.search(
        r"current [^<]*, 4,321 transactions the service scored with m-1 &amp; co,",
        render(drifted, "4,321 transactions the service scored with m-1 & co"),
    )
    assert f"{drifted.metrics['n_current']:,} rows," in render(drifted)


def test_the_verdict_is_the_first_thing_on_the_page(drifted, quiet):
    page = render(drifted)
    body = page[page.index("<body>") :]
    assert body.index('id="summary"') < body.index("<table")
    summary = re.search(r'<p id="summary" class="(\w+)">(.*?)</p>', page, re.S)
    assert summary.group(1) == "alert" and summary.group(2).startswith("ALERT: ")
    assert "<title>fraudpipe monitoring: ALERT</title>" in page
    calm = re.search(r'<p id="summary" class="(\w+)">(.*?)</p>', render(quiet), re.S)
    assert calm.group(1) == "ok" and calm.group(2).startswith("No alert") and "No feature drifted." in render(quiet)


def test_the_feature_table_has_every_feature_drifted_ones_first(drifted):
    page = render(drifted)
    table = re.search(r'<table id="feature-table">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr( class=\"drifted\")?><td class=\"text\">([^<]+)</td>", table)
    assert sorted(name for _, name in rows) == sorted(drifted.features["feature"])
    marked = [name for css, name in rows if css]
    assert set(marked) == set(drifted.features.loc[drifted.features["drifted"], "feature"])
    assert [name for _, name in rows][: len(marked)] == marked  # drifted rows come first
    for section in ("segment-table", "performance", "calibration-table", "figures"):
        assert f'<table id="{section}">' in page


def test_an_empty_window_still_renders(quiet):
    from dataclasses import replace

    from fraudpipe.monitoring.checks import FEATURE_TABLE_COLUMNS
    from fraudpipe.monitoring.segments import SEGMENT_COLUMNS

    # as the monitor builds it for an empty window: tables with their columns and no rows (object dtypes)
    empty = replace(
        quiet,
        features=pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS)),
        segments=pd.DataFrame(columns=list(SEGMENT_COLUMNS)),
        samples={},
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


def test_same_result_same_bytes(drifted):
    assert render(drifted) == render(drifted)
    records = feature_records(drifted)
    assert [r["feature"] for r in records] == drifted.features["feature"].tolist()
    assert all(isinstance(r["drifted"], bool) for r in records)


# --------------------------------------------------------------------------------------------
# In a real browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "Chromium and chromedriver are not installed "
            "(Debian: apt-get install chromium chromium-driver; .ci/run does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,2000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_console_check_sees_a_script_error(browser, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    browser.get(broken.as_uri())
    errors = _console_errors(browser)
    assert any("undefinedFunction" in e for e in errors), errors


def test_a_browser_shows_the_report_without_console_errors(browser, drifted, tmp_path):
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    page.write_text(render(drifted), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.title == "fraudpipe monitoring: ALERT"
    assert _console_errors(browser) == []
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
    decoded = browser.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert decoded and all(decoded), decoded
    shot = tmp_path / "screenshot.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
