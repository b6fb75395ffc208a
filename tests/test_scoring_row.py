"""The one-row scorer: exactly the bundle's one-row path, faster, or that path itself, and which one it says."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import numpy as np
from packaging.requirements import Requirement

from fraudpipe.contract import TX_DATETIME
from fraudpipe.model import load_bundle, save_bundle, train_bundle
from fraudpipe.scoring.row import RowScorer
from helpers.model import model_config
from helpers.serve import world


def test_the_fast_path_gives_exactly_the_bundle_scores():
    w = world()
    bundle = load_bundle(w.bundle_dir, nthread=1)
    scorer = RowScorer(bundle)
    assert scorer.fast and scorer.fast_path.on
    rows = w.table[list(bundle.features)].to_numpy(np.float64)[:: max(1, len(w.table) // 500)]
    rng = np.random.default_rng(3)
    rows = np.vstack([rows, rows * rng.uniform(0.5, 2.0, rows.shape)])
    fast = np.array([scorer(r) for r in rows])
    np.testing.assert_array_equal(fast, np.array([bundle.predict_row(r) for r in rows]))
    np.testing.assert_array_equal(fast, bundle.predict_proba(rows).astype(np.float64))
    assert len(np.unique(fast)) > 100


def test_other_estimators_use_the_bundle_path(tmp_path):
    w = world()
    train = w.table[w.table[TX_DATETIME] < w.cut]
    save_bundle(train_bundle(train, model_config("logistic_regression", threshold_validation_days=0)), tmp_path)
    bundle = load_bundle(tmp_path, nthread=1)
    scorer = RowScorer(bundle)
    assert not scorer.fast and not scorer.fast_path.on
    assert scorer.fast_path.reason == "the logistic_regression estimator is not an XGBoost booster"
    assert scorer.fast_path.describe().startswith("fast path OFF, Bundle.predict_row (the logistic_regression")
    rows = w.table[list(bundle.features)].to_numpy(np.float64)[:50]
    assert [scorer(r) for r in rows] == [bundle.predict_row(r) for r in rows]


def test_the_installed_xgboost_is_a_pinned_minor_and_runs_the_fast_path():
    """pyproject.toml allows the XGBoost minor versions the fast path was checked on; the installed
    one is among them, and on it the fast path is on (a minor upgrade that breaks it fails here)."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = [Requirement(r) for r in pyproject["project"]["dependencies"] if r.startswith("xgboost")]
    assert [p.name for p in pins] == ["xgboost-cpu"]
    (pin,) = pins
    installed = version("xgboost-cpu")
    assert pin.specifier.contains(installed), f"xgboost-cpu {installed} is not in the pinned range {pin.specifier}"
    major, minor = (int(v) for v in installed.split(".")[:2])
    assert not pin.specifier.contains(f"{major}.{minor + 1}.0"), "the pin allows an unchecked minor version"
    fast_path = RowScorer(load_bundle(world().bundle_dir, nthread=1)).fast_path
    assert fast_path.on, fast_path.reason
    assert fast_path.reason == f"xgboost {installed}, float32 row into XGBoosterPredictFromDense"
