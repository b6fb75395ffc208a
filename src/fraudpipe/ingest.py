"""One batch from a source to kept rows, quarantined rows and a summary.

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
from fraudpipe.contract import TRANSACTION_COLUMNS, TRANSACTION_DTYPES, TX_FRAUD
from fraudpipe.validate import ValidationConfig, validate

#: Quarantined rows keep whatever parsed, so every contract column is nullable here; the schema is
#: fixed so that an empty quarantine has the same Parquet schema as a full one.
QUARANTINE_DTYPES: dict[str, str] = {
    **{c: ("Int64" if t == "int64" else "Int8" if t == "int8" else t) for c, t in TRANSACTION_DTYPES.items()},
    "source_row": "int64",
    "reason": "str",
    "raw": "str",
}


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
    quarantined = quarantine_frame(raw, frame, reasons, np.flatnonzero(bad))
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


def quarantine_frame(raw: pd.DataFrame, frame: pd.DataFrame, reasons: pd.Series, rows: np.ndarray) -> pd.DataFrame:
    """The quarantined rows: what parsed, their position in the raw batch, why, and the raw values."""
    out = frame.iloc[rows].reset_index(drop=True)
    out["source_row"] = rows.astype(np.int64)
    out["reason"] = reasons.iloc[rows].to_numpy()
    out["raw"] = _raw_json(raw.iloc[rows])
    return out.astype(QUARANTINE_DTYPES)[list(QUARANTINE_DTYPES)]


def _raw_json(raw: pd.DataFrame) -> list[str]:
    if raw.empty:
        return []
    if not raw.columns.is_unique:  # JSON objects need unique keys: number the repeats, drop nothing
        seen: dict[str, int] = {}
        names = []
        for c in map(str, raw.columns):
            seen[c] = seen.get(c, 0) + 1
            names.append(c if seen[c] == 1 else f"{c}.{seen[c] - 1}")
        raw = raw.set_axis(names, axis=1)
    text = raw.reset_index(drop=True).to_json(
        orient="records", lines=True, date_format="iso", date_unit="us", force_ascii=False, default_handler=str
    )
    lines = text.split("\n")  # not splitlines(): JSON escapes "\n" but not e.g. U+2028 in values
    return lines[:-1] if lines and lines[-1] == "" else lines


def _contract_dtypes(kept: pd.DataFrame) -> pd.DataFrame:
    """Kept rows passed every id/datetime check, so the contract's numpy dtypes now hold."""
    dtypes = dict(TRANSACTION_DTYPES)
    if kept[TX_FRAUD].isna().any():
        dtypes[TX_FRAUD] = "Int8"  # unlabelled (live) rows
    return kept.astype(dtypes)[list(TRANSACTION_COLUMNS)]
