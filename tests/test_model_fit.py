"""Fitting: the class weight, the standardiser fitted on the training rows only, eval_set scaled alike."""

from __future__ import annotations

import numpy as np
import pytest

from fraudpipe.model.fit import fit_model, fit_standardizer, positive_weight, standardize, threads_per_fit
from helpers.model import FEATURES, feature_table, model_config, small_config


def test_positive_weight():
    y = np.array([0, 0, 0, 1])
    assert positive_weight(model_config(scale_pos_weight="balanced"), y) == 3.0
    assert positive_weight(model_config(scale_pos_weight=5.0), y) == 5.0


def test_standardiser_is_fitted_on_the_training_rows_and_optional():
    table = feature_table()
    X, y = table[FEATURES].to_numpy(), table["tx_fraud"].to_numpy()
    fitted = fit_model(X, y, small_config("logistic_regression"), FEATURES)
    np.testing.assert_allclose(fitted.mean, X.mean(axis=0))
    np.testing.assert_allclose(fitted.scale, X.std(axis=0))
    np.testing.assert_allclose(standardize(X, fitted.mean, fitted.scale).mean(axis=0), 0, atol=1e-12)
    raw = fit_model(X, y, small_config("logistic_regression", standardize=False), FEATURES)
    assert raw.mean is None and raw.scale is None
    assert not np.allclose(raw.predictor.model.coef, fitted.predictor.model.coef)  # it saw other inputs


def test_eval_set_is_standardised_like_the_training_rows(tmp_path, monkeypatch):
    """XGBoost's validation curve from `fit_model` equals one computed on the scaled hold-out."""
    from dvclive import Live
    from sklearn.metrics import log_loss

    table = feature_table()
    X, y = table[FEATURES].to_numpy(), table["tx_fraud"].to_numpy()
    fit_rows, hold = slice(0, 2400), slice(2400, None)
    monkeypatch.chdir(tmp_path)
    with Live(dir="live", dvcyaml=False, save_dvc_exp=False) as live:
        fitted = fit_model(
            X[fit_rows], y[fit_rows], small_config("xgboost"), FEATURES, eval_set=(X[hold], y[hold]), live=live
        )
    last = (tmp_path / "live/plots/metrics/validation/logloss.tsv").read_text().splitlines()[-1].split("\t")
    assert float(last[1]) == pytest.approx(log_loss(y[hold], fitted.predict(X[hold])), abs=1e-5)


@pytest.mark.parametrize(
    ("omp", "fits", "expected"), [("4", 2, 2), ("1", 2, 1), ("3", 2, 1), ("8", 1, 8), ("6,2", 3, 2)]
)
def test_concurrent_fits_share_the_threads_openmp_is_given(omp, fits, expected, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert threads_per_fit(fits) == expected


def test_without_openmp_settings_concurrent_fits_share_this_process_cpus(monkeypatch):
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_per_fit(2) == max(1, len(os.sched_getaffinity(0)) // 2)


@pytest.mark.parametrize("option", ["xgboost", "random_forest"])
def test_a_thread_cap_leaves_the_model_as_it_is(option, tmp_path):
    table = feature_table()
    X, y = table[FEATURES].to_numpy(), table["tx_fraud"].to_numpy()
    config = small_config(option)
    for name, threads in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        fit_model(X, y, config, FEATURES, threads=threads).predictor.save(tmp_path / name)
    (one,) = (tmp_path / "one").iterdir()
    assert one.read_bytes() == (tmp_path / "two" / one.name).read_bytes()


def _columns(rows: int, order: str) -> np.ndarray:
    rng = np.random.default_rng(rows)
    X = np.column_stack(
        [
            rng.normal(size=rows),
            rng.gamma(2.0, 30.0, rows),  # amounts
            1e9 + rng.normal(size=rows),  # large offset, small spread
            np.full(rows, 3.3),  # constant
            np.zeros(rows),
            rng.integers(0, 2, rows).astype(np.float64),
            np.full(rows, 1e-300) * (1 + 1e-16 * rng.normal(size=rows)),  # constant but for rounding
        ]
    )
    return np.asfortranarray(X) if order == "F" else np.ascontiguousarray(X)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("rows", [1, 2, 97, 20_000])
def test_the_standardizer_is_scikit_learns_to_the_bit(rows, order):
    from sklearn.preprocessing import StandardScaler

    X = _columns(rows, order)
    mean, scale = fit_standardizer(X)
    scaler = StandardScaler().fit(X)
    assert mean.tobytes() == scaler.mean_.tobytes() and scale.tobytes() == scaler.scale_.tobytes()
    assert scale[3] == scale[4] == 1.0
