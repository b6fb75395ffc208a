"""The report's first screen, what a fraud analyst reads before anything else: the verdict in plain
words with its reason and what to do, the headline figures as changes that say what happened
("rose 5%"), and the alert rate and precision per day, reference against current."""

from __future__ import annotations

import math

import pandas as pd

from fraudpipe.monitoring.challenger import KEEP, NO_SHADOW, PROMOTE, UNDECIDED, Comparison
from fraudpipe.monitoring.figures import daily_figures
from fraudpipe.monitoring.markup import esc, figure, number, percent
from fraudpipe.monitoring.monitor import MonitorResult, moved

#: The verdict in plain words, above its reason.
HEADLINES = {
    "alert": "Alert: the model's world has changed. Act on it.",
    "ok": "No alert: the model works as it did when it was checked.",
    "empty": "Nothing monitored: there were no transactions to look at.",
}
#: What to do about each kind of reason (the reasons begin with these words).
ACTIONS = {
    "dataset drift": "check the drifted features below for a data problem (a changed source or column mapping) "
    "before trusting the scores",
    "prediction drift": "expect a different number of alerts to review, and look at the score distribution below",
    "performance drop": "retrain on recent labelled data (dvc exp run) and compare the new model with this one "
    "before swapping",
}


def _psi_words(value: float) -> str:
    """PSI by its rule of thumb (the statistic's meaning)."""
    if not math.isfinite(value):
        return "n/a"
    return "stable" if value < 0.1 else "a shift" if value < 0.25 else "a large shift"


def _overall_precision(daily: pd.DataFrame, sample: str) -> float:
    part = daily[daily["sample"] == sample]
    judged = float(part["n_alerted_labelled"].sum())
    return float(part["n_alerted_frauds"].sum()) / judged if judged else float("nan")


def _to_do(result: MonitorResult, verdict: str) -> str:
    """What the analyst does next, from the verdict and its reasons."""
    if verdict == "empty":
        return (
            "Give the monitor transactions to look at: a live period (split.live_days) or the service's log "
            "(monitor.current: service_log)."
        )
    if verdict == "alert":
        actions = [text for reason, text in ACTIONS.items() if any(r.startswith(reason) for r in result.reasons)]
        text = "; ".join(actions)
        return text[:1].upper() + text[1:] + "."
    flagged = result.segment_gaps.loc[result.segment_gaps["flagged"].astype(bool), "segment"].tolist()
    if flagged:
        return (
            f"Nothing urgent: keep the model. By {' and by '.join(flagged)}, its recall or alert rate differs "
            f"between groups by more than {result.gap_limit:g}: see Segments."
        )
    return "Nothing to do: keep the model. The evidence below is for a closer look."


def _card(label: str, value: str, change: str) -> str:
    return (
        f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{value}</div>'
        f'<div class="change">{esc(change)}</div></div>'
    )


def _cards(result: MonitorResult) -> str:
    """The headline figures, each as what happened."""
    m = result.metrics
    ref_precision = _overall_precision(result.daily, "reference")
    cur_precision = _overall_precision(result.daily, "current")
    precision_change = cur_precision / ref_precision - 1 if ref_precision else float("nan")
    return (
        '<div class="cards" id="cards">'
        + "".join(
            (
                _card(
                    "alert rate (flagged transactions)",
                    f"{percent(m['reference_alert_rate'])} &rarr; {percent(m['current_alert_rate'])}",
                    f"{moved(m['alert_rate_change'])} against the training period",
                ),
                _card(
                    "precision of the alerts (labelled)",
                    f"{percent(ref_precision, 1)} &rarr; {percent(cur_precision, 1)}",
                    f"{moved(precision_change)} against the training period",
                ),
                _card(
                    "average precision",
                    f"{number(m['test_average_precision'], 3)} &rarr; {number(m['live_average_precision'], 3)}",
                    f"{moved(-m['performance_drop'])} against the test period",
                ),
                _card(
                    "features drifted",
                    f"{number(m['n_drifted'])} of {number(m['n_features'])}",
                    f"scores: {_psi_words(m['prediction_psi'])} (PSI {number(m['prediction_psi'], 3)})",
                ),
            )
        )
        + "</div>"
    )


def challenger_line(comparison: Comparison | None) -> str:
    """One line on the challenger scored in the shadow, when one ran: its verdict and what it rests on."""
    if comparison is None or comparison.verdict == NO_SHADOW:
        return ""
    m = comparison.metrics
    said = {PROMOTE: "promote it", KEEP: "keep the champion", UNDECIDED: "undecided"}[comparison.verdict]
    return (
        f'<p id="challenger"><strong>Challenger {esc(m["challenger_version"])}, scored in the shadow:</strong> '
        f"{esc(said)}, on {number(m['n_labelled'])} labelled rows ({number(m['n_labelled_frauds'])} frauds, "
        f'{number(m["n_days"])} days); see <a href="#champion-and-challenger">Champion and challenger</a>.</p>'
    )


def first_screen(result: MonitorResult, verdict: str, source: str, comparison: Comparison | None = None) -> str:
    """The verdict, its reason, what to do, the challenger's verdict (when one ran in the shadow), the
    headline figures and the daily chart."""
    m, periods = result.metrics, result.periods
    current_rows = esc(source) if source else f"{number(m['n_current'])} rows"
    daily = (
        '<div class="figures">'
        + "".join(
            figure(f"{what} per day, reference against current", svg)
            for what, svg in zip(("alert rate", "precision"), daily_figures(result.daily), strict=True)
        )
        + "</div>"
        if len(result.daily)
        else "<p>No days to draw: the current window holds no transactions.</p>"
    )
    return f"""
<h1>Monitoring report</h1>
<p class="meta">Model {esc(result.model_version or "n/a")} &middot; reference (training period)
{esc(periods.get("reference", ""))}, {number(m["n_reference"])} rows &middot;
current {esc(periods.get("current", ""))}, {current_rows}, {number(m["n_labelled"])} labelled rows measured</p>
<div id="verdict" class="{verdict}">
<p id="headline">{esc(HEADLINES[verdict])}</p>
<p id="summary" class="{verdict}">{esc(result.summary)}</p>
<p id="todo"><strong>What to do:</strong> {esc(_to_do(result, verdict))}</p>
</div>
{challenger_line(comparison)}{_cards(result)}
<h2 class="first">Alerts and their precision, day by day</h2>
<div id="daily">{daily}</div>
<p class="note">Dotted lines: each period's overall figure. Precision counts the flagged transactions whose
label is known (older than the label delay); on the training period the model sees data it learned from, so
expect its precision higher there.</p>
"""
