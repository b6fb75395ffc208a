"""Model configs, fitting, threshold choice, the bundle round trip, determinism, prequential folds,
and the train/evaluate stage scripts run for real in a temporary directory."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose
from fraudpipe.io import write_parquet
from fraudpipe.model import (
    Bundle,
    BundleError,
    ModelConfig,
    estimator_params,
    evaluate_prequential,
    fit_model,
    load_bundle,
    max_f1_threshold,
    save_bundle,
    table_sha256,
    top_k_per_day_threshold,
    train_bundle,
)
from fraudpipe.features import FeatureConfig, build_features
from fraudpipe.simulate import SimulatorConfig, simulate
from fraudpipe.split import SplitConfig, time_split

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = sorted(p.stem for p in (ROOT / "conf/model").glob("*.yaml"))


def feature_table(n_days: int = 10, per_day: int = 300, seed: int = 0, start: str = "2018-07-01") -> pd.DataFrame:
    """A feature table of the contract's shape: key columns, then features with real signal."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    seconds = np.sort(rng.uniform(0, n_days * 86_400, n))
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    risk = rng.uniform(size=n)
    noise = rng.normal(size=n)
    logit = -7.0 + 0.03 * amount + 5.0 * risk
    fraud = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype="int64"),
            "tx_datetime": (pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us]"),
            "customer_id": rng.integers(0, 200, n).astype("int64"),
            "terminal_id": rng.integers(0, 100, n).astype("int64"),
            "tx_fraud": fraud,
            "tx_amount": amount,
            "terminal_risk": risk,
            "noise": noise,
        }
    )


def option(name: str, **changes) -> ModelConfig:
    """A conf/model option as `dvc exp run` composes it, with overrides."""
    return dataclasses.replace(ModelConfig.from_dict(compose(ROOT / "conf", [f"model={name}"])["model"]), **changes)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return feature_table()


@pytest.fixture(scope="module")
def configs() -> dict[str, ModelConfig]:
    # Small versions of each option, so the whole file stays fast.
    return {
        name: option(name, **({"n_estimators": 20} if option(name).n_estimators else {}))
        for name in OPTIONS
    }


# -- configuration -----------------------------------------------------------------------------


def test_every_model_option_has_the_same_keys():
    raw = {name: yaml.safe_load((ROOT / f"conf/model/{name}.yaml").read_text()) for name in OPTIONS}
    assert set(OPTIONS) >= {"xgboost", "xgboost_handbook", "logistic_regression", "random_forest", "decision_tree"}
    keys = [f.name for f in dataclasses.fields(ModelConfig)]
    for name, conf in raw.items():
        assert list(conf) == keys, name  # same keys, same order: sweeps over the group work
        assert conf["name"] == name
    handbook = option("xgboost_handbook")
    assert (handbook.tree_method, handbook.base_score, handbook.random_state) == ("exact", 0.5, 0)
    assert (handbook.n_estimators, handbook.learning_rate, handbook.max_depth) == (100, 0.3, 6)


def test_a_sweep_key_exists_in_every_option():
    for name in OPTIONS:
        assert ModelConfig.from_dict(compose(ROOT / "conf", [f"model={name}", "model.max_depth=3"])["model"]).max_depth == 3


def test_config_refuses_missing_unknown_and_bad_values():
    good = ModelConfig().to_dict()
    with pytest.raises(BundleError, match=r"missing key\(s\) \['max_iter'\]"):
        ModelConfig.from_dict({k: v for k, v in good.items() if k != "max_iter"})
    with pytest.raises(BundleError, match=r"unknown key\(s\) \['depth'\]"):
        ModelConfig.from_dict(good | {"depth": 3})
    with pytest.raises(BundleError, match="estimator 'svm'"):
        ModelConfig.from_dict(good | {"estimator": "svm"})
    with pytest.raises(BundleError, match="threshold_rule 'best'"):
        ModelConfig.from_dict(good | {"threshold_rule": "best"})
    with pytest.raises(BundleError, match="logistic_regression needs C"):
        ModelConfig.from_dict(good | {"estimator": "logistic_regression", "max_iter": 100})


def test_class_weights_from_config(table):
    y = table["tx_fraud"].to_numpy()
    balanced = (len(y) - y.sum()) / y.sum()
    assert estimator_params(ModelConfig(scale_pos_weight="balanced"), y)["scale_pos_weight"] == pytest.approx(balanced)
    lr = dataclasses.replace(option("logistic_regression"), scale_pos_weight=5.0)
    assert estimator_params(lr, y)["class_weight"] == {0: 1.0, 1: 5.0}
    assert estimator_params(option("random_forest"), y)["class_weight"] is None


# -- threshold ---------------------------------------------------------------------------------


def test_max_f1_threshold_by_hand():
    # F1 at >= 0.9, 0.8, 0.7, 0.6, 0.3, 0.1: 0.5, 0.8, 0.667, 0.857, 0.75, 0.667 -> 0.6
    assert max_f1_threshold(np.array([1, 1, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.1])) == 0.6


def test_top_k_per_day_threshold_gives_k_alerts_a_day():
    rng = np.random.default_rng(1)
    scores, days = rng.uniform(size=1000), np.repeat(np.arange(4), 250)
    threshold = top_k_per_day_threshold(scores, days, k=10)
    assert np.sum(scores >= threshold) == 40
    assert top_k_per_day_threshold(scores[:5], days[:5], k=10) == scores[:5].min()  # budget > rows


def test_threshold_is_chosen_on_the_last_training_days_only(table, configs):
    bundle = train_bundle(table, configs["xgboost"])
    sel = bundle.metadata["threshold_selection"]
    last_day = table["tx_datetime"].max().floor("D")
    assert pd.Timestamp(sel["period"]["start"]) >= last_day
    assert sel["n_rows"] == int((table["tx_datetime"] >= last_day).sum())
    in_sample = train_bundle(table, dataclasses.replace(configs["xgboost"], threshold_validation_days=0, threshold_rule="top_k_per_day", threshold_k=30))
    sel = in_sample.metadata["threshold_selection"]
    assert sel["n_rows"] == len(table)
    assert 30 <= sel["alerts_per_day"] < 32  # at least the budget; more only where scores tie


# -- fitting and the bundle --------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIONS)
def test_bundle_round_trip_without_pickle(name, table, configs, tmp_path):
    bundle = train_bundle(table, configs[name])
    save_bundle(bundle, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    expected = {"xgboost": "model.ubj", "logistic_regression": "linear.json"}.get(configs[name].estimator, "trees.npy")
    assert files == sorted(["bundle.json", expected])
    assert not any(b"pickle" in p.read_bytes()[:64] or p.read_bytes()[:2] == b"\x80\x04" for p in tmp_path.iterdir())

    loaded = load_bundle(tmp_path)
    X = table[list(bundle.features)].to_numpy()
    np.testing.assert_array_equal(loaded.predict_proba(X), bundle.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_proba(X.astype(np.float32)[:1]), bundle.predict_proba(X.astype(np.float32)[:1]))
    assert loaded.threshold == bundle.threshold and 0 < bundle.threshold < 1

    meta = json.loads((tmp_path / "bundle.json").read_text())
    assert meta["features"] == ["tx_amount", "terminal_risk", "noise"]
    assert meta["name"] == name and meta["params"] == configs[name].to_dict()
    assert meta["training"]["start"] == table["tx_datetime"].min().isoformat()
    assert meta["training"]["end"] == table["tx_datetime"].max().isoformat()
    assert meta["training"]["data_sha256"] == table_sha256(table)
    assert {"numpy", "pandas", "scikit-learn", "xgboost"} <= set(meta["library_versions"])
    assert meta["standardizer"] is not None and len(meta["standardizer"]["mean"]) == 3
    importance = meta["feature_importance"]
    assert max(importance, key=importance.get) != "noise"  # the model learnt the real signal
    assert 0.7 < _auc(table, loaded) <= 1.0


def _auc(table, bundle):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(table["tx_fraud"], bundle.score(table))


def test_saved_scorers_reproduce_scikit_learn_and_xgboost(table, configs):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    features = ["tx_amount", "terminal_risk", "noise"]
    X, y = table[features].to_numpy(), table["tx_fraud"].to_numpy()
    for name, cls in (("random_forest", RandomForestClassifier), ("decision_tree", DecisionTreeClassifier), ("logistic_regression", LogisticRegression)):
        config = dataclasses.replace(configs[name], max_depth=8 if name == "decision_tree" else configs[name].max_depth)
        fitted = fit_model(X, y, config, features)
        Xs = (X - fitted.mean) / fitted.scale
        reference = cls(**estimator_params(config, y)).fit(Xs, y).predict_proba(Xs)[:, 1]
        np.testing.assert_allclose(fitted.predict(X), reference, rtol=0, atol=1e-12, err_msg=name)

    import xgboost as xgb

    fitted = fit_model(X, y, configs["xgboost"], features)
    dm = xgb.DMatrix((X - fitted.mean) / fitted.scale, feature_names=features)
    np.testing.assert_allclose(fitted.predict(X), fitted.scorer.booster.predict(dm), rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["xgboost", "random_forest"])
def test_training_is_byte_identical(name, table, configs, tmp_path):
    for run in ("a", "b"):
        save_bundle(train_bundle(table, configs[name]), tmp_path / run)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    other_seed = train_bundle(table, dataclasses.replace(configs[name], random_state=1, subsample=0.8 if name == "xgboost" else None))
    save_bundle(other_seed, tmp_path / "c")
    assert (tmp_path / "c" / "bundle.json").read_bytes() != (tmp_path / "a" / "bundle.json").read_bytes()


def test_bundle_refuses_other_features(table, configs):
    bundle = train_bundle(table, configs["logistic_regression"])
    bundle.check_features(["tx_amount", "terminal_risk", "noise"])
    with pytest.raises(BundleError, match=r"missing \['noise'\], unexpected \['amount_ratio'\]"):
        bundle.check_features(["tx_amount", "terminal_risk", "amount_ratio"])
    with pytest.raises(BundleError, match="different order"):
        bundle.check_features(["noise", "tx_amount", "terminal_risk"])
    with pytest.raises(BundleError, match="missing"):
        bundle.score(table.drop(columns=["noise"]))
    with pytest.raises(BundleError, match=r"got shape \(3,\)"):
        bundle.predict_proba(np.zeros(3))


def test_load_bundle_errors(tmp_path, table, configs):
    with pytest.raises(BundleError, match="no model bundle"):
        load_bundle(tmp_path)
    save_bundle(train_bundle(table, configs["decision_tree"]), tmp_path)
    (tmp_path / "trees.npy").unlink()
    with pytest.raises(BundleError, match="trees.npy is missing"):
        load_bundle(tmp_path)


def test_training_refuses_bad_data(table, configs):
    config = configs["logistic_regression"]
    bad = table.copy()
    bad.loc[[3, 7], "noise"] = np.nan
    with pytest.raises(BundleError, match=r"\['noise'\]: 2 training rows are NaN"):
        train_bundle(bad, config)
    genuine = table.assign(tx_fraud=np.int8(0))
    with pytest.raises(BundleError, match="only class"):
        train_bundle(genuine, config)
    late = table["tx_datetime"] >= table["tx_datetime"].max().floor("D")
    no_late_fraud = table.assign(tx_fraud=table["tx_fraud"].where(~late, 0).astype("int8"))
    with pytest.raises(BundleError, match="validation slice .* has no fraud"):
        train_bundle(no_late_fraud, config)


def test_table_hash_follows_content_only(table):
    assert table_sha256(table) == table_sha256(table.copy())
    changed = table.copy()
    changed.loc[5, "tx_amount"] += 0.01
    assert table_sha256(changed) != table_sha256(table)


# -- dvclive -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "curve"), [("xgboost", "aucpr"), ("logistic_regression", "average_precision")])
def test_dvclive_logs_curves_without_timestamps(name, curve, table, configs, tmp_path, monkeypatch):
    from dvclive import Live

    monkeypatch.chdir(tmp_path)
    outputs = []
    for _ in range(2):
        with Live(dir="live", dvcyaml=False, save_dvc_exp=False) as live:
            train_bundle(table, configs[name], live=live)
            live.log_metric("threshold", 0.5, plot=False)
        outputs.append({p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in (tmp_path / "live").rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]  # reruns write the same bytes
    for part in ("train", "validation"):
        assert f"live/plots/metrics/{part}/{curve}.tsv" in outputs[0] and f"live/plots/metrics/{part}/logloss.tsv" in outputs[0]
    assert not (tmp_path / "dvc.yaml").exists()
    assert all(b"timestamp" not in content for content in outputs[0].values())
    summary = json.loads(outputs[0]["live/metrics.json"])
    assert summary["threshold"] == 0.5 and "logloss" in summary["validation"]
    rows = outputs[0][f"live/plots/metrics/validation/{curve}.tsv"].decode().splitlines()
    assert rows[0] == f"step\t{curve}" and len(rows) - 1 == (configs[name].n_estimators if name == "xgboost" else 1)


# -- prequential -------------------------------------------------------------------------------


def test_evaluate_prequential_reports_mean_and_std_over_folds(configs):
    table = feature_table(n_days=20, per_day=250, seed=3)
    split = SplitConfig.from_dict({"train_start": "2018-07-12", "train_days": 3, "delay_days": 1, "test_days": 2, "live_days": None,
                                   "remove_known_compromised": True, "n_folds": 3})  # fmt: skip
    summary, folds = evaluate_prequential(table, split, configs["logistic_regression"], k=5)
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert len({f["n_test"] for f in folds}) > 1  # different test periods
    assert summary["n_folds"] == 3
    aps = np.array([f["average_precision"] for f in folds])
    assert summary["average_precision_fold_mean"] == pytest.approx(aps.mean())
    assert summary["average_precision_fold_std"] == pytest.approx(aps.std(ddof=1))
    assert "card_precision_at_5_fold_mean" in summary


# -- the stages --------------------------------------------------------------------------------


def _stage(cwd: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=cwd, capture_output=True, text=True, timeout=300)


def _workdir(work: Path, **params) -> Path:
    """A stage working directory: params.yaml (composed conf/ + overrides) and the upstream outputs
    of a small simulated month (interim transactions, locations, features, split)."""
    composed = compose(ROOT / "conf", ["model.n_estimators=20"])
    composed["split"] |= {"train_start": "2018-07-12", "train_days": 3, "delay_days": 1, "test_days": 2}
    composed["data"]["simulator"] |= {"n_customers": 100, "n_terminals": 500, "n_days": 20, "start_date": "2018-07-01", "radius": 10.0}
    for dotted, value in params.items():
        group, key = dotted.split("__")
        composed[group][key] = value
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(composed))
    sim = simulate(SimulatorConfig.from_dict(composed["data"]["simulator"]))
    tx = sim.transactions.drop(columns="tx_fraud_scenario")
    table = build_features(tx, FeatureConfig.from_dict(composed["features"]), sim.customers, sim.terminals)
    parts = time_split(table, SplitConfig.from_dict(composed["split"]))
    write_parquet(tx, work / "data/interim/transactions.parquet")
    write_parquet(sim.customers, work / "data/raw/customers.parquet")
    write_parquet(sim.terminals, work / "data/raw/terminals.parquet")
    write_parquet(parts.train, work / "data/split/train.parquet")
    write_parquet(parts.test, work / "data/split/test.parquet")
    write_parquet(table, work / "data/features/features.parquet")
    return work


def test_train_and_evaluate_stages_are_reproducible(tmp_path):
    work = _workdir(tmp_path / "w", split__n_folds=2, evaluate__latency_rows=200)
    runs = []
    for _ in range(2):
        for name in ("train", "evaluate"):
            proc = _stage(work, name)
            assert proc.returncode == 0, proc.stderr
        runs.append({p: (work / p).read_bytes() for p in ("models/bundle/model.ubj", "models/bundle/bundle.json", "reports/metrics.json", "reports/plots/roc.json", "reports/plots/calibration.png", "reports/train/metrics.json")})
    assert runs[0] == runs[1]

    metrics = json.loads((work / "reports/metrics.json").read_text())
    for key in ("roc_auc", "average_precision", "card_precision_at_100", "precision", "recall", "f1", "accuracy", "threshold", "n_test", "n_frauds", "gate_passed", "n_folds", "average_precision_fold_mean", "average_precision_fold_std"):
        assert isinstance(metrics[key], (int, float)), key
    assert metrics["n_folds"] == 2 and metrics["gate_passed"] == 1
    assert metrics["online_offline_max_abs_diff"] <= 1e-9  # the serving path computes the training features
    latency = json.loads((work / "reports/latency.json").read_text())
    assert latency["score_latency_rows"] == 200 and latency["batch_throughput_tx_per_s"] > 0
    roc = json.loads((work / "reports/plots/roc.json").read_text())
    assert roc[0]["fpr"] == 0 and all(np.isfinite(r["threshold"]) for r in roc)
    confusion = json.loads((work / "reports/plots/confusion.json").read_text())
    assert len(confusion) == metrics["n_test"] and sum(r["actual"] for r in confusion) == metrics["n_frauds"]
    for png in ("feature_importance", "calibration", "score_distribution"):
        assert (work / f"reports/plots/{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_gate_stops_evaluate_after_writing_reports(tmp_path):
    work = _workdir(tmp_path, split__n_folds=1, evaluate__gate={"enforce": True, "minimums": {"average_precision": 0.99}}, evaluate__latency_rows=50)
    assert _stage(work, "train").returncode == 0
    proc = _stage(work, "evaluate")
    assert proc.returncode == 1
    ap = json.loads((work / "reports/metrics.json").read_text())["average_precision"]
    assert f"average_precision = {ap:.4f} is below the minimum 0.99" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((work / "reports/metrics.json").read_text())["gate_passed"] == 0

    params = yaml.safe_load((work / "params.yaml").read_text())
    params["evaluate"]["gate"]["enforce"] = False
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    assert _stage(work, "evaluate").returncode == 0  # not enforced: reported, not fatal


def test_bundle_is_a_plain_dataclass_of_metadata_and_scorer(table, configs):
    bundle = train_bundle(table, configs["decision_tree"])
    assert isinstance(bundle, Bundle) and bundle.name == "decision_tree"
    assert bundle.features == ("tx_amount", "terminal_risk", "noise")
