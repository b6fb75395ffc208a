"""The numpy curves give scikit-learn's floats exactly (its functions are the reference), and a
scoring stage's process never imports scikit-learn or scipy.stats for them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn import calibration
from sklearn import metrics as skm

from fraudpipe import curves


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Labels and scores: many ties (rounded scores), no ties, few rows, int8 / bool / int64 labels."""
    rng = np.random.default_rng(7)
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    for n, digits, dtype in ((5_000, 2, np.int8), (3_000, None, np.int64), (40, 1, bool), (7, 3, np.int8)):
        labels = (rng.random(n) < 0.2).astype(dtype)
        scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.2), 0, 1)
        if digits is not None:
            scores = scores.round(digits)
        out.append((f"n{n}-{'ties' if digits else 'distinct'}-{np.dtype(dtype).name}", labels, scores))
    out.append(("constant-score", np.array([0, 1, 0, 1, 1], dtype=np.int8), np.full(5, 0.5)))
    float32 = np.array([0.1, 0.9, 0.4, 0.4, 0.7, 0.2], dtype=np.float32)
    out.append(("float32-scores", np.array([0, 1, 1, 0, 1, 0], dtype=np.int8), float32))
    return out


CASES = cases()
IDS = [name for name, _, _ in CASES]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays to the last bit (NaN equal to NaN), of the same length."""
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@pytest.mark.parametrize(("name", "labels", "scores"), CASES, ids=IDS)
def test_precision_recall_curve_is_scikit_learns(name, labels, scores):
    for ours, theirs in zip(curves.precision_recall_curve(labels, scores), skm.precision_recall_curve(labels, scores)):
        assert same(np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64))


@pytest.mark.parametrize(("name", "labels", "scores"), CASES, ids=IDS)
def test_roc_curve_is_scikit_learns(name, labels, scores):
    for ours, theirs in zip(curves.roc_curve(labels, scores), skm.roc_curve(labels, scores)):
        assert same(ours, theirs)


@pytest.mark.parametrize(("name", "labels", "scores"), CASES, ids=IDS)
def test_auc_and_average_precision_are_scikit_learns(name, labels, scores):
    assert curves.roc_auc_score(labels, scores) == skm.roc_auc_score(labels, scores)
    assert curves.average_precision_score(labels, scores) == skm.average_precision_score(labels, scores)


@pytest.mark.parametrize(("name", "labels", "scores"), CASES, ids=IDS)
@pytest.mark.parametrize("n_bins", [1, 10, 37])
def test_calibration_curve_is_scikit_learns(name, labels, scores, n_bins):
    ours = curves.calibration_curve(labels, scores, n_bins)
    theirs = calibration.calibration_curve(labels, scores, n_bins=n_bins, strategy="uniform")
    assert all(same(a, b) for a, b in zip(ours, theirs))


def test_a_curve_without_frauds_is_scikit_learns_too():
    labels, scores = np.zeros(6, dtype=np.int8), np.array([0.1, 0.2, 0.2, 0.5, 0.9, 0.3])
    with pytest.warns(UserWarning, match="No positive class"):  # scikit-learn warns; we do not
        theirs = skm.precision_recall_curve(labels, scores)
    ours = curves.precision_recall_curve(labels, scores)
    assert all(same(a, np.asarray(b, np.float64)) for a, b in zip(ours, theirs))
    with pytest.warns(UserWarning, match="No positive samples"):
        theirs = skm.roc_curve(labels, scores)
    assert all(same(a, b) for a, b in zip(curves.roc_curve(labels, scores), theirs))


def test_importing_the_curves_and_metrics_imports_no_scikit_learn():
    code = (
        "import sys, numpy as np; from fraudpipe import curves, metrics; "
        "metrics.roc_auc(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.4])); "
        "metrics.average_precision(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.4])); "
        "print(sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
