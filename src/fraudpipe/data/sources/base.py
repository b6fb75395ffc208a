"""What every source shares: the contract, the base of the `data` config models, secret-free descriptions.

A source only fetches a raw batch with its own column names; mapping onto the transaction
contract and parsing types happens afterwards in `fraudpipe.data.conform`, so one bad cell becomes a
quarantined row there instead of a failed read here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd
from pydantic import field_validator

from fraudpipe.config import Config, rule_error
from fraudpipe.contract import COORDINATE_COLUMNS, TRANSACTION_COLUMNS
from fraudpipe.data.conform import NumberFormat
from fraudpipe.errors import SourceError, redact_url  # noqa: F401  (re-exported: every source imports them from here)


class SourceConfig(Config):
    """What every kind of source's model (its own keys in conf/data/) shares; the `data` group is
    `fraudpipe.data.sources.DataConfig`, the union of them tagged by the ``source`` key."""

    source: str
    #: contract column -> the source's column; a contract column left out keeps its own name. The
    #: optional coordinates (customer_x, customer_y, terminal_x, terminal_y) are mapped all four or none.
    columns: dict[str, str]

    @field_validator("columns")
    @classmethod
    def _contract_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        known = (*TRANSACTION_COLUMNS, *COORDINATE_COLUMNS)
        for name in columns:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                rule = (
                    f"not a contract column ({hint}contract columns: {', '.join(TRANSACTION_COLUMNS)}; "
                    f"optional coordinates: {', '.join(COORDINATE_COLUMNS)})"
                )
                raise rule_error(rule, columns[name], key=name)
        coordinates = [c for c in COORDINATE_COLUMNS if c in columns]
        if coordinates and len(coordinates) < len(COORDINATE_COLUMNS):
            absent = [c for c in COORDINATE_COLUMNS if c not in columns]
            rule = f"coordinates are mapped all four or none: {', '.join(absent)} missing"
            raise rule_error(rule, columns[coordinates[0]], key=coordinates[0])
        return columns

    @property
    def number_format(self) -> NumberFormat:
        """How numbers written as text look: only a CSV file has a choice (data.options)."""
        return NumberFormat()


@runtime_checkable
class Source(Protocol):
    @property
    def kind(self) -> str:
        """The ``source`` key of its kind (read-only: the sources are frozen dataclasses)."""
        ...

    def read(self) -> pd.DataFrame:
        """The raw batch, with the source's own column names."""
        ...

    def side_tables(self) -> dict[str, pd.DataFrame]:
        """Extra tables written next to the transactions ({} except for the simulator)."""
        ...


@dataclass(frozen=True)
class SnapshotResult:
    path: Path
    rows: int
    changed: bool  # the file's bytes differ from before (False: every later stage is skipped)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: drivers append SQL and background links."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
