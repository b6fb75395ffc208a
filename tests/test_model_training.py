"""train_bundle: the threshold from training days only, what the metadata records, bad training
data refused, and dvclive curves for every estimator without time stamps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from fraudpipe.errors import ConfigError, DataError
from fraudpipe.model import Bundle, train_bundle, training_summary
from fraudpipe.model.estimators.xgboost import curve_rounds
from fraudpipe.model.fit import fit_model
from fraudpipe.model.training import table_sha256
from helpers.model import OPTIONS, feature_table, small_config


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return feature_table()


def test_threshold_is_chosen_on_the_last_training_days_only(table):
    bundle = train_bundle(table, small_config("xgboost"))
    sel = bundle.metadata["threshold_selection"]
    last_day = table["tx_datetime"].max().floor("D")
    assert pd.Timestamp(sel["period"]["start"]) >= last_day
    assert sel["n_rows"] == int((table["tx_datetime"] >= last_day).sum())
    in_sample = train_bundle(
        table, small_config("xgboost", threshold_validation_days=0, threshold_rule="top_k_per_day", threshold_k=30)
    )
    sel = in_sample.metadata["threshold_selection"]
    assert sel["n_rows"] == len(table)
    assert 30 <= sel["alerts_per_day"] < 32  # at least the budget; more only where scores tie


def test_the_threshold_is_the_best_f1_cut_of_a_model_that_never_saw_the_last_day(table):
    """The threshold itself, not what the metadata says of it: refit the provisional model on the
    training days but the last (the same deterministic fit), score the last day, and no cut of
    those scores gives a higher F1 than the bundle's threshold."""
    config = small_config("xgboost")
    assert (config.threshold_rule, config.threshold_validation_days) == ("max_f1", 1)
    bundle = train_bundle(table, config)
    features = list(bundle.features)
    last_day = (table["tx_datetime"] >= table["tx_datetime"].max().floor("D")).to_numpy()
    X, y = table[features].to_numpy(np.float64), table["tx_fraud"].to_numpy(np.int8)
    provisional = fit_model(X[~last_day], y[~last_day], config, features, eval_set=(X[last_day], y[last_day]))
    scores = provisional.predict(X[last_day])

    def f1_at(cut: float) -> float:
        return f1_score(y[last_day], scores >= cut, zero_division=0.0)

    assert bundle.threshold in set(scores.tolist())  # a cut at one of the held-out day's scores
    assert f1_at(bundle.threshold) == pytest.approx(max(f1_at(cut) for cut in np.unique(scores)))
    in_sample = bundle.score(table)
    assert f1_score(y, in_sample >= bundle.threshold) < max(f1_score(y, in_sample >= c) for c in np.unique(in_sample))


@pytest.mark.parametrize("option", OPTIONS)
def test_the_two_fits_at_once_give_the_models_of_one_fit_at_a_time(option, table, tmp_path):
    """train_bundle fits the provisional and the final model in two threads, each capped to its
    share of the CPUs: the bundle's model, file for file, is the one fit alone with no cap gives."""
    config = small_config(option)
    bundle = train_bundle(table, config)
    features = list(bundle.features)
    alone = fit_model(table[features].to_numpy(np.float64), table["tx_fraud"].to_numpy(np.int8), config, features)
    for name, predictor in (("concurrent", bundle.predictor), ("alone", alone.predictor)):
        (tmp_path / name).mkdir()
        predictor.save(tmp_path / name)
    model_file = bundle.metadata["model"]["file"]
    assert (tmp_path / "concurrent" / model_file).read_bytes() == (tmp_path / "alone" / model_file).read_bytes()
    assert bundle.metadata["estimator_params"] == alone.params  # the thread cap is not recorded


def test_metadata_records_the_training_period_data_and_versions(table):
    bundle = train_bundle(table, small_config("random_forest"))
    meta = bundle.metadata
    assert isinstance(bundle, Bundle) and bundle.name == "random_forest"
    assert bundle.features == ("tx_amount", "terminal_risk", "noise")
    assert meta["training"]["start"] == table["tx_datetime"].min().isoformat()
    assert meta["training"]["end"] == table["tx_datetime"].max().isoformat()
    assert meta["training"]["data_sha256"] == table_sha256(table)
    assert {"numpy", "pandas", "scikit-learn", "xgboost"} <= set(meta["library_versions"])
    assert meta["estimator_params"]["n_estimators"] == 20
    importance = meta["feature_importance"]
    assert max(importance, key=importance.get) != "noise"  # the model learnt the real signal
    from sklearn.metrics import roc_auc_score

    assert 0.7 < roc_auc_score(table["tx_fraud"], bundle.score(table)) <= 1.0
    summary = training_summary(bundle)
    assert summary["n_train"] == len(table) and summary["threshold"] == bundle.threshold


def test_training_refuses_bad_data(table):
    config = small_config("logistic_regression")
    bad = table.copy()
    bad.loc[[3, 7], "noise"] = np.nan
    with pytest.raises(DataError, match=r"\[.noise.\]: 2 training rows are NaN"):
        train_bundle(bad, config)
    with pytest.raises(DataError, match="only class"):
        train_bundle(table.assign(tx_fraud=np.int8(0)), config)
    late = table["tx_datetime"] >= table["tx_datetime"].max().floor("D")
    no_late_fraud = table.assign(tx_fraud=table["tx_fraud"].where(~late, 0).astype("int8"))
    with pytest.raises(
        ConfigError, match=r"model\.threshold_validation_days: the threshold validation slice .* has no fraud"
    ):
        train_bundle(no_late_fraud, config)


def test_table_hash_follows_content_only(table):
    assert table_sha256(table) == table_sha256(table.copy())
    changed = table.copy()
    changed.loc[5, "tx_amount"] += 0.01
    assert table_sha256(changed) != table_sha256(table)


@pytest.mark.parametrize(
    ("name", "curve"),
    [("xgboost", "aucpr"), ("logistic_regression", "average_precision"), ("decision_tree", "average_precision")],
)
def test_dvclive_logs_curves_without_timestamps(name, curve, table, tmp_path, monkeypatch):
    from dvclive import Live

    monkeypatch.chdir(tmp_path)
    config = small_config(name)
    outputs = []
    for _ in range(2):
        with Live(dir="live", dvcyaml=False, save_dvc_exp=False) as live:
            train_bundle(table, config, live=live)
            live.log_metric("threshold", 0.5, plot=False)
        outputs.append(
            {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in (tmp_path / "live").rglob("*") if p.is_file()}
        )
    assert outputs[0] == outputs[1]  # reruns write the same bytes
    for part in ("train", "validation"):
        assert (
            f"live/plots/metrics/{part}/{curve}.tsv" in outputs[0]
            and f"live/plots/metrics/{part}/logloss.tsv" in outputs[0]
        )
    assert not (tmp_path / "dvc.yaml").exists()
    assert all(b"timestamp" not in content for content in outputs[0].values())
    summary = json.loads(outputs[0]["live/metrics.json"])
    assert summary["threshold"] == 0.5 and "logloss" in summary["validation"]
    rows = outputs[0][f"live/plots/metrics/validation/{curve}.tsv"].decode().splitlines()
    assert rows[0] == f"step\t{curve}"
    steps = [int(row.split("\t")[0]) for row in rows[1:]]
    assert steps == (curve_rounds(config.n_estimators) if name == "xgboost" else [0])  # boosting: ~20 rounds of all


LEAN_FIT = """
import json, sys
import numpy as np, pandas as pd
from fraudpipe.startup import without_sklearn_wrappers
without_sklearn_wrappers()  # as every stage declares (pipeline.stage.run)
from fraudpipe.model import ModelConfig, train_bundle
from fraudpipe.config import compose
rng = np.random.default_rng(0)
n = 3000
table = pd.DataFrame({
    "transaction_id": np.arange(n),
    "tx_datetime": pd.Timestamp("2018-07-01") + pd.to_timedelta(np.sort(rng.uniform(0, 10 * 86400, n)), unit="s"),
    "customer_id": rng.integers(0, 50, n),
    "terminal_id": rng.integers(0, 50, n),
    "tx_amount": rng.gamma(2.0, 30.0, n),
    "tx_fraud": (rng.random(n) < 0.1).astype("int8"),
})
config = ModelConfig.parse(compose(sys.argv[1])["model"] | {"n_estimators": 5}, "model")
train_bundle(table, config)
print(json.dumps(sorted(m for m in ("sklearn", "scipy.stats") if m in sys.modules)))
"""


def test_training_the_default_model_in_a_stage_imports_neither_scikit_learn_nor_scipy_stats():
    """Standardising and recording the library versions take no scikit-learn: it would add about a
    second (scipy.stats with it) to the train and backtest stages."""
    import subprocess
    import sys
    from pathlib import Path

    conf = Path(__file__).resolve().parents[1] / "conf"
    out = subprocess.run([sys.executable, "-c", LEAN_FIT, str(conf)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
