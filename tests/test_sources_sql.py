"""SQL source against real databases: SQLite files and a throwaway PostgreSQL 15 server.

The `test_bad_input_*` tests are part of the project's bad-input corpus.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
import yaml

from fraudpipe.data.sources import SourceError, SqlConfig, SqlSource, make_source
from fraudpipe.data.sources.sql import read_only_problem
from fraudpipe.errors import ConfigError
from helpers.sources import data_conf, data_config

ROWS = pd.DataFrame(
    {
        "tx_id": [3, 1, 2],
        "tx_time": pd.to_datetime(["2018-04-01 00:03:00", "2018-04-01 00:01:00", "2018-04-01 00:02:00"]),
        "card": [10, 11, 12],
        "pos": [20, 21, 22],
        "amount": [12.5, 30.0, 7.25],
        "label": [0, 1, 0],
    }
)


def sql_cfg(url: str, table: str | None = "transactions", query: str | None = None, **params) -> SqlConfig:
    config = data_config("sql", url=url, table=table, query=query, query_params=params)
    assert isinstance(config, SqlConfig)
    return config


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as con:
        ROWS.assign(tx_time=ROWS["tx_time"].astype(str)).to_sql("transactions", con, index=False)
    return f"sqlite:///{path}"


def load_postgres(url: str, table: str = "transactions") -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        ROWS.to_sql(table, conn, index=False)
    engine.dispose()


# --- SQLite -----------------------------------------------------------------------------------


def test_sqlite_table_is_read_whole_with_its_own_column_names(sqlite_url):
    raw = make_source(sql_cfg(sqlite_url)).read()
    assert list(raw.columns) == list(ROWS.columns)
    assert sorted(raw["tx_id"]) == [1, 2, 3]
    assert raw["amount"].dtype == "float64" and raw["card"].dtype == "int64"


def test_sqlite_query_binds_its_parameters(sqlite_url):
    cfg = sql_cfg(sqlite_url, None, "SELECT * FROM transactions WHERE amount >= :low ORDER BY tx_id", low=10)
    assert make_source(cfg).read()["tx_id"].tolist() == [1, 3]


def test_query_parameters_are_values_never_sql(sqlite_url):
    cfg = sql_cfg(sqlite_url, None, "SELECT * FROM transactions WHERE tx_time >= :since", since="0' OR '1'='1")
    assert len(make_source(cfg).read()) == 3  # compared as a string: every datetime text sorts after "0'"
    cfg = sql_cfg(sqlite_url, None, cfg.query, since="x' ; DROP TABLE transactions; --")
    assert make_source(cfg).read().empty
    assert len(make_source(sql_cfg(sqlite_url)).read()) == 3  # the table is still there


@pytest.mark.parametrize("name", ["transactions; DROP TABLE transactions", "a.b.c", "tx-1", '"t"', ""])
def test_table_names_must_be_plain_identifiers(sqlite_url, name):
    with pytest.raises(ConfigError) as err:
        sql_cfg(sqlite_url, name)
    rule = "must be a plain table name (letters, digits, underscores; optionally schema.table)"
    assert str(err.value) == f"data.table: {rule}, got {name!r}"
    assert len(make_source(sql_cfg(sqlite_url)).read()) == 3


def test_a_query_parameter_the_query_does_not_use_is_an_error(sqlite_url):
    cfg = sql_cfg(sqlite_url, None, "SELECT * FROM transactions", since="2018-01-01")
    with pytest.raises(SourceError, match=r"query_params do not match the query.*since"):
        make_source(cfg).read()


def test_a_query_parameter_left_unset_is_an_error(sqlite_url):
    with pytest.raises(SourceError, match=r"the query failed: .*since"):
        make_source(sql_cfg(sqlite_url, None, "SELECT * FROM transactions WHERE tx_time >= :since")).read()


def test_bad_input_sql_table_that_does_not_exist_lists_the_tables(sqlite_url):
    with pytest.raises(SourceError, match=r"table 'payments' does not exist \(tables there: transactions\)"):
        make_source(sql_cfg(sqlite_url, "payments")).read()


def test_bad_input_sql_query_referencing_a_missing_table(sqlite_url):
    with pytest.raises(
        SourceError, match=r"sql source sqlite:///.*warehouse\.db: the query failed: no such table: payments"
    ):
        make_source(sql_cfg(sqlite_url, None, "SELECT * FROM payments")).read()


def test_bad_input_sqlite_database_file_that_does_not_exist(tmp_path):
    with pytest.raises(SourceError, match="the SQLite database file does not exist"):
        make_source(sql_cfg(f"sqlite:///{tmp_path}/missing.db")).read()
    assert not (tmp_path / "missing.db").exists()  # SQLite would have created it


def test_bad_input_unreachable_database_names_the_url_without_its_password(closed_port):
    url = f"postgresql+psycopg://fraud:s3cret@127.0.0.1:{closed_port}/warehouse"
    with pytest.raises(SourceError) as err:
        make_source(sql_cfg(url)).read()
    message = str(err.value)
    assert f"sql source postgresql+psycopg://fraud:***@127.0.0.1:{closed_port}/warehouse" in message
    assert "cannot connect to the database" in message and "s3cret" not in message


def test_a_url_with_a_driver_the_source_does_not_take_is_a_clear_error():
    with pytest.raises(
        SourceError, match=r"sql source nosuchdb://user:\*\*\*@host/db: data\.url names a driver the SQL source cannot"
    ):
        SqlSource("nosuchdb://user:pw@host/db", "transactions", None, {}).read()


def test_the_conf_option_parses_into_its_model():
    config = data_config("sql")
    assert isinstance(config, SqlConfig) and config.to_dict() == data_conf("sql")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"querry": "SELECT 1"}, "data.querry: unknown key (did you mean 'query'?"),
        ({"table": None, "query": None}, "data.query: must be set when table is null (or set table), got None"),
        ({"query_params": "since=1"}, "data.query_params: must be a mapping, got 'since=1'"),
        (
            {"url": "not a url :pw@"},
            "data.url: must be a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db, got ",
        ),
        (
            {"url": "postgresql://u:s3cret@h:abc/db"},
            "data.url: must be a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db, got 'postgresql://u:***@h:abc/db'",
        ),
    ],
)
def test_bad_config_names_the_full_key_and_the_value(change, message):
    with pytest.raises(ConfigError) as err:
        data_config("sql", **change)
    assert message in str(err.value)
    assert "s3cret" not in str(err.value)


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_table_keeps_native_types(postgres_url):
    load_postgres(postgres_url)
    raw = make_source(sql_cfg(postgres_url)).read().sort_values("tx_id", ignore_index=True)
    expected = ROWS.sort_values("tx_id", ignore_index=True)
    assert list(raw.columns) == list(ROWS.columns)
    assert pd.api.types.is_datetime64_any_dtype(raw["tx_time"])
    assert raw["tx_time"].tolist() == expected["tx_time"].tolist()
    assert raw["amount"].tolist() == expected["amount"].tolist()


@pytest.mark.postgres
def test_postgres_mixed_case_and_schema_table_names_are_quoted(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA shop"))
        ROWS.to_sql("Payments", conn, index=False, schema="shop")
    engine.dispose()
    assert len(make_source(sql_cfg(postgres_url, "shop.Payments")).read()) == 3


@pytest.mark.postgres
def test_postgres_query_with_a_bound_datetime(postgres_url):
    load_postgres(postgres_url)
    cfg = sql_cfg(
        postgres_url,
        None,
        "SELECT tx_id FROM transactions WHERE tx_time > :since ORDER BY tx_id",
        since=datetime(2018, 4, 1, 0, 1),
    )
    assert make_source(cfg).read()["tx_id"].tolist() == [2, 3]


@pytest.mark.postgres
def test_bad_input_postgres_query_referencing_a_missing_table(postgres_url):
    with pytest.raises(SourceError, match=r'the query failed: relation "payments" does not exist'):
        make_source(sql_cfg(postgres_url, None, "SELECT * FROM payments")).read()


@pytest.mark.postgres
def test_bad_input_postgres_table_that_does_not_exist(postgres_url):
    load_postgres(postgres_url)
    with pytest.raises(SourceError, match=r"table 'payments' does not exist \(tables there: transactions\)"):
        make_source(sql_cfg(postgres_url, "payments")).read()


# --- the SQL source only reads ------------------------------------------------------------------

WRITES = [
    ("DROP TABLE transactions", "is a DROP statement"),
    ("delete from transactions", "is a DELETE statement"),
    ("INSERT INTO transactions SELECT * FROM transactions", "is a INSERT statement"),
    ("UPDATE transactions SET amount = 0", "is a UPDATE statement"),
    ("SELECT * FROM transactions; DROP TABLE transactions", "holds more than one statement"),
    ("WITH gone AS (DELETE FROM transactions RETURNING *) SELECT * FROM gone", "contains DELETE"),
    ("SELECT * INTO backup FROM transactions", "contains INTO"),
    ("CREATE TABLE t AS SELECT * FROM transactions", "is a CREATE statement"),
    ("PRAGMA writable_schema = ON", "is a PRAGMA statement"),
    ("ATTACH DATABASE 'x.db' AS x", "is a ATTACH statement"),
    ("SELECT * FROM transactions FOR UPDATE", "contains UPDATE"),
    ("/* a comment */ -- another\n  TRUNCATE transactions", "is a TRUNCATE statement"),
    ("", "holds no statement"),
]
READS = [
    "SELECT * FROM transactions",
    "  -- the last week\nselect tx_id from transactions where amount > 10;",
    "WITH big AS (SELECT * FROM transactions WHERE amount > 10) SELECT * FROM big",
    "(SELECT tx_id FROM transactions) UNION (SELECT tx_id FROM transactions)",
    "SELECT * FROM transactions WHERE card <> 'DROP TABLE x; DELETE'",  # words in a literal are data
    "SELECT \"update\", replace(pos, 'a', 'b') FROM \"delete\"",  # quoted names; REPLACE() the function
]


@pytest.mark.parametrize(("query", "problem"), WRITES, ids=[q[:30] for q, _ in WRITES])
def test_bad_input_a_query_that_is_not_one_select_is_refused_before_it_runs(sqlite_url, query, problem):
    with pytest.raises(ConfigError) as err:
        sql_cfg(sqlite_url, None, query)
    assert str(err.value) == (
        "data.query: must be one SELECT (or WITH ... SELECT) statement: the SQL source only reads, "
        f"and this query {problem}, got {query!r}"
    )
    assert len(make_source(sql_cfg(sqlite_url)).read()) == 3  # the table is still there


@pytest.mark.parametrize("query", READS)
def test_queries_that_only_read_are_accepted(query):
    assert read_only_problem(query) is None


def test_bad_input_drop_table_in_data_query_stops_the_ingest_config_and_the_table_survives(sqlite_url, tmp_path):
    """The issue's case: `data.query: DROP TABLE x` dropped the table on SQLite."""
    params = {"data": data_conf("sql", url=sqlite_url, table=None, query="DROP TABLE transactions")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, "-m", "fraudpipe.cli", "snapshot", "--no-track"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "data.query: must be one SELECT (or WITH ... SELECT) statement" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert len(make_source(sql_cfg(sqlite_url)).read()) == 3


def test_sqlite_is_opened_read_only(sqlite_url):
    source = make_source(sql_cfg(sqlite_url))
    with (
        source.connect() as connection,
        pytest.raises(sa.exc.OperationalError, match="attempt to write a readonly database"),
    ):
        connection.exec_driver_sql("DROP TABLE transactions")
    assert len(source.read()) == 3


def test_a_sqlite_path_with_uri_characters_is_still_that_file(tmp_path):
    path = tmp_path / "odd name #1.db"  # a space and a "#" mean something in a SQLite URI
    with sqlite3.connect(path) as con:
        ROWS.to_sql("transactions", con, index=False)
    assert len(make_source(sql_cfg(f"sqlite:///{path}")).read()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd name #1.db"]  # no other file created


def test_a_list_parameter_binds_as_an_expanding_in(sqlite_url):
    cfg = sql_cfg(sqlite_url, None, "SELECT * FROM transactions WHERE tx_id IN :ids ORDER BY tx_id", ids=[1, 3])
    assert make_source(cfg).read()["tx_id"].tolist() == [1, 3]
    cfg = sql_cfg(sqlite_url, None, cfg.query, ids=[])
    assert make_source(cfg).read().empty


@pytest.mark.postgres
def test_postgres_reads_in_a_read_only_transaction(postgres_url):
    load_postgres(postgres_url)
    source = make_source(sql_cfg(postgres_url))
    with (
        source.connect() as connection,
        pytest.raises(sa.exc.InternalError, match="cannot execute DROP TABLE in a read-only transaction"),
    ):
        connection.exec_driver_sql("DROP TABLE transactions")
    with (
        source.connect() as connection,  # a data-modifying CTE, which a SELECT check could miss
        pytest.raises(sa.exc.InternalError, match="read-only transaction"),
    ):
        connection.exec_driver_sql("WITH gone AS (DELETE FROM transactions RETURNING *) SELECT * FROM gone").all()
    assert len(source.read()) == 3


@pytest.mark.postgres
def test_postgres_list_parameter_binds_as_an_expanding_in(postgres_url):
    load_postgres(postgres_url)
    cfg = sql_cfg(
        postgres_url, None, "SELECT tx_id FROM transactions WHERE card IN :cards ORDER BY tx_id", cards=[10, 12]
    )
    assert make_source(cfg).read()["tx_id"].tolist() == [2, 3]


# --- read-only is the database's guarantee, not the query check's ---------------------------------

#: Queries whose hidden statements the check above cannot see: dollar quoting and E'' strings
#: make the check read the rest of the line as one literal, while PostgreSQL runs COMMIT and DELETE.
HIDDEN = [
    "SELECT $q$'$q$ AS a; COMMIT; DELETE FROM transactions WHERE tx_id < 20; SELECT * FROM transactions --'",
    "SELECT $$'$$ AS a; COMMIT; DROP TABLE transactions; SELECT 1 --'",
    "SELECT E'\\'' AS a; COMMIT; DELETE FROM transactions; SELECT 1 --'",
    "SELECT E'\\'' AS a; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; COMMIT; DELETE FROM transactions; "
    "SELECT 1 --'",
]


def row_count(url: str) -> int:
    """Rows in ``transactions``, read with a plain engine (not the source under test)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM transactions")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("query", HIDDEN, ids=["dollar-tag", "dollar", "e-string", "e-string-set"])
def test_bad_input_postgres_hidden_statements_cannot_write(postgres_url, query):
    """The issue's case: the check passed this query, psycopg ran every statement, and COMMIT
    ended the read-only transaction before the DELETE."""
    load_postgres(postgres_url)
    assert read_only_problem(query) is None  # the check misses it: the server must refuse it
    with pytest.raises(
        SourceError, match="the query failed: cannot insert multiple commands into a prepared statement"
    ):
        make_source(sql_cfg(postgres_url, None, query)).read()
    assert row_count(postgres_url) == 3


@pytest.mark.postgres
@pytest.mark.parametrize(("query", "problem"), WRITES[:-1], ids=[q[:30] for q, _ in WRITES[:-1]])
def test_bad_input_postgres_refuses_every_write_without_the_query_check(postgres_url, query, problem):
    load_postgres(postgres_url)
    with pytest.raises(SourceError, match="the query failed: "):
        SqlSource(postgres_url, None, query, {}).read()  # built past the config: no query check
    assert row_count(postgres_url) == 3


@pytest.mark.postgres
def test_postgres_session_is_read_only_from_its_start(postgres_url):
    """A COMMIT (or a procedure that commits) leaves the session read-only: the next transaction
    starts read-only too, whatever the URL's own options say."""
    load_postgres(postgres_url)
    url = postgres_url + "?options=-c%20default_transaction_read_only%3Doff"
    with SqlSource(url, "transactions", None, {}).connect() as connection:
        raw = connection.connection.driver_connection
        assert raw.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        raw.execute("COMMIT")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="cannot execute DELETE"):
            raw.execute("DELETE FROM transactions")
    assert row_count(postgres_url) == 3


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 AS a; DROP TABLE transactions",
        "SELECT 'x'';' AS a; DELETE FROM transactions; --'",
        "DELETE FROM transactions",
        "DROP TABLE transactions",
        "PRAGMA writable_schema = ON",
    ],
)
def test_bad_input_sqlite_refuses_every_write_without_the_query_check(sqlite_url, query):
    with pytest.raises(SourceError, match="the query failed: "):
        SqlSource(sqlite_url, None, query, {}).read()  # built past the config: no query check
    assert row_count(sqlite_url) == 3


@pytest.mark.parametrize("query", ["ATTACH DATABASE '{path}' AS x", "VACUUM INTO '{path}'"])
def test_sqlite_writes_no_other_file(sqlite_url, tmp_path, query):
    query = query.format(path=tmp_path / "new.db")
    with pytest.raises(SourceError, match="the query failed: too many attached databases - max 0"):
        SqlSource(sqlite_url, None, query, {}).read()
    assert not (tmp_path / "new.db").exists()


def test_sqlite_session_is_query_only(sqlite_url):
    with SqlSource(sqlite_url, "transactions", None, {}).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA query_only").scalar_one() == 1


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@h/db", "postgresql+psycopg2://u@h/db", "postgresql+pg8000://u@h/db", "mysql+pymysql://u@h/db"],
)
def test_bad_input_a_dialect_the_source_cannot_hold_read_only_is_refused(url):
    with pytest.raises(ConfigError) as err:
        sql_cfg(url)
    assert str(err.value).startswith("data.url: must be sqlite:///path or postgresql+psycopg://")
    with pytest.raises(SourceError, match=r"data\.url names a driver the SQL source cannot hold read-only"):
        SqlSource(url, "transactions", None, {}).read()
