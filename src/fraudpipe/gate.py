"""The quality gate: the test period's metrics against their configured minimums, in one rule.

A figure measured on few frauds is uncertain: on ~20 test frauds an AUC can land on either side of
a floor by chance. With ``judge: interval`` the gate reads a metric that has a bootstrap interval
(``<metric>_ci_low``/``_ci_high`` in metrics.json) by that interval: it fails only when the whole
interval is below the minimum, and a point below the minimum whose interval reaches it is
*inconclusive*, which passes with a warning naming the figure, its interval and the test frauds
behind it. ``enforce`` is about the confident failures only. ``judge: point`` reads the point value
alone. A metric without an interval is always read by its point.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal, TypeGuard

import numpy as np

from fraudpipe.config import Config


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class GateConfig(Config):
    """The quality gate: a minimum per metric; how a metric is judged (its point value, or its
    interval when it has one); `enforce` makes a failure stop the stage."""

    enforce: bool
    judge: Literal["point", "interval"]
    minimums: dict[str, float]


def interval_keys(name: str) -> tuple[str, str]:
    """The metrics.json keys of the bounds of ``name``'s bootstrap interval."""
    return f"{name}_ci_low", f"{name}_ci_high"


def _finite(value: Any) -> TypeGuard[float]:
    return value is not None and bool(np.isfinite(value))


def judge_metric(metrics: Mapping[str, Any], name: str, minimum: float, judge: str) -> Outcome:
    """The gate's one rule. Undefined never passes; at or above the minimum passes; below it fails
    by point, or, judged by an interval the metric has, only when the interval's upper bound is
    below the minimum too (confidently below), and is inconclusive otherwise."""
    value = metrics[name]
    if not _finite(value):
        return Outcome.FAIL
    if value >= minimum:
        return Outcome.PASS
    high = metrics.get(interval_keys(name)[1])
    if judge == "interval" and _finite(high) and high >= minimum:
        return Outcome.INCONCLUSIVE
    return Outcome.FAIL


def _interval_text(metrics: Mapping[str, Any], name: str) -> str:
    low, high = (metrics[key] for key in interval_keys(name))
    return f"its {metrics['ci_level']:.0%} interval [{low:.4f}, {high:.4f}]"


def failure_message(metrics: Mapping[str, Any], name: str, minimum: float, judge: str) -> str:
    """One line naming the metric, its value, the minimum and its config key."""
    key = f"evaluate.gate.minimums.{name}"
    value = metrics[name]
    if not _finite(value):
        return f"{name} is undefined (minimum {minimum:g}, {key})"
    if judge == "interval" and _finite(metrics.get(interval_keys(name)[1])):
        interval = _interval_text(metrics, name)
        return f"{name} = {value:.4f} is below the minimum {minimum:g}, and so is {interval} ({key})"
    return f"{name} = {value:.4f} is below the minimum {minimum:g} ({key})"


def warning_record(metrics: Mapping[str, Any], name: str, minimum: float) -> dict[str, Any]:
    """An inconclusive metric as reports/gate.json lists it: the figures, and the line the stage prints."""
    low, high = (metrics[key] for key in interval_keys(name))
    n_frauds = int(metrics["n_frauds"])
    message = (
        f"{name} = {metrics[name]:.4f} is below the minimum {minimum:g}, but {_interval_text(metrics, name)} "
        f"reaches it: {n_frauds} test frauds are too few to tell, so the gate passes it "
        f"(evaluate.gate.minimums.{name}; evaluate.gate.judge: point would fail it)"
    )
    return {
        "metric": name,
        "value": float(metrics[name]),
        "ci_low": float(low),
        "ci_high": float(high),
        "ci_level": float(metrics["ci_level"]),
        "minimum": float(minimum),
        "n_frauds": n_frauds,
        "message": message,
    }


def judge_minimums(metrics: Mapping[str, Any], gate: GateConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """The failing metrics as one-line sentences and the inconclusive ones as warning records, in
    the order of the minimums. EvaluateConfig has already refused minimums on unknown metrics."""
    failures: list[str] = []
    warnings: list[dict[str, Any]] = []
    for name, minimum in gate.minimums.items():
        outcome = judge_metric(metrics, name, minimum, gate.judge)
        if outcome is Outcome.FAIL:
            failures.append(failure_message(metrics, name, minimum, gate.judge))
        elif outcome is Outcome.INCONCLUSIVE:
            warnings.append(warning_record(metrics, name, minimum))
    return failures, warnings


def gate_verdict(metrics: Mapping[str, Any], gate: GateConfig) -> dict[str, Any]:
    """The verdict as `evaluate` writes it to a file of its own (reports/gate.json), which the stages
    that must not use a failed model read: ``passed``, the inconclusive metrics (``warnings``) and
    the failing checks' sentences."""
    failures, warnings = judge_minimums(metrics, gate)
    return {"passed": not failures, "warnings": warnings, "failures": failures}


def verdict_words(verdict: Mapping[str, Any]) -> str:
    """The verdict in the stage's summary line."""
    if verdict["failures"]:
        return "FAILED"
    n = len(verdict["warnings"])
    return f"passed with {n} inconclusive metric{'s' if n > 1 else ''} (warning below)" if n else "passed"
