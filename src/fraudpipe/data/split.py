"""Time-based split into train / delay / test / live periods, and prequential folds.

Periods are whole calendar days at midnight boundaries, half-open: train is
[train_start, train_start + train_days), delay follows, then test, then live (``live_days`` days,
or everything after the test period). Placed by calendar (``train_start`` a date, the handbook's
protocol: ``split=handbook``) or from the end of the data (``train_start`` null, ``split=relative``:
the last ``live_days`` days are live, the test period ends where they begin, the delay and the
training period come before it, so no date is typed for a new dataset). A transaction at exactly
midnight between two periods belongs to the later one. Rows before train_start are in no part: they are history that the
features (computed before the split) have already used, and they never reach a model.

The delay period is unused by training and testing: labels arrive about a week after the
transaction, so a model trained up to day t can only be tested from t + delay on (the handbook, ch. 3).

Removing known compromised cards follows the handbook: with day indices counted from
train_start (train = days 0..train_days-1), on test day T a card (customer_id) is dropped when it
had a fraud on any day in [0, T - delay_days - 1]. On the first test day,
T = train_days + delay_days, that is exactly the frauds of the training period; each later test
day adds one more day of labels. Those cards would already be blocked in production, so keeping
them would make the test easier than reality. Cards are matched by their id as an opaque key
(int64 or text, "007" and "7" being two cards).

Labels as of a time. A table that records when each label arrived (``label_known_at``, on the
transactions' time axis: the service's log, ``data=service_log``) is split as of its own time, the
newest transaction in it, which is when a retrain on it runs. A model trained on the training
period is deployed at the test start (the end of training plus the delay), so a training label is
used only if it had arrived by then (``label_known_at <= test_start``); one that came later is, as of
that cut-off, unknown. The test period is judged with every label that had arrived by the table's
end. A row without a label is unlabelled, never genuine: it leaves the train and test parts
(counted in the summary's ``rows_train_unlabelled`` / ``rows_test_unlabelled``, written only for
such tables), and a label whose arrival is not recorded (NaT: a batch history, or a service snapshot
older than its log) counts as known, as in any batch source. Every other table keeps the rule that
the train and test periods are fully labelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field

from fraudpipe.config import Config, IsoText
from fraudpipe.contract import CUSTOMER_ID, LABEL_KNOWN_AT, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.errors import DataError
from fraudpipe.io import read_parquet

DAY = pd.Timedelta(days=1)


def _midnight(value: str) -> str:
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ValueError("must be a date (YYYY-MM-DD)") from None
    if ts is pd.NaT or ts != ts.normalize() or ts.tz is not None:
        raise ValueError("must be a date (midnight, no time zone)")
    return value


class SplitConfig(Config):
    """conf/split/: the periods in whole days, from ``train_start`` or (null) from the end of the data;
    ``live_days`` null = all that follows the test period (none, counted from the end)."""

    train_start: Annotated[IsoText, AfterValidator(_midnight)] | None
    train_days: int = Field(ge=1)
    delay_days: int = Field(ge=0)
    test_days: int = Field(ge=1)
    live_days: Annotated[int, Field(ge=0)] | None
    remove_known_compromised: bool
    n_folds: int = Field(ge=1)


@dataclass(frozen=True)
class Periods:
    """The boundaries of one train/delay/test/live block (half-open; live_end None = open)."""

    train_start: pd.Timestamp
    delay_start: pd.Timestamp
    test_start: pd.Timestamp
    live_start: pd.Timestamp
    live_end: pd.Timestamp | None


def periods(config: SplitConfig, last_time: pd.Timestamp | None, *, shift_days: int = 0) -> Periods:
    """The configured boundaries moved ``shift_days`` days earlier; the one place they are computed,
    so a stage that needs the test start (history for the online state) does not re-derive it.
    ``last_time`` is the data's latest transaction time, which places a relative split."""
    if config.train_start is not None:
        start = pd.Timestamp(config.train_start)
    elif last_time is None or pd.isna(last_time):
        raise DataError("a relative split (split.train_start null) needs data to count back from; the table is empty")
    else:
        data_end = pd.Timestamp(last_time).normalize() + DAY
        test_end = data_end - (config.live_days or 0) * DAY
        start = test_end - (config.test_days + config.delay_days + config.train_days) * DAY
    start = start - shift_days * DAY
    delay_start = start + config.train_days * DAY
    test_start = delay_start + config.delay_days * DAY
    live_start = test_start + config.test_days * DAY
    live_end = None if config.live_days is None else live_start + config.live_days * DAY
    return Periods(start, delay_start, test_start, live_start, live_end)


@dataclass(frozen=True)
class SplitParts:
    """One train/delay/test/live block; bounds are half-open [start, end) and live_end None = open."""

    train: pd.DataFrame
    delay: pd.DataFrame
    test: pd.DataFrame
    live: pd.DataFrame
    train_start: pd.Timestamp
    delay_start: pd.Timestamp
    test_start: pd.Timestamp
    live_start: pd.Timestamp
    live_end: pd.Timestamp | None
    #: Test rows dropped as known compromised cards (0 when the removal is off).
    test_rows_removed: int = 0
    test_frauds_removed: int = 0
    #: Train / test rows left out for want of a label as of their cut-off (None: the table does not
    #: record when labels arrived, and its train and test periods are fully labelled).
    train_rows_unlabelled: int | None = None
    test_rows_unlabelled: int | None = None


def _between(table: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DataFrame:
    """The rows in [start, end), in the table's order: a slice of a table in time order (the feature
    table is), which copies nothing until written, else a mask."""
    ts = table[TX_DATETIME]
    if ts.is_monotonic_increasing:
        first = int(ts.searchsorted(start, side="left"))
        last = len(ts) if end is None else int(ts.searchsorted(end, side="left"))
        return table.iloc[first:last].reset_index(drop=True)
    mask = ts >= start if end is None else (ts >= start) & (ts < end)
    return table[mask.to_numpy()].reset_index(drop=True)


def _is_fraud(part: pd.DataFrame) -> np.ndarray:
    """Labelled frauds; an unlabelled (null) row is not a known fraud."""
    return part[TX_FRAUD].eq(1).fillna(False).to_numpy(dtype=bool)


def _frauds(part: pd.DataFrame) -> int:
    return int(_is_fraud(part).sum())


def labels_as_of(part: pd.DataFrame, cutoff: pd.Timestamp | None) -> tuple[pd.DataFrame, int]:
    """The rows of ``part`` with a label known by ``cutoff`` (None: by the table's end, i.e. every
    label it holds), and how many rows were left out unlabelled (see the module doc)."""
    known = part[TX_FRAUD].notna()
    if cutoff is not None:
        arrived = part[LABEL_KNOWN_AT]
        known = known & (arrived.isna() | (arrived <= cutoff))
    known = known.to_numpy(dtype=bool)
    return part[known].astype({TX_FRAUD: "int8"}).reset_index(drop=True), int((~known).sum())


def remove_known_compromised(
    labelled: pd.DataFrame, test: pd.DataFrame, *, since: pd.Timestamp, delay_days: int
) -> pd.DataFrame:
    """Test rows whose card had no fraud known on their day (the handbook's rule, see module doc).

    ``labelled`` holds the labelled transactions from which frauds become known: those at or
    after ``since`` (the training start) count, earlier ones are ignored. A fraud on day F is known
    on day T when F <= T - delay_days - 1.
    """
    history = labelled[(labelled[TX_DATETIME] >= since).to_numpy() & _is_fraud(labelled)]
    first_fraud_day = ((history[TX_DATETIME] - since) // DAY).groupby(history[CUSTOMER_ID].to_numpy()).min()
    test_day = ((test[TX_DATETIME] - since) // DAY).to_numpy()
    known_from = first_fraud_day.reindex(test[CUSTOMER_ID].to_numpy()).to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        known = known_from <= test_day - delay_days - 1  # NaN (never a fraud) compares False
    return test[~known].reset_index(drop=True)


def time_split(
    table: pd.DataFrame, config: SplitConfig, *, shift_days: int = 0, last_time: pd.Timestamp | None = None
) -> SplitParts:
    """The configured periods, all moved ``shift_days`` days earlier (0 = the configured split).

    Row order inside each part is the table's order. Train and test must hold rows, and labels:
    an empty or unlabelled period means the config does not match the data. ``last_time``: the
    data's latest time, when ``table`` was read without its last rows (`read_folds`); by default
    the table's own latest time, which places a relative split.
    """
    require_columns(table, (TX_DATETIME, CUSTOMER_ID, TX_FRAUD), "the feature table")
    bounds = periods(config, table[TX_DATETIME].max() if last_time is None else last_time, shift_days=shift_days)
    start, delay_start, test_start = bounds.train_start, bounds.delay_start, bounds.test_start
    live_start, live_end = bounds.live_start, bounds.live_end

    train = _between(table, start, delay_start)
    delay = _between(table, delay_start, test_start)
    test = _between(table, test_start, live_start)
    live = _between(table, live_start, live_end)
    unlabelled: dict[str, int | None] = {"train": None, "test": None}
    for name, part, begin, end in (("train", train, start, delay_start), ("test", test, test_start, live_start)):
        if part.empty:
            first, last = (table[TX_DATETIME].min(), table[TX_DATETIME].max()) if len(table) else (None, None)
            raise DataError(
                f"the {name} period [{begin.date()}, {end.date()}) holds no transactions; "
                f"data covers {first} .. {last}; check split.train_start (null: counted back from the end of the "
                "data with split.live_days, test_days, delay_days, train_days) and split.n_folds (this fold is "
                f"shifted {shift_days} days)"
            )
        if LABEL_KNOWN_AT in table.columns:
            cutoff = test_start if name == "train" else None
            labelled, unlabelled[name] = labels_as_of(part, cutoff)
            if labelled.empty:
                as_of = f"by {cutoff} (the test start: labels arrive by then to train on)" if cutoff else "yet"
                raise DataError(
                    f"the {name} period [{begin.date()}, {end.date()}) has {len(part):,} rows and no label arrived "
                    f"{as_of}; move the periods back (split.live_days, or split.train_start) or wait for labels"
                )
            train, test = (labelled, test) if name == "train" else (train, labelled)
            continue
        missing = int(part[TX_FRAUD].isna().sum())
        if missing:
            raise DataError(
                f"the {name} period [{begin.date()}, {end.date()}) has {missing} rows with no {TX_FRAUD}; "
                "unlabelled rows belong to the live period (split.live_days), or set preprocess.missing.tx_fraud: "
                "drop to quarantine them (data/quarantine/preprocess.parquet)"
            )

    kept = test
    if config.remove_known_compromised:
        kept = remove_known_compromised(table, test, since=start, delay_days=config.delay_days)
    return SplitParts(
        train=train,
        delay=delay,
        test=kept,
        live=live,
        train_start=start,
        delay_start=delay_start,
        test_start=test_start,
        live_start=live_start,
        live_end=live_end,
        test_rows_removed=len(test) - len(kept),
        test_frauds_removed=_frauds(test) - _frauds(kept),
        train_rows_unlabelled=unlabelled["train"],
        test_rows_unlabelled=unlabelled["test"],
    )


def _first_train_start(path: str | Path, config: SplitConfig, n_folds: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The data's latest time (read from one column) and the earliest fold's training start."""
    last_time = read_parquet(path, columns=[TX_DATETIME])[TX_DATETIME].max()
    return last_time, periods(config, last_time, shift_days=(n_folds - 1) * config.test_days).train_start


def read_periods(path: str | Path, config: SplitConfig, n_folds: int = 1) -> pd.DataFrame:
    """The rows of a feature table that `time_split` (``n_folds`` = 1) or `prequential_folds` can
    use: those from the earliest fold's training start on. Read with a Parquet filter, so the months
    before it are neither decoded nor held (most of a long history, and most of split's memory)."""
    _, start = _first_train_start(path, config, n_folds)
    return read_parquet(path, filters=[(TX_DATETIME, ">=", start)])


def read_folds(path: str | Path, config: SplitConfig) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The rows the prequential folds train and test on, and the data's latest time (pass it to
    `iter_folds`: it places a relative split). As `read_periods` with ``config.n_folds``, without
    the rows from fold 0's live start on, which no fold trains or tests on: the open live period
    is most of the data a backtest would otherwise read, and each fold would copy it."""
    last_time, start = _first_train_start(path, config, config.n_folds)
    end = periods(config, last_time).live_start
    return read_parquet(path, filters=[(TX_DATETIME, ">=", start), (TX_DATETIME, "<", end)]), last_time


def prequential_folds(table: pd.DataFrame, config: SplitConfig) -> list[SplitParts]:
    """``n_folds`` blocks, fold k shifted back k * test_days days (fold 0 = the configured split).

    Consecutive folds' test periods are adjacent and never overlap; their train periods may
    overlap other folds' test periods, as in the handbook's prequential validation. A fold's live
    part is whatever follows its own test period.
    """
    return list(iter_folds(table, config))


def iter_folds(table: pd.DataFrame, config: SplitConfig, last_time: pd.Timestamp | None = None) -> Iterator[SplitParts]:
    """`prequential_folds` one at a time: a consumer that drops each fold before the next holds one
    fold's parts in memory, not ``n_folds`` (each with its live part, the rest of the data).
    ``last_time`` as in `time_split`, for a table from `read_folds`."""
    for k in range(config.n_folds):
        yield time_split(table, config, shift_days=k * config.test_days, last_time=last_time)


def split_summary(parts: SplitParts) -> dict[str, int]:
    """Flat numeric metrics: rows and frauds per part, and what the known-card removal took out."""
    summary: dict[str, int] = {}
    for name in ("train", "delay", "test", "live"):
        part = getattr(parts, name)
        summary[f"rows_{name}"] = len(part)
        summary[f"frauds_{name}"] = _frauds(part)
    summary["test_rows_removed_known_frauds"] = parts.test_rows_removed
    summary["test_frauds_removed_known_frauds"] = parts.test_frauds_removed
    for name in ("train", "test"):
        left_out = getattr(parts, f"{name}_rows_unlabelled")
        if left_out is not None:  # only a table that records when labels arrived
            summary[f"rows_{name}_unlabelled"] = left_out
    return summary
