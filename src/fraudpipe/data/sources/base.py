"""What every source shares: the contract, the base of the `data` config models, secret-free descriptions.

A source only fetches a raw batch with its own column names; mapping onto the transaction
contract and parsing types happens afterwards in `fraudpipe.data.conform`, so one bad cell becomes a
quarantined row there instead of a failed read here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pandas as pd
from pydantic import field_validator

from fraudpipe.config import Config, rule_error
from fraudpipe.contract import COORDINATE_COLUMNS, TRANSACTION_COLUMNS
from fraudpipe.data.conform import NumberFormat
from fraudpipe.errors import SourceError  # noqa: F401  (re-exported: every source imports it from here)


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


_SECRET_QUERY_KEY = re.compile(r"pass|secret|token|key|sig|auth|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password and secret-looking query values replaced by ``***``.

    Error messages end up in CI logs and issue trackers, so they must never carry credentials.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY_KEY.search(k) else v) for k, v in pairs], safe="*")
    # Replace in place: rebuilding with urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    redacted = url.replace(f"//{parts.netloc}", f"//{netloc}", 1) if netloc != parts.netloc else url
    return redacted.replace(f"?{parts.query}", f"?{query}", 1) if query != parts.query else redacted


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: drivers append SQL and background links."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
