"""`python stages/ingest.py` on malformed files: one clear message or a quarantine, never a bare traceback.

The library tests cover each rule; these run the stage script itself, so they also prove what a
user sees and that a failed run leaves no output behind. The cases run the script in the test's
process (Great Expectations imported once, not per case); one runs it as `dvc repro` does, for
the exit code and the one-line error of a real process.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose
from helpers.stages import assert_one_line_failure, run_stage, run_stage_in_process

ROOT = Path(__file__).resolve().parents[1]
HEADER = "transaction_id,tx_datetime,customer_id,terminal_id,tx_amount,tx_fraud\n"


def good_lines(n: int = 200) -> list[str]:
    return [
        f"{i},2018-04-01 {i // 60 % 24:02d}:{i % 60:02d}:00,{i % 13},{i % 17},{10 + i % 50}.25,{int(i % 20 == 0)}\n"
        for i in range(n)
    ]


def write_inputs(tmp_path: Path, content: bytes, data: dict | None = None, **validation) -> None:
    """params.yaml (the CSV source, ``data`` and ``validation`` changes) and the CSV file holding ``content``."""
    params = compose(ROOT / "conf", ["data=csv"])
    params["validation"] |= {"min_rows": 100, "max_fraud_rate": 0.2} | validation
    params["data"] |= data or {}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    csv = tmp_path / params["data"]["path"]
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_bytes(content)


@pytest.fixture
def run_ingest(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """``run_ingest(content, data, **validation)``: the stage in this process on that file, in ``tmp_path``."""

    def run(content: bytes, data: dict | None = None, **validation) -> subprocess.CompletedProcess:
        write_inputs(tmp_path, content, data, **validation)
        return run_stage_in_process(tmp_path, "ingest")

    return run


def quarantine(tmp_path: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "data/quarantine/ingest.parquet")


def summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports/validation/summary.json").read_text())


def kept(tmp_path: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "data/raw/transactions.parquet")


def csv_text(lines: list[str], header: str = HEADER) -> bytes:
    return (header + "".join(lines)).encode()


def with_column(index: int, values: Callable[[int], str]) -> list[str]:
    """good_lines() with column ``index`` of row i replaced by ``values(i)``."""
    out = []
    for i, line in enumerate(good_lines()):
        cells = line.rstrip("\n").split(",")
        cells[index] = values(i)
        out.append(",".join(cells) + "\n")
    return out


def test_truncated_last_line_is_quarantined_not_lost(run_ingest, tmp_path):
    lines = good_lines()
    content = (HEADER + "".join(lines) + "200,2018-04-01 23:59:00,5").encode()  # cut mid-row
    proc = run_ingest(content)
    assert proc.returncode == 0, proc.stderr
    q = quarantine(tmp_path)
    assert q["source_row"].tolist() == [200]
    assert "terminal_id" in q["reason"].iat[0]
    s = summary(tmp_path)
    assert (s["rows_in"], s["rows_valid"], s["rows_quarantined"]) == (201, 200, 1)
    assert len(pd.read_parquet(tmp_path / "data/raw/transactions.parquet")) == 200


@pytest.mark.parametrize(
    ("case", "mutate", "reason"),
    [
        ("negative amount", lambda r: r.replace(",10.25,", ",-10.25,"), "tx_amount"),
        ("non-numeric amount", lambda r: r.replace(",10.25,", ",ten,"), "tx_amount: 'ten'"),
        ("label 2", lambda r: r[:-2] + "2\n", "tx_fraud"),
        (
            "null customer id",
            lambda r: ",".join(p if i != 2 else "" for i, p in enumerate(r.split(","))),
            "customer_id",
        ),
        ("far future", lambda r: r.replace("2018-04-01", "2099-04-01"), "tx_datetime"),
        (
            "date without a time",
            lambda r: r.replace(" 00:00:00", ""),
            "tx_datetime: '2018-04-01' is a date without a time of day",
        ),
    ],
)
def test_row_level_faults_are_quarantined_with_a_reason(run_ingest, tmp_path, case, mutate, reason):
    lines = good_lines()
    lines[0] = mutate(lines[0])
    proc = run_ingest((HEADER + "".join(lines)).encode())
    assert proc.returncode == 0, proc.stderr
    q = quarantine(tmp_path)
    assert q["source_row"].tolist() == [0], case
    assert reason in q["reason"].iat[0], q["reason"].iat[0]
    assert summary(tmp_path)["rows_quarantined"] == 1


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("empty file", b"", "empty"),
        (
            "missing column",
            (
                HEADER.replace(",tx_amount", "")
                + "".join(",".join(p for i, p in enumerate(line.split(",")) if i != 4) for line in good_lines())
            ).encode(),
            "tx_amount",
        ),
        (
            "non-UTF-8 bytes",
            (HEADER + "".join(good_lines())).encode() + b"201,2018-04-01 23:00:00,1,1,\xff\xfe,0\n",
            "not valid utf-8 at byte offset 7313 (line 202)",
        ),
        (
            "too few rows",
            (HEADER + "".join(good_lines(20))).encode(),
            "expect_table_row_count_to_be_between: observed 20 valid rows, allowed min=100",
        ),
        (
            "fraud rate out of range",
            (HEADER + "".join(line[:-2] + "1\n" for line in good_lines())).encode(),
            "observed fraud rate 1.0, allowed [0.0005, 0.2]; if the rate is right for this data, set "
            "validation.min_fraud_rate / validation.max_fraud_rate",
        ),
        (
            "a mapped column appears twice",
            csv_text(good_lines(), HEADER.replace("tx_fraud", "tx_amount")),
            "more than one column named ['tx_amount']",
        ),
        (
            "one column: the separator is ';'",
            csv_text([line.replace(",", ";") for line in good_lines()], HEADER.replace(",", ";")),
            "whose header holds ';' (data.options.sep is ','). Set data.options.sep: \";\"",
        ),
        (
            "gzip bytes in a .csv",
            gzip.compress(csv_text(good_lines()), mtime=0),
            "the file is gzip-compressed (it starts with the bytes 1f 8b) but is read as plain text. "
            "Set data.options.compression: gzip, or decompress the file.",
        ),
        (
            "more than 1 % quarantined",
            csv_text(with_column(4, lambda i: "n/a" if i % 40 == 0 else f"{10 + i % 50}.25")),
            "5 of 200 rows (2.5%) would be quarantined, more than validation.max_quarantine_share = 0.01 allows; "
            "commonest reasons: tx_amount is not a number (5 rows)",
        ),
        (
            "dates in another format",
            csv_text(with_column(1, lambda i: f"01/04/2018 {i // 60 % 24:02d}:{i % 60:02d}")),
            "expect_column_values_to_be_of_type(tx_datetime): expected datetime64, observed str (first values "
            "['01/04/2018 00:00', '01/04/2018 00:01', '01/04/2018 00:02']); set data.datetime_format",
        ),
        (
            "dates only, no datetime_format",
            csv_text(with_column(1, lambda i: "2018-04-01")),
            "200 of 200 rows (100.0%) would be quarantined, more than validation.max_quarantine_share = 0.01 allows; "
            "commonest reasons: tx_datetime is a date without a time of day (data.datetime_format: '%Y-%m-%d' if the "
            "source holds dates only) (200 rows)",
        ),
    ],
)
def test_batch_level_faults_stop_with_one_clear_message_and_write_nothing(run_ingest, tmp_path, case, content, message):
    proc = run_ingest(content)
    assert proc.returncode == 1, case
    assert proc.stderr.startswith("stage 'ingest' failed:"), proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data/raw").exists()
    assert not (tmp_path / "reports/validation/summary.json").exists()


@pytest.mark.parametrize(
    ("group", "change", "message"),
    [
        (
            "data",
            {"pth": "x.csv"},
            "data.pth: unknown key (did you mean 'path'? known keys: columns, datetime_format, options, path, source)",
        ),
        (
            "data",
            {"columns": {"tx_amout": "amount"}},
            "data.columns.tx_amout: not a contract column (did you mean 'tx_amount'?",
        ),
        ("validation", {"min_rowz": 1}, "validation.min_rowz: unknown key (did you mean 'min_rows'?"),
        ("validation", {"min_rows": -1}, "validation.min_rows: must be >= 0, got -1"),
        ("validation", {"max_quarantine_share": 2}, "validation.max_quarantine_share: must be <= 1, got 2"),
        ("data", {"options": {"dtype": "str"}}, "data.options.dtype: not supported: every cell is read as text"),
        ("data", {"options": {"thousands": "."}}, "data.options.thousands: must differ from decimal ('.'), got '.'"),
        (
            "data",
            {"columns": {"customer_x": "lon"}},
            "data.columns.customer_x: coordinates are mapped all four or none",
        ),
    ],
)
def test_a_bad_config_stops_with_one_line_naming_the_key_and_writes_nothing(tmp_path, group, change, message):
    params = compose(ROOT / "conf", ["data=csv"])
    params[group] |= change
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage_in_process(tmp_path, "ingest")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"stage 'ingest' failed: {message}"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data/raw").exists()


def test_as_dvc_repro_runs_it_a_refused_batch_exits_1_with_one_line_and_writes_nothing(tmp_path):
    """The real process: exit code 1, one line on stderr naming the rule, no traceback, no output."""
    write_inputs(tmp_path, (HEADER + "".join(good_lines(20))).encode())
    proc = run_stage(tmp_path, "ingest")
    assert_one_line_failure(
        proc, "ingest", "expect_table_row_count_to_be_between: observed 20 valid rows, allowed min=100"
    )
    assert not (tmp_path / "data/raw").exists()
    assert not (tmp_path / "reports/validation/summary.json").exists()


# --- what the stage keeps, as configured: the data.options and ids rows of the corpus ---------------


def semicolon_lines(amount: Callable[[int], str]) -> list[str]:
    """good_lines() separated by ";", with amounts as ``amount(i)`` (which may hold "," and ".")."""
    return [
        ";".join([*line.rstrip("\n").split(",")[:4], amount(i), line.rstrip("\n").split(",")[5]]) + "\n"
        for i, line in enumerate(good_lines())
    ]


UUIDS = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(200)]
CUSTOMERS = ["007", "7", "5e3", "0x1f", "9f86d081884c7d65"]
MERCHANTS = ['"fraud_Kirlin and Sons, Inc."', "fraud_Sporer-Keebler", '"Smith, Jones & Co"']  # quoted: commas inside
ID_LINES = [
    f"{UUIDS[i]},2018-04-01 {i // 60 % 24:02d}:{i % 60:02d}:00,"
    f"{CUSTOMERS[i % 5]},{MERCHANTS[i % 3]},{10 + i % 50}.25,{int(i % 20 == 0)}\n"
    for i in range(200)
]
DECIMAL_COMMA = semicolon_lines(lambda i: "1.020" if i == 0 else f"{10 + i % 50},25")
DECIMAL_COMMA[1] = DECIMAL_COMMA[1].replace("1;", "0001.500;", 1)  # an id written like a number stays text
SEMICOLONS = {"options": {"sep": ";", "encoding": "utf-8", "thousands": ".", "decimal": ","}}


def id_dtypes(tx: pd.DataFrame) -> dict[str, str]:
    return {c: str(tx[c].dtype) for c in ("transaction_id", "customer_id", "terminal_id")}


#: case -> (file content, data.* changes, validation.* changes, what must hold of (kept rows, summary, quarantine))
KEPT: dict[str, tuple[bytes, dict, dict, Callable[[pd.DataFrame, dict, pd.DataFrame], bool]]] = {
    "string ids of every kind: UUIDs, '007' and '7', '5e3', hashes, merchant names with commas": (
        csv_text(ID_LINES),
        {},
        {},
        lambda tx, s, q: (
            id_dtypes(tx) == dict.fromkeys(id_dtypes(tx), "str")
            and tx["transaction_id"].tolist() == UUIDS
            and set(tx["customer_id"]) == set(CUSTOMERS)  # "007" and "7" two cards; "5e3" is not 5000
            and set(tx["terminal_id"]) == {"fraud_Kirlin and Sons, Inc.", "fraud_Sporer-Keebler", "Smith, Jones & Co"}
            and s["rows_quarantined"] == 0
        ),
    ),
    "a customer column of card hashes (used to end 99 % quarantined, exit 0)": (
        csv_text(with_column(2, lambda i: f"{(i % 13) * 2654435761 % 2**64:016x}")),
        {},
        {},
        lambda tx, s, q: len(tx) == 200 and id_dtypes(tx)["customer_id"] == "str" and tx["customer_id"].nunique() == 13,
    ),
    "thousands '.' and decimal ',': '1.020' is 1020, never 1.02; ids untouched": (
        csv_text(DECIMAL_COMMA, HEADER.replace(",", ";")),
        SEMICOLONS,
        {},
        lambda tx, s, q: (
            tx["tx_amount"].iloc[0] == 1020.0
            and tx["tx_amount"].iloc[2] == 12.25
            and tx["transaction_id"].iloc[1] == "0001.500"
            and id_dtypes(tx)["transaction_id"] == "str"
        ),
    ),
    "dates only, with a date format: midnight": (
        csv_text(with_column(1, lambda i: f"2018-04-{1 + i % 28:02d}")),
        {"datetime_format": "%Y-%m-%d"},
        {},
        lambda tx, s, q: tx["tx_datetime"].iloc[1] == pd.Timestamp("2018-04-02") and s["rows_quarantined"] == 0,
    ),
    "2.5 % bad rows under a raised max_quarantine_share": (
        csv_text(with_column(4, lambda i: "n/a" if i % 40 == 0 else f"{10 + i % 50}.25")),
        {},
        {"max_quarantine_share": 0.05},
        lambda tx, s, q: (
            s["rows_quarantined"] == 5 and q["reason"].unique().tolist() == ["tx_amount: 'n/a' is not a number"]
        ),
    ),
}


@pytest.mark.parametrize(("content", "data", "validation", "holds"), list(KEPT.values()), ids=list(KEPT))
def test_files_that_are_right_as_configured_are_kept_exactly(run_ingest, tmp_path, content, data, validation, holds):
    proc = run_ingest(content, data, **validation)
    assert proc.returncode == 0, proc.stderr
    assert holds(kept(tmp_path), summary(tmp_path), quarantine(tmp_path))


def test_the_decimal_comma_file_without_those_options_stops_naming_them(run_ingest, tmp_path):
    lines = semicolon_lines(lambda i: f"{10 + i % 50},25")
    proc = run_ingest(csv_text(lines, HEADER.replace(",", ";")), {"options": {"sep": ";"}})
    assert proc.returncode == 1
    assert "200 of 200 rows" not in proc.stderr  # a column where nothing parses is the wrong type, named once
    assert "expect_column_values_to_be_of_type(tx_amount): expected float64, observed str" in proc.stderr
    assert "data.options.decimal and data.options.thousands" in proc.stderr
