"""The prequential backtest: per-fold metrics of a model retrained on each shifted split, and
their mean and std."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fraudpipe.data.split import SplitConfig, prequential_folds, time_split
from fraudpipe.evaluation.backtest import backtest, evaluate_folds
from fraudpipe.metrics import quality_metrics
from fraudpipe.model import train_bundle
from helpers.features import text_names
from helpers.model import feature_table, small_config

SPLIT = {
    "train_start": "2018-07-12",
    "train_days": 3,
    "delay_days": 1,
    "test_days": 2,
    "live_days": None,
    "remove_known_compromised": True,
    "n_folds": 3,
}


@pytest.fixture(scope="module")
def table():
    return feature_table(n_days=20, per_day=250, seed=3)


def test_backtest_reports_mean_and_sample_std_over_folds(table):
    summary, folds = backtest(table, SplitConfig.parse(SPLIT, "split"), small_config("logistic_regression"), k=5)
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert len({f["n_test"] for f in folds}) > 1  # different test periods
    assert summary["n_folds"] == 3
    aps = np.array([f["average_precision"] for f in folds])
    assert summary["average_precision_fold_mean"] == pytest.approx(aps.mean())
    assert summary["average_precision_fold_std"] == pytest.approx(aps.std(ddof=1))
    assert (
        "card_precision_at_k_fold_mean" in summary
        and summary["card_precision_k"] == 5
        and "fold_fold_mean" not in summary
    )


def test_each_fold_is_the_split_shifted_back_and_scored_by_its_own_model(table):
    """Fold k equals training by hand on the split moved k test periods earlier."""
    split = SplitConfig.parse(SPLIT, "split")
    config = small_config("decision_tree")
    folds = evaluate_folds(prequential_folds(table, split), config, k=5)
    for k in (0, 2):
        parts = time_split(table, split, shift_days=k * split.test_days)
        bundle = train_bundle(parts.train, config)
        assert folds[k] == {"fold": k} | quality_metrics(parts.test, bundle.score(parts.test), bundle.threshold, 5)


def test_one_fold_has_no_spread(table):
    summary, _ = backtest(
        table, SplitConfig.parse(SPLIT | {"n_folds": 1}, "split"), small_config("logistic_regression"), k=5
    )
    assert summary["n_folds"] == 1 and math.isnan(summary["roc_auc_fold_std"])


def test_text_ids_give_the_same_folds(table):
    """The backtest on the same table with text ids (card ids keep their order: CP@k ties alike)."""
    import pandas as pd

    def as_text(values: pd.Series, salt: str) -> pd.Series:
        keys = np.unique(values).tolist()
        mapping = dict(zip(keys, sorted(text_names(len(keys), salt))))
        return pd.Series([mapping[v] for v in values.tolist()], index=values.index, dtype="str")

    text = table.assign(**{c: as_text(table[c], c) for c in ("transaction_id", "customer_id", "terminal_id")})
    assert {"007", "7"} <= set(text["customer_id"])
    split, config = SplitConfig.parse(SPLIT, "split"), small_config("logistic_regression")
    assert backtest(text, split, config, k=5) == backtest(table, split, config, k=5)


def test_the_bundle_train_fitted_on_fold_0_stands_in_for_its_fit(table, tmp_path, monkeypatch):
    """The shipped bundle (saved and loaded, as the stage reads it) is fold 0's fit when its params
    and training rows are fold 0's: the folds come out the same with one fit fewer; any other
    bundle is not used."""
    from fraudpipe.evaluation import backtest as backtest_module
    from fraudpipe.model import fitted_on, load_bundle, save_bundle

    fits: list[int] = []

    def counted_fit(train, config):  # the real fit, counted
        fits.append(len(train))
        return train_bundle(train, config)

    def fit_count(run) -> int:
        fits.clear()
        with monkeypatch.context() as patch:
            patch.setattr(backtest_module, "train_bundle", counted_fit)
            run()
        return len(fits)

    split, config = SplitConfig.parse(SPLIT, "split"), small_config("decision_tree")
    fold0 = time_split(table, split)
    save_bundle(train_bundle(fold0.train, config), tmp_path / "bundle")
    shipped = load_bundle(tmp_path / "bundle")
    assert fitted_on(shipped, fold0.train, config)
    assert not fitted_on(shipped, time_split(table, split, shift_days=split.test_days).train, config)  # other rows
    assert not fitted_on(shipped, fold0.train, config.replace(random_state=config.random_state + 1))  # other params
    assert backtest(table, split, config, k=5, trained=shipped) == backtest(table, split, config, k=5)
    assert fit_count(lambda: backtest(table, split, config, k=5)) == split.n_folds
    assert fit_count(lambda: backtest(table, split, config, k=5, trained=shipped)) == split.n_folds - 1  # reused
    other = train_bundle(fold0.train, config.replace(random_state=config.random_state + 1))
    assert evaluate_folds(prequential_folds(table, split), config, k=5, trained=other) == evaluate_folds(
        prequential_folds(table, split), config, k=5
    )
    assert (
        fit_count(lambda: evaluate_folds(prequential_folds(table, split), config, k=5, trained=other)) == split.n_folds
    )
