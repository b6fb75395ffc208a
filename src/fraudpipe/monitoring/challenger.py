"""Champion against challenger on the labelled part of the shadow window: the promotion verdict.

The service answers with the champion and scores a challenger in the shadow (`fraudpipe serve
--shadow`), so both models scored the same transactions; once their labels arrive, the two are
compared on exactly those rows: average precision, card precision@k per day and the alert rate,
each with a percentile interval over whole days, and the difference (challenger - champion) with
an interval from the same resampled days for both (a paired bootstrap: the day-to-day noise the
two share cancels out of the difference). The verdict (``promote``, ``keep``, ``undecided``, ``no
shadow``) comes with the rule that decided it, in words. Pure functions; the `monitor` stage writes
the flat figures (reports/monitoring/challenger.json) and ``report`` draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.errors import DataError
from fraudpipe.metrics import day_resamples, percentile_interval, resampled_metrics
from fraudpipe.monitoring.checks import measured_mask
from fraudpipe.monitoring.config import ChallengerChecks
from fraudpipe.monitoring.window import Shadow

PROMOTE, KEEP, UNDECIDED, NO_SHADOW = "promote", "keep", "undecided", "no shadow"

#: The figures compared, each for both models and as their difference.
FIGURES = ("average_precision", "card_precision_at_k", "alert_rate")


def _figure_keys(name: str) -> tuple[str, ...]:
    return tuple(
        f"{prefix}{name}{suffix}"
        for prefix in ("champion_", "challenger_", "diff_")
        for suffix in ("", "_ci_low", "_ci_high")
    )


#: The counts of challenger.json: the window's rows, those the newest challenger scored, those earlier
#: challengers scored, the labelled ones compared and the rest left out, their frauds and days.
COUNT_KEYS = (
    "n_window",
    "n_shadow",
    "n_other_challengers",
    "n_labelled",
    "n_unlabelled",
    "n_labelled_frauds",
    "n_days",
)

#: The keys of challenger.json, in order (the same keys whatever the verdict: null where undefined).
COMPARISON_KEYS = (
    "verdict",
    "reason",
    "champion_version",
    "challenger_version",
    *COUNT_KEYS,
    "card_precision_k",
    "ci_level",
    *(key for name in FIGURES for key in _figure_keys(name)),
    "alert_rate_band_low",
    "alert_rate_band_high",
)


@dataclass(frozen=True)
class Scored:
    """One model's answers on a set of rows: its version, its scores, its alerts."""

    version: str
    scores: np.ndarray
    alerts: np.ndarray | None  # None: unknown (a shadow logged without its alert, and no threshold given)


def scored_at(version: str, scores: np.ndarray, threshold: float) -> Scored:
    """A model's answers at its decision threshold (alert when score >= threshold), as the service gives them."""
    scores = np.asarray(scores, dtype=np.float64)
    return Scored(version, scores, scores >= threshold)


@dataclass(frozen=True)
class Comparison:
    """The figures (challenger.json, keys ``COMPARISON_KEYS``) with the verdict and its reason."""

    metrics: dict[str, float | int | str]

    @property
    def verdict(self) -> str:
        return str(self.metrics["verdict"])

    @property
    def reason(self) -> str:
        return str(self.metrics["reason"])


def compare_shadow(
    frame: pd.DataFrame,
    champion: Scored,
    shadow: Shadow | None,
    *,
    k: int,
    delay_days: int,
    remove_known: bool,
    reference_alert_rate: float,
    alert_rate_change: float,
    config: ChallengerChecks,
) -> Comparison:
    """The verdict on the window's rows ``frame`` (in time order, ``tx_fraud`` missing where no label
    arrived): the champion's answers against the challenger's shadow scores, on the rows the newest
    challenger scored whose labels count (``measured_mask``: as drift.json's live figures, labelled,
    older than the label delay, without the cards already known compromised when ``remove_known``).
    Rows scored by an earlier challenger are left out and counted. The challenger alerts at
    ``config.threshold`` when it is set, else as the log says (``shadow.alerts``)."""
    if len(champion.scores) != len(frame) or (shadow is not None and len(shadow.scores) != len(frame)):
        raise DataError(f"the champion's and the challenger's scores must be of the window's {len(frame)} rows")
    require_columns(frame, [TX_DATETIME, CUSTOMER_ID, TX_FRAUD], "the current window")
    band = _band(reference_alert_rate, alert_rate_change)
    out: dict[str, float | int | str] = {key: float("nan") for key in COMPARISON_KEYS}
    out |= dict.fromkeys(COUNT_KEYS, 0)
    out |= {
        "champion_version": champion.version,
        "challenger_version": "",
        "n_window": len(frame),
        "card_precision_k": int(k),
        "ci_level": float(config.interval.confidence),
        "alert_rate_band_low": band[0],
        "alert_rate_band_high": band[1],
    }
    rows, version, n_other = newest_challenger(shadow)
    if shadow is None or not rows.any():
        reason = (
            "no challenger scored in the shadow of this window: start the service with `fraudpipe serve --shadow "
            "<bundle>` and watch its log (monitor.current: service_log)"
        )
        return _done(out, NO_SHADOW, reason)
    challenger = Scored(version, shadow.scores, _challenger_alerts(shadow, config.threshold))
    labelled = rows & measured_mask(frame, delay_days, remove_known)
    part = frame[labelled]
    out |= {
        "challenger_version": version,
        "n_shadow": int(rows.sum()),
        "n_other_challengers": n_other,
        "n_labelled": int(labelled.sum()),
        "n_unlabelled": int(rows.sum() - labelled.sum()),
        "n_labelled_frauds": int(part[TX_FRAUD].sum()),
        "n_days": int(part[TX_DATETIME].dt.floor("D").nunique()),
    }
    if len(part):
        out |= paired_figures(part, _subset(champion, labelled), _subset(challenger, labelled), k, config)
    verdict, reason = decide(out, config, challenger.alerts is not None)
    return _done(out, verdict, reason)


def newest_challenger(shadow: Shadow | None) -> tuple[np.ndarray, str, int]:
    """The rows the newest challenger scored (the version of the last shadow-scored row), its version,
    and how many rows earlier challengers scored: one comparison is of two models, not of a mixture."""
    if shadow is None:
        return np.zeros(0, dtype=bool), "", 0
    scored = np.isfinite(shadow.scores)
    if not scored.any():
        return scored, "", 0
    version = str(shadow.models[np.flatnonzero(scored)[-1]])
    rows = scored & (shadow.models == version)
    return rows, version, int(scored.sum() - rows.sum())


def _challenger_alerts(shadow: Shadow, threshold: float | None) -> np.ndarray | None:
    """At the configured threshold when there is one, else as the service logged them (None: unknown)."""
    return shadow.scores >= threshold if threshold is not None else shadow.alerts


def _subset(model: Scored, rows: np.ndarray) -> Scored:
    return Scored(model.version, model.scores[rows], None if model.alerts is None else model.alerts[rows])


def _band(reference_alert_rate: float, change: float) -> tuple[float, float]:
    """The alert rates monitoring does not call a drift: within ``change`` (relative) of the
    training period's rate (``monitor.prediction.alert_rate_change``)."""
    return max(reference_alert_rate * (1 - change), 0.0), reference_alert_rate * (1 + change)


def paired_figures(
    part: pd.DataFrame, champion: Scored, challenger: Scored, k: int, config: ChallengerChecks
) -> dict[str, float]:
    """Each figure of both models on the labelled rows ``part``, and their difference, each with its
    percentile interval over the same resampled days (``metrics.day_resamples``, seeded by
    ``config.interval``). Average precision and card precision@k are resampled as evaluate's
    intervals are (``metrics.resampled_metrics``), the alert rate by alerts and rows per day. A model
    without alerts has no alert rate (absent from the result, so null)."""
    days = part[TX_DATETIME].dt.floor("D").to_numpy()
    day_of_row = np.unique(days, return_inverse=True)[1]
    n_days = int(day_of_row.max()) + 1
    counts = day_resamples(n_days, config.interval)
    rows_per_day = np.bincount(day_of_row, minlength=n_days).astype(np.float64)
    figures: dict[str, tuple[float, np.ndarray]] = {}  # "<side>_<figure>" -> (value, its resampled values)
    for side, model in (("champion", champion), ("challenger", challenger)):
        for name, figure in resampled_metrics(part, model.scores, k, counts).items():
            if name in FIGURES:
                figures[f"{side}_{name}"] = figure
        if model.alerts is not None:
            alerts = np.bincount(day_of_row, weights=model.alerts.astype(np.float64), minlength=n_days)
            rate = (float(alerts.sum() / rows_per_day.sum()), (counts @ alerts) / (counts @ rows_per_day))
            figures[f"{side}_alert_rate"] = rate
    for name in FIGURES:
        if f"champion_{name}" in figures and f"challenger_{name}" in figures:
            (ours, our_draws), (theirs, their_draws) = figures[f"champion_{name}"], figures[f"challenger_{name}"]
            figures[f"diff_{name}"] = (theirs - ours, their_draws - our_draws)  # paired: the same days drawn
    out: dict[str, float] = {}
    for key, (value, resampled) in figures.items():
        low, high = percentile_interval(resampled, config.interval.confidence)
        out |= {key: value, f"{key}_ci_low": low, f"{key}_ci_high": high}
    return out


def decide(figures: Mapping[str, float | int | str], config: ChallengerChecks, alerts_known: bool) -> tuple[str, str]:
    """The verdict and the rule that decided it, in words. Undecided below the minimums (labelled
    frauds, days) or without the challenger's alerts; promote when every rule holds (the AP
    difference's interval above the margin, card precision@k's not below the tolerance, the
    challenger's alert rate inside the band); keep otherwise, naming each rule that failed."""
    short = []
    if int(figures["n_labelled_frauds"]) < config.min_frauds:
        short.append(
            f"{figures['n_labelled_frauds']} labelled frauds among the shadow rows, fewer than the "
            f"{config.min_frauds} a verdict needs (monitor.challenger.min_frauds)"
        )
    if int(figures["n_days"]) < config.min_days:
        short.append(
            f"{figures['n_days']} labelled days, fewer than the {config.min_days} a verdict needs "
            "(monitor.challenger.min_days)"
        )
    if short:
        return UNDECIDED, "undecided: " + "; ".join(short) + ". Wait for more labels."
    if not alerts_known:
        return UNDECIDED, (
            "undecided: the log holds the challenger's scores but not its alerts (shadow_alert): set "
            "monitor.challenger.threshold to the challenger bundle's threshold"
        )
    level = f"{float(figures['ci_level']):.0%}"
    rules = [_ap_rule(figures, config, level), _cp_rule(figures, config, level), _alert_rate_rule(figures)]
    failed = [text for held, text in rules if not held]
    if failed:
        return KEEP, "keep the champion: " + "; ".join(failed) + "."
    return PROMOTE, "promote the challenger: " + "; ".join(text for _, text in rules) + "."


def _interval(figures: Mapping[str, float | int | str], key: str) -> str:
    return f"[{float(figures[f'{key}_ci_low']):+.4f}, {float(figures[f'{key}_ci_high']):+.4f}]"


def _ap_rule(figures: Mapping[str, float | int | str], config: ChallengerChecks, level: str) -> tuple[bool, str]:
    low = float(figures["diff_average_precision_ci_low"])
    text = (
        f"its average precision differs by {float(figures['diff_average_precision']):+.4f} "
        f"({level} interval {_interval(figures, 'diff_average_precision')}), "
    )
    held = bool(np.isfinite(low) and low > config.ap_margin)
    where = "lies above" if held else "does not lie above"
    return held, text + f"which {where} the margin {config.ap_margin:g} (monitor.challenger.ap_margin)"


def _cp_rule(figures: Mapping[str, float | int | str], config: ChallengerChecks, level: str) -> tuple[bool, str]:
    low = float(figures["diff_card_precision_at_k_ci_low"])
    k = int(figures["card_precision_k"])
    held = bool(np.isfinite(low) and low >= -config.cp_tolerance)
    text = (
        f"card precision@{k} differs by {float(figures['diff_card_precision_at_k']):+.4f} "
        f"({level} interval {_interval(figures, 'diff_card_precision_at_k')}), "
    )
    where = "stays within" if held else "reaches below"
    return held, text + f"which {where} the tolerance -{config.cp_tolerance:g} (monitor.challenger.cp_tolerance)"


def _alert_rate_rule(figures: Mapping[str, float | int | str]) -> tuple[bool, str]:
    rate, low, high = (
        float(figures[key]) for key in ("challenger_alert_rate", "alert_rate_band_low", "alert_rate_band_high")
    )
    held = bool(low < rate < high or rate == low == high == 0)
    where = "inside" if held else "outside"
    return held, (
        f"its alert rate {rate:.2%} is {where} the band {low:.2%} .. {high:.2%} around the training "
        "period's (monitor.prediction.alert_rate_change)"
    )


def _done(out: dict[str, float | int | str], verdict: str, reason: str) -> Comparison:
    out |= {"verdict": verdict, "reason": reason}
    return Comparison({key: out[key] for key in COMPARISON_KEYS})
