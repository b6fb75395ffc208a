"""The monitoring report: one self-contained HTML page that a fraud analyst reads first.

The first screen answers "is the model still fine, and what do I do": the verdict in plain words with
its reason and what to do, the headline figures as changes that say what happened ("rose 5%"), and
the alert rate and precision per day, reference against current. The evidence follows: every figure
with its meaning, the per-feature table with a line on what each statistic means, the score and
drifted-feature distributions, performance, segments (gaps above a limit flagged), calibration.

Everything is inside the file: the style sheet inline, the figures as inline SVG (`monitoring.svg`),
no script and no external fetch, so the page opens from a CI artifact or an e-mail as it is. The
same result gives the same bytes (figures with fixed number formats, no timestamps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from fraudpipe.monitoring.challenger import NO_SHADOW, Comparison
from fraudpipe.monitoring.figures import calibration_figure, distribution_figure, score_figure
from fraudpipe.monitoring.first_screen import first_screen
from fraudpipe.monitoring.markup import esc, figure, number, percent, table, yes_no
from fraudpipe.monitoring.monitor import MonitorResult, moved
from fraudpipe.monitoring.statistics import STATISTICS
from fraudpipe.monitoring.statistics.psi import PSI
from fraudpipe.monitoring.statistics.wasserstein import WASSERSTEIN

#: The page title by verdict: an empty window is neither healthy nor alerting.
TITLES = {"alert": "ALERT", "ok": "no alert", "empty": "nothing monitored"}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1rem auto; max-width: 1100px;
       color: #222; line-height: 1.35; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin: 0 0 0.1rem; }
h2 { font-size: 1.2rem; margin-top: 1.8rem; border-bottom: 1px solid #ddd; }
h2.first { margin-top: 0.8rem; font-size: 1.05rem; }
.meta { color: #666; font-size: 0.85rem; margin: 0 0 0.5rem; }
#verdict { padding: 0.5rem 1rem; border-radius: 6px; margin: 0.4rem 0 0.6rem; }
#verdict.alert { background: #fde2e1; border: 1px solid #e0736c; }
#verdict.ok { background: #e3f4e6; border: 1px solid #6cbf7b; }
#verdict.empty { background: #fff4d6; border: 1px solid #d9a93d; }
#headline { font-size: 1.2rem; font-weight: 700; margin: 0.2rem 0; }
#summary, #todo { margin: 0.3rem 0; font-size: 0.95rem; }
.cards { display: flex; gap: 0.6rem; margin: 0.4rem 0; }
.card { flex: 1; border: 1px solid #ddd; border-radius: 6px; padding: 0.35rem 0.6rem; }
.card .label { color: #555; font-size: 0.8rem; } .card .value { font-size: 1.05rem; font-weight: 600; }
.card .change { font-size: 0.85rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
#figures td:last-child, #figures th:last-child { text-align: left; } #figures td:nth-child(2) { white-space: nowrap; }
tr.drifted td, tr.flagged td { background: #fdecea; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 0.8rem; align-items: flex-start; }
.figures figure { margin: 0; }
figure svg { max-width: 100%; height: auto; display: block; }
.note { color: #555; font-size: 0.85rem; }
"""


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
                    esc(f.feature),
                    esc(f.kind),
                    esc(test.title),
                    number(f.statistic),
                    f"{rule} {f.threshold:g}",
                    "yes" if f.drifted else "no",
                    number(f.psi),
                ],
                "drifted" if f.drifted else "",
            )
        )
    return rows


def _key_figures(m: Mapping[str, float]) -> str:
    """Every figure of drift.json that matters, in words: flags as yes/no, changes as what happened."""
    k = int(m["card_precision_k"]) if math.isfinite(m["card_precision_k"]) else 0
    rows = [
        ("alert", yes_no(m["alert"]), "whether any check crossed its limit"),
        ("dataset drift", yes_no(m["dataset_drift"]), "whether enough features drifted to call the data changed"),
        ("drifted features", f"{number(m['n_drifted'])} of {number(m['n_features'])}", ""),
        ("prediction drift", yes_no(m["prediction_drift"]), "whether the scores or the alert rate moved too far"),
        ("score PSI", number(m["prediction_psi"]), STATISTICS[PSI].meaning),
        ("score Wasserstein (normed)", number(m["prediction_wasserstein"]), STATISTICS[WASSERSTEIN].meaning),
        (
            "alert rate",
            f"{percent(m['reference_alert_rate'])} &rarr; {percent(m['current_alert_rate'])}",
            f"{moved(m['alert_rate_change'])} against the training period",
        ),
        (
            "average precision",
            f"{number(m['test_average_precision'])} &rarr; {number(m['live_average_precision'])}",
            f"{moved(-m['performance_drop'])}: test period against the labelled live rows",
        ),
        (
            f"card precision@{k}",
            f"{number(m['test_card_precision_at_k'])} &rarr; {number(m['live_card_precision_at_k'])}",
            f"share of frauds among the {k} most suspicious cards a day",
        ),
        ("largest recall gap between groups", number(m["max_segment_recall_gap"]), "see Segments"),
        ("largest alert-rate gap between groups", number(m["max_segment_alert_rate_gap"]), "see Segments"),
    ]
    return table("figures", ["figure", "value", "what it says"], (([esc(a), b, esc(c)], "") for a, b, c in rows))


def _statistics_legend(features: pd.DataFrame) -> str:
    """One line per statistic the feature table uses (and PSI, on every row): what a value means."""
    names = [*dict.fromkeys([*features["test"].tolist(), PSI])]
    rows = (([esc(STATISTICS[n].title), esc(STATISTICS[n].meaning)], "") for n in names if n in STATISTICS)
    return table("statistics", ["statistic", "what a value means"], rows, text_columns=2)


def _segments(result: MonitorResult) -> str:
    segments = table(
        "segment-table",
        ["segment", "group", "rows", "alert rate", "labelled rows", "frauds", "recall", "precision"],
        (
            (
                [
                    esc(s.segment),
                    esc(s.group),
                    number(s.n),
                    number(s.alert_rate),
                    number(s.n_labelled),
                    number(s.frauds),
                    number(s.recall),
                    number(s.precision),
                ],
                "",
            )
            for s in result.segments.itertuples(index=False)
        ),
        text_columns=2,
    )
    limit = f"{result.gap_limit:g}" if math.isfinite(result.gap_limit) else "n/a"
    gaps = table(
        "segment-gaps",
        ["segment", "recall gap", "alert-rate gap", f"flagged (above {limit})"],
        (
            (
                [esc(g.segment), number(g.recall_gap), number(g.alert_rate_gap), yes_no(g.flagged)],
                "flagged" if g.flagged else "",
            )
            for g in result.segment_gaps.itertuples(index=False)
        ),
    )
    return f"""<p class="note">Transaction amount: the amount's band. Customer history: whether the customer made
a transaction in the training period. Customer location (map): the customer's cell on the map, only when the
source gives customers coordinates (the simulator does). Alert rate on every row; recall and precision on the rows
whose labels are known (recall only with enough frauds).</p>
{segments}
<p class="note">The gap between a segment's best and worst group; a gap above {limit} (monitor.segments.max_gap)
is flagged here and never raises the alert.</p>
{gaps}"""


def _with_interval(m: Mapping[str, float | int | str], key: str, form: str) -> str:
    """A figure of the comparison and its interval in ``form`` (a format spec), ``n/a`` where undefined."""
    value, low, high = (float(m[k]) for k in (key, f"{key}_ci_low", f"{key}_ci_high"))
    shown = [format(v, form) if math.isfinite(v) else "n/a" for v in (value, low, high)]
    return f"{shown[0]} [{shown[1]}, {shown[2]}]"


def _challenger(comparison: Comparison | None) -> str:
    """Champion against the challenger on the labelled shadow rows: the verdict and the rule that decided
    it, each figure with its interval, and the rows compared and left out. Only when a challenger ran."""
    if comparison is None or comparison.verdict == NO_SHADOW:
        return ""
    m = comparison.metrics
    head, _, rules = comparison.reason.partition(": ")  # the verdict in words, then the rules that decided it
    k = int(m["card_precision_k"])
    level = f"{float(m['ci_level']):.0%}"
    rows = [
        ("average precision", "average_precision", ".4f"),
        (f"card precision@{k} (per day)", "card_precision_at_k", ".4f"),
        ("alert rate", "alert_rate", ".3%"),
    ]
    figures = table(
        "challenger-table",
        ["figure", "champion", "challenger", "difference (challenger - champion)"],
        (
            (
                [
                    esc(title),
                    _with_interval(m, f"champion_{key}", form),
                    _with_interval(m, f"challenger_{key}", form),
                    _with_interval(m, f"diff_{key}", "+" + form),
                ],
                "",
            )
            for title, key, form in rows
        ),
    )
    return f"""
<h2 id="champion-and-challenger">Champion and challenger</h2>
<p id="challenger-verdict"><strong>{esc(head[:1].upper() + head[1:])}:</strong> {esc(rules)}</p>
<p class="note">Champion {esc(m["champion_version"])} (the service's answers) against challenger
{esc(m["challenger_version"])} (scored in the shadow, never answered) on the {number(m["n_labelled"])} shadow rows
whose labels count ({number(m["n_labelled_frauds"])} frauds over {number(m["n_days"])} days), of
{number(m["n_shadow"])} the challenger scored in a window of {number(m["n_window"])};
{number(m["n_unlabelled"])} left out (label not received yet, younger than the label delay, or a card already
known compromised), {number(m["n_other_challengers"])} scored by an earlier challenger left out. In brackets, the
{level} interval over whole days; the difference's comes from the same resampled days for both models.
The training period's alert-rate band: {percent(float(m["alert_rate_band_low"]), 3)} ..
{percent(float(m["alert_rate_band_high"]), 3)}.</p>
{figures}"""


def _evidence(result: MonitorResult, comparison: Comparison | None = None) -> str:
    """Everything behind the verdict."""
    m = result.metrics
    kinds = dict(zip(result.features["feature"], result.features["kind"]))
    feature_plots = "".join(
        figure(f"{name}: reference against current", distribution_figure(name, kinds[name], ref, cur))
        for name, (ref, cur) in result.samples.items()
    )
    n_drifted = int(m["n_drifted"])
    if not m["n_current"]:
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
    k = int(m["card_precision_k"])
    performance = table(
        "performance",
        ["", "test period (evaluate)", "live, labelled part", "what happened"],
        [
            (
                [
                    "average precision",
                    number(m["test_average_precision"]),
                    number(m["live_average_precision"]),
                    moved(-m["performance_drop"]),
                ],
                "",
            ),
            (
                [
                    f"card precision@{k}",
                    number(m["test_card_precision_at_k"]),
                    number(m["live_card_precision_at_k"]),
                    moved(m["live_card_precision_at_k"] / m["test_card_precision_at_k"] - 1)
                    if m["test_card_precision_at_k"]
                    else "n/a",
                ],
                "",
            ),
        ],
    )
    calibration = table(
        "calibration-table",
        ["sample", "decile", "rows", "mean score", "fraud rate"],
        (
            ([esc(c.sample), number(c.decile), number(c.n), number(c.mean_score), number(c.fraud_rate)], "")
            for c in result.calibration.itertuples(index=False)
        ),
    )
    feature_header = ["feature", "type", "test", "statistic", "drifted when", "drifted", "PSI"]
    feature_table = table("feature-table", feature_header, _feature_rows(result.features), text_columns=3)
    scores = score_figure(result.reference_scores, result.current_scores, result.threshold)
    calibration_plot = figure("calibration, reference against current", calibration_figure(result.calibration))
    return f"""
<h2>The figures behind the verdict</h2>
{_key_figures(m)}
<h2>Features</h2>
<p class="note">One test per feature, by its type and the reference's size;
PSI over quantile bins of the reference for every feature. What the statistics mean:</p>
{_statistics_legend(result.features)}
{feature_table}
<h2>Predictions</h2>
<div class="figures">{figure("score distribution, reference against current", scores)}</div>
<h2>Drifted features</h2>
{feature_plots_note}<div class="figures">{feature_plots}</div>
<h2>Performance once labels are known</h2>
{performance}{_challenger(comparison)}
<h2>Segments</h2>
{_segments(result)}
<h2>Calibration</h2>
<p class="note">Per score decile, the mean predicted probability against the observed fraud rate: on the dashed
line the scores mean what they say.</p>
<div class="figures" id="calibration">{calibration_plot}
{calibration}</div>
"""


def render(result: MonitorResult, source: str = "", comparison: Comparison | None = None) -> str:
    """The report as one HTML document; ``source`` says what the current window is (`monitor_window`),
    ``comparison`` how a challenger scored in the shadow did (a section and a first-screen line when one ran)."""
    m = result.metrics
    verdict = "alert" if bool(m["alert"]) else "empty" if not m["n_current"] else "ok"
    body = first_screen(result, verdict, source, comparison) + _evidence(result, comparison)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>fraudpipe monitoring: {TITLES[verdict]}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>{body}</body>\n</html>\n"
    )


def feature_records(result: MonitorResult) -> list[Mapping[str, object]]:
    """The per-feature table as JSON records (reports/monitoring/features.json)."""
    return [{**row, "drifted": bool(row["drifted"])} for row in result.features.to_dict(orient="records")]
