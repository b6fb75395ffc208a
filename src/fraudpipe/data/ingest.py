"""Stage `ingest`'s rules: one batch from a source to kept rows, quarantined rows and a summary.

Ingest owns the transaction contract, so that no later stage checks it again: `conform` parses
every value into the contract's types, `validate`'s suites check the rest of it (ids present,
transaction ids unique: a later exact copy of a row and every row of an id whose rows disagree are
quarantined here; amounts, datetimes and labels in range) and the batch-level thresholds. A
missing amount or label is left to preprocess's missing-value policy.

Nothing is silently lost: every row of the raw batch ends up either kept or quarantined with a
reason and its original values (as JSON), and the counts are checked to add up. Nor is a batch
mostly quarantined without a word: above ``validation.max_quarantine_share`` the batch stops,
naming the share and the commonest reasons (a wrong mapping or format shows there first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    BESIDE_DTYPES,
    COORDINATE_COLUMNS,
    ID_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTION_DTYPES,
    TX_FRAUD,
    quarantine_table,
)
from fraudpipe.data.conform import Conformed, NumberFormat, to_contract
from fraudpipe.data.validate import ValidationConfig, validate
from fraudpipe.errors import BatchValidationError

#: How many of the commonest quarantine reasons a stopped batch names.
TOP_REASONS = 3


@dataclass(frozen=True)
class IngestResult:
    kept: pd.DataFrame
    quarantined: pd.DataFrame
    summary: dict[str, int]


def ingest_batch(
    raw: pd.DataFrame,
    columns: Mapping[str, str] | None,
    datetime_format: str | None,
    config: ValidationConfig,
    docs_dir: Path | None = None,
    number_format: NumberFormat = NumberFormat(),
) -> IngestResult:
    """Conform, validate, split; raises DataError / BatchValidationError for batch-level faults."""
    return ingest_conformed(raw, to_contract(raw, columns, datetime_format, number_format), config, docs_dir)


def ingest_conformed(
    raw: pd.DataFrame, conformed: Conformed, config: ValidationConfig, docs_dir: Path | None = None
) -> IngestResult:
    """`ingest_batch` after conform, for a caller that looks at the parsed batch first (data add's labels).

    Rows whose values do not parse are quarantined with the parse reason and are not shown to the
    suite (their missing values would only repeat the same fault as a not-null failure).
    """
    frame, reasons = conformed.frame, conformed.reasons
    parsed = (reasons == "").to_numpy()
    outcome = validate(frame if parsed.all() else frame[parsed], config, docs_dir)
    reasons = reasons.copy()
    reasons[parsed] = outcome.row_reasons.to_numpy()
    bad = (reasons != "").to_numpy()
    share_failure = _quarantine_share_failure(
        int(bad.sum()), len(raw), {**conformed.counts, **outcome.reason_counts}, config
    )
    if share_failure or outcome.batch_failures:
        raise BatchValidationError([*share_failure, *outcome.batch_failures])
    kept = _contract_dtypes(frame[~bad].reset_index(drop=True))
    quarantined = quarantine_table(raw, frame, reasons, np.flatnonzero(bad))
    if len(raw) != len(kept) + len(quarantined):
        raise AssertionError(f"rows in {len(raw)} != kept {len(kept)} + quarantined {len(quarantined)}")
    summary = {
        "rows_in": len(raw),
        "rows_valid": len(kept),
        "rows_quarantined": len(quarantined),
        "expectations_evaluated": outcome.expectations_evaluated,
        "expectations_failed": outcome.expectations_failed,
        "ids_whitespace_stripped": conformed.ids_stripped,
    }
    return IngestResult(kept, quarantined, summary)


def _contract_dtypes(kept: pd.DataFrame) -> pd.DataFrame:
    """Kept rows passed every id/datetime check, so the contract's numpy dtypes now hold: ids stay
    int64 or text, as conform found them; coordinates, when the source has them, follow as float64,
    then the columns beside the contract it has (when labels arrived, the service's answers)."""
    dtypes = dict(TRANSACTION_DTYPES)
    for column in ID_COLUMNS:
        if pd.api.types.is_string_dtype(kept[column]):
            dtypes[column] = "str"
    if kept[TX_FRAUD].isna().any():
        dtypes[TX_FRAUD] = "Int8"  # unlabelled (live) rows
    coordinates = [c for c in COORDINATE_COLUMNS if c in kept.columns]
    dtypes |= dict.fromkeys(coordinates, "float64")
    beside = [c for c in BESIDE_DTYPES if c in kept.columns]
    return kept.astype(dtypes)[[*TRANSACTION_COLUMNS, *coordinates, *beside]]


def _quarantine_share_failure(
    quarantined: int, rows: int, counts: Mapping[str, int], config: ValidationConfig
) -> list[str]:
    """The message that stops a batch with too many quarantined rows, or none."""
    if rows == 0 or quarantined / rows <= config.max_quarantine_share:
        return []
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    listed = ", ".join(f"{reason} ({count:,} row{'s' if count != 1 else ''})" for reason, count in top)
    return [
        f"{quarantined:,} of {rows:,} rows ({quarantined / rows:.1%}) would be quarantined, more than "
        f"validation.max_quarantine_share = {config.max_quarantine_share:g} allows; commonest reasons: {listed}. "
        "Check the source and its settings (data.columns, data.datetime_format, data.options), "
        "or raise validation.max_quarantine_share if these rows are expected to be bad"
    ]
