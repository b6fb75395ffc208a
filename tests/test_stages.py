"""The stage scripts as `dvc repro` runs them: a bad configuration value, an unknown key and a bad
input each end in exactly one line `stage '<name>' failed: …` that names the key or the column,
exit code 1, and no traceback.

One tiny pipeline is built once (every stage, in order, in a scratch directory); each case then
runs one stage on a copy of it with one thing broken. The bad-input cases (one per stage) run the
script as `dvc repro` does, a process of its own: its exit code and stderr are what a user sees.
The rest run it in the test's process (the same ``__main__``, the libraries imported once).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose
from helpers.stages import assert_one_line_failure, run_stage, run_stage_in_process

ROOT = Path(__file__).resolve().parents[1]
STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
TINY = [
    "data.simulator.n_customers=200",
    "data.simulator.n_terminals=1000",
    "data.simulator.n_days=60",
    "data.simulator.start_date=2018-07-01",
    "validation.min_rows=100",
    "validation.max_fraud_rate=0.25",
    "split.n_folds=2",
    "evaluate.gate.enforce=false",
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    (root / "params.yaml").write_text(yaml.safe_dump(compose(ROOT / "conf", TINY), sort_keys=False))
    for stage in STAGES:
        proc = run_stage_in_process(root, stage)
        assert proc.returncode == 0, f"{stage}: {proc.stderr}"
    return root


def copy_of(pipeline: Path, dest: Path) -> Path:
    shutil.copytree(pipeline, dest, dirs_exist_ok=True)
    return dest


def set_key(params: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    node = params
    for key in path:
        node = node[key]
    node[last] = value


CONFIG_CASES = [
    # stage, key, value, what the message must say
    ("check_config", "model.max_depth", 0, ["model.max_depth: must be >= 1, got 0"]),
    ("check_config", "modle", {}, ["modle: unknown group", "did you mean 'model'"]),
    ("check_config", "engine.name", "spark", ["engine.name: must be one of 'pandas' or 'dask', got 'spark'"]),
    ("check_data", "split.train_days", 400, ["split.train_days"]),
    ("check_data", "evaluate.card_precision_k", 100000, ["evaluate.card_precision_k: 100000 is more than"]),
    ("ingest", "validation.min_rows", -1, ["validation.min_rows", "got -1"]),
    ("ingest", "validation.min_rowz", 5, ["validation.min_rowz: unknown key", "min_rows"]),
    ("ingest", "data.simulator.n_days", 0, ["data.simulator.n_days", "got 0"]),
    ("ingest", "data.simulator.seeds", 1, ["data.simulator.seeds: unknown key"]),
    ("preprocess", "preprocess.outlier_iqr_factor", 0, ["preprocess.outlier_iqr_factor", "got 0"]),
    ("preprocess", "preprocess.outlier_factor", 3.0, ["preprocess.outlier_factor: unknown key"]),
    ("featurize", "features.delay_days", -1, ["features.delay_days", "got -1"]),
    ("featurize", "features.extra", [], ["features.extra: unknown key", "extras"]),
    ("featurize", "engine.partitions", 0, ["engine.partitions: must be >= 1, got 0"]),
    ("split", "split.train_days", 0, ["split.train_days", "got 0"]),
    ("split", "split.train_dayz", 7, ["split.train_dayz: unknown key", "train_days"]),
    ("train", "model.max_depth", 0, ["model.max_depth: must be >= 1, got 0"]),
    ("train", "model.max_dept", 3, ["model.max_dept: unknown key", "max_depth"]),
    ("train", "model.max_bin", 1, ["model.max_bin: must be >= 2, got 1"]),
    ("backtest", "split.n_folds", 0, ["split.n_folds", "got 0"]),
    ("backtest", "model.learning_rate", 0, ["model.learning_rate", "got 0"]),
    ("evaluate", "evaluate.card_precision_k", 0, ["evaluate.card_precision_k", "got 0"]),
    ("evaluate", "evaluate.latency_rowz", 10, ["evaluate.latency_rowz: unknown key", "latency_rows"]),
    ("evaluate", "evaluate.gate.minimums.not_a_metric", 0.5, ["evaluate.gate.minimums", "not_a_metric"]),
    ("parity", "evaluate.latency_rows", -1, ["evaluate.latency_rows: must be >= 0, got -1"]),
    ("parity", "features.delay_dayz", 7, ["features.delay_dayz: unknown key", "delay_days"]),
    ("infer", "evaluate.gate.enforce", "yes", ["evaluate.gate.enforce: must be true or false, got 'yes'"]),
    ("infer", "features.customer_windowz", [1], ["features.customer_windowz: unknown key", "customer_windows"]),
    ("monitor", "monitor.features.drift_share", 0, ["monitor.features.drift_share: must be > 0, got 0"]),
    ("monitor", "monitor.fail_on_alertt", True, ["monitor.fail_on_alertt: unknown key", "fail_on_alert"]),
    (
        "monitor",
        "monitor.current",
        "service_log",
        ["monitor.window_input: must be what monitor.current=service_log reads", "leave it to conf/monitor/"],
    ),
]


@pytest.mark.parametrize(("stage", "key", "value", "said"), CONFIG_CASES, ids=[f"{c[0]}-{c[1]}" for c in CONFIG_CASES])
def test_a_bad_config_value_or_unknown_key_is_one_line_naming_the_key(pipeline, tmp_path, stage, key, value, said):
    assert stage in STAGES
    work = copy_of(pipeline, tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert_one_line_failure(run_stage_in_process(work, stage), stage, *said)


def _drop(path: str, column: str) -> Callable[[Path], None]:
    def change(work: Path) -> None:
        table = pd.read_parquet(work / path)
        table.drop(columns=[column]).to_parquet(work / path)

    return change


def _csv_without(column: str) -> Callable[[Path], None]:
    def change(work: Path) -> None:
        raw = pd.read_parquet(work / "data/raw/transactions.parquet").drop(columns=[column])
        (work / "data/external").mkdir(parents=True, exist_ok=True)
        raw.to_csv(work / "data/external/transactions.csv", index=False)
        params = yaml.safe_load((work / "params.yaml").read_text())
        params["data"] = compose(ROOT / "conf", ["data=csv"])["data"]
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    return change


INPUT_CASES = [
    ("check_config", lambda work: (work / "params.yaml").unlink(), "params.yaml"),
    ("check_data", _drop("data/interim/transactions.parquet", "tx_fraud"), "tx_fraud"),
    ("ingest", _csv_without("tx_amount"), "tx_amount"),
    ("preprocess", _drop("data/raw/transactions.parquet", "tx_amount"), "tx_amount"),
    ("featurize", _drop("data/interim/transactions.parquet", "customer_id"), "customer_id"),
    ("split", _drop("data/features/features.parquet", "tx_datetime"), "tx_datetime"),
    ("train", _drop("data/split/train.parquet", "tx_fraud"), "tx_fraud"),
    ("backtest", _drop("data/features/features.parquet", "tx_fraud"), "tx_fraud"),
    ("evaluate", _drop("data/split/test.parquet", "tx_amount"), "tx_amount"),
    ("parity", _drop("data/interim/transactions.parquet", "terminal_id"), "terminal_id"),
    ("infer", _drop("data/split/live.parquet", "transaction_id"), "transaction_id"),
    ("monitor", _drop("data/predictions/live.parquet", "score"), "score"),
]


@pytest.mark.parametrize(("stage", "change", "column"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_a_bad_input_is_one_line_naming_the_column(pipeline, tmp_path, stage, change, column):
    work = copy_of(pipeline, tmp_path)
    change(work)
    assert_one_line_failure(run_stage(work, stage), stage, column)


def test_check_config_lists_every_group_s_mistakes_in_one_run(pipeline, tmp_path):
    work = copy_of(pipeline, tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for key, value in (
        ("data.simulator.n_days", 0),
        ("split.train_dayz", 7),
        ("model.max_depth", 0),
        ("evaluate.card_precision_k", 0),
    ):
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    line = assert_one_line_failure(
        run_stage_in_process(work, "check_config"),
        "check_config",
        "data.simulator.n_days",
        "split.train_dayz",
        "model.max_depth",
        "evaluate.card_precision_k",
    )
    assert line.count(" | ") == 3, line  # one entry per group


def test_check_data_lists_every_setting_problem_in_one_run(pipeline, tmp_path):
    work = copy_of(pipeline, tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for key, value in (
        ("split.n_folds", 30),
        ("evaluate.card_precision_k", 100000),
        ("validation.max_fraud_rate", 0.0006),
    ):
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert_one_line_failure(
        run_stage_in_process(work, "check_data"),
        "check_data",
        "split.n_folds",
        "evaluate.card_precision_k",
        "validation.max_fraud_rate",
    )


def test_every_stage_has_a_config_case_and_an_input_case():
    assert {c[0] for c in CONFIG_CASES} == set(STAGES)
    assert {c[0] for c in INPUT_CASES} == set(STAGES)


def test_monitor_fails_on_an_alert_only_when_asked_and_reruns_byte_identical(pipeline, tmp_path):
    work = copy_of(pipeline, tmp_path)
    outputs = (
        "reports/monitoring/drift.json",
        "reports/monitoring/features.json",
        "reports/monitoring/report.html",
        "reports/monitoring/history.json",  # kept between runs (persist): the rerun replaces its own point
    )
    before = {path: (work / path).read_bytes() for path in outputs}
    assert run_stage_in_process(work, "monitor").returncode == 0
    assert {path: (work / path).read_bytes() for path in outputs} == before
    assert len(json.loads(before["reports/monitoring/history.json"])) == 1

    params = yaml.safe_load((work / "params.yaml").read_text())
    set_key(params, "monitor.features.wasserstein", 1e-9)  # every numeric feature drifts: an alert
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    recorded = run_stage_in_process(work, "monitor")
    assert recorded.returncode == 0, recorded.stderr
    assert '"alert": 1' in (work / "reports/monitoring/drift.json").read_text()

    set_key(params, "monitor.fail_on_alert", True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    line = assert_one_line_failure(
        run_stage_in_process(work, "monitor"), "monitor", "ALERT: dataset drift", "monitor.fail_on_alert"
    )
    assert "report.html" in line
    assert '"alert": 1' in (work / "reports/monitoring/drift.json").read_text()  # the reports were written first


def test_monitor_watches_what_the_service_scored_as_it_watches_the_batch(pipeline, tmp_path, redis_server):
    """The service replays the live period (labels arriving after it): monitor.current=service_log then
    gives the figures monitor.current=predictions gives: the service computed the training features and scores.
    The same requests sent to a service whose state is in Redis give the same figures from its Redis log
    (monitor.log: its URL, the stage's dependency a local file)."""
    from fraudpipe.features.definitions import FeatureConfig
    from fraudpipe.features.online import OnlineState
    from fraudpipe.serve.config import ServeConfig
    from fraudpipe.serve.schema import LabelIn, TransactionIn
    from fraudpipe.serve.service import Service

    work = copy_of(pipeline, tmp_path / "work")
    params = yaml.safe_load((work / "params.yaml").read_text())
    live = pd.read_parquet(work / "data/split/live.parquet")
    interim = pd.read_parquet(work / "data/interim/transactions.parquet")
    raw = {name: pd.read_parquet(work / "data/raw" / f"{name}.parquet") for name in ("customers", "terminals")}
    start = live["tx_datetime"].min()
    OnlineState.from_history(
        interim[interim["tx_datetime"] < start],
        FeatureConfig.parse(params["features"], "features"),
        raw["customers"],
        raw["terminals"],
    ).save(tmp_path / "state")
    options = {
        "model": work / "models/bundle",
        "state": tmp_path / "state",
        "journal_dir": work / "serving",
        "host": "127.0.0.1",
        "port": 8000,
        "max_batch": 100,
        "max_body_bytes": 1 << 20,
        "max_amount": 1e6,
        "late_days": 0,
        "max_future_seconds": 300,
        "api_key_env": "FRAUDPIPE_TEST_UNSET_KEY",
    }
    redis = {"store": redis_server.unix_url, "redis_prefix": "live", "journal_dir": tmp_path / "unused"}
    services = [Service.open(ServeConfig.parse(o, "serve")) for o in (options, options | redis)]
    labels = [LabelIn(transaction_id=int(t), tx_fraud=int(f)) for t, f in zip(live["transaction_id"], live["tx_fraud"])]
    due = live["tx_datetime"].to_numpy() + np.timedelta64(params["features"]["delay_days"], "D")
    sent = 0
    for row in live.itertuples(index=False):  # each label arrives once older than the delay, as training assumes
        while sent < len(labels) and due[sent] <= np.datetime64(row.tx_datetime):
            for service in services:
                service.label(labels[sent])
            sent += 1
        body = TransactionIn.model_validate(
            {
                "transaction_id": int(row.transaction_id),
                "customer_id": int(row.customer_id),
                "terminal_id": int(row.terminal_id),
                "tx_datetime": row.tx_datetime.to_pydatetime(),
                "tx_amount": float(row.tx_amount),
            }
        )
        for service in services:
            service.score(body)
    for label in labels[sent:]:
        for service in services:
            service.label(label)
    for service in services:
        service.close()

    batch = yaml.safe_load((work / "reports/monitoring/drift.json").read_text())
    set_key(params, "monitor.current", "service_log")
    set_key(params, "monitor.window_input", params["monitor"]["log"])  # as conf/monitor/ derives it
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_stage_in_process(work, "monitor")
    assert proc.returncode == 0, proc.stderr
    assert f"against {len(live):,} transactions the service scored with xgboost-" in proc.stdout
    served = yaml.safe_load((work / "reports/monitoring/drift.json").read_text())
    assert served.keys() == batch.keys() and served["n_current"] == batch["n_current"] == len(live) > 1000
    assert served == batch

    shutil.rmtree(work / "serving")  # the Redis log alone: nothing read from the journal
    set_key(params, "monitor.log", redis_server.unix_url)
    set_key(params, "monitor.redis_prefix", "live")
    set_key(params, "monitor.window_input", "data/interim/transactions.parquet")  # docs/serving.md's way
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_stage_in_process(work, "monitor")
    assert proc.returncode == 0, proc.stderr
    assert f"against {len(live):,} transactions the service scored with xgboost-" in proc.stdout
    assert yaml.safe_load((work / "reports/monitoring/drift.json").read_text()) == batch
