"""Online features: the state a real-time scorer keeps to featurize one transaction at a time.

The definitions are those of ``fraudpipe.features.definitions`` (its docstring fixes windows, order and
ties); this module re-derives the windows from per-key histories with ``bisect`` instead of
sorted composites, and shares only the per-value formulas, so a parity test comparing the two
paths checks the windows independently.

What is kept: per customer, its transactions (time, amount, terminal) and per terminal its
transactions, for the last ``config.retention_days`` before the newest transaction seen; older
ones can no longer change any feature. Labels are stored when they arrive (``update`` or
``label``) but a terminal window only ever reaches transactions older than the delay, so a
label counts only once its transaction is older than ``delay_days``. Transactions are expected
in time order; same-second transactions are ordered by arrival (offline: by transaction_id,
which is the same order when a scorer receives them in table order).

Keys. Every id (transaction, customer, terminal) is kept under ``contract.canonical_id``, so an id
sent as text or as an integer finds the same history ("7" and 7 are one card, "007" another).

Locations (the distance feature only): the last known coordinates per customer and per terminal,
from the side tables, then from every transaction that carries its own (``update``, or rows of
``from_history``), never pruned. A transaction's own coordinates, when given, are used for its
distance; otherwise the last known ones of its customer (terminal); otherwise a DataError.

Lateness (``late_days``, 0 by default): a state that also accepts transactions arriving up to that
many days after newer ones keeps ``retention_days + late_days`` of history, so that the windows of
a late transaction are still complete; ``earliest_exact`` says from when on that holds.

One place for the feature math: ``history_features`` computes a transaction's features from a
``History`` (its customer's and terminal's retained transactions, the frauds among the
terminal's, the last known locations). ``OnlineState.features`` passes it views of its own dictionaries; a
shared store (the service's Redis store) fetches the same histories and calls the same function.

The snapshot written by ``save`` is Parquet + JSON (no pickle): the retained transactions (id
columns int64 when every id is a canonical integer, else text, as in the contract), the known
locations (``customers.parquet``/``terminals.parquet``: id, x, y) when a feature uses them, and
the config (and ``complete_since`` when it holds more than the retention window).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import mul
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    CUSTOMER_ID,
    DATETIME_DTYPE,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    canonical_id,
    canonical_ids,
    epoch_seconds,
    id_array,
    id_codes,
    id_is_text,
)
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features.definitions import (
    AMOUNT_RATIO,
    AMOUNT_ZSCORE,
    COORDINATES,
    CUSTOMER_TERMINAL_DISTANCE,
    LOCATION_COLUMNS,
    NB_TERMINALS,
    SECONDS_SINCE_PREV_TX,
    FeatureConfig,
    amount_ratio,
    amount_zscore,
    calendar_flags,
    check_location_table,
    check_transactions,
    distance,
    feature_names,
    split_cents,
    transaction_locations,
    window_mean,
)
from fraudpipe.io import read_parquet, write_json, write_parquet
from fraudpipe.progress import progress

FORMAT_VERSION = 1
STATE_FILE, HISTORY_FILE = "state.json", "history.parquet"
LOCATION_FILES = {CUSTOMER_ID: "customers.parquet", TERMINAL_ID: "terminals.parquet"}


def to_epoch_second(value: Any) -> int:
    """Whole epoch seconds of a datetime-like, as ``contract.epoch_seconds`` (tz-aware: via UTC)."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise DataError(f"{TX_DATETIME} is missing")
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(epoch_seconds(np.array([ts.to_datetime64()]))[0])


class CustomerHistory:
    """One customer's retained transactions in time order (same second: arrival order).

    ``history_features`` reads ``times``, ``cents``, ``residuals`` (the amount as exact cents and a
    sub-cent residual, ``features.split_cents``) and ``terminals``; the rest is for bookkeeping.
    """

    __slots__ = ("amounts", "cents", "residuals", "seqs", "terminals", "tids", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.seqs: list[int] = []
        self.tids: list[str] = []
        self.amounts: list[float] = []
        self.cents: list[int] = []
        self.residuals: list[float] = []
        self.terminals: list[str] = []

    def insert(self, t: int, seq: int, tid: str, amount: float, terminal: str) -> None:
        i = bisect_right(self.times, t)  # after same-second ones: arrival order
        cents, residual = split_cents(amount)
        for lst, v in zip(
            (self.times, self.seqs, self.tids, self.amounts, self.cents, self.residuals, self.terminals),
            (t, seq, tid, amount, int(cents), float(residual), terminal),
        ):
            lst.insert(i, v)

    def drop_until(self, horizon: int) -> list[str]:
        """Forget the transactions at or before ``horizon``; returns their ids."""
        k = bisect_right(self.times, horizon)
        dropped = self.tids[:k]
        for name in self.__slots__:
            del getattr(self, name)[:k]
        return dropped


class TerminalHistory:
    """One terminal's retained transactions in time order: ``times``, ``tids`` and ``frauds`` (1 for
    a transaction labelled fraud, else 0: unknown counts as genuine), which a label that arrives
    later sets in place; the frauds sit beside the times so a window sums a slice."""

    __slots__ = ("frauds", "tids", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.tids: list[str] = []
        self.frauds: list[int] = []

    def insert(self, t: int, tid: str, fraud: int = 0) -> None:
        i = bisect_right(self.times, t)
        self.times.insert(i, t)
        self.tids.insert(i, tid)
        self.frauds.insert(i, fraud)

    def set_fraud(self, tid: str, fraud: int) -> None:
        self.frauds[self.tids.index(tid)] = fraud

    def drop_until(self, horizon: int) -> None:
        k = bisect_right(self.times, horizon)
        del self.times[:k], self.tids[:k], self.frauds[:k]


_NO_CUSTOMER, _NO_TERMINAL = CustomerHistory(), TerminalHistory()  # a cold start reads these; never written


@dataclass(frozen=True, slots=True)
class History:
    """What the features of one new transaction read (``history_features``).

    ``customer`` and ``terminal`` may hold more than the windows need (the whole retained history,
    or just the window that a store fetched): every window is found by bisection on ``times``.
    ``customer_xy``/``terminal_xy``: the last known locations (distance feature only).
    """

    customer_id: str  # the keys (``contract.canonical_id``), for messages
    terminal_id: str
    customer: CustomerHistory
    terminal: TerminalHistory
    customer_xy: tuple[float, float] | None = None
    terminal_xy: tuple[float, float] | None = None


def _location_map(table: pd.DataFrame, key: str) -> dict[str, tuple[float, float]]:
    ids, x, y = canonical_ids(table[key], key), table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    return {i: (float(a), float(b)) for i, a, b in zip(ids, x.tolist(), y.tolist())}


def _given_location(key: str, x: Any, y: Any) -> tuple[float, float] | None:
    """A transaction's own coordinates of one side, or None when it carries none (absent or NaN)."""
    names = COORDINATES[key]
    missing = [v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) for v in (x, y)]
    if all(missing):
        return None
    if any(missing):
        raise DataError(f"{names[0]} and {names[1]} come in pairs: got {names[0]}={x!r}, {names[1]}={y!r}")
    try:
        xy = (float(x), float(y))
    except (TypeError, ValueError):
        raise DataError(f"{names[0]}, {names[1]} must be numbers, got {x!r}, {y!r}") from None
    if not all(map(math.isfinite, xy)):
        raise DataError(f"{names[0]}, {names[1]} must be finite, got {x!r}, {y!r}")
    return xy


@dataclass(frozen=True)
class _Plan:
    """What ``history_features`` needs of a config, worked out once per config."""

    customer_horizons: tuple[int, ...]  # seconds of each distinct customer window, shortest first
    customer_at: tuple[int, ...]  # each of config.customer_windows: its place in customer_horizons
    extra_at: tuple[int, ...]  # each of config.extra_windows (when a windowed extra is asked for): the same
    terminal_bounds: tuple[tuple[int, int], ...]  # (days, seconds back to the window's start), shortest first
    delay: int  # seconds
    ratio: bool
    zscore: bool
    distinct: bool
    gap_cap: int | None  # seconds_since_prev_tx's cap, or None when not asked for
    locations: bool


@lru_cache(maxsize=32)
def _plan(config: FeatureConfig) -> _Plan:
    days = sorted(dict.fromkeys(config.customer_windows + config.customer_extra_windows))
    return _Plan(
        customer_horizons=tuple(n * SECONDS_PER_DAY for n in days),
        customer_at=tuple(days.index(n) for n in config.customer_windows),
        extra_at=tuple(days.index(n) for n in config.customer_extra_windows),
        terminal_bounds=tuple((n, (config.delay_days + n) * SECONDS_PER_DAY) for n in sorted(config.terminal_windows)),
        delay=config.delay_days * SECONDS_PER_DAY,
        ratio=AMOUNT_RATIO in config.extras,
        zscore=AMOUNT_ZSCORE in config.extras,
        distinct=NB_TERMINALS in config.extras,
        gap_cap=config.customer_horizon_days * SECONDS_PER_DAY if SECONDS_SINCE_PREV_TX in config.extras else None,
        locations=config.needs_locations,
    )


def history_features(
    config: FeatureConfig,
    history: History,
    t: int,
    amount: float,
    coordinates: Sequence[Any] = (None, None, None, None),
) -> np.ndarray:
    """The feature vector (float64, ``feature_names(config)`` order) of a new transaction at epoch
    second ``t`` of ``amount`` (finite), from its customer's and terminal's history: the one place
    the online features are computed. ``coordinates`` are the transaction's own customer_x,
    customer_y, terminal_x, terminal_y (None or NaN: not carried; the last known ones count).

    Values are appended in ``feature_names`` order (amount, calendar flags, customer windows,
    terminal windows, then the extras in ``features.EXTRAS`` order)."""
    plan = _plan(config)
    cents, residual = (v.item() for v in split_cents(amount))
    weekend, night = calendar_flags(np.array([t]))
    out: list[Any] = [amount, weekend.item(), night.item()]

    # Customer windows (t - n days, t] all end at t, so they nest: one pass from the shortest to the
    # longest adds each older slice once (integer cents are exact in any order).
    c = history.customer
    times, all_cents, all_residuals, all_terminals = c.times, c.cents, c.residuals, c.terminals
    end = bisect_right(times, t)  # known transactions up to and including second t
    zscore, distinct = plan.zscore, plan.distinct
    s1, s_res, s2, prev, seen = cents, residual, cents * cents, end, {history.terminal_id}
    counts, sums, residuals, squares, terminals = [], [], [], [], []
    for horizon in plan.customer_horizons:
        start = bisect_right(times, t - horizon, 0, prev)
        older = all_cents[start:prev]
        s1 += sum(older)
        s_res += sum(all_residuals[start:prev])
        if zscore:
            s2 += sum(map(mul, older, older))
        if distinct:
            seen.update(all_terminals[start:prev])
        (
            counts.append(end - start + 1),
            sums.append(s1),
            residuals.append(s_res),
            squares.append(s2),
            terminals.append(len(seen)),
        )
        prev = start
    count = np.array(counts, dtype=np.int64)
    means = window_mean(np.array(sums, dtype=np.int64), np.array(residuals), count).tolist()
    for i in plan.customer_at:
        out += (counts[i], means[i])

    # Terminal windows (t - d - n days, t - d] all end at t - d: the same single pass over frauds.
    term = history.terminal
    stop = bisect_right(term.times, t - plan.delay)
    frauds, prev, windows = 0, stop, {}
    for n, bound in plan.terminal_bounds:
        start = bisect_right(term.times, t - bound, 0, prev)
        frauds += sum(term.frauds[start:prev])
        prev = start
        windows[n] = (stop - start, frauds / (stop - start) if stop > start else 0.0)
    for n in config.terminal_windows:
        out += windows[n]

    extra = plan.extra_at  # empty when no windowed extra is asked for
    if extra and plan.ratio:
        out += amount_ratio(amount, np.array([means[i] for i in extra])).tolist()
    if extra and zscore:
        out += amount_zscore(
            cents,
            np.array([sums[i] for i in extra], dtype=np.int64),
            np.array([squares[i] for i in extra], dtype=np.int64),
            count[list(extra)],
        ).tolist()
    if extra and distinct:
        out += [terminals[i] for i in extra]
    if plan.gap_cap is not None:
        out.append(min(t - times[end - 1], plan.gap_cap) if end else plan.gap_cap)
    if plan.locations:
        cx, cy, tx_, ty = coordinates
        cx, cy = _resolve_location(
            CUSTOMER_ID, history.customer_id, _given_location(CUSTOMER_ID, cx, cy), history.customer_xy
        )
        tx_, ty = _resolve_location(
            TERMINAL_ID, history.terminal_id, _given_location(TERMINAL_ID, tx_, ty), history.terminal_xy
        )
        out.append(float(distance(cx, cy, tx_, ty)))
    return np.array(out, dtype=np.float64)


def _resolve_location(
    key: str, known_id: str, given: tuple[float, float] | None, known: tuple[float, float] | None
) -> tuple[float, float]:
    """The transaction's own coordinates of one side, else the last known ones of the id."""
    if given is not None:
        return given
    if known is not None:
        return known
    names = ", ".join(COORDINATES[key])
    raise DataError(
        f"{key} {known_id} has no location: the transaction carries no {names} and none is known from history, "
        f"so {CUSTOMER_TERMINAL_DISTANCE} cannot be computed"
    )


def _keyed(ids: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, keys): each row's code and each code's ``canonical_id``, so ``keys[codes]`` are the rows' keys."""
    id_is_text(ids, column)  # int64 or text, nothing else
    codes, uniques = pd.factorize(ids)
    return codes.astype(np.int64, copy=False), canonical_ids(pd.Series(uniques, dtype=ids.dtype), column)


def history_since(
    config: FeatureConfig, times: pd.Series, until: pd.Timestamp, *, late_days: int = 0
) -> pd.Timestamp | None:
    """The earliest transaction time that ``OnlineState.from_history`` of the rows before ``until``
    keeps (the retention back from the last of them), so that a caller reads only those rows of a
    long history; None when every row counts (the distance feature remembers each id's last
    location, however old)."""
    before = times[(times < until).to_numpy()]
    if config.needs_locations or before.empty:
        return None
    return before.max().floor("s") - pd.Timedelta(seconds=(config.retention_days + late_days) * SECONDS_PER_DAY)


def _history_table(
    tid: np.ndarray,
    t: np.ndarray,
    customer: np.ndarray,
    terminal: np.ndarray,
    amount: np.ndarray,
    fraud: pd.api.extensions.ExtensionArray,
) -> pd.DataFrame:
    """A snapshot's history in the transaction contract, from keys (``canonical_id``), epoch seconds,
    amounts and nullable labels in arrival order (each id column int64 when all its ids are
    canonical integers, else text)."""
    return pd.DataFrame(
        {
            TRANSACTION_ID: id_array(tid),
            TX_DATETIME: t.astype("datetime64[s]").astype(DATETIME_DTYPE),
            CUSTOMER_ID: id_array(customer),
            TERMINAL_ID: id_array(terminal),
            TX_AMOUNT: amount,
            TX_FRAUD: fraud,
        }
    )


class OnlineState:
    """Per-customer and per-terminal recent transactions (+ labels) for one-transaction features.

    ``customers``/``terminals`` (id, x, y) are the side tables of locations, when the source has
    them; with the distance feature and transactions that carry no coordinates they are needed.
    ``late_days``: how late a transaction may arrive and still be featurized exactly (see the
    module docstring); the history kept grows by as many days.
    """

    def __init__(
        self,
        config: FeatureConfig,
        customers: pd.DataFrame | None = None,
        terminals: pd.DataFrame | None = None,
        *,
        late_days: int = 0,
    ) -> None:
        if late_days < 0:
            raise ConfigError(f"late_days must be >= 0, got {late_days}")
        self.config = config
        self.late_days = late_days
        self._kept_seconds = (config.retention_days + late_days) * SECONDS_PER_DAY
        self.feature_names: list[str] = feature_names(config)
        self._customers: dict[str, CustomerHistory] = {}
        self._terminals: dict[str, TerminalHistory] = {}
        self._labels: dict[str, int | None] = {}  # every retained transaction_id -> its label (None: unknown)
        self._terminal_of: dict[str, str] = {}  # every retained transaction_id -> its terminal (for labels)
        self._seq = 0
        self._now: int | None = None
        self._pruned_at: int | None = None
        self._complete_since: int | None = None  # every transaction seen after this second is kept (None: all)
        #: the last known (x, y) per customer_id and per terminal_id key; only with the distance feature
        self._xy: dict[str, dict[str, tuple[float, float]]] = {}
        if config.needs_locations:
            for key, table, what in ((CUSTOMER_ID, customers, "customer"), (TERMINAL_ID, terminals, "terminal")):
                self._xy[key] = {} if table is None else _location_map(check_location_table(table, key, what), key)

    # --- building --------------------------------------------------------------------------

    @classmethod
    def from_history(
        cls,
        tx: pd.DataFrame,
        config: FeatureConfig,
        customers: pd.DataFrame | None = None,
        terminals: pd.DataFrame | None = None,
        *,
        late_days: int = 0,
    ) -> OnlineState:
        """The state after seeing ``tx`` (sorted by tx_datetime, transaction_id) with its labels
        (and the coordinates it carries, if any)."""
        seconds = check_transactions(tx)
        state = cls(config, customers, terminals, late_days=late_days)
        state._learn_locations(tx, customers, terminals)
        state._add_rows(tx, seconds)
        return state

    @classmethod
    def save_history(
        cls,
        tx: pd.DataFrame,
        config: FeatureConfig,
        directory: str | Path,
        customers: pd.DataFrame | None = None,
        terminals: pd.DataFrame | None = None,
    ) -> pd.Timestamp | None:
        """Write the snapshot that ``from_history(tx, config, customers, terminals).save(directory)``
        writes, file for file, without building the per-key Python history in between (featurize
        saves the state and never scores with it: a fraction of the time, and of the memory at 10
        million rows). Returns its ``as_of``."""
        seconds = check_transactions(tx)
        if not len(tx):
            state = cls.from_history(tx, config, customers, terminals)
            state.save(directory)
            return state.as_of
        state = cls(config, customers, terminals)
        state._learn_locations(tx, customers, terminals)
        now = int(seconds.max())
        keep = seconds > now - state._kept_seconds  # as `_add_rows` keeps; `prune` then forgets nothing more
        kept = tx[keep]
        state._now = state._pruned_at = now
        state._complete_since = now - state._kept_seconds
        fraud = kept[TX_FRAUD].astype("Int8").array if TX_FRAUD in kept else pd.array([None] * len(kept), dtype="Int8")
        ids = {c: canonical_ids(kept[c], c) for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)}
        # tx is in arrival order (check_transactions), which is the order `history` restores
        state._write(
            directory,
            _history_table(
                ids[TRANSACTION_ID],
                seconds[keep],
                ids[CUSTOMER_ID],
                ids[TERMINAL_ID],
                kept[TX_AMOUNT].to_numpy(np.float64),
                fraud,
            ),
        )
        return state.as_of

    def _learn_locations(
        self, tx: pd.DataFrame, customers: pd.DataFrame | None, terminals: pd.DataFrame | None
    ) -> None:
        """Each row's location, as offline (and with its errors); the last per id stays known."""
        if not self.config.needs_locations:
            return
        for key, table in ((CUSTOMER_ID, customers), (TERMINAL_ID, terminals)):
            codes = id_codes(tx[key], key)
            x, y = transaction_locations(tx, key, table, codes)
            _, from_end = np.unique(codes[::-1], return_index=True)
            last = len(codes) - 1 - from_end  # each id's last row
            ids = canonical_ids(tx[key].iloc[last], key)
            self._xy[key].update(zip(ids.tolist(), zip(x[last].tolist(), y[last].tolist())))

    def _add_rows(self, tx: pd.DataFrame, seconds: np.ndarray) -> None:
        """Fill an empty state with rows in arrival order, in bulk (``update`` is the one-by-one path)."""
        assert not self._labels, "bulk load is for an empty state"
        if not len(tx):
            return
        now = int(seconds.max())
        keep = seconds > now - self._kept_seconds
        t = seconds[keep]
        tx = tx[keep]
        tid = canonical_ids(tx[TRANSACTION_ID], TRANSACTION_ID)
        (customer, customer_keys), (terminal, terminal_keys) = (_keyed(tx[c], c) for c in (CUSTOMER_ID, TERMINAL_ID))
        amount = tx[TX_AMOUNT].to_numpy(np.float64)
        if TX_FRAUD in tx:
            labels = tx[TX_FRAUD].astype("Int8")
            fraud = [None if na else int(f) for f, na in zip(labels.fillna(0).tolist(), labels.isna().tolist())]
            frauds = (labels.fillna(0).to_numpy(np.int64) == 1).astype(np.int64)
        else:
            fraud, frauds = [None] * len(t), np.zeros(len(t), dtype=np.int64)
        seq = self._seq + np.arange(len(t))
        self._seq += len(t)
        cents, residual = split_cents(amount)
        self._labels.update(zip(tid.tolist(), fraud))
        self._terminal_of.update(zip(tid.tolist(), terminal_keys[terminal].tolist()))
        groups = (
            (customer, customer_keys, self._customers, CustomerHistory, "customers"),
            (terminal, terminal_keys, self._terminals, TerminalHistory, "terminals"),
        )
        for codes, keys, store, make, what in groups:
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            for rows in progress(
                np.split(order, bounds) if len(order) else [], desc=f"online state: {what}", unit=what[:-1]
            ):
                h = store.setdefault(keys[codes[rows[0]]], make())
                h.times += t[rows].tolist()
                h.tids += tid[rows].tolist()
                if isinstance(h, TerminalHistory):
                    h.frauds += frauds[rows].tolist()
                else:
                    h.seqs += seq[rows].tolist()
                    h.amounts += amount[rows].tolist()
                    h.cents += cents[rows].tolist()
                    h.residuals += residual[rows].tolist()
                    h.terminals += terminal_keys[terminal[rows]].tolist()
        self._now = now
        self._pruned_at = now
        self._complete_since = now - self._kept_seconds

    # --- serving ---------------------------------------------------------------------------

    def features(
        self,
        customer_id: int | str,
        terminal_id: int | str,
        tx_datetime: Any,
        tx_amount: float,
        *,
        customer_x: float | None = None,
        customer_y: float | None = None,
        terminal_x: float | None = None,
        terminal_y: float | None = None,
    ) -> np.ndarray:
        """The feature vector (float64, ``feature_names`` order) of a new transaction, not yet added.

        Ids are keys (``contract.canonical_id``). The coordinates are the transaction's own, for the
        distance feature; without them (None or NaN) the last known ones of its customer / terminal count.
        """
        t, amount = to_epoch_second(tx_datetime), float(tx_amount)
        if not math.isfinite(amount):
            raise DataError(f"{TX_AMOUNT} must be a finite number, got {tx_amount!r}")
        history = self.lookup(canonical_id(customer_id), canonical_id(terminal_id))
        return history_features(self.config, history, t, amount, (customer_x, customer_y, terminal_x, terminal_y))

    def lookup(self, customer: str, terminal: str) -> History:
        """Views (not copies) of what the features of a transaction of these keys read; do not modify."""
        xy = self._xy
        return History(
            customer,
            terminal,
            self._customers.get(customer) or _NO_CUSTOMER,
            self._terminals.get(terminal) or _NO_TERMINAL,
            xy[CUSTOMER_ID].get(customer) if xy else None,
            xy[TERMINAL_ID].get(terminal) if xy else None,
        )

    def update(
        self,
        transaction_id: int | str,
        customer_id: int | str,
        terminal_id: int | str,
        tx_datetime: Any,
        tx_amount: float,
        tx_fraud: int | None = None,
        *,
        customer_x: float | None = None,
        customer_y: float | None = None,
        terminal_x: float | None = None,
        terminal_y: float | None = None,
    ) -> None:
        """Add a transaction (label optional). Re-sending a known transaction only sets its label.

        Coordinates it carries (distance feature only) become the last known ones of its customer / terminal.
        """
        t, amount = to_epoch_second(tx_datetime), float(tx_amount)
        if not math.isfinite(amount):
            raise DataError(f"{TX_AMOUNT} must be a finite number, got {tx_amount!r}")
        label = None if tx_fraud is None or pd.isna(tx_fraud) else int(tx_fraud)
        self.add(
            canonical_id(transaction_id),
            canonical_id(customer_id),
            canonical_id(terminal_id),
            t,
            amount,
            label,
            coordinates=(customer_x, customer_y, terminal_x, terminal_y),
        )

    def add(
        self,
        transaction_id: str,
        customer_id: str,
        terminal_id: str,
        t: int,
        amount: float,
        tx_fraud: int | None = None,
        *,
        coordinates: Sequence[Any] = (None, None, None, None),
    ) -> None:
        """``update`` with ids already keys and the time in epoch seconds (the service's path)."""
        tid, customer, terminal = transaction_id, customer_id, terminal_id
        if tid in self._labels:
            if tx_fraud is not None:
                self.label(tid, tx_fraud)
            return
        if self.config.needs_locations:  # both checked before the state changes
            cx, cy, tx_, ty = coordinates
            given = {
                (CUSTOMER_ID, customer): _given_location(CUSTOMER_ID, cx, cy),
                (TERMINAL_ID, terminal): _given_location(TERMINAL_ID, tx_, ty),
            }
            for (key, value), xy in given.items():
                if xy is not None:
                    self._xy[key][value] = xy
        self._labels[tid] = tx_fraud
        self._terminal_of[tid] = terminal
        self._customers.setdefault(customer, CustomerHistory()).insert(t, self._seq, tid, amount, terminal)
        self._terminals.setdefault(terminal, TerminalHistory()).insert(t, tid, int(tx_fraud == 1))
        self._seq += 1
        self._now = t if self._now is None else max(self._now, t)
        if self._pruned_at is None:
            self._pruned_at = self._now
        elif self._now - self._pruned_at >= SECONDS_PER_DAY:  # amortised: once a day of data
            self.prune()

    def label(self, transaction_id: int | str, tx_fraud: int) -> bool:
        """Record a label that arrived later; False when the transaction is not (or no longer) kept."""
        tid = canonical_id(transaction_id)
        if int(tx_fraud) not in (0, 1):
            raise DataError(f"{TX_FRAUD} must be 0 or 1, got {tx_fraud!r} (transaction_id {tid})")
        if tid not in self._labels:
            return False
        self._labels[tid] = int(tx_fraud)
        self._terminals[self._terminal_of[tid]].set_fraud(tid, int(tx_fraud))
        return True

    def prune(self) -> None:
        """Forget transactions too old to reach any window of a transaction at or after now."""
        if self._now is None:
            return
        horizon = self._now - self._kept_seconds
        for key in list(self._customers):  # every transaction is in one customer's history: forget it there
            h = self._customers[key]
            for tid in h.drop_until(horizon):
                del self._labels[tid], self._terminal_of[tid]
            if not h.times:
                del self._customers[key]
        for key in list(self._terminals):
            h = self._terminals[key]
            h.drop_until(horizon)
            if not h.times:
                del self._terminals[key]
        self._pruned_at = self._now
        self._complete_since = horizon if self._complete_since is None else max(self._complete_since, horizon)

    def knows(self, transaction_id: str) -> bool:
        """Whether a transaction (by its key, ``contract.canonical_id``) is in the retained history."""
        return transaction_id in self._labels

    def label_of(self, transaction_id: str) -> int | None:
        """A retained transaction's label (None: unknown)."""
        return self._labels[transaction_id]

    @property
    def earliest_exact(self) -> int | None:
        """The earliest epoch second a new transaction may have for every window of it to be complete:
        ``late_days`` before the newest transaction seen, or later while the history kept does not
        reach back that far (a snapshot kept without lateness). None while the state is empty."""
        if self._now is None:
            return None
        earliest = self._now - self.late_days * SECONDS_PER_DAY
        if self._complete_since is not None:
            earliest = max(earliest, self._complete_since + self.config.retention_days * SECONDS_PER_DAY)
        return earliest

    @property
    def complete_since(self) -> int | None:
        """Every transaction seen after this epoch second is kept (None: every one seen)."""
        return self._complete_since

    @property
    def pruned_at(self) -> int | None:
        """When (newest transaction time) the state last forgot old transactions."""
        return self._pruned_at

    def size(self) -> dict[str, int]:
        """How much is kept: transactions, customers, terminals."""
        return {"transactions": len(self._labels), "customers": len(self._customers), "terminals": len(self._terminals)}

    # --- snapshot ----------------------------------------------------------------------------

    @property
    def as_of(self) -> pd.Timestamp | None:
        """The newest transaction time seen."""
        return None if self._now is None else pd.Timestamp(self._now, unit="s")

    def history(self) -> pd.DataFrame:
        """The retained transactions in arrival order, in the transaction contract (tx_fraud nullable;
        each id column int64 when all its ids are canonical integers, else text)."""
        customers = list(self._customers.items())
        sizes = [len(h.times) for _, h in customers]
        t, seq = (
            np.fromiter(chain.from_iterable(getattr(h, a) for _, h in customers), np.int64, sum(sizes))
            for a in ("times", "seqs")
        )
        amount = np.fromiter(chain.from_iterable(h.amounts for _, h in customers), np.float64, sum(sizes))
        tid, terminal = (
            np.array(list(chain.from_iterable(getattr(h, a) for _, h in customers)), dtype=object)
            for a in ("tids", "terminals")
        )
        customer = np.repeat(np.array([key for key, _ in customers], dtype=object), sizes)
        order = np.lexsort((seq, t))  # arrival order: time, then the order of arrival within a second
        tid = tid[order]
        fraud = pd.array([self._labels[i] for i in tid.tolist()], dtype="Int8")
        return _history_table(tid, t[order], customer[order], terminal[order], amount[order], fraud)

    def known_locations(self) -> dict[str, pd.DataFrame]:
        """Per key (customer_id, terminal_id), the last known locations as a table (id, x, y) sorted by
        id (numbers, or text in code point order); empty when no feature uses locations."""
        tables = {}
        for key, known in self._xy.items():
            ids = id_array(list(known))
            xy = np.array(list(known.values()), dtype=np.float64).reshape(-1, 2)
            order = np.argsort(id_codes(pd.Series(ids), key, ordered=True), kind="stable")
            tables[key] = pd.DataFrame(
                {key: ids[order], LOCATION_COLUMNS[0]: xy[order, 0], LOCATION_COLUMNS[1]: xy[order, 1]}
            )
        return tables

    def save(self, directory: str | Path) -> None:
        """Write the snapshot into ``directory`` (wrap it in ``io.atomic_dir`` for an atomic swap)."""
        self.prune()
        self._write(directory, self.history())

    def _write(self, directory: str | Path, history: pd.DataFrame) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_parquet(history, directory / HISTORY_FILE)
        for key, table in self.known_locations().items():
            write_parquet(table, directory / LOCATION_FILES[key])
        write_json(
            {
                "format": FORMAT_VERSION,
                "features": self.config.to_dict(),
                "feature_names": self.feature_names,
                "as_of": None if self.as_of is None else self.as_of.isoformat(),
                "transactions": len(history),
            }
            | self._extra_history(),
            directory / STATE_FILE,
        )

    def _extra_history(self) -> dict[str, str]:
        """``complete_since``, when the state keeps more than the retention window (``late_days``)."""
        if self._now is None or self._complete_since is None:
            return {}
        if self._complete_since >= self._now - self.config.retention_days * SECONDS_PER_DAY:
            return {}
        return {"complete_since": pd.Timestamp(self._complete_since, unit="s").isoformat()}

    @classmethod
    def load(cls, directory: str | Path, *, late_days: int = 0) -> OnlineState:
        """A saved state; ``late_days`` as in the constructor (it may differ from the saved state's: a
        late transaction is featurized exactly only once the kept history reaches back far enough)."""
        directory = Path(directory)
        meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(
                f"{directory / STATE_FILE}: format {meta.get('format')!r}, this code reads {FORMAT_VERSION}"
            )
        try:
            config = FeatureConfig.parse(meta["features"], "features")
        except ConfigError as exc:
            raise DataError(f"{directory / STATE_FILE}: the saved features config does not parse: {exc}") from None
        if meta["feature_names"] != feature_names(config):
            raise DataError(f"{directory}: saved feature list differs from what this code produces for its config")
        tables = {k: read_parquet(directory / f) for k, f in LOCATION_FILES.items() if (directory / f).exists()}
        now = None if meta["as_of"] is None else to_epoch_second(meta["as_of"])
        saved = meta.get("complete_since")
        return cls.restore(
            read_parquet(directory / HISTORY_FILE),
            config,
            tables.get(CUSTOMER_ID),
            tables.get(TERMINAL_ID),
            late_days=late_days,
            now=now,
            complete_since=to_epoch_second(saved) if saved else None,
        )

    @classmethod
    def restore(
        cls,
        history: pd.DataFrame,
        config: FeatureConfig,
        customers: pd.DataFrame | None = None,
        terminals: pd.DataFrame | None = None,
        *,
        late_days: int = 0,
        now: int | None = None,
        complete_since: int | None = None,
    ) -> OnlineState:
        """A state from what ``save`` writes, however it was stored (files, or a shared store exporting
        one): ``history`` in arrival order, the newest time seen ``now`` and ``complete_since`` (None:
        the history is complete over the retention window before ``now``)."""
        state = cls(config, customers, terminals, late_days=late_days)
        state._add_rows(history, epoch_seconds(history[TX_DATETIME].to_numpy()))  # saved in arrival order
        if now is not None:
            state._now = state._pruned_at = now
            since = complete_since if complete_since is not None else now - config.retention_days * SECONDS_PER_DAY
            state._complete_since = max(since, now - state._kept_seconds)
        return state
