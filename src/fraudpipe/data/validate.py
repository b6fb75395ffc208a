"""Great Expectations validation of a transaction batch in the contract: the call ingestion makes.

Two suites run (``data.expectations``), so that batch-level thresholds judge only the rows that
survive: ``transactions.rows`` on every row, then ``transactions.batch`` on the rows without a
row-level failure. ``data.gx_runner`` runs them and writes the Data Docs; ``data.validation_results``
turns what failed into quarantine reasons and batch failure messages.

``great_expectations`` is imported inside functions only: importing it costs ~4 s, which the
online scoring path must never pay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fraudpipe.contract import TX_FRAUD
from fraudpipe.data.expectations import (
    BATCH_SUITE,
    ROW_SUITE,
    ValidationConfig,
    batch_expectations,
    row_expectations,
    with_epoch_column,
)
from fraudpipe.data.gx_runner import Runner, pin_volatile_html, prune_static
from fraudpipe.data.validation_results import collect, expectation_counts, reason_series
from fraudpipe.errors import BatchValidationError
from fraudpipe.io import atomic_dir


@dataclass(frozen=True)
class ValidationOutcome:
    """Per row the failed row-level expectations ("" when none), how many rows each failed
    expectation hit, and the batch-level failures."""

    row_reasons: pd.Series
    batch_failures: tuple[str, ...]
    expectations_evaluated: int
    expectations_failed: int
    reason_counts: Mapping[str, int]

    def raise_for_batch_failures(self) -> None:
        if self.batch_failures:
            raise BatchValidationError(self.batch_failures)


def validate(frame: pd.DataFrame, config: ValidationConfig, docs_dir: Path | None = None) -> ValidationOutcome:
    """Run both suites on ``frame``; write Data Docs into ``docs_dir`` (replaced atomically) if given.

    Rows are reported by their index labels in ``frame`` (ingestion passes the row's position in
    the raw batch). Duplicated transaction ids are all flagged by the uniqueness expectation; then,
    among the rows sharing an id, exact copies keep their first occurrence and the later copies
    get "duplicate of source row N", while ids shared by rows that disagree on any contract
    column are quarantined in every copy ("transaction_id 17 shared by rows that disagree"),
    because there is no telling which copy is right.

    Batch-level failures are returned, not raised, so that Data Docs of a failing batch are still
    written; call ``raise_for_batch_failures`` on the outcome.
    """
    if docs_dir is None:
        return _validate(frame, config, None)
    with atomic_dir(docs_dir) as tmp:
        outcome = _validate(frame, config, tmp)
        pin_volatile_html(tmp)
        prune_static(tmp)
    return outcome


def _validate(frame: pd.DataFrame, config: ValidationConfig, docs_dir: Path | None) -> ValidationOutcome:
    runner = Runner(docs_dir)
    checked = with_epoch_column(frame)
    rows = runner.run(ROW_SUITE, row_expectations(checked, config), checked)
    reasons: dict[Any, list[str]] = {}
    counts: dict[str, int] = {}
    failures: list[str] = []
    collect(rows.results, frame, reasons, failures, counts)
    evaluated, failed = expectation_counts(rows)
    if not failures:
        kept = frame.loc[~frame.index.isin(list(reasons)), [TX_FRAUD] if TX_FRAUD in frame.columns else []]
        batch = runner.run(BATCH_SUITE, batch_expectations(kept, config), kept)
        collect(batch.results, kept, reasons, failures, counts)
        evaluated, failed = evaluated + expectation_counts(batch)[0], failed + expectation_counts(batch)[1]
    runner.build_docs()
    return ValidationOutcome(
        row_reasons=reason_series(frame.index, reasons),
        batch_failures=tuple(failures),
        expectations_evaluated=evaluated,
        expectations_failed=failed,
        reason_counts=counts,
    )
