"""A user's file read, parsed and validated as `ingest` will, before `fraudpipe data add` writes anything.

A file ingest would stop is refused by data add with ingest's own one-line message (followed by the
data add options that set the keys it names), and its settings are derived from the rows ingest
keeps, so that a file data add takes is one `dvc repro` takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd

from fraudpipe.config import parse
from fraudpipe.data.conform import Conformed, to_contract
from fraudpipe.data.ingest import ingest_conformed
from fraudpipe.data.sources import DataConfig, make_source
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.errors import ConfigError, DataError, PipelineError
from fraudpipe.pipeline.derived import label_problem

#: The validation keys data add derives from the file itself (`derived`), opened up while it reads the
#: file, so that its own range decides them; the others (max_quarantine_share) hold as configured.
OPEN_VALIDATION: dict[str, object] = {
    "min_rows": 0,
    "min_fraud_rate": 0.0,
    "max_fraud_rate": 1.0,
    "max_amount": 1e15,
    "min_datetime": "1900-01-01T00:00:00",
    "max_datetime": "2199-12-31T23:59:59",
}
#: A key an ingest message names -> the data add option that sets it.
_OPTIONS = (
    (re.compile(r"data\.datetime_format"), "--datetime-format FORMAT"),
    (re.compile(r"data\.options\.(\w+)"), "--option {0}=VALUE"),
    (re.compile(r"data\.columns\.(\w+)"), "--map {0}=<column>"),
    (re.compile(r"validation\.(\w+)"), "--set validation.{0}=VALUE"),
)


def read_contract(config: Mapping[str, object]) -> tuple[pd.DataFrame, Conformed]:
    """The file read and parsed exactly as `ingest` will: (raw table, the batch in the contract)."""
    parsed = parse(DataConfig, dict(config), "data")
    raw = make_source(parsed).read()
    return raw, to_contract(raw, parsed.columns, parsed.datetime_format, parsed.number_format)


def kept_rows(raw: pd.DataFrame, conformed: Conformed, validation: ValidationConfig) -> pd.DataFrame:
    """The rows `ingest` keeps, validated as it validates them; a batch it would stop stops here,
    with its message."""
    return ingest_conformed(raw, conformed, validation).kept


def open_validation(configured: Mapping[str, Any], fixed: Mapping[str, Any]) -> ValidationConfig:
    """The configured validation group with the keys data add derives opened up (`OPEN_VALIDATION`),
    but those the user gives (``--set validation.KEY=VALUE``) as given."""
    given = {k.partition(".")[2]: v for k, v in fixed.items() if k.startswith("validation.")}
    return parse(ValidationConfig, {**configured, **OPEN_VALIDATION, **given}, "validation")


def with_options(message: str) -> str:
    """``message`` (ingest's, naming params keys) followed by the data add options that set those keys."""
    options = {option.format(*m.groups()): None for pattern, option in _OPTIONS for m in pattern.finditer(message)}
    return f"{message} (data add: {', '.join(options)})" if options else message


@contextmanager
def data_add_terms() -> Iterator[None]:
    """Ingest's one-line errors, followed by the data add options that set the keys they name."""
    try:
        yield
    except PipelineError as exc:
        raise (ConfigError if isinstance(exc, ConfigError) else DataError)(with_options(str(exc))) from None


def stopping_label_problem(labels: pd.Series, column: str, max_share: float) -> str | None:
    """`label_problem` of the parsed labels when ingest would stop on them (text labels, or more rows
    not 0/1 than ``max_share``), before validation words it as a column type or a quarantined
    share; None when ingest would quarantine the few rows."""
    problem = label_problem(labels, column)
    if problem is None or not pd.api.types.is_numeric_dtype(labels):
        return problem
    bad = int((labels.notna() & ~labels.isin([0, 1])).sum())
    return problem if bad > max_share * max(len(labels), 1) else None


def empty_problem(raw: pd.DataFrame, kept: pd.DataFrame) -> str | None:
    """Why a file has no transaction to add (a header only, or every row quarantined), or None."""
    if not kept.empty:
        return None
    if raw.empty:
        return f"the file holds no transactions (its columns {[str(c) for c in raw.columns]} and no row)"
    return f"none of the file's {len(raw):,} rows would be kept by ingest: check the mapping (--map)"
