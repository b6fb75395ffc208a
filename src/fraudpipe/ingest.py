"""Stage `ingest`'s rules: one batch from a source to kept rows, quarantined rows and a summary.

Ingest owns the transaction contract, so that no later stage checks it again: `conform` parses
every value into the contract's types, `validate`'s suites check the rest of it (ids present,
transaction ids unique: a later exact copy of a row and every row of an id whose rows disagree are
quarantined here; amounts, datetimes and labels in range) and the batch-level thresholds. A
missing amount or label is left to preprocess's missing-value policy.

Nothing is silently lost: every row of the raw batch ends up either kept or quarantined with a
reason and its original values (as JSON), and the counts are checked to add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.conform import to_contract
from fraudpipe.contract import TRANSACTION_COLUMNS, TRANSACTION_DTYPES, TX_FRAUD, quarantine_table
from fraudpipe.validate import ValidationConfig, validate


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
) -> IngestResult:
    """Conform, validate, split; raises DataError / BatchValidationError for batch-level faults.

    Rows whose values do not parse are quarantined with the parse reason and are not shown to the
    suite (their missing values would only repeat the same fault as a not-null failure).
    """
    conformed = to_contract(raw, columns, datetime_format)
    frame, reasons = conformed.frame, conformed.reasons
    parsed = (reasons == "").to_numpy()
    outcome = validate(frame if parsed.all() else frame[parsed], config, docs_dir)
    outcome.raise_for_batch_failures()
    reasons = reasons.copy()
    reasons[parsed] = outcome.row_reasons.to_numpy()
    bad = (reasons != "").to_numpy()
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
    }
    return IngestResult(kept, quarantined, summary)


def _contract_dtypes(kept: pd.DataFrame) -> pd.DataFrame:
    """Kept rows passed every id/datetime check, so the contract's numpy dtypes now hold."""
    dtypes = dict(TRANSACTION_DTYPES)
    if kept[TX_FRAUD].isna().any():
        dtypes[TX_FRAUD] = "Int8"  # unlabelled (live) rows
    return kept.astype(dtypes)[list(TRANSACTION_COLUMNS)]
