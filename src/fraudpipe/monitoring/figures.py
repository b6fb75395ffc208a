"""The monitoring report's figures: matplotlib drawings turned into PNG ``data:`` URIs with fixed
metadata, so the same result draws the same bytes and the page needs no file beside it. Figures are
made without pyplot, whose import and figure registry the stage does not need, on the Agg canvas
that saves them, at the resolution they are saved with (`evaluation.plots.agg_figure`): their text
is measured once, for the layout, and drawn with those measurements."""

from __future__ import annotations

import base64
import io

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from fraudpipe.evaluation.plots import PNG_METADATA, agg_figure
from fraudpipe.monitoring.statistics import NUMERIC

REFERENCE_COLOR, CURRENT_COLOR = "#4C72B0", "#DD8452"
DPI = 80


def png(fig: Figure) -> str:
    """The figure as a base64 PNG data URI (deterministic bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def distribution_figure(name: str, kind: str, reference: np.ndarray, current: np.ndarray) -> Figure:
    """Reference against current: density histograms on shared bins (numeric, 0.5-99.5 percentile
    range, so one extreme value does not squash the rest) or shares per value (binary, categorical)."""
    fig = agg_figure((4.6, 3.0), DPI)
    ax = fig.subplots()
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
    fig = agg_figure((6.0, 3.4), DPI)
    ax = fig.subplots()
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
    """Observed fraud rate against mean predicted probability per score decile, per sample. The axes
    reach a little past 0 and 1, so that a decile at a corner (the lowest scores, a fraud rate of 1)
    shows its whole marker instead of a half cut off by the frame."""
    fig = agg_figure((4.6, 4.2), DPI)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for (sample, part), color in zip(table.groupby("sample", sort=False), (REFERENCE_COLOR, CURRENT_COLOR)):
        ax.plot(part["mean_score"], part["fraud_rate"], marker="o", color=color, label=sample)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraud rate")
    ax.set_title("Calibration by score decile", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def daily_figure(daily: pd.DataFrame) -> Figure:
    """Alert rate and precision per day side by side, reference and current on one calendar axis, each
    sample's overall figure as a dotted line: what an analyst's queue looked like, day by day."""
    fig = agg_figure((11.0, 3.0), DPI)
    axes = fig.subplots(1, 2)
    for sample, part in daily.groupby("sample", sort=False):
        color = REFERENCE_COLOR if sample == "reference" else CURRENT_COLOR
        days = pd.to_datetime(part["day"]).to_numpy()
        overall_rate = float(np.average(part["alert_rate"], weights=part["n"]))
        judged = float(part["n_alerted_labelled"].sum())
        overall_precision = float(part["n_alerted_frauds"].sum()) / judged if judged else float("nan")
        for ax, column, overall in ((axes[0], "alert_rate", overall_rate), (axes[1], "precision", overall_precision)):
            ax.plot(days, part[column].to_numpy(np.float64), marker=".", color=color, label=sample)
            if np.isfinite(overall):
                ax.axhline(overall, color=color, linestyle=":", linewidth=1)
    for ax, title, decimals in (
        (axes[0], "Alert rate per day (share of transactions flagged)", 1),
        (axes[1], "Precision per day (share of flagged ones that were fraud)", 0),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, loc="lower left")
    axes[1].set_ylim(0, 1.05)
    fig.tight_layout()
    return fig
