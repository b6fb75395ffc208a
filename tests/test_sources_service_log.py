"""`data=service_log`: the real service's log (journal or Redis) read as a source, joined with a
history, snapshotted for DVC, and a pipeline run on it from ingest to train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose, parse
from fraudpipe.contract import SERVED_COLUMNS, TX_DATETIME
from fraudpipe.data.sources import DataConfig, ServiceLogConfig, ServiceLogSource, ingest_source, refresh_snapshot
from fraudpipe.data.sources.service_log import ServiceLogTable
from fraudpipe.errors import ConfigError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState
from fraudpipe.io import read_parquet, write_parquet
from fraudpipe.model import load_bundle
from fraudpipe.serve.schema import LabelIn
from fraudpipe.serve.service import Service
from helpers.repo import clone_repo, sh
from helpers.serve import config, tx, world
from helpers.stages import run_stage_in_process

ROOT = Path(__file__).resolve().parents[1]


def log_config(log: str | Path, tmp_path: Path, **changes) -> ServiceLogConfig:
    data = {
        "source": "service_log",
        "log": str(log),
        "redis_prefix": "fraudpipe",
        "snapshot": str(tmp_path / "snapshot.parquet"),
        "columns": {},
        "history": None,
    }
    return parse(DataConfig, data | changes, "data")


def send(service: Service, rows: pd.DataFrame) -> dict:
    """The rows scored in order; labels as the brief's cases: on time (a label for the transaction
    five back, every tenth request), a correction (1 then 0), one late (at the end, for the first
    transaction), one for the history the service started from; the rest never labelled. Returns
    what was sent: the answers, the labels by id and the newest transaction time when each came."""
    w = world()
    answers, labels, clock = {}, {}, pd.Timestamp.min
    for i, row in enumerate(rows.itertuples()):
        answers[row.transaction_id] = service.score(tx(row))[0]
        clock = max(clock, row.tx_datetime)
        if i % 10 == 9:
            tid = int(rows["transaction_id"].iat[i - 5])
            service.label(LabelIn(transaction_id=tid, tx_fraud=1))
            labels[tid] = (1, clock)
    corrected = int(rows["transaction_id"].iat[4])  # labelled at i = 9 as fraud
    service.label(LabelIn(transaction_id=corrected, tx_fraud=0))
    labels[corrected] = (0, clock)
    late = int(rows["transaction_id"].iat[0])
    service.label(LabelIn(transaction_id=late, tx_fraud=1))
    labels[late] = (1, clock)
    old = int(w.tx[w.tx[TX_DATETIME] < w.cut]["transaction_id"].iat[-1])
    service.label(LabelIn(transaction_id=old, tx_fraud=1))
    labels[old] = (1, clock)
    return {"answers": answers, "labels": labels, "history_label": old}


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("slog")
    service = Service.open(config(root))
    try:
        sent = send(service, world().test.head(120))
    finally:
        service.close()
    return root / "journal", sent


def test_the_log_is_its_transactions_with_labels_arrival_times_and_answers(journal, tmp_path):
    directory, sent = journal
    table = ServiceLogTable(str(directory)).read()
    scored = table[table[TX_DATETIME].notna()].set_index("transaction_id")
    alone = table[table[TX_DATETIME].isna()]
    assert len(scored) == 120 and alone["transaction_id"].tolist() == [sent["history_label"]]
    labelled = {t: v for t, v in sent["labels"].items() if t in scored.index}
    assert len(labelled) == 13 and scored["tx_fraud"].notna().sum() == 13
    for tid, (fraud, clock) in labelled.items():
        assert scored.at[tid, "tx_fraud"] == fraud  # the correction: the last label wins
        assert scored.at[tid, "label_known_at"] == clock  # the newest transaction time the service had seen
        assert scored.at[tid, "label_received_at"] > pd.Timestamp("2020-01-01")  # the wall clock
    unlabelled = scored[~scored.index.isin(list(labelled))]
    assert str(table["tx_fraud"].dtype) == "Int8" and unlabelled["tx_fraud"].isna().all()  # missing, not 0
    assert unlabelled["label_received_at"].isna().all() and unlabelled["label_known_at"].isna().all()
    bundle = load_bundle(world().bundle_dir)
    for tid, answer in sent["answers"].items():
        assert scored.at[tid, "served_score"] == answer.score and scored.at[tid, "served_alert"] == answer.alert
    assert (scored["served_threshold"] == bundle.threshold).all() and (scored["served_model"] == bundle.version).all()


def test_joined_with_a_history_the_log_wins_for_its_rows_and_counts_add_up(journal, tmp_path):
    directory, sent = journal
    w = world()
    history = w.tx[w.tx[TX_DATETIME] < w.cut]
    overlap = w.test.head(5).assign(tx_amount=-1.0, tx_fraud=1)  # the history's view of five logged transactions
    write_parquet(pd.concat([history, overlap], ignore_index=True), tmp_path / "history.parquet")
    source = ServiceLogSource.from_config(log_config(directory, tmp_path, history=str(tmp_path / "history.parquet")))
    table, counts = source.read(), source.counts
    assert (counts.rows_history, counts.rows_log, counts.duplicates) == (len(history), 120, 5)
    assert counts.rows == len(table) == counts.rows_history + counts.rows_log
    assert (counts.labels_log, counts.labels_on_history, counts.labels_unmatched) == (14, 1, 0)
    assert table["transaction_id"].is_unique and str(table["transaction_id"].dtype) == "int64"
    logged = table.set_index("transaction_id").loc[overlap["transaction_id"]]
    assert (logged["tx_amount"] == w.test.head(5)["tx_amount"].to_numpy()).all()  # the log's row, not the history's
    assert logged["served_model"].notna().all()
    first = int(w.test["transaction_id"].iat[0])
    assert logged.loc[first, "tx_fraud"] == 1 and logged["tx_fraud"].isna().sum() == 3  # not the history's 1s
    rows = table.set_index("transaction_id")
    assert rows.loc[sent["history_label"], "tx_fraud"] == 1
    assert rows.loc[sent["history_label"], "label_known_at"] == sent["labels"][sent["history_label"]][1]
    past = rows.loc[history["transaction_id"].iloc[:100]]
    assert past[list(SERVED_COLUMNS)].isna().all().all() and past["label_known_at"].isna().all()
    assert (past["tx_fraud"].to_numpy() == history["tx_fraud"].iloc[:100].to_numpy()).all()


def test_the_snapshot_is_the_same_bytes_for_the_same_log_and_what_ingest_reads(journal, tmp_path):
    directory, _ = journal
    copy = tmp_path / "journal"
    shutil.copytree(directory, copy)
    cfg = log_config(copy, tmp_path)
    first = refresh_snapshot(cfg)
    before = first.path.read_bytes()
    again = refresh_snapshot(cfg)
    assert first.changed and not again.changed and again.path.read_bytes() == before and first.rows == 121
    ingested = ingest_source(cfg)
    assert isinstance(ingested, ServiceLogSource)
    live = ServiceLogSource.from_config(cfg).read().sort_values("transaction_id", ignore_index=True)
    pd.testing.assert_frame_equal(ingested.read().sort_values("transaction_id", ignore_index=True), live)
    service = Service.open(config(tmp_path))  # one more transaction: new bytes
    try:
        service.score(tx(next(world().test.iloc[[120]].itertuples())))
    finally:
        service.close()
    assert refresh_snapshot(cfg).changed and first.path.read_bytes() != before


def test_the_redis_log_reads_as_the_journal_does(redis_server, tmp_path):
    journalled = Service.open(config(tmp_path / "j"))
    shared = Service.open(config(tmp_path / "r", store=redis_server.unix_url, redis_prefix="m"))
    try:
        send(journalled, world().test.head(60)), send(shared, world().test.head(60))
    finally:
        journalled.close(), shared.close()
    expected = ServiceLogTable(str(tmp_path / "j" / "journal")).read()
    got = ServiceLogTable(redis_server.unix_url, "m").read()
    by_id = lambda t: t.drop(columns="label_received_at").sort_values("transaction_id", ignore_index=True)  # noqa: E731
    pd.testing.assert_frame_equal(by_id(got), by_id(expected))
    assert got["label_received_at"].notna().sum() == expected["label_received_at"].notna().sum() == 8


def test_config_mistakes_are_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.columns: must be \{\}"):
        log_config("serving", tmp_path, columns={"tx_amount": "amt"})
    with pytest.raises(ConfigError, match=r"data\.history"):
        log_config("serving", tmp_path, history={"source": "sql"})
    composed = compose(ROOT / "conf", ["data=service_log"])["data"]
    assert composed["history"]["source"] == "simulated"  # the default history: the default simulator
    assert parse(DataConfig, composed, "data").history is not None


def test_a_retrain_on_the_service_log_runs_from_ingest_to_train(tiny_pipeline, tmp_path):
    """The tiny pipeline's model served two live weeks with labels a week late (a third never
    labelled); `fraudpipe snapshot`, then ingest .. train with data=service_log on the history the
    service started from. Periods counted back from the log's end: test Aug 19-26, the delay Aug 17-19,
    training up to Aug 17, so training labels count only if they had come by Aug 19."""
    repo = clone_repo(tiny_pipeline.repo, tmp_path / "repo")
    interim = read_parquet(repo / "data" / "interim" / "transactions.parquet")
    start, end = pd.Timestamp("2018-08-15"), pd.Timestamp("2018-08-29")
    history, live = interim[interim[TX_DATETIME] < start], interim[interim[TX_DATETIME].between(start, end, "left")]
    write_parquet(history, repo / "data" / "external" / "history.parquet")
    features = FeatureConfig.parse(yaml.safe_load((repo / "params.yaml").read_text())["features"], "features")
    OnlineState.from_history(history, features).save(tmp_path / "state")
    serve = config(tmp_path, model=repo / "models" / "bundle", state=tmp_path / "state", journal_dir=repo / "serving")
    service, labelled, pending = Service.open(serve), set(), 0
    try:
        for row in live.itertuples():
            while live[TX_DATETIME].iat[pending] <= row.tx_datetime - pd.Timedelta(days=7):
                if pending % 3:  # a third of the transactions never get a label
                    tid = int(live["transaction_id"].iat[pending])
                    service.label(LabelIn(transaction_id=tid, tx_fraud=int(live["tx_fraud"].iat[pending])))
                    labelled.add(tid)
                pending += 1
            service.score(tx(row))
    finally:
        service.close()
    conf = yaml.safe_load((repo / "conf" / "config.yaml").read_text())
    swap = {"data": "service_log", "split": "relative"}
    conf["defaults"] = [
        {k: swap[k]} if isinstance(d, dict) and (k := next(iter(d))) in swap else d for d in conf["defaults"]
    ]
    (repo / "conf" / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    periods = ["split.live_days=3", "split.test_days=7", "split.delay_days=2", "split.train_days=14"]
    sh(repo, "python", "-m", "fraudpipe.cli", "params", "data.history=data/external/history.parquet", *periods)
    out = sh(repo, "python", "-m", "fraudpipe.cli", "snapshot", "--no-track").stdout
    assert "service_log_snapshot.parquet" in out and f"{len(live) + 0:,} rows" in out
    for stage in ("ingest", "preprocess", "featurize", "split", "train"):
        done = run_stage_in_process(repo, stage)
        assert done.returncode == 0, f"{stage}: {done.stderr}"

    summary = json.loads((repo / "reports" / "validation" / "summary.json").read_text())
    assert (summary["service_log_rows_log"], summary["service_log_rows_history"]) == (len(live), len(history))
    assert summary["rows_in"] == summary["rows_valid"] == summary["service_log_rows"] == len(live) + len(history)
    assert (summary["service_log_duplicates"], summary["service_log_labels_log"]) == (0, len(labelled))
    split = json.loads((repo / "reports" / "split" / "summary.json").read_text())
    late = live[live[TX_DATETIME].between(start, pd.Timestamp("2018-08-17"), "left")]
    assert split["rows_train_unlabelled"] == len(late)  # every label of theirs came after Aug 19, or never
    tested = live[live[TX_DATETIME].between(pd.Timestamp("2018-08-19"), pd.Timestamp("2018-08-26"), "left")]
    assert split["rows_test_unlabelled"] == int((~tested["transaction_id"].isin(labelled)).sum()) > 0
    train = read_parquet(repo / "data" / "split" / "train.parquet")
    assert train[TX_DATETIME].max() < pd.Timestamp("2018-08-17") and train["tx_fraud"].notna().all()
    assert not train["transaction_id"].isin(live["transaction_id"]).any() and train["label_known_at"].isna().all()
    test = read_parquet(repo / "data" / "split" / "test.parquet")
    assert test["transaction_id"].isin(list(labelled)).all() and (test["label_known_at"] <= end).all()
    assert not set(SERVED_COLUMNS) & set(train.columns)
    bundle = load_bundle(repo / "models" / "bundle")
    assert not {"label_received_at", "label_known_at", *SERVED_COLUMNS} & set(bundle.features)
    raw = read_parquet(repo / "data" / "raw" / "transactions.parquet")
    assert raw["served_score"].notna().sum() == len(live) and raw["tx_fraud"].isna().sum() == len(live) - len(labelled)
