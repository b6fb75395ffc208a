"""CSV and Parquet files: the sources DVC can track directly (a file in the repository)."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from pydantic import Field

from fraudpipe.errors import ConfigError
from fraudpipe.sources.base import SourceConfig, SourceError

#: Only an empty cell is missing: a literal "NA" or "null" stays text, so that conform reports
#: it as a bad value of its column instead of it passing silently as a missing one.
CSV_DEFAULTS: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}


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
    #: passed to pandas.read_csv
    options: dict[str, Any]


class ParquetConfig(SourceConfig):
    """conf/data/parquet.yaml: a Parquet file in the repository."""

    source: Literal["parquet"]
    path: str = Field(min_length=1)
    datetime_format: str | None
    #: passed to pandas.read_parquet
    options: dict[str, Any]


@dataclass(frozen=True)
class CsvSource:
    """A CSV file read entirely as text: one bad cell can neither change its column's type nor get lost."""

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
        options = {**CSV_DEFAULTS, **self.options, "dtype": str}
        encoding = str(options.get("encoding") or "utf-8")
        try:
            return pd.read_csv(self.path, **options)
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

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {}


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
