"""The service's own log as a source: what `fraudpipe serve` scored, its answers, and the labels it received.

`fraudpipe.servicelog.read_service_log` reads the log (a journal directory, or the Redis state of a
service run with ``--store redis://...``); `log_table` makes it one table in the contract: each scored
transaction with its label, where one arrived (the last one, a correction replacing the first), and
when (``contract.LABEL_TIME_COLUMNS``), and the answer the service gave (``contract.SERVED_COLUMNS``).
A transaction without a label stays unlabelled (``tx_fraud`` missing): never taken as genuine. A
label for a transaction the log does not hold (one of the history the service was started from) is
a row of its own with only its id and label columns, for the history to take.

The log is live, like a database, so `ingest` reads its snapshot (``data.snapshot``, written by
`fraudpipe snapshot`: the same log gives the same bytes), optionally joined with a batch history
(``data.history``: the simulator, CSV or Parquet source the model was first trained on) so that a
retrain has enough past. A transaction in both is the log's (it holds what the service saw and
answered); a label in the log replaces the history's label of that transaction. `JoinCounts`
counts what came from where.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from fraudpipe.contract import (
    BESIDE_DTYPES,
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    ID_COLUMNS,
    LABEL_KNOWN_AT,
    LABEL_RECEIVED_AT,
    SERVED_ALERT,
    SERVED_MODEL,
    SERVED_SCORE,
    SERVED_THRESHOLD,
    TERMINAL_ID,
    TRANSACTION_COLUMNS,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    canonical_ids,
    id_array,
)
from fraudpipe.data.conform import to_contract
from fraudpipe.data.sources.base import Source, SourceConfig, SourceError
from fraudpipe.data.sources.files import CsvConfig, CsvSource, ParquetConfig, ParquetSource
from fraudpipe.data.sources.simulated import SimulatedConfig, SimulatedSource
from fraudpipe.servicelog import LogLocation, ServiceLog, log_where, read_service_log

#: A batch history: any source DVC can see without a snapshot, or none.
HistoryConfig = Annotated[SimulatedConfig | CsvConfig | ParquetConfig | None, Field(discriminator="source")]
#: The columns of the log's table, in order (coordinates only when some transaction carried them).
LOG_COLUMNS: tuple[str, ...] = (*TRANSACTION_COLUMNS, *COORDINATE_COLUMNS, *BESIDE_DTYPES)


def _history_from_path(value: Any) -> Any:
    """``history: path/to/file.parquet`` (or .csv): that file, in the contract's column names."""
    if not isinstance(value, str):
        return value
    kind = "csv" if value.lower().endswith((".csv", ".csv.gz")) else "parquet"
    options: dict[str, Any] = {"sep": ","} if kind == "csv" else {}
    return {"source": kind, "path": value, "columns": {}, "datetime_format": None, "options": options}


class ServiceLogConfig(SourceConfig, LogLocation):
    """conf/data/service_log.yaml: the service's log (``log``, ``redis_prefix``: ``LogLocation``, as
    `monitor` names it), its snapshot file, and an optional history."""

    source: Literal["service_log"]
    snapshot: str = Field(min_length=1)
    #: the batch the model was first trained on: a source config, a path to a Parquet/CSV file, or null
    history: HistoryConfig

    @field_validator("history", mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return _history_from_path(value)

    @field_validator("columns")
    @classmethod
    def _no_mapping(cls, columns: dict[str, str]) -> dict[str, str]:
        if columns:
            raise ValueError(
                "must be {}: the service's log speaks the contract (map a history's columns in history.columns)"
            )
        return columns

    @property
    def datetime_format(self) -> None:
        """The log holds datetimes, not text: nothing to parse."""
        return None


# --- the log as one table ------------------------------------------------------------------------


def log_table(log: ServiceLog) -> pd.DataFrame:
    """The log's scored transactions with their labels and answers, then the labels of transactions
    it does not hold (id and label columns only), in the columns `LOG_COLUMNS`."""
    scored = log.scored.drop_duplicates(TRANSACTION_ID, keep="last")
    labels = log.labels.drop_duplicates(TRANSACTION_ID, keep="last")  # the last label wins (a correction)
    scored_keys = canonical_ids(scored[TRANSACTION_ID], TRANSACTION_ID)
    label_keys = canonical_ids(labels[TRANSACTION_ID], TRANSACTION_ID)
    by_key = pd.DataFrame(
        {
            TX_FRAUD: pd.array(labels[TX_FRAUD].to_numpy(), dtype="Int8"),
            LABEL_RECEIVED_AT: labels["received_at"].to_numpy(),
            LABEL_KNOWN_AT: labels["known_at"].to_numpy(),
        },
        index=pd.Index(label_keys),
    )
    alone = ~pd.Index(label_keys).isin(scored_keys)
    keys = np.r_[scored_keys, label_keys[alone]].astype(object)
    n, extra = len(scored_keys), int(alone.sum())
    table = pd.DataFrame(
        {
            TRANSACTION_ID: _ids(keys),
            CUSTOMER_ID: _ids(np.r_[canonical_ids(scored[CUSTOMER_ID], CUSTOMER_ID), [None] * extra]),
            TERMINAL_ID: _ids(np.r_[canonical_ids(scored[TERMINAL_ID], TERMINAL_ID), [None] * extra]),
            TX_DATETIME: np.r_[scored[TX_DATETIME].to_numpy(), np.full(extra, np.datetime64("NaT", "us"))],
            TX_AMOUNT: np.r_[scored[TX_AMOUNT].to_numpy(np.float64), np.full(extra, np.nan)],
            **{c: np.r_[scored[c].to_numpy(np.float64), np.full(extra, np.nan)] for c in COORDINATE_COLUMNS},
            **by_key.reindex(keys).reset_index(drop=True).to_dict("series"),
            SERVED_SCORE: np.r_[scored["score"].to_numpy(np.float64), np.full(extra, np.nan)],
            SERVED_ALERT: pd.array([*scored["alert"].tolist(), *[None] * extra], dtype="boolean"),
            SERVED_THRESHOLD: np.r_[scored["threshold"].to_numpy(np.float64), np.full(extra, np.nan)],
            SERVED_MODEL: pd.array([*scored["model_version"].tolist(), *[None] * extra], dtype="str"),
        }
    )
    assert len(table) == n + extra
    return table.astype({**BESIDE_DTYPES, TX_FRAUD: "Int8"})[list(LOG_COLUMNS)]


def _ids(keys: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Ids from their keys, missing where None: nullable Int64 when every key is an integer, else text."""
    present = np.array([k is not None for k in keys], dtype=bool)
    typed = id_array([str(k) for k in keys[present]])
    if typed.dtype == np.int64:
        out = pd.array([pd.NA] * len(keys), dtype="Int64")
    else:
        out = pd.array([pd.NA] * len(keys), dtype="str")
    out[present] = typed
    return out


@dataclass(frozen=True)
class ServiceLogTable:
    """The live log (journal directory or Redis) as `log_table`: what `fraudpipe snapshot` copies."""

    log: str
    redis_prefix: str = "fraudpipe"
    kind: str = "service_log"

    @classmethod
    def from_config(cls, config: ServiceLogConfig) -> ServiceLogTable:
        return cls(config.log, config.redis_prefix)

    @property
    def where(self) -> str:
        return f"service_log source {log_where(self.log, self.redis_prefix)}"

    def read(self) -> pd.DataFrame:
        return log_table(read_service_log(self.log, self.redis_prefix))

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {}


# --- joined with a history --------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinCounts:
    """What the joined table holds: ``rows = rows_history + rows_log``."""

    rows: int
    rows_history: int  # history rows kept (those not in the log)
    rows_log: int  # transactions the service scored
    duplicates: int  # history rows whose transaction is in the log: the log's row is kept
    labels_log: int  # labels the log holds (the last per transaction)
    labels_on_history: int  # of which for history rows (the service was started from that history)
    labels_unmatched: int  # of which for a transaction in neither: dropped

    def to_dict(self) -> dict[str, int]:
        return {f"service_log_{k}": v for k, v in vars(self).items()}


def history_frame(source: Source, config: SourceConfig, where: str) -> pd.DataFrame:
    """The history in the contract's columns and types; a cell that does not parse stops the read
    (the history was ingested once: a bad row here means the wrong file or mapping)."""
    raw = source.read()
    conformed = to_contract(raw, config.columns, getattr(config, "datetime_format", None), config.number_format)
    bad = conformed.reasons != ""
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise SourceError(
            where,
            f"{int(bad.sum()):,} history rows do not parse (row {first}: {conformed.reasons.iat[first]})",
            "Fix data.history (its columns, datetime_format, options), or ingest it on its own "
            "(data=csv / data=parquet) to see those rows quarantined.",
        )
    return conformed.frame


def join_history(log: pd.DataFrame, history: pd.DataFrame | None) -> tuple[pd.DataFrame, JoinCounts]:
    """The log's transactions after the history's rows not in the log, with the log's labels taking
    the place of the history's (see the module doc); counts of each."""
    scored = log[log[TX_DATETIME].notna().to_numpy()]
    labels = log[log[TX_DATETIME].isna().to_numpy()]
    if history is None:
        history = log.iloc[:0][list(TRANSACTION_COLUMNS)]
    history_keys = pd.Index(canonical_ids(history[TRANSACTION_ID], TRANSACTION_ID))
    in_log = history_keys.isin(canonical_ids(scored[TRANSACTION_ID], TRANSACTION_ID))
    kept = history[~in_log].reset_index(drop=True)
    kept_keys = history_keys[~in_log]
    label_keys = pd.Index(canonical_ids(labels[TRANSACTION_ID], TRANSACTION_ID))
    matched = label_keys.isin(kept_keys)
    beside = pd.DataFrame({c: pd.Series(index=kept.index, dtype=t) for c, t in BESIDE_DTYPES.items()})
    kept = pd.concat([kept, beside], axis=1)
    kept[TX_FRAUD] = pd.array(kept[TX_FRAUD].to_numpy(dtype=object), dtype="Int8")
    on_history = labels[matched].set_index(label_keys[matched])
    rows = kept_keys.get_indexer(on_history.index)
    for column in (TX_FRAUD, LABEL_RECEIVED_AT, LABEL_KNOWN_AT):
        kept.loc[rows, column] = on_history[column].to_numpy()
    columns = [c for c in LOG_COLUMNS if c in kept.columns or c in scored.columns]
    if not _has_coordinates(kept) and not scored[list(COORDINATE_COLUMNS)].notna().any().any():
        columns = [c for c in columns if c not in COORDINATE_COLUMNS]  # none carried: leave them to side tables
    table = _union(kept.reindex(columns=columns), scored.reindex(columns=columns))
    counts = JoinCounts(
        rows=len(table),
        rows_history=len(kept),
        rows_log=len(scored),
        duplicates=int(in_log.sum()),
        labels_log=int(log[TX_FRAUD].notna().sum()),
        labels_on_history=int(matched.sum()),
        labels_unmatched=int((~matched).sum()),
    )
    return table, counts


def _has_coordinates(frame: pd.DataFrame) -> bool:
    return all(c in frame.columns for c in COORDINATE_COLUMNS) and bool(
        frame[list(COORDINATE_COLUMNS)].notna().any().any()
    )


def _union(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The rows of both; each id column int64 when all its ids are integers, else text."""
    keys = {c: np.r_[canonical_ids(first[c], c), canonical_ids(second[c], c)] for c in ID_COLUMNS}
    both = pd.concat([first.drop(columns=list(ID_COLUMNS)), second.drop(columns=list(ID_COLUMNS))], ignore_index=True)
    for c in ID_COLUMNS:
        both[c] = id_array(keys[c])
    dtypes = {c: t for c, t in BESIDE_DTYPES.items() if c in both.columns} | {TX_FRAUD: "Int8"}
    return both.astype(dtypes)[list(first.columns)]


@dataclass(frozen=True)
class ServiceLogSource:
    """The log's table (live, or its snapshot file) joined with the history; the history's side tables."""

    log: Source
    history: Source | None = None
    history_config: SourceConfig | None = None
    kind: str = "service_log"

    @classmethod
    def from_config(cls, config: ServiceLogConfig) -> ServiceLogSource:
        """Reading the live log (tests, a look before `fraudpipe snapshot`)."""
        return cls(ServiceLogTable.from_config(config), *_history(config))

    @classmethod
    def from_snapshot(cls, config: ServiceLogConfig) -> ServiceLogSource:
        """Reading the log's snapshot, as `ingest` does."""
        snapshot = ParquetSource(
            Path(config.snapshot),
            label="service_log snapshot",
            missing_hint="Run `fraudpipe snapshot` to copy the service's log into it (and `dvc add` it), "
            "or `dvc pull` it.",
        )
        return cls(snapshot, *_history(config))

    @cached_property
    def _joined(self) -> tuple[pd.DataFrame, JoinCounts]:
        log = self.log.read()
        history = None
        if self.history is not None and self.history_config is not None:
            history = history_frame(self.history, self.history_config, "service_log history")
        return join_history(log, history)

    def read(self) -> pd.DataFrame:
        return self._joined[0]

    @property
    def counts(self) -> JoinCounts:
        return self._joined[1]

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return self.history.side_tables() if self.history is not None else {}


def _history(config: ServiceLogConfig) -> tuple[Source | None, SourceConfig | None]:
    history = config.history
    if history is None:
        return None, None
    makers = {
        "simulated": SimulatedSource.from_config,
        "csv": CsvSource.from_config,
        "parquet": ParquetSource.from_config,
    }
    return makers[history.source](history), history  # type: ignore[operator]
