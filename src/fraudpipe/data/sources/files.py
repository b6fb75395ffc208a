"""CSV and Parquet files: the sources DVC can track directly (a file in the repository)."""

from __future__ import annotations

import codecs
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from fraudpipe.config import rule_error
from fraudpipe.data.conform import NumberFormat
from fraudpipe.errors import ConfigError
from fraudpipe.data.sources.base import SourceConfig, SourceError

#: Only an empty cell is missing: a literal "NA" or "null" stays text, so that conform reports
#: it as a bad value of its column instead of it passing silently as a missing one.
CSV_DEFAULTS: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}

#: pandas.read_csv options that conform applies instead of pandas (every cell is read as text, so
#: pandas would ignore them): numbers in the file's format, never ids.
NUMBER_OPTIONS = ("decimal", "thousands")

#: read_csv options that would be ignored, or would bypass the contract's parsing, with what to do
#: instead: refused, so that no option is silently without effect.
REFUSED_CSV_OPTIONS: dict[str, str] = {
    **dict.fromkeys(
        ("dtype", "converters"),
        "every cell is read as text and parsed by the contract (ids stay text; numbers follow "
        "data.options.decimal and data.options.thousands)",
    ),
    **dict.fromkeys(
        ("parse_dates", "date_format", "date_parser", "dayfirst", "infer_datetime_format", "keep_date_col"),
        "set data.datetime_format (a strftime format) instead",
    ),
    **dict.fromkeys(("true_values", "false_values"), "labels are read as the integers 0 and 1"),
    **dict.fromkeys(("iterator", "chunksize"), "ingest reads the whole file"),
    "index_col": "map columns with data.columns (an index column would be dropped)",
}

#: The first bytes of compressed files, and the data.options.compression that reads them.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"PK\x03\x04": "zip", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")
#: Separators worth suggesting when a file reads as one column.
_SEPARATORS = (";", "\t", "|", ",")


def _check_file(path: Path, where: str) -> None:
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise SourceError(
            where,
            f"the file {state} (relative paths are resolved from {Path.cwd()})",
            "Point data.path at an existing file, or `dvc pull` it if it is DVC-tracked.",
        )
    if path.stat().st_size == 0:
        raise SourceError(where, "the file is empty (0 bytes)", "Re-export it: a valid file has at least a header.")


def _decode_error_position(path: Path, encoding: str) -> tuple[int, int] | None:
    """(byte offset, 1-based line) of the first undecodable byte, or None if the bytes decode.

    pandas reports the offset inside its read buffer, which is useless to someone opening the file.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1  # offset of the first byte the decoder has not consumed yet
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                return offset + exc.start, line + data.count(b"\n", 0, exc.start)
            consumed = len(pending) + len(chunk) - len(decoder.getstate()[0])
            line += (pending + chunk)[:consumed].count(b"\n")
            offset += consumed
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset, line  # truncated multi-byte sequence at the end of the file
    return None


def _bad_options(where: str, options: Mapping[str, Any], exc: Exception) -> ConfigError:
    return ConfigError(f"data.options: the reader of {where} rejected them ({exc}), got {dict(options)!r}")


class CsvConfig(SourceConfig):
    """conf/data/csv.yaml: a CSV file in the repository."""

    source: Literal["csv"]
    path: str = Field(min_length=1)
    datetime_format: str | None
    #: passed to pandas.read_csv, but for ``decimal`` and ``thousands``, which conform applies to
    #: the numeric columns (never to ids); options that could not take effect are refused
    options: dict[str, Any]

    @field_validator("options")
    @classmethod
    def _options_take_effect(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key, instead in REFUSED_CSV_OPTIONS.items():
            if key in options and not (key == "index_col" and (options[key] is None or options[key] is False)):
                raise rule_error(f"not supported: {instead}", options[key], key=key)
        decimal, thousands = options.get("decimal", "."), options.get("thousands")
        for key, mark in (("decimal", decimal), ("thousands", thousands)):
            if key in options and mark is not None and (
                not isinstance(mark, str) or len(mark) != 1 or mark.isalnum() or mark in "+-"
            ):
                raise rule_error("must be one character, not a digit, letter or sign", mark, key=key)
        if thousands is not None and thousands == decimal:
            raise rule_error(f"must differ from decimal ({decimal!r})", thousands, key="thousands")
        return options

    @property
    def number_format(self) -> NumberFormat:
        return NumberFormat(decimal=self.options.get("decimal", "."), thousands=self.options.get("thousands"))


class ParquetConfig(SourceConfig):
    """conf/data/parquet.yaml: a Parquet file in the repository."""

    source: Literal["parquet"]
    path: str = Field(min_length=1)
    datetime_format: str | None
    #: passed to pandas.read_parquet
    options: dict[str, Any]


@dataclass(frozen=True)
class CsvSource:
    """A CSV file read entirely as text: one bad cell can neither change its column's type nor get lost.

    The columns keep the header's own names, repeats included (pandas would rename a second
    ``amount`` to ``amount.1``), so that conform can refuse a mapped column that appears twice.
    """

    path: Path
    options: Mapping[str, Any]
    kind: str = "csv"

    @classmethod
    def from_config(cls, config: CsvConfig) -> CsvSource:
        return cls(Path(config.path), config.options)

    @property
    def where(self) -> str:
        return f"csv source {self.path}"

    def read(self) -> pd.DataFrame:
        _check_file(self.path, self.where)
        self._check_not_compressed()
        options = {**CSV_DEFAULTS, **{k: v for k, v in self.options.items() if k not in NUMBER_OPTIONS}, "dtype": str}
        encoding = str(options.get("encoding") or "utf-8")
        try:
            frame = pd.read_csv(self.path, **options)
            header = self._header(options)
        except UnicodeDecodeError as exc:
            position = _decode_error_position(self.path, encoding)
            at = f"at byte offset {position[0]} (line {position[1]})" if position else f"({exc.reason})"
            raise SourceError(
                self.where,
                f"the bytes are not valid {encoding} {at}",
                "Fix the file, or set data.options.encoding to the file's real encoding (e.g. latin-1, cp1252).",
            ) from None
        except pd.errors.EmptyDataError as exc:
            raise SourceError(self.where, f"the file has no header line ({exc})", "Add a header.") from None
        except pd.errors.ParserError as exc:
            raise SourceError(
                self.where,
                f"the file is not valid CSV: {str(exc).strip()}",
                "Fix that line, or check data.options.sep and quoting.",
            ) from None
        except (TypeError, ValueError, LookupError) as exc:  # a bad reader option, or an unknown encoding
            raise _bad_options(self.where, self.options, exc) from None
        self._check_separator(frame, options)
        return _own_names(frame, header, self.where)

    def _check_not_compressed(self) -> None:
        compression = self.options.get("compression", "infer")
        if compression == "infer" and self.path.suffix.lower() in _COMPRESSED_SUFFIXES:
            return
        if compression not in ("infer", None):
            return
        with self.path.open("rb") as fh:
            start = fh.read(6)
        for magic, kind in _COMPRESSED.items():
            if start.startswith(magic):
                raise SourceError(
                    self.where,
                    f"the file is {kind}-compressed (it starts with the bytes {magic.hex(' ')}) but is read as plain text",
                    f"Set data.options.compression: {kind}, or decompress the file.",
                )

    def _header(self, options: Mapping[str, Any]) -> list[Any] | None:
        """The header row's cells as the file has them (no renaming of repeats), or None when the
        names do not come from one header row of the file."""
        header = options.get("header", "infer")
        if "names" in options or header is None:
            return None
        row = 0 if header == "infer" else header
        if not isinstance(row, int) or isinstance(row, bool):
            return None
        probe = {k: v for k, v in options.items() if k not in ("usecols", "skipfooter", "nrows", "engine", "header")}
        with warnings.catch_warnings():  # a regex sep makes pandas fall back to its python engine, with a warning
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            first = pd.read_csv(self.path, **probe, header=None, nrows=row + 1)
        return first.iloc[row].tolist() if len(first) > row else None

    def _check_separator(self, frame: pd.DataFrame, options: Mapping[str, Any]) -> None:
        """A file read as one column was most likely split on the wrong separator."""
        if len(frame.columns) != 1:
            return
        name = str(frame.columns[0])
        sep = options.get("sep", options.get("delimiter", ","))
        for candidate in _SEPARATORS:
            if candidate != sep and candidate in name:
                shown = '"\\t"' if candidate == "\t" else f'"{candidate}"'
                raise SourceError(
                    self.where,
                    f"the file reads as one column, {name[:80]!r}, whose header holds {candidate!r} "
                    f"(data.options.sep is {sep!r})",
                    f"Set data.options.sep: {shown} if that is the file's separator.",
                )

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {}


def _own_names(frame: pd.DataFrame, header: list[Any] | None, where: str) -> pd.DataFrame:
    """``frame`` with the header's names where pandas renamed a repeated one (``amount.1``)."""
    if header is None:
        return frame
    names = [str(h) for h in header if isinstance(h, str)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if not repeated:
        return frame
    if len(header) != len(frame.columns):  # usecols chose some columns: positions do not line up
        raise SourceError(
            where,
            f"the header names more than one column {repeated}",
            "Rename the repeated columns in the file (or set data.options.names).",
        )
    restored = [h if isinstance(h, str) and h in repeated else c for h, c in zip(header, frame.columns, strict=True)]
    return frame.set_axis(restored, axis=1)


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet file read with its own (native) column types."""

    path: Path
    options: Mapping[str, Any] = field(default_factory=dict)  # a snapshot is read with none
    kind: str = "parquet"
    #: How errors name it, and what to say when it is missing: a snapshot of a SQL/API source
    #: is read through this class but is made by `fraudpipe snapshot`.
    label: str = "parquet source"
    missing_hint: str = ""

    @classmethod
    def from_config(cls, config: ParquetConfig) -> ParquetSource:
        return cls(Path(config.path), config.options)

    @property
    def where(self) -> str:
        return f"{self.label} {self.path}"

    def read(self) -> pd.DataFrame:
        if self.missing_hint and not self.path.exists():
            raise SourceError(self.where, "the file does not exist", self.missing_hint)
        _check_file(self.path, self.where)
        try:
            names = pq.read_schema(self.path).names
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise SourceError(
                    self.where,
                    f"the file has more than one column named {repeated}; cannot tell which to use",
                    "Rename the repeated columns when writing the file.",
                )
            return pd.read_parquet(self.path, **self.options)
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(
                self.where,
                f"the file is not readable Parquet: {exc}",
                "Re-export it (a truncated copy or a file of another format gives this error).",
            ) from None
        except (TypeError, ValueError) as exc:
            raise _bad_options(self.where, self.options, exc) from None

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {}
