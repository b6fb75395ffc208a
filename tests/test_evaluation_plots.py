"""Plot data is strict, finite, DVC-shaped JSON, byte-identical on rerun; evaluate draws no figure itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import auc

from fraudpipe.curves import calibration_curve
from fraudpipe.evaluation.plots import (
    calibration_records,
    confusion_json,
    confusion_records,
    feature_importance_records,
    precision_recall_records,
    records_json,
    roc_records,
    score_distribution_records,
)
from fraudpipe.io import write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=5000) < 0.05).astype(int)
    scores = np.clip(rng.beta(1, 12, size=5000) + 0.4 * labels * rng.uniform(size=5000), 0, 1)
    return labels, scores


def test_roc_records_are_finite_and_span_the_curve(scored, tmp_path):
    labels, scores = scored
    records = roc_records(labels, scores)
    assert (records[0]["fpr"], records[0]["tpr"]) == (0.0, 0.0) and (records[-1]["fpr"], records[-1]["tpr"]) == (
        1.0,
        1.0,
    )
    assert records[0]["threshold"] > scores.max()  # sklearn's inf: "alert nothing"
    assert all(np.isfinite(r["threshold"]) for r in records)
    json.dumps(records, allow_nan=False)
    write_json(records, tmp_path / "roc.json")
    assert "Infinity" not in (tmp_path / "roc.json").read_text()


def test_curves_are_thinned_but_keep_their_shape(scored):
    labels, scores = scored
    full = roc_records(labels, scores, max_points=10**9)
    thin = roc_records(labels, scores, max_points=100)
    assert len(thin) <= 100 < len(full)
    assert thin[0] == full[0] and thin[-1] == full[-1]
    full_auc = auc([r["fpr"] for r in full], [r["tpr"] for r in full])
    thin_auc = auc([r["fpr"] for r in thin], [r["tpr"] for r in thin])
    assert thin_auc == pytest.approx(full_auc, abs=0.01)


def test_precision_recall_records(scored):
    labels, scores = scored
    records = precision_recall_records(labels, scores, max_points=200)
    assert len(records) <= 200
    assert records[0]["recall"] == 1.0 and records[-1] == {
        "recall": 0.0,
        "precision": 1.0,
        "threshold": records[-1]["threshold"],
    }
    assert records[-1]["threshold"] > scores.max() and np.isfinite(records[-1]["threshold"])
    thresholds = [r["threshold"] for r in records]
    assert thresholds == sorted(thresholds)


def test_confusion_records_count_every_transaction():
    labels, scores = np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.2, 0.7, 0.1, 0.0])
    records = confusion_records(labels, scores, threshold=0.5)
    assert records == [
        {"actual": 1, "predicted": 1},
        {"actual": 1, "predicted": 0},
        {"actual": 0, "predicted": 1},
        {"actual": 0, "predicted": 0},
        {"actual": 0, "predicted": 0},
    ]
    text = records_json(records)
    assert json.loads(text) == records and [line.rstrip(",") for line in text.splitlines()[1:-1]] == [
        json.dumps(r, separators=(",", ":")) for r in records
    ]
    # what evaluate writes: the same text without a dict per row, for any labels (other values: the records)
    assert confusion_json(labels, scores, 0.5) == text
    rng = np.random.default_rng(0)
    many, more = rng.integers(0, 2, 1000), rng.random(1000)
    assert confusion_json(many, more, 0.3) == records_json(confusion_records(many, more, 0.3))
    odd = np.array([2, 0])
    assert confusion_json(odd, np.zeros(2), 0.5) == records_json(confusion_records(odd, np.zeros(2), 0.5))
    assert confusion_json(np.zeros(0), np.zeros(0), 0.5) == records_json([]) == "[\n\n]\n"


def test_feature_importance_records_largest_first_rounded():
    records = feature_importance_records({"night": 0.1, "tx_amount": 0.6000000001, "a_risk": 0.15, "b_risk": 0.15})
    assert records == [
        {"feature": "tx_amount", "importance": 0.6},
        {"feature": "a_risk", "importance": 0.15},  # a tie: by name
        {"feature": "b_risk", "importance": 0.15},
        {"feature": "night", "importance": 0.1},
    ]


def test_calibration_records_are_the_curve_with_its_counts(scored):
    labels, scores = scored
    records = calibration_records(labels, scores)
    observed, predicted = calibration_curve(labels, scores, 10)
    assert [r["fraud_rate"] for r in records] == pytest.approx(observed.tolist(), abs=1e-6)
    assert [r["mean_predicted"] for r in records] == pytest.approx(predicted.tolist(), abs=1e-6)
    assert sum(r["rows"] for r in records) == len(labels) and sum(r["frauds"] for r in records) == labels.sum()
    assert all(r["rows"] > 0 and r["fraud_rate"] == round(r["frauds"] / r["rows"], 6) for r in records)
    assert records[0]["bin"] == "0-0.1" and len({r["bin"] for r in records}) == len(records)
    # a bin without rows is left out, as the curve leaves it out
    few = calibration_records(np.array([0, 1]), np.array([0.05, 0.95]))
    assert [(r["bin"], r["rows"], r["frauds"]) for r in few] == [("0-0.1", 1, 0), ("0.9-1", 1, 1)]


def test_score_distribution_records_count_each_class_in_every_bin(scored):
    labels, scores = scored
    records = score_distribution_records(labels, scores, threshold=0.30000000004, bins=50)
    assert [r["class"] for r in records] == ["genuine"] * 50 + ["fraud"] * 50
    genuine, fraud = records[:50], records[50:]
    assert sum(r["rows"] for r in genuine) == (labels == 0).sum() and sum(r["rows"] for r in fraud) == labels.sum()
    assert (
        [r["score"] for r in genuine] == [r["score"] for r in fraud] == [round(0.01 + 0.02 * i, 6) for i in range(50)]
    )
    assert {r["threshold"] for r in records} == {0.3}
    assert all(set(r) == {"score", "class", "rows", "threshold"} for r in records)  # DVC reads uniform records
    # scores outside [0, 1] fall in the end bins, as the stage's clipped histogram counted them
    ends = score_distribution_records(np.array([0, 1]), np.array([-0.5, 1.5]), threshold=0.5, bins=2)
    assert [r["rows"] for r in ends] == [1, 0, 0, 1]


def test_summary_records_are_byte_identical_on_rerun(scored):
    labels, scores = scored

    def texts() -> list[str]:
        return [
            records_json(feature_importance_records({"b": 1 / 3, "a": 2 / 3})),
            records_json(calibration_records(labels, scores)),
            records_json(score_distribution_records(labels, scores, 0.3)),
        ]

    first = texts()
    assert first == texts()
    for text in first:
        assert text.startswith("[\n{") and text.endswith("}\n]\n") and json.loads(text)
        assert "e-" not in text and "NaN" not in text


@pytest.mark.parametrize("stage", ["evaluate", "monitor"])
def test_the_stages_that_make_figures_import_no_plotting_library(stage):
    """Their figures are DVC's (Vega-Lite) and the report's own SVG: matplotlib's import alone costs
    half a second a run. The script is loaded as a module (its main not run) in a fresh interpreter."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('stage', {str(ROOT / 'stages' / (stage + '.py'))!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'PIL', 'fraudpipe')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'fraudpipe.evaluation.plots'" in loaded or "'fraudpipe.monitoring.report'" in loaded, loaded
    assert "matplotlib" not in loaded and "'PIL" not in loaded, loaded
