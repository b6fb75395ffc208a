"""The monitoring report: one self-contained HTML page that a person reads in a browser.

Everything is inside the file: the style sheet inline, the figures as PNGs in ``data:`` URIs, no
script and no external fetch, so the page opens from a CI artifact or an e-mail as it is. The
same result gives the same bytes (figures written with fixed PNG metadata, no timestamps).
Layout: the verdict in one sentence at the top, the headline figures, the per-feature table,
the score and drifted-feature distributions, performance, segments, calibration.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fraudpipe.evaluation.plots import PNG_METADATA
from fraudpipe.monitoring.monitor import MonitorResult
from fraudpipe.monitoring.statistics import NUMERIC, STATISTICS

REFERENCE_COLOR, CURRENT_COLOR = "#4C72B0", "#DD8452"
#: The page title by verdict: an empty window is neither healthy nor alerting.
TITLES = {"alert": "ALERT", "ok": "no alert", "empty": "nothing monitored"}
DPI = 80

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9rem; }
#summary { padding: 0.8rem 1rem; border-radius: 6px; font-size: 1.05rem; margin: 1rem 0; }
#summary.alert { background: #fde2e1; border: 1px solid #e0736c; }
#summary.ok { background: #e3f4e6; border: 1px solid #6cbf7b; }
#summary.empty { background: #fff4d6; border: 1px solid #d9a93d; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.drifted td { background: #fdecea; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.figures figure { margin: 0; }
.note { color: #555; font-size: 0.85rem; }
"""


def _png(fig: Figure) -> str:
    """The figure as a base64 PNG data URI (deterministic bytes); the figure is released."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def distribution_figure(name: str, kind: str, reference: np.ndarray, current: np.ndarray) -> Figure:
    """Reference against current: density histograms on shared bins (numeric, 0.5-99.5 percentile
    range, so one extreme value does not squash the rest) or shares per value (binary, categorical)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    if kind == NUMERIC:
        both = np.concatenate([reference, current]).astype(np.float64)
        low, high = np.quantile(both, [0.005, 0.995])
        if high <= low:
            low, high = float(both.min()), float(both.max()) + 1.0
        edges = np.linspace(low, high, 41)
        for values, label, color in ((reference, "reference", REFERENCE_COLOR), (current, "current", CURRENT_COLOR)):
            ax.hist(
                np.clip(values, low, high),
                bins=edges.tolist(),
                density=True,
                histtype="step",
                linewidth=1.5,
                color=color,
                label=label,
            )
        ax.set_ylabel("density")
    else:
        categories = np.unique(np.concatenate([reference, current]))
        positions = np.arange(len(categories))
        for offset, values, label, color in (
            (-0.2, reference, "reference", REFERENCE_COLOR),
            (0.2, current, "current", CURRENT_COLOR),
        ):
            shares = np.array([np.mean(values == c) for c in categories])
            ax.bar(positions + offset, shares, width=0.4, color=color, label=label)
        ax.set_xticks(positions, [f"{c:g}" if isinstance(c, (float, np.floating)) else str(c) for c in categories])
        ax.set_ylabel("share of rows")
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def score_figure(reference: np.ndarray, current: np.ndarray, threshold: float) -> Figure:
    """Score histograms, reference against current, on a log scale (almost every score is low)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    edges = np.linspace(0.0, 1.0, 51)
    for values, label, color in (
        (reference, "reference (training period)", REFERENCE_COLOR),
        (current, "current", CURRENT_COLOR),
    ):
        if not len(values):
            continue
        ax.hist(
            np.clip(values, 0, 1),
            bins=edges.tolist(),
            density=True,
            histtype="step",
            linewidth=1.5,
            color=color,
            label=label,
        )
    ax.axvline(threshold, color="black", linestyle=":", label=f"alert threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("predicted fraud probability")
    ax.set_ylabel("density")
    ax.set_title("Score distribution", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration_figure(table: pd.DataFrame) -> Figure:
    """Observed fraud rate against mean predicted probability per score decile, per sample."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for (sample, part), color in zip(table.groupby("sample", sort=False), (REFERENCE_COLOR, CURRENT_COLOR)):
        ax.plot(part["mean_score"], part["fraud_rate"], marker="o", color=color, label=sample)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraud rate")
    ax.set_title("Calibration by score decile", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# HTML


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if not isinstance(value, (float, np.floating)):
        return str(value)
    return f"{float(value):.{digits}g}" if abs(float(value)) < 1e-3 and value != 0 else f"{float(value):.{digits}f}"


def _table(
    table_id: str, header: Sequence[str], rows: Iterable[tuple[Sequence[str], str]], text_columns: int = 1
) -> str:
    """A table whose first ``text_columns`` columns are left-aligned text; rows as (cells, css class)."""
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>" for i, h in enumerate(header)
    )
    body = []
    for cells, css in rows:
        tds = "".join(
            f'<td class="text">{c}</td>' if i < text_columns else f"<td>{c}</td>" for i, c in enumerate(cells)
        )
        body.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _feature_rows(features: pd.DataFrame) -> list[tuple[list[str], str]]:
    drifted = features["drifted"].astype(bool)
    ordered = pd.concat(
        [features.loc[drifted].sort_values("psi", ascending=False, kind="stable"), features.loc[~drifted]]
    )
    rows = []
    for f in ordered.itertuples(index=False):
        test = STATISTICS[f.test]
        rule = "&lt;" if test.p_value else "&ge;"
        rows.append(
            (
                [
                    _e(f.feature),
                    _e(f.kind),
                    _e(test.title),
                    _number(f.statistic),
                    f"{rule} {f.threshold:g}",
                    "yes" if f.drifted else "no",
                    _number(f.psi),
                ],
                "drifted" if f.drifted else "",
            )
        )
    return rows


FIGURE_LABELS = {
    "drift_share": "share of drifted features",
    "dataset_drift": "dataset drift",
    "n_drifted": "drifted features",
    "prediction_psi": "score PSI",
    "prediction_wasserstein": "score Wasserstein (normed)",
    "reference_alert_rate": "alert rate, reference",
    "current_alert_rate": "alert rate, current",
    "alert_rate_change": "alert rate change (relative)",
    "live_average_precision": "average precision, live (labelled)",
    "test_average_precision": "average precision, test period",
    "performance_drop": "performance drop (relative AP)",
    "max_segment_recall_gap": "largest recall gap between segments",
    "alert": "alert",
}


def _figure(alt: str, figure: Figure) -> str:
    """A figure as an inline PNG image."""
    return f'<figure><img alt="{_e(alt)}" src="{_png(figure)}"></figure>'


def render(result: MonitorResult, source: str = "") -> str:
    """The report as one HTML document; ``source`` says what the current window is (`monitor_window`)."""
    m = result.metrics
    alert, empty = bool(m["alert"]), not m["n_current"]
    verdict = "alert" if alert else "empty" if empty else "ok"
    kinds = dict(zip(result.features["feature"], result.features["kind"]))
    feature_plots = "".join(
        _figure(f"{name}: reference against current", distribution_figure(name, kinds[name], ref, cur))
        for name, (ref, cur) in result.samples.items()
    )
    n_drifted = int(m["n_drifted"])
    if empty:
        feature_plots_note = "<p>Nothing to compare: the current window holds no transactions.</p>"
    elif not n_drifted:
        feature_plots_note = "<p>No feature drifted.</p>"
    elif len(result.samples) < n_drifted:
        feature_plots_note = (
            f'<p class="note">The {len(result.samples)} most shifted of {n_drifted} drifted features '
            "(by PSI; monitor.report_max_plots).</p>"
        )
    else:
        feature_plots_note = ""

    figures = _table(
        "figures", ["figure", "value"], (([_e(label), _number(m[key])], "") for key, label in FIGURE_LABELS.items())
    )
    k = int(m["card_precision_k"])
    performance = _table(
        "performance",
        ["", "test period (evaluate)", "live, labelled part"],
        [
            (["average precision", _number(m["test_average_precision"]), _number(m["live_average_precision"])], ""),
            (
                [f"card precision@{k}", _number(m["test_card_precision_at_k"]), _number(m["live_card_precision_at_k"])],
                "",
            ),
            (["relative drop of average precision", "", _number(m["performance_drop"])], ""),
        ],
    )
    segments = _table(
        "segment-table",
        ["segment", "group", "rows", "alert rate", "labelled rows", "frauds", "recall", "precision"],
        (
            (
                [
                    _e(s.segment),
                    _e(s.group),
                    _number(s.n),
                    _number(s.alert_rate),
                    _number(s.n_labelled),
                    _number(s.frauds),
                    _number(s.recall),
                    _number(s.precision),
                ],
                "",
            )
            for s in result.segments.itertuples(index=False)
        ),
        text_columns=2,
    )
    calibration = _table(
        "calibration-table",
        ["sample", "decile", "rows", "mean score", "fraud rate"],
        (
            ([_e(c.sample), _number(c.decile), _number(c.n), _number(c.mean_score), _number(c.fraud_rate)], "")
            for c in result.calibration.itertuples(index=False)
        ),
        text_columns=1,
    )
    periods = result.periods
    current_rows = _e(source) if source else f"{_number(m['n_current'])} rows"
    reference_period, current_period = _e(periods.get("reference", "")), _e(periods.get("current", ""))
    feature_header = ["feature", "type", "test", "statistic", "drifted when", "drifted", "PSI"]
    feature_table = _table("feature-table", feature_header, _feature_rows(result.features), text_columns=3)
    scores = score_figure(result.reference_scores, result.current_scores, result.threshold)
    body = f"""
<h1>Monitoring report</h1>
<p class="meta">Model {_e(result.model_version or "n/a")} &middot; reference (training period) {reference_period},
{_number(m["n_reference"])} rows &middot; current {current_period}, {current_rows},
{_number(m["n_labelled"])} labelled rows measured</p>
<p id="summary" class="{verdict}">{_e(result.summary)}</p>
{figures}
<h2>Features</h2>
<p class="note">One test per feature, by its type and the reference's size;
PSI over quantile bins of the reference for every feature.</p>
{feature_table}
<h2>Predictions</h2>
<div class="figures">{_figure("score distribution, reference against current", scores)}</div>
<h2>Drifted features</h2>
{feature_plots_note}<div class="figures">{feature_plots}</div>
<h2>Performance once labels are known</h2>
{performance}
<h2>Segments</h2>
<p class="note">Alert rate on every row; recall and precision on the rows whose labels are known
(recall only with enough frauds).</p>
{segments}
<h2>Calibration</h2>
<div class="figures">{_figure("calibration, reference against current", calibration_figure(result.calibration))}
{calibration}</div>
"""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>fraudpipe monitoring: {TITLES[verdict]}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>{body}</body>\n</html>\n"
    )


def feature_records(result: MonitorResult) -> list[Mapping[str, object]]:
    """The per-feature table as JSON records (reports/monitoring/features.json)."""
    return [{**row, "drifted": bool(row["drifted"])} for row in result.features.to_dict(orient="records")]
