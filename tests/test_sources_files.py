"""CSV and Parquet sources: raw batches with the file's own columns, and clear errors on bad files.

The `test_bad_input_*` tests are part of the project's bad-input corpus.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudpipe.data.conform import NumberFormat
from fraudpipe.data.sources import (
    CsvConfig,
    CsvSource,
    ParquetConfig,
    ParquetSource,
    SourceError,
    ingest_source,
    make_source,
)
from fraudpipe.errors import ConfigError
from helpers.sources import data_conf, data_config

HEADER = "id,when,card,pos,amount,label\n"
ROWS = "1,2018-04-01 00:00:31,10,20,57.16,0\n2,2018-04-01 00:02:10,11,21,81.51,1\n"


def csv_cfg(path: Path, **options) -> CsvConfig:
    return data_config("csv", path=str(path), options={"sep": ",", "encoding": "utf-8", **options})


def parquet_cfg(path: Path) -> ParquetConfig:
    return data_config("parquet", path=str(path))


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_csv_keeps_the_files_own_column_names_and_every_cell_as_text(tmp_path):
    raw = make_source(csv_cfg(write(tmp_path / "t.csv", HEADER + ROWS))).read()
    assert list(raw.columns) == ["id", "when", "card", "pos", "amount", "label"]
    assert all(pd.api.types.is_string_dtype(raw[c]) for c in raw.columns)
    assert raw["amount"].tolist() == ["57.16", "81.51"]
    assert raw["id"].tolist() == ["1", "2"]  # no int parsing: conform does that, per cell


def test_csv_one_bad_cell_neither_changes_the_column_type_nor_is_lost(tmp_path):
    raw = make_source(csv_cfg(write(tmp_path / "t.csv", HEADER + ROWS + "3,2018-04-01 00:03:00,12,22,abc,0\n"))).read()
    assert raw["amount"].tolist() == ["57.16", "81.51", "abc"]


def test_csv_only_empty_cells_are_missing(tmp_path):
    raw = make_source(csv_cfg(write(tmp_path / "t.csv", HEADER + "1,2018-04-01,10,20,,NA\n"))).read()
    assert raw["amount"].isna().tolist() == [True]
    assert raw["label"].tolist() == ["NA"]  # text, so conform names it as a bad label


def test_csv_reader_options_are_passed_through(tmp_path):
    path = write(tmp_path / "t.csv", (HEADER + ROWS).replace(",", ";").encode("latin-1"))
    raw = make_source(csv_cfg(path, sep=";", encoding="latin-1")).read()
    assert raw.shape == (2, 6)


def test_csv_reads_no_rows_from_a_header_only_file(tmp_path):
    raw = make_source(csv_cfg(write(tmp_path / "t.csv", HEADER))).read()
    assert raw.shape == (0, 6)  # validation's minimum row count decides, not the reader


def test_csv_is_what_ingest_reads(tmp_path):
    source = ingest_source(csv_cfg(write(tmp_path / "t.csv", HEADER + ROWS)))
    assert isinstance(source, CsvSource) and source.side_tables() == {}


# --- bad input corpus -------------------------------------------------------------------------


def test_bad_input_missing_file(tmp_path):
    with pytest.raises(SourceError, match=r"csv source .*nope\.csv: the file does not exist.*data\.path"):
        make_source(csv_cfg(tmp_path / "nope.csv")).read()


def test_bad_input_empty_csv_file(tmp_path):
    with pytest.raises(SourceError, match=r"empty\.csv: the file is empty \(0 bytes\)"):
        make_source(csv_cfg(write(tmp_path / "empty.csv", b""))).read()


def test_bad_input_truncated_last_csv_line_keeps_the_row_with_missing_cells(tmp_path):
    """Decision: a short last line is not a read error. pandas fills the missing fields with
    NaN, the row reaches conform/validation and is quarantined there with a reason, so it is
    counted and never lost."""
    path = write(tmp_path / "t.csv", HEADER + ROWS + "3,2018-04-01 00:05:00,12")  # no newline, 3 of 6 fields
    raw = make_source(csv_cfg(path)).read()
    assert len(raw) == 3
    assert raw.iloc[2][["id", "when", "card"]].tolist() == ["3", "2018-04-01 00:05:00", "12"]
    assert raw.iloc[2][["pos", "amount", "label"]].isna().all()
    # ... and conform passes it on with its required terminal_id missing, for validation's
    # not-null expectation to quarantine (rows in = rows kept + rows quarantined).
    from fraudpipe.data.conform import to_contract

    mapping = {
        "transaction_id": "id",
        "tx_datetime": "when",
        "customer_id": "card",
        "terminal_id": "pos",
        "tx_amount": "amount",
        "tx_fraud": "label",
    }
    conformed = to_contract(raw, mapping, None).frame
    assert len(conformed) == 3 and conformed.loc[2, "transaction_id"] == 3
    assert pd.isna(conformed.loc[2, "terminal_id"])


def test_bad_input_csv_line_with_too_many_fields(tmp_path):
    path = write(tmp_path / "t.csv", HEADER + ROWS + "3,2018-04-01,12,22,1.0,0,surprise\n")
    with pytest.raises(SourceError, match=r"t\.csv: the file is not valid CSV: .*Expected 6 fields in line 4, saw 7"):
        make_source(csv_cfg(path)).read()


def test_bad_input_non_utf8_bytes_name_the_offset_line_and_setting(tmp_path):
    body = (HEADER + ROWS).encode() + "3,2018-04-01 00:05:00,12,22,9.99,café\n".encode("latin-1")
    path = write(tmp_path / "latin.csv", body)
    offset = body.index(b"\xe9")
    with pytest.raises(SourceError) as err:
        make_source(csv_cfg(path)).read()
    message = str(err.value)
    assert "latin.csv" in message
    assert f"not valid utf-8 at byte offset {offset} (line 4)" in message
    assert "data.options.encoding" in message


def test_non_utf8_offset_is_exact_beyond_the_first_megabyte(tmp_path):
    body = (HEADER + ROWS * 40_000).encode()  # about 2.4 MB, several reader chunks
    path = write(tmp_path / "big.csv", body + b"9,\xff\n")
    line = body.count(b"\n") + 1
    with pytest.raises(SourceError, match=rf"byte offset {len(body) + 2} \(line {line}\)"):
        make_source(csv_cfg(path)).read()


def test_bad_input_unknown_encoding_setting(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"^data\.options: the reader of csv source .*t\.csv rejected them "
        r"\(unknown encoding: no-such-codec\), got \{.*'encoding': 'no-such-codec'\}$",
    ):
        make_source(csv_cfg(write(tmp_path / "t.csv", HEADER + ROWS), encoding="no-such-codec")).read()


# --- parquet ----------------------------------------------------------------------------------


def test_parquet_keeps_native_types(tmp_path):
    frame = pd.DataFrame(
        {
            "id": [1, 2],
            "when": pd.to_datetime(["2018-04-01 00:00:31", "2018-04-01 00:02:10"]),
            "amount": [57.16, 81.51],
            "label": pd.array([0, None], dtype="Int8"),
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    raw = make_source(parquet_cfg(tmp_path / "t.parquet")).read()
    pd.testing.assert_frame_equal(raw, frame)
    assert isinstance(ingest_source(parquet_cfg(tmp_path / "t.parquet")), ParquetSource)


def test_bad_input_missing_parquet_file(tmp_path):
    with pytest.raises(SourceError, match=r"parquet source .*gone\.parquet: the file does not exist"):
        make_source(parquet_cfg(tmp_path / "gone.parquet")).read()


def test_bad_input_empty_parquet_file(tmp_path):
    with pytest.raises(SourceError, match=r"the file is empty \(0 bytes\)"):
        make_source(parquet_cfg(write(tmp_path / "e.parquet", b""))).read()


def test_bad_input_parquet_file_that_is_not_parquet(tmp_path):
    path = write(tmp_path / "fake.parquet", HEADER + ROWS)
    with pytest.raises(SourceError, match=r"fake\.parquet: the file is not readable Parquet"):
        make_source(parquet_cfg(path)).read()


def test_a_path_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(SourceError, match="is a directory"):
        make_source(csv_cfg(tmp_path)).read()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_the_conf_options_parse_into_their_models(kind):
    config = data_config(kind)
    assert isinstance(config, {"csv": CsvConfig, "parquet": ParquetConfig}[kind])
    assert config.to_dict() == data_conf(kind)
    assert isinstance(make_source(config), {"csv": CsvSource, "parquet": ParquetSource}[kind])


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pth": "x.csv"}, "data.pth: unknown key (did you mean 'path'?"),
        ({"path": None}, "data.path: must be a string, got None"),
        ({"path": ""}, "data.path: must be at least 1 character(s) long, got ''"),
        ({"options": ["sep"]}, "data.options: must be a mapping, got ['sep']"),
        ({"datetime_format": 1}, "data.datetime_format: must be a string, got 1"),
    ],
)
def test_bad_config_names_the_full_key_and_the_value(kind, change, message):
    with pytest.raises(ConfigError) as err:
        data_config(kind, **change)
    assert message in str(err.value)


def test_bad_input_csv_of_blank_lines_has_no_header(tmp_path):
    with pytest.raises(SourceError, match=r"blank\.csv: the file has no header line"):
        make_source(csv_cfg(write(tmp_path / "blank.csv", "\n\n\n"))).read()


# --- options take effect, or are refused -------------------------------------------------------


def test_decimal_and_thousands_are_kept_for_conform_not_dropped(tmp_path):
    config = csv_cfg(tmp_path / "t.csv", sep=";", decimal=",", thousands=".")
    assert config.number_format == NumberFormat(decimal=",", thousands=".")
    path = write(tmp_path / "t.csv", "id;amount\n007;1.020,50\n")
    raw = make_source(config).read()
    assert raw.to_dict("list") == {"id": ["007"], "amount": ["1.020,50"]}  # text: conform applies the format
    assert data_config("parquet").number_format == NumberFormat() and path.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"dtype": {"amount": float}},
            "data.options.dtype: not supported: every cell is read as text and parsed by the contract",
        ),
        (
            {"parse_dates": ["when"]},
            "data.options.parse_dates: not supported: set data.datetime_format (a strftime format) instead",
        ),
        ({"dayfirst": True}, "data.options.dayfirst: not supported: set data.datetime_format"),
        ({"true_values": ["yes"]}, "data.options.true_values: not supported: labels are read as the integers 0 and 1"),
        ({"chunksize": 1000}, "data.options.chunksize: not supported: ingest reads the whole file"),
        ({"index_col": 0}, "data.options.index_col: not supported: map columns with data.columns"),
        ({"thousands": "."}, "data.options.thousands: must differ from decimal ('.'), got '.'"),
        ({"decimal": ",,"}, "data.options.decimal: must be one character, not a digit, letter or sign, got ',,'"),
        ({"thousands": "1"}, "data.options.thousands: must be one character, not a digit, letter or sign, got '1'"),
    ],
)
def test_options_that_could_not_take_effect_are_refused_by_name(tmp_path, options, message):
    with pytest.raises(ConfigError) as err:
        csv_cfg(tmp_path / "t.csv", **options)
    assert str(err.value).startswith(message), str(err.value)


def test_index_col_false_is_pandas_default_and_allowed(tmp_path):
    assert make_source(csv_cfg(write(tmp_path / "t.csv", HEADER + ROWS), index_col=False)).read().shape == (2, 6)


def test_a_repeated_header_name_is_kept_not_renamed(tmp_path):
    raw = make_source(csv_cfg(write(tmp_path / "t.csv", "id,amount,amount\n1,10.00,1020.00\n"))).read()
    assert list(raw.columns) == ["id", "amount", "amount"]  # pandas alone says amount, amount.1
    raw = make_source(csv_cfg(write(tmp_path / "u.csv", "x\nid,amount,amount.1\n1,2,3\n"), skiprows=1)).read()
    assert list(raw.columns) == ["id", "amount", "amount.1"]  # a real "amount.1" stays itself


def test_bad_input_repeated_header_with_usecols_cannot_be_lined_up(tmp_path):
    path = write(tmp_path / "t.csv", "id,amount,amount\n1,10.00,1020.00\n")
    with pytest.raises(SourceError, match=r"the header names more than one column \['amount'\]"):
        make_source(csv_cfg(path, usecols=[0, 2])).read()


@pytest.mark.parametrize(("sep", "shown"), [(";", '";"'), ("\t", '"\\t"'), ("|", '"|"')])
def test_bad_input_one_column_whose_header_holds_a_separator_suggests_it(tmp_path, sep, shown):
    path = write(tmp_path / "t.csv", (HEADER + ROWS).replace(",", sep))
    with pytest.raises(SourceError) as err:
        make_source(csv_cfg(path)).read()
    assert f"whose header holds {sep!r} (data.options.sep is ',')" in str(err.value)
    assert f"Set data.options.sep: {shown} if that is the file's separator." in str(err.value)


@pytest.mark.parametrize(
    ("compress", "kind"),
    [(gzip.compress, "gzip"), (bz2.compress, "bz2"), (lzma.compress, "xz")],
)
def test_bad_input_compressed_bytes_in_a_csv_say_so(tmp_path, compress, kind):
    path = write(tmp_path / "t.csv", compress((HEADER + ROWS).encode()))
    with pytest.raises(SourceError) as err:
        make_source(csv_cfg(path)).read()
    assert f"t.csv: the file is {kind}-compressed (it starts with the bytes" in str(err.value)
    assert f"Set data.options.compression: {kind}, or decompress the file." in str(err.value)
    assert make_source(csv_cfg(path, compression=kind)).read().shape == (2, 6)  # the suggested fix works


def test_a_compressed_file_with_its_suffix_is_read_by_pandas(tmp_path):
    path = write(tmp_path / "t.csv.gz", gzip.compress((HEADER + ROWS).encode()))
    assert make_source(csv_cfg(path)).read().shape == (2, 6)


def test_bad_input_parquet_with_a_repeated_column_name(tmp_path):
    table = pa.table([pa.array([1, 2]), pa.array([3.0, 4.0]), pa.array([5.0, 6.0])], names=["id", "amount", "amount"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(
        SourceError,
        match=r"dup\.parquet: the file has more than one column named \['amount'\]; cannot tell which to use",
    ):
        make_source(parquet_cfg(tmp_path / "dup.parquet")).read()
