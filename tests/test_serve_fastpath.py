"""The one-row scorer: exactly the bundle's one-row path, faster, or that path itself."""

from __future__ import annotations

import numpy as np

from fraudpipe.contract import TX_DATETIME
from fraudpipe.model import load_bundle, save_bundle, train_bundle
from fraudpipe.scoring.row import RowScorer
from helpers.model import model_config
from helpers.serve import world


def test_the_fast_path_gives_exactly_the_bundle_scores():
    w = world()
    bundle = load_bundle(w.bundle_dir, nthread=1)
    scorer = RowScorer(bundle)
    assert scorer.fast
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
    assert not scorer.fast
    rows = w.table[list(bundle.features)].to_numpy(np.float64)[:50]
    assert [scorer(r) for r in rows] == [bundle.predict_row(r) for r in rows]
