"""Great Expectations validation of a transaction batch in the contract.

Two suites run, so that batch-level thresholds judge only the rows that survive:

* ``transactions.rows`` on every row: required columns and their types (batch-level; an id
  column is int64 or text, see `contract.ID_COLUMNS`), then
  per-row checks whose failing rows are quarantined — ids not null, transaction_id unique,
  tx_amount in [0, max_amount], tx_datetime not null and in [min_datetime, max_datetime],
  tx_fraud in {0, 1}.
* ``transactions.batch`` on the rows without a row-level failure: row count >= min_rows and,
  when the batch carries labels, fraud rate (mean of tx_fraud) in [min_fraud_rate,
  max_fraud_rate].

The datetime range is checked on whole epoch seconds (helper column ``tx_datetime_epoch_s``):
GX compares datetimes row by row in Python (~9 s on 1.75 M rows), integers vectorised.

``great_expectations`` is imported inside functions only: importing it costs ~4 s, which the
online scoring path must never pay.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from fraudpipe.config import Config, IsoText, rule_error
from fraudpipe.errors import BatchValidationError
from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    ID_COLUMNS,
    ID_DTYPES,
    REQUIRED_COLUMNS,
    TERMINAL_ID,
    TRANSACTION_COLUMNS,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    epoch_seconds,
)
from fraudpipe.io import atomic_dir

EPOCH_COLUMN = "tx_datetime_epoch_s"
ROW_SUITE = "transactions.rows"
BATCH_SUITE = "transactions.batch"
DOCS_SITE = "fraudpipe"

#: GX type names per contract column. GX compares the dtype's scalar type, so nullable Int64/Int8
#: pass as int64/int8 and any datetime64 resolution passes as datetime64. An id column may be
#: int64 or text (`_gx_type`); the optional coordinates are float64.
_GX_TYPES: dict[str, str] = {
    TRANSACTION_ID: "int64",
    TX_DATETIME: "datetime64",
    CUSTOMER_ID: "int64",
    TERMINAL_ID: "int64",
    TX_AMOUNT: "float64",
    TX_FRAUD: "int8",
    **dict.fromkeys(COORDINATE_COLUMNS, "float64"),
}
#: The setting to look at when a column has the wrong type as a whole.
_TYPE_HINTS: dict[str, str] = {
    **{c: f"check data.columns.{c}" for c in (*ID_COLUMNS, TX_FRAUD, *COORDINATE_COLUMNS)},
    TX_DATETIME: (
        "set data.datetime_format to the values' strftime format (e.g. '%d/%m/%Y %H:%M', or '%Y-%m-%d' "
        "for dates without a time), or check data.columns.tx_datetime"
    ),
    TX_AMOUNT: "check data.columns.tx_amount and, for a CSV file, data.options.decimal and data.options.thousands",
}
#: Pinned so that the same data gives byte-identical Data Docs; git and DVC keep the run history.
_RUN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

_UNIQUE = "expect_column_values_to_be_unique"
_ORDER = (
    "expect_column_to_exist",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_not_be_null",
    _UNIQUE,
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
)
_BATCH_LEVEL = {
    "expect_column_to_exist",
    "expect_column_values_to_be_of_type",
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
}


def _iso_datetime(value: str) -> str:
    _epoch(value)
    return value


IsoDatetime = Annotated[IsoText, AfterValidator(_iso_datetime)]
Rate = Annotated[float, Field(ge=0, le=1)]


class ValidationConfig(Config):
    """conf/validation/: the suites' thresholds; datetimes as ISO 8601 text, naive UTC like the contract."""

    max_amount: float = Field(ge=0)
    min_datetime: IsoDatetime
    max_datetime: IsoDatetime
    min_rows: int = Field(ge=0)
    min_fraud_rate: Rate
    max_fraud_rate: Rate
    #: above this share of quarantined rows the batch stops (`fraudpipe.data.ingest`)
    max_quarantine_share: Rate

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> ValidationConfig:
        if self.min_epoch_s > self.max_epoch_s:
            raise rule_error(f"must not be after max_datetime ({self.max_datetime})", self.min_datetime, key="min_datetime")
        if self.min_fraud_rate > self.max_fraud_rate:
            raise rule_error(f"must be <= max_fraud_rate ({self.max_fraud_rate})", self.min_fraud_rate, key="min_fraud_rate")
        return self

    @property
    def min_epoch_s(self) -> int:
        return _epoch(self.min_datetime)

    @property
    def max_epoch_s(self) -> int:
        return _epoch(self.max_datetime)


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
        _pin_volatile_html(tmp)
        _prune_static(tmp)
    return outcome


def _validate(frame: pd.DataFrame, config: ValidationConfig, docs_dir: Path | None) -> ValidationOutcome:
    runner = _Runner(docs_dir)
    checked = _with_epoch_column(frame)
    rows = runner.run(ROW_SUITE, _row_expectations(checked, config), checked)
    reasons: dict[Any, list[str]] = {}
    counts: dict[str, int] = {}
    failures: list[str] = []
    _collect(rows.results, frame, reasons, failures, counts)
    evaluated, failed = _counts(rows)
    if not failures:
        kept = frame.loc[~frame.index.isin(list(reasons)), [TX_FRAUD] if TX_FRAUD in frame.columns else []]
        batch = runner.run(BATCH_SUITE, _batch_expectations(kept, config), kept)
        _collect(batch.results, kept, reasons, failures, counts)
        evaluated, failed = evaluated + _counts(batch)[0], failed + _counts(batch)[1]
    return ValidationOutcome(
        row_reasons=_reason_series(frame.index, reasons),
        batch_failures=tuple(failures),
        expectations_evaluated=evaluated,
        expectations_failed=failed,
        reason_counts=counts,
    )


class _Runner:
    """One ephemeral GX context; each suite runs through a Checkpoint that updates our Data Docs site."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.docs = docs_dir is not None
        if docs_dir is not None:
            self.context.add_data_docs_site(
                DOCS_SITE,
                {
                    "class_name": "SiteBuilder",
                    "show_how_to_buttons": False,
                    "store_backend": {  # GX needs an absolute path in an ephemeral context
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir.resolve()),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        asset = self.context.data_sources.add_pandas("fraudpipe").add_dataframe_asset("transactions")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole batch")

    def run(self, name: str, expectations: list[Any], frame: pd.DataFrame) -> Any:
        gx = self._gx
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self.batch_definition, suite=suite)
        )
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data docs", site_names=[DOCS_SITE])] if self.docs else []
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[definition], actions=actions, result_format="COMPLETE")
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": frame}, run_id=gx.RunIdentifier(run_name="ingest", run_time=_RUN_TIME)
        )
        (validation,) = result.run_results.values()
        return validation


def _row_expectations(frame: pd.DataFrame, config: ValidationConfig) -> list[Any]:
    import great_expectations.expectations as gxe

    exps: list[Any] = [gxe.ExpectColumnToExist(column=c) for c in REQUIRED_COLUMNS]
    exps += [gxe.ExpectColumnValuesToBeOfType(column=c, type_=_gx_type(frame, c)) for c in _GX_TYPES if c in frame.columns]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)]
    exps += [
        gxe.ExpectColumnValuesToBeUnique(column=TRANSACTION_ID),
        gxe.ExpectColumnValuesToBeBetween(column=TX_AMOUNT, min_value=0.0, max_value=config.max_amount),
        gxe.ExpectColumnValuesToNotBeNull(column=TX_DATETIME),
    ]
    if EPOCH_COLUMN in frame.columns:
        exps.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=EPOCH_COLUMN,
                min_value=config.min_epoch_s,
                max_value=config.max_epoch_s,
                notes=f"tx_datetime in [{config.min_datetime}, {config.max_datetime}], as whole seconds since 1970",
            )
        )
    if TX_FRAUD in frame.columns:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=TX_FRAUD, value_set=[0, 1]))
    return exps


def _gx_type(frame: pd.DataFrame, column: str) -> str:
    """The type an id column is expected to have: text when conform made it text, else int64."""
    if column in ID_COLUMNS and pd.api.types.is_string_dtype(frame[column]) and not pd.api.types.is_object_dtype(frame[column]):
        return "str"
    return _GX_TYPES[column]


def _batch_expectations(kept: pd.DataFrame, config: ValidationConfig) -> list[Any]:
    import great_expectations.expectations as gxe

    exps: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows)]
    if TX_FRAUD in kept.columns and kept[TX_FRAUD].notna().any():  # unlabelled live data has no rate
        exps.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=TX_FRAUD, min_value=config.min_fraud_rate, max_value=config.max_fraud_rate
            )
        )
    return exps


def _with_epoch_column(frame: pd.DataFrame) -> pd.DataFrame:
    """Add whole epoch seconds of tx_datetime (NA where missing) when tx_datetime is a datetime."""
    if TX_DATETIME not in frame.columns or not pd.api.types.is_datetime64_dtype(frame[TX_DATETIME]):
        return frame
    values = frame[TX_DATETIME]
    missing = values.isna().to_numpy()
    seconds = np.where(missing, 0, epoch_seconds(values.fillna(pd.Timestamp(0)))).astype(np.int64)
    # Plain int64 when nothing is missing: GX compares a numpy column in one vectorised step, but
    # calls a Python function per value of a nullable one (a third of ingest at 1.75 million rows).
    return frame.assign(**{EPOCH_COLUMN: pd.arrays.IntegerArray(seconds, missing) if missing.any() else seconds})


def _collect(
    results: Iterable[Any],
    frame: pd.DataFrame,
    reasons: dict[Any, list[str]],
    failures: list[str],
    counts: dict[str, int],
) -> None:
    """Turn failed expectations into row reasons (row-level, counted per expectation in
    ``counts``) or failure messages (batch-level)."""
    failed = sorted((r for r in results if not r.success), key=_suite_order)
    batch_level = [r for r in failed if r.expectation_config.type in _BATCH_LEVEL]
    for res in batch_level:  # first: a missing or mistyped column explains the errors below
        cfg = res.expectation_config
        failures.append(_batch_message(cfg.type, cfg.kwargs, res.result or {}, frame))
    broken = {r.expectation_config.kwargs.get("column") for r in batch_level}
    for res in failed:
        cfg = res.expectation_config
        kind, kwargs, result = cfg.type, cfg.kwargs, res.result or {}
        if kind in _BATCH_LEVEL:
            continue
        error = _exception_message(res.exception_info)
        if error is not None:
            if kwargs.get("column") not in broken:
                failures.append(f"{_label(kind, kwargs)} could not be evaluated: {error}")
            continue
        index = result.get("unexpected_index_list")
        if index is None or len(index) != result.get("unexpected_count"):
            failures.append(f"{_label(kind, kwargs)} failed but GX did not list the failing rows")
            continue
        label = _label(kind, kwargs)
        if kind == _UNIQUE:
            duplicates = _duplicate_reasons(frame, index)
            for row, reason in duplicates.items():
                reasons.setdefault(row, []).append(f"{label}: {reason}")
            if duplicates:
                counts[label] = counts.get(label, 0) + len(duplicates)
        else:
            for row in index:
                reasons.setdefault(row, []).append(label)
            counts[label] = counts.get(label, 0) + len(index)


def _suite_order(res: Any) -> tuple[int, int]:
    """Reasons read in suite order (GX returns results in its own metric order)."""
    cfg = res.expectation_config
    column = cfg.kwargs.get("column")
    column = TX_DATETIME if column == EPOCH_COLUMN else column
    rank = _ORDER.index(cfg.type) if cfg.type in _ORDER else len(_ORDER)
    return rank, TRANSACTION_COLUMNS.index(column) if column in TRANSACTION_COLUMNS else -1


def _duplicate_reasons(frame: pd.DataFrame, index: list[Any]) -> dict[Any, str]:
    """Rows sharing a transaction_id: later exact copies point at the first; disagreeing ids lose all."""
    rows = frame.loc[index, [c for c in TRANSACTION_COLUMNS if c in frame.columns]]
    rows = rows.loc[frame.index[frame.index.isin(rows.index)]]  # source order, not GX's order
    ids = rows[TRANSACTION_ID]
    distinct = ~rows.duplicated(keep="first")
    agree = distinct.groupby(ids).transform("sum") == 1
    first = pd.Series(rows.index, index=rows.index).groupby(ids).transform("first")
    out: dict[Any, str] = {}
    for row, tid, ok, first_row in zip(rows.index, ids, agree, first, strict=True):
        if not ok:
            out[row] = f"transaction_id {tid!r} shared by rows that disagree"
        elif row != first_row:
            out[row] = f"duplicate of source row {first_row}"
    return out


def _label(kind: str, kwargs: Mapping[str, Any]) -> str:
    """The reason text of an expectation: its type, the contract column and the rule."""
    column = kwargs.get("column")
    if column == EPOCH_COLUMN:
        lo, hi = (_iso(kwargs.get("min_value")), _iso(kwargs.get("max_value")))
        return f"{kind}({TX_DATETIME}, min={lo}, max={hi})"
    if kind.endswith("_to_be_between"):
        return f"{kind}({column}, min={kwargs.get('min_value')}, max={kwargs.get('max_value')})"
    if kind.endswith("_to_be_in_set"):
        return f"{kind}({column}, value_set={list(kwargs.get('value_set', []))})"
    return f"{kind}({column})" if column else kind


def _batch_message(kind: str, kwargs: Mapping[str, Any], result: Mapping[str, Any], frame: pd.DataFrame) -> str:
    column = kwargs.get("column")
    observed = result.get("observed_value")
    if kind == "expect_column_to_exist":
        return f"{kind}({column}): column missing; the batch has columns {[str(c) for c in frame.columns]}"
    if kind == "expect_column_values_to_be_of_type":
        sample = frame[column].dropna().head(3).tolist() if column in frame.columns else []
        expected = " or ".join(ID_DTYPES) if column in ID_COLUMNS else kwargs.get("type_")
        return (
            f"{kind}({column}): expected {expected}, observed {observed} (first values {sample}); "
            f"{_TYPE_HINTS.get(column, 'check data.columns')}"
        )
    if kind == "expect_table_row_count_to_be_between":
        return (
            f"{kind}: observed {observed} valid rows, allowed min={kwargs.get('min_value')} "
            "(validation.min_rows)"
        )
    if kind == "expect_column_mean_to_be_between":
        return (
            f"{kind}({column}): observed fraud rate {observed}, allowed "
            f"[{kwargs.get('min_value')}, {kwargs.get('max_value')}]; if the rate is right for this data, "
            "set validation.min_fraud_rate / validation.max_fraud_rate, else check data.columns.tx_fraud"
        )
    return f"{_label(kind, kwargs)}: observed {observed}"


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX reports exceptions flat or keyed by metric; return the first message, if any."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _counts(validation: Any) -> tuple[int, int]:
    stats = validation.statistics
    return int(stats["evaluated_expectations"]), int(stats["unsuccessful_expectations"])


def _reason_series(index: pd.Index, reasons: Mapping[Any, list[str]]) -> pd.Series:
    if not reasons:
        return pd.Series("", index=index, dtype="str")
    out = pd.Series("", index=index, dtype="object")
    labels = list(reasons)
    out.loc[labels] = ["; ".join(reasons[k]) for k in labels]
    return out.astype("str")


def _epoch(value: str) -> int:
    """Whole epoch seconds of an ISO 8601 datetime (an aware one via UTC); ValueError if it is none."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError("must be an ISO 8601 datetime") from None
    if ts is pd.NaT:
        raise ValueError("must be an ISO 8601 datetime")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(epoch_seconds(np.array([ts.to_datetime64()]))[0])


def _iso(seconds: Any) -> str:
    return pd.Timestamp(int(seconds), unit="s").isoformat()


_TIMESTAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pin_volatile_html(site: Path) -> None:
    """GX stamps wall-clock load times and random element ids into its HTML: pin them per file."""
    pinned = _RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
    for page in sorted(site.rglob("*.html")):
        text = _TIMESTAMP.sub(pinned, page.read_text(encoding="utf-8"))
        ids: dict[str, str] = {}
        text = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"00000000-0000-0000-0000-{len(ids):012d}"), text)
        page.write_text(text, encoding="utf-8")


def _prune_static(site: Path) -> None:
    """Drop GX's bundled assets that no page links to (~4 MB of tutorial GIFs and fonts)."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
    static = site / "static"
    for asset in sorted(static.rglob("*"), reverse=True):
        if asset.is_file() and asset.relative_to(site).as_posix() not in pages:
            asset.unlink()
        elif asset.is_dir() and not any(asset.iterdir()):
            asset.rmdir()
