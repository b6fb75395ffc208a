"""Snapshots of SQL/API sources: deterministic bytes, so only new data makes DVC rerun anything."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from fraudpipe.data.sources import ParquetSource, SourceError, SqlConfig, ingest_source, refresh_snapshot
from fraudpipe.errors import ConfigError
from helpers.sources import data_config

COLUMNS = {
    "transaction_id": "tx_id",
    "tx_datetime": "tx_time",
    "customer_id": "card",
    "terminal_id": "pos",
    "tx_amount": "amount",
    "tx_fraud": "label",
}
ROWS = pd.DataFrame(
    {
        "tx_id": [3, 1, 2, 5, 4],
        "tx_time": [f"2018-04-01 00:0{i}:00" for i in [3, 1, 2, 5, 4]],
        "card": [10, 11, 12, 10, 11],
        "pos": [20, 21, 22, 20, 21],
        "amount": [12.5, 30.0, 7.25, 1.0, 99.99],
        "label": [0, 1, 0, 0, 1],
    }
)


@pytest.fixture
def sql_cfg(tmp_path) -> SqlConfig:
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as con:
        ROWS.iloc[:4].to_sql("transactions", con, index=False)
    snapshot = str(tmp_path / "external" / "sql_snapshot.parquet")
    return data_config("sql", url=f"sqlite:///{db}", table="transactions", snapshot=snapshot, columns=COLUMNS)


def add_row(cfg: SqlConfig, row: pd.DataFrame) -> None:
    with sqlite3.connect(cfg.url.removeprefix("sqlite:///")) as con:
        row.to_sql("transactions", con, index=False, if_exists="append")


def test_refresh_without_new_rows_leaves_the_snapshot_byte_identical(sql_cfg):
    first = refresh_snapshot(sql_cfg)
    before, mtime = first.path.read_bytes(), first.path.stat().st_mtime_ns
    second = refresh_snapshot(sql_cfg)
    assert first.changed and not second.changed
    assert (first.rows, second.rows) == (4, 4)
    assert second.path.read_bytes() == before
    assert second.path.stat().st_mtime_ns == mtime  # not even rewritten


def test_refresh_with_a_new_row_changes_the_snapshot(sql_cfg):
    refresh_snapshot(sql_cfg)
    add_row(sql_cfg, ROWS.iloc[4:])
    result = refresh_snapshot(sql_cfg)
    assert result.changed and result.rows == 5
    assert pd.read_parquet(result.path)["tx_id"].tolist() == [1, 2, 3, 4, 5]


def test_snapshot_rows_are_sorted_by_the_sources_transaction_id_so_row_order_cannot_matter(sql_cfg, tmp_path):
    refresh_snapshot(sql_cfg)
    expected = ingest_source(sql_cfg).read()
    assert expected["tx_id"].tolist() == [1, 2, 3, 5]
    # The same rows inserted in another order give the same bytes.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        ROWS.iloc[:4].iloc[::-1].to_sql("transactions", con, index=False)
    moved = sql_cfg.model_copy(update={"url": f"sqlite:///{other}", "snapshot": str(tmp_path / "other.parquet")})
    refresh_snapshot(moved)
    assert (tmp_path / "other.parquet").read_bytes() == (tmp_path / "external/sql_snapshot.parquet").read_bytes()


def test_ingest_reads_the_snapshot_not_the_live_database(sql_cfg):
    refresh_snapshot(sql_cfg)
    add_row(sql_cfg, ROWS.iloc[4:])  # not yet snapshotted: ingest must not see it
    source = ingest_source(sql_cfg)
    assert isinstance(source, ParquetSource) and source.side_tables() == {}
    assert len(source.read()) == 4


def test_ingest_without_a_snapshot_tells_the_user_to_run_fraudpipe_snapshot(sql_cfg):
    with pytest.raises(
        SourceError, match=r"sql snapshot .*sql_snapshot\.parquet: the file does not exist\. Run `fraudpipe snapshot`"
    ):
        ingest_source(sql_cfg).read()


def test_api_snapshot_pages_through_the_api_deterministically(http_server, tmp_path):
    records = ROWS.sample(frac=1, random_state=1).to_dict("records")
    url = http_server.serve_pages("/tx", records, fail_once=[1])
    cfg = data_config(
        "api",
        url=url,
        page_size=2,
        timeout_s=2.0,
        max_retries=2,
        backoff_s=0.01,
        snapshot=str(tmp_path / "api_snapshot.parquet"),
        columns=COLUMNS,
    )
    first, second = refresh_snapshot(cfg), refresh_snapshot(cfg)
    assert (first.changed, second.changed, second.rows) == (True, False, 5)
    assert ingest_source(cfg).read()["tx_id"].tolist() == [1, 2, 3, 4, 5]


def test_api_values_of_mixed_json_types_become_text_instead_of_failing_the_snapshot(http_server, tmp_path):
    records = [{"tx_id": 1, "amount": 12.5}, {"tx_id": 2, "amount": "12.5"}, {"tx_id": 3, "amount": None}]
    url = http_server.route("/tx", lambda r: (200, {"records": records, "next": None}))
    cfg = data_config("api", url=url, snapshot=str(tmp_path / "s.parquet"), columns=COLUMNS)
    refresh_snapshot(cfg)
    amount = pd.read_parquet(tmp_path / "s.parquet")["amount"]
    assert amount.iloc[:2].tolist() == ["12.5", "12.5"] and pd.isna(amount.iloc[2])  # conform judges them


def test_a_snapshot_needs_the_transaction_id_column(sql_cfg):
    cfg = sql_cfg.model_copy(update={"columns": {**COLUMNS, "transaction_id": "id"}})
    with pytest.raises(SourceError, match=r"transaction-id column 'id' .* is not among the source's columns"):
        refresh_snapshot(cfg)


def test_file_sources_have_no_snapshot(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^data\.source: only sql, api, service_log sources have snapshots .*, got 'csv'$"
    ):
        refresh_snapshot(data_config("csv", path=str(tmp_path / "t.csv")))


def test_a_failing_source_leaves_the_previous_snapshot_intact(sql_cfg):
    good = refresh_snapshot(sql_cfg).path.read_bytes()
    with pytest.raises(SourceError, match="does not exist"):
        refresh_snapshot(sql_cfg.model_copy(update={"table": "payments"}))
    assert ingest_source(sql_cfg).path.read_bytes() == good


def test_an_integral_json_number_beside_text_ids_keeps_its_key_through_the_snapshot(http_server, tmp_path):
    """Read directly, the API's 7.0 is the id 7; the snapshot must not make it a new card "7.0"."""
    from fraudpipe.contract import canonical_id

    records = [{"tx_id": 7.0, "amount": 1.0}, {"tx_id": "card-8", "amount": 2.0}, {"tx_id": 9, "amount": 3.0}]
    url = http_server.route("/mixed", lambda r: (200, {"records": records, "next": None}))
    cfg = data_config("api", url=url, snapshot=str(tmp_path / "m.parquet"), columns=COLUMNS)
    refresh_snapshot(cfg)
    ids = pd.read_parquet(tmp_path / "m.parquet")["tx_id"].tolist()
    assert sorted(canonical_id(i) for i in ids) == ["7", "9", "card-8"]
