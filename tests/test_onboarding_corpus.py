"""`add_dataset` (`fraudpipe data add`) on the ingest corpus of malformed files: each ends in one line
naming the column and the option that fixes it, or is added as ingest would keep it; never a traceback.

Every case starts from the same valid file in a user's own column names (40 days, 1,200 rows, 60
frauds, which data add splits) and breaks it in one way, as tests/test_stage_ingest.py and
tests/test_ingest.py break theirs. A refused file leaves conf/ and data/ as they were.
"""

from __future__ import annotations

import gzip
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from fraudpipe.cli import app
from fraudpipe.errors import PipelineError
from fraudpipe.pipeline.derived import derive_settings
from fraudpipe.pipeline.intake import with_options
from fraudpipe.pipeline.onboarding import add_dataset, profile_columns, propose_mapping

CONF = Path(__file__).resolve().parents[1] / "conf"
COLUMNS = ["trans_num", "trans_date_trans_time", "cc_num", "merchant", "amt", "is_fraud"]
MAPPING = dict(zip(["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"], COLUMNS))
DAYS, PER_DAY = 40, 30
START = pd.Timestamp("2019-03-01")


def when(i: int) -> pd.Timestamp:
    return START + pd.Timedelta(days=i // PER_DAY, minutes=17 * (i % PER_DAY) + 5, seconds=i % 60)


def good_rows() -> list[list[str]]:
    """The valid file's cells: row i of 1,200, a fraud every 20th."""
    return [
        [
            str(1000 + i),
            when(i).strftime("%Y-%m-%d %H:%M:%S"),
            str(i % 97),
            f"m{i % 31}",
            f"{10 + (i * 7) % 500}.25",
            str(int(i % 20 == 3)),
        ]
        for i in range(DAYS * PER_DAY)
    ]


def csv_bytes(rows: list[list[str]], header: list[str] = COLUMNS, sep: str = ",") -> bytes:
    return "".join(sep.join(cells) + "\n" for cells in [header, *rows]).encode()


def with_column(column: str, value: Callable[[int, str], str]) -> bytes:
    """The valid file with cell ``column`` of row i replaced by ``value(i, old)``."""
    k = COLUMNS.index(column)
    return csv_bytes([[value(i, c) if j == k else c for j, c in enumerate(r)] for i, r in enumerate(good_rows())])


@dataclass(frozen=True)
class Refused:
    """Expected: a PipelineError of one line holding every one of ``says``; nothing written."""

    says: tuple[str, ...]


@dataclass(frozen=True)
class Added:
    """Expected: added; ``kept`` rows of the file are what ingest keeps."""

    kept: int


@dataclass(frozen=True)
class Case:
    content: bytes
    expected: Refused | Added
    suffix: str = ".csv"
    datetime_format: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    fixed: dict[str, object] = field(default_factory=dict)
    mapping: dict[str, str] = field(default_factory=lambda: dict(MAPPING))


ALL = DAYS * PER_DAY
UUIDS = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(ALL)]
QUOTED = ['"Kirlin and Sons, Inc."', "Sporer-Keebler", '"Smith, Jones & Co"']
DAY_FIRST = with_column("trans_date_trans_time", lambda i, _: when(i).strftime("%d/%m/%Y %H:%M"))
DATES_ONLY = with_column("trans_date_trans_time", lambda i, _: when(i).strftime("%Y-%m-%d"))
SOME_NA = with_column("amt", lambda i, c: "n/a" if i % 40 == 0 else c)  # 2.5 %
DECIMAL_COMMA = csv_bytes([[*r[:4], r[4].replace(".", ","), r[5]] for r in good_rows()], sep=";")

CASES: dict[str, Case] = {
    # --- the tracebacks ---
    "amounts with a '$'": Case(
        with_column("amt", lambda i, c: f"${c}"),
        Refused(("expect_column_values_to_be_of_type(tx_amount)", "'$10.25'", "currency", "--map tx_amount=")),
    ),
    "a header only": Case(csv_bytes([]), Refused(("no transactions", "trans_num"))),
    "datetimes as epoch seconds": Case(
        with_column("trans_date_trans_time", lambda i, _: str(int(when(i).timestamp()))),
        Refused(("expect_column_values_to_be_of_type(tx_datetime)", "numbers", "unit='s'", "--map tx_datetime=")),
    ),
    "day-first datetimes, no datetime_format": Case(
        DAY_FIRST,
        Refused(("expect_column_values_to_be_of_type(tx_datetime)", "'01/03/2019 00:05'", "--datetime-format")),
    ),
    "every amount infinite": Case(
        with_column("amt", lambda i, _: "inf"),
        Refused(("would be quarantined", "tx_amount", "--set validation.max_quarantine_share=")),
    ),
    "one infinite amount: quarantined as ingest does": Case(
        with_column("amt", lambda i, c: "inf" if i == 5 else c), Added(ALL - 1)
    ),
    # --- file-level faults, as the sources report them ---
    "an empty file": Case(b"", Refused(("the file is empty (0 bytes)",))),
    "non-UTF-8 bytes": Case(
        csv_bytes(good_rows()) + b"9999,2019-03-02 10:00:00,1,m1,\xff\xfe,0\n",
        Refused(("not valid utf-8", "data.options.encoding", "--option encoding=VALUE")),
    ),
    "the separator is ';'": Case(
        csv_bytes(good_rows(), sep=";"), Refused(("data.options.sep is ','", "--option sep=VALUE"))
    ),
    "gzip bytes in a .csv": Case(
        gzip.compress(csv_bytes(good_rows()), mtime=0),
        Refused(("gzip-compressed", "data.options.compression: gzip", "--option compression=VALUE")),
    ),
    "truncated last line": Case(csv_bytes(good_rows()) + b"2200,2019-03-02 23:59:00,5", Added(ALL)),
    # --- columns and mapping ---
    "a mapped column missing": Case(
        csv_bytes([r[:4] + r[5:] for r in good_rows()], [*COLUMNS[:4], *COLUMNS[5:]]),
        Refused(("expect_column_to_exist", "'tx_amount' (mapped from source column 'amt')", "--map tx_amount=")),
    ),
    "a mapped column twice": Case(
        csv_bytes(good_rows(), [*COLUMNS[:5], "amt"]), Refused(("more than one column named ['amt']",))
    ),
    "a mapping to a column the file lacks": Case(
        csv_bytes(good_rows()),
        Refused(("'tx_amount' (mapped from source column 'amount')", "the source has columns", "--map tx_amount=")),
        mapping=MAPPING | {"tx_amount": "amount"},
    ),
    "labels 'yes'/'no'": Case(
        with_column("is_fraud", lambda i, c: {"0": "no", "1": "yes"}[c]),
        Refused(("column 'is_fraud' holds 'no', 'yes', not 0/1 labels", "df['is_fraud'].map({'no': 0, 'yes': 1})")),
    ),
    "labels 1 and 2": Case(
        with_column("is_fraud", lambda i, c: str(int(c) + 1)), Refused(("column 'is_fraud' holds '1', '2', not 0/1",))
    ),
    # --- numbers and dates the options read ---
    "decimal comma, no options": Case(
        DECIMAL_COMMA,
        Refused(
            ("expect_column_values_to_be_of_type(tx_amount)", "--option decimal=VALUE", "--option thousands=VALUE")
        ),
        options={"sep": ";"},
    ),
    "decimal comma with its options": Case(DECIMAL_COMMA, Added(ALL), options={"sep": ";", "decimal": ","}),
    "day-first datetimes with their format": Case(DAY_FIRST, Added(ALL), datetime_format="%d/%m/%Y %H:%M"),
    "dates only, no datetime_format": Case(
        DATES_ONLY, Refused(("is a date without a time of day", "data.datetime_format", "--datetime-format"))
    ),
    "dates only with a date format": Case(DATES_ONLY, Added(ALL), datetime_format="%Y-%m-%d"),
    "2.5 % amounts 'n/a'": Case(
        SOME_NA,
        Refused(("30 of 1,200 rows (2.5%)", "tx_amount is not a number", "--set validation.max_quarantine_share=")),
    ),
    "2.5 % amounts 'n/a' under a raised max_quarantine_share": Case(
        SOME_NA, Added(ALL - 30), fixed={"validation.max_quarantine_share": 0.05}
    ),
    # --- row-level faults: quarantined, the rest added ---
    "a negative amount": Case(with_column("amt", lambda i, c: "-12.50" if i == 7 else c), Added(ALL - 1)),
    "a label 2": Case(with_column("is_fraud", lambda i, c: "2" if i == 7 else c), Added(ALL - 1)),
    "a missing card": Case(with_column("cc_num", lambda i, c: "" if i == 7 else c), Added(ALL - 1)),
    "a date far in the future": Case(
        with_column("trans_date_trans_time", lambda i, c: c.replace("2019", "2999") if i == 7 else c), Added(ALL - 1)
    ),
    "a duplicated transaction id": Case(with_column("trans_num", lambda i, c: "1000" if i == 9 else c), Added(ALL - 2)),
    # --- ids of every kind are kept as text ---
    "UUIDs, '007' and '7', merchant names with commas": Case(
        csv_bytes(
            [[UUIDS[i], r[1], ["007", "7", "5e3"][i % 3], QUOTED[i % 3], *r[4:]] for i, r in enumerate(good_rows())]
        ),
        Added(ALL),
    ),
    # --- what no setting fixes: too little data ---
    "no fraud at all": Case(
        with_column("is_fraud", lambda i, _: "0"), Refused(("a test period needs at least", "--set"))
    ),
    "one day of rows": Case(csv_bytes(good_rows()[:PER_DAY]), Refused(("frauds over 1 days", "split.train_days"))),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(CONF, tmp_path / "conf")
    return tmp_path


def _state(root: Path) -> tuple[str, bool, bool]:
    return (root / "conf/config.yaml").read_text(), (root / "data").exists(), (root / "params.yaml").exists()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_malformed_file_is_refused_in_one_line_or_added_as_ingest_keeps_it(root: Path, case: Case) -> None:
    file = root / f"file{case.suffix}"
    file.write_bytes(case.content)
    before = _state(root)

    def add() -> object:
        return add_dataset(
            file, "mine", case.mapping, root, case.datetime_format, case.options, track=False, fixed=case.fixed
        )

    if isinstance(case.expected, Refused):
        with pytest.raises(PipelineError) as err:
            add()
        message = str(err.value)
        assert "\n" not in message, message
        for text in case.expected.says:
            assert text in message, message
        assert _state(root) == before
        return
    added = add()
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["data"]["path"] == added.path.as_posix() == "data/external/mine.csv"
    assert (root / added.path).read_bytes() == case.content
    reasons = {d.key: d.reason for d in added.derived}
    assert f"ingest keeps {case.expected.kept:,} rows" in reasons["validation.min_rows"]  # derived from ingest's rows


def test_the_message_names_the_data_add_option_of_every_key_it_names() -> None:
    message = "x; set data.datetime_format, or check data.columns.tx_datetime and data.options.sep; validation.min_rows"
    assert with_options(message) == (
        f"{message} (data add: --datetime-format FORMAT, --option sep=VALUE, --map tx_datetime=<column>, "
        "--set validation.min_rows=VALUE)"
    )
    assert with_options("the file is empty") == "the file is empty"


def test_data_add_prints_one_line_for_amounts_with_a_currency(root: Path, monkeypatch) -> None:
    file = root / "dollars.csv"
    file.write_bytes(CASES["amounts with a '$'"].content)
    monkeypatch.chdir(root)
    maps = [a for target, column in MAPPING.items() for a in ("--map", f"{target}={column}")]
    result = CliRunner().invoke(app, ["data", "add", str(file), "--name", "d", "--no-track", *maps])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(1), not an escaped exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "data add failed: batch validation failed: expect_column_values_to_be_of_type(tx_amount)"
    )
    assert "currency" in lines[0] and not (root / "data").exists()


def contract_table() -> pd.DataFrame:
    """The valid file as ingest keeps it."""
    rows = good_rows()
    return pd.DataFrame(
        {
            "transaction_id": [int(r[0]) for r in rows],
            "tx_datetime": pd.to_datetime([r[1] for r in rows]),
            "customer_id": [int(r[2]) for r in rows],
            "terminal_id": [r[3] for r in rows],
            "tx_amount": [float(r[4]) for r in rows],
            "tx_fraud": np.array([int(r[5]) for r in rows], dtype="int8"),
        }
    )


@pytest.mark.parametrize("rows", [0, 5], ids=["no row", "no dated row"])
def test_derive_settings_refuses_a_table_without_a_dated_row_in_one_line(rows: int) -> None:
    table = contract_table().head(rows).assign(tx_datetime=pd.NaT)
    assert derive_settings(table) == (
        [],
        [f"the table holds no transaction with a tx_datetime ({rows} rows): nothing to split"],
    )


def test_derive_settings_passes_over_an_infinite_amount() -> None:
    table = contract_table()
    table.loc[3, "tx_amount"] = np.inf
    derived, problems = derive_settings(table)
    assert problems == [] and "validation.max_amount" not in {d.key for d in derived}
    table.loc[4, "tx_amount"] = 250_000.0
    assert {d.key: d.value for d in derive_settings(table)[0]}["validation.max_amount"] == 1e6


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_without_a_mapping_every_file_gets_a_proposal_or_one_line(root: Path, case: Case, monkeypatch) -> None:
    file = root / f"file{case.suffix}"
    file.write_bytes(case.content)
    monkeypatch.chdir(root)
    options = [a for key, value in case.options.items() for a in ("--option", f"{key}={value}")]
    result = CliRunner().invoke(app, ["data", "add", str(file), "--name", "mine", *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        assert "nothing written. To add it: fraudpipe data add" in result.output
    else:
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("data add failed:"), result.output
    assert not (root / "data").exists() and not (root / "params.yaml").exists()


def test_a_repeated_column_name_is_noted_and_never_proposed() -> None:
    profiles = profile_columns(pd.DataFrame([["7", "1.5", "2.5"]], columns=["trans_num", "amt", "amt"]))
    assert [p.note.startswith("more than one column has this name") for p in profiles] == [False, True, True]
    assert "tx_amount" not in propose_mapping(profiles)
