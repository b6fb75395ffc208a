"""Plot data is strict, finite, DVC-shaped JSON; PNGs are real and byte-identical on rerun."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import auc

from fraudpipe.evaluation.plots import (
    calibration_figure,
    confusion_json,
    confusion_records,
    feature_importance_figure,
    precision_recall_records,
    records_json,
    roc_records,
    save_png,
    score_distribution_figure,
)
from fraudpipe.io import write_json


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


def _render_all(labels, scores, directory):
    save_png(
        feature_importance_figure({"tx_amount": 0.6, "terminal_risk": 0.3, "night": 0.1}), directory / "importance.png"
    )
    save_png(calibration_figure(labels, scores), directory / "calibration.png")
    save_png(score_distribution_figure(labels, scores, threshold=0.3), directory / "scores.png")


def test_pngs_are_valid_and_byte_identical_on_rerun(scored, tmp_path):
    labels, scores = scored
    _render_all(labels, scores, tmp_path / "a")
    _render_all(labels, scores, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["calibration.png", "importance.png", "scores.png"]  # no temporary files left
    for name in names:
        data = (tmp_path / "a" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert data == (tmp_path / "b" / name).read_bytes(), name
        assert not _names_matplotlib(data), f"{name} carries the library version, which changes its bytes"


def _names_matplotlib(png: bytes) -> bool:
    return b"matplotlib" in png.lower()


def test_the_version_check_detects_matplotlibs_default_metadata(tmp_path):
    """Guards the guard above: matplotlib writes "Matplotlib version…" unless told otherwise."""
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    fig.savefig(tmp_path / "default.png", format="png")
    plt.close(fig)
    assert _names_matplotlib((tmp_path / "default.png").read_bytes())
