"""The quality gate's rule: confidently below fails, at or above passes, in between is inconclusive
(passes with a warning); judged by the point value alone when configured or when a metric has no interval."""

from __future__ import annotations

import json

import pytest

from fraudpipe.gate import GateConfig, Outcome, gate_verdict, judge_metric, judge_minimums, verdict_words
from fraudpipe.io import write_json

#: A small test period's figures: AUC 0.551 with an interval that reaches 0.6, AP confidently above
#: its floor, f1 without an interval.
METRICS = {
    "roc_auc": 0.551,
    "roc_auc_ci_low": 0.41,
    "roc_auc_ci_high": 0.68,
    "average_precision": 0.2,
    "average_precision_ci_low": 0.08,
    "average_precision_ci_high": 0.35,
    "f1": 0.1,
    "ci_level": 0.95,
    "n_frauds": 22,
}


def gate(judge: str = "interval", **minimums: float) -> GateConfig:
    return GateConfig.parse({"enforce": True, "judge": judge, "minimums": minimums}, "evaluate.gate")


@pytest.mark.parametrize(
    ("name", "minimum", "judge", "outcome"),
    [
        ("roc_auc", 0.5, "interval", Outcome.PASS),  # at or above: passes whatever the interval
        ("roc_auc", 0.551, "interval", Outcome.PASS),
        ("roc_auc", 0.6, "interval", Outcome.INCONCLUSIVE),  # below, but the interval reaches it
        ("roc_auc", 0.68, "interval", Outcome.INCONCLUSIVE),  # the upper bound at the minimum is not below it
        ("roc_auc", 0.7, "interval", Outcome.FAIL),  # the whole interval below: confidently below
        ("roc_auc", 0.6, "point", Outcome.FAIL),  # by the point value alone
        ("roc_auc", 0.5, "point", Outcome.PASS),
        ("f1", 0.2, "interval", Outcome.FAIL),  # no interval: its point decides
        ("average_precision_ci_low", 0.1, "interval", Outcome.FAIL),  # a bound has no interval of its own
        ("average_precision_ci_low", 0.05, "interval", Outcome.PASS),
    ],
)
def test_the_rule(name, minimum, judge, outcome):
    assert judge_metric(METRICS, name, minimum, judge) is outcome


def test_undefined_never_passes_and_an_undefined_interval_is_no_interval():
    undefined = METRICS | {"roc_auc": float("nan"), "f1": None}
    assert judge_metric(undefined, "roc_auc", 0.6, "interval") is Outcome.FAIL
    assert judge_metric(undefined, "f1", 0.0, "interval") is Outcome.FAIL
    no_interval = METRICS | {"roc_auc_ci_high": float("nan")}
    assert judge_metric(no_interval, "roc_auc", 0.6, "interval") is Outcome.FAIL
    assert judge_minimums(undefined, gate(f1=0.1))[0] == ["f1 is undefined (minimum 0.1, evaluate.gate.minimums.f1)"]


def test_a_failure_is_one_line_naming_metric_value_minimum_interval_and_key():
    failures, warnings = judge_minimums(METRICS, gate(roc_auc=0.75, average_precision=0.1, f1=0.2))
    assert failures == [
        "roc_auc = 0.5510 is below the minimum 0.75, and so is its 95% interval [0.4100, 0.6800] "
        "(evaluate.gate.minimums.roc_auc)",
        "f1 = 0.1000 is below the minimum 0.2 (evaluate.gate.minimums.f1)",
    ]
    assert warnings == []
    # judged by point, the sentence is the value's alone
    assert judge_minimums(METRICS, gate("point", roc_auc=0.6))[0] == [
        "roc_auc = 0.5510 is below the minimum 0.6 (evaluate.gate.minimums.roc_auc)"
    ]


def test_an_inconclusive_metric_passes_with_a_warning_naming_its_figures(tmp_path):
    verdict = gate_verdict(METRICS, gate(roc_auc=0.6, average_precision=0.1))
    assert list(verdict) == ["passed", "warnings", "failures"]
    assert verdict["passed"] is True and verdict["failures"] == []
    (warning,) = verdict["warnings"]
    assert {k: v for k, v in warning.items() if k != "message"} == {
        "metric": "roc_auc",
        "value": 0.551,
        "ci_low": 0.41,
        "ci_high": 0.68,
        "ci_level": 0.95,
        "minimum": 0.6,
        "n_frauds": 22,
    }
    assert warning["message"] == (
        "roc_auc = 0.5510 is below the minimum 0.6, but its 95% interval [0.4100, 0.6800] reaches it: "
        "22 test frauds are too few to tell, so the gate passes it "
        "(evaluate.gate.minimums.roc_auc; evaluate.gate.judge: point would fail it)"
    )
    write_json(verdict, tmp_path / "gate.json")  # what evaluate writes: strict JSON
    assert json.loads((tmp_path / "gate.json").read_text()) == verdict
    assert verdict_words(verdict) == "passed with 1 inconclusive metric (warning below)"


def test_the_verdict_in_words():
    assert verdict_words(gate_verdict(METRICS, gate(roc_auc=0.5))) == "passed"
    assert verdict_words(gate_verdict(METRICS, gate(roc_auc=0.6, f1=0.2))) == "FAILED"
    two = METRICS | {"average_precision": 0.05}
    assert verdict_words(gate_verdict(two, gate(roc_auc=0.6, average_precision=0.1))).startswith(
        "passed with 2 inconclusive metrics"
    )
    assert gate_verdict(METRICS, gate()) == {"passed": True, "warnings": [], "failures": []}
