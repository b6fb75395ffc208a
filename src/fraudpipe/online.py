"""Online features: the state a real-time scorer keeps to featurize one transaction at a time.

The definitions are those of ``fraudpipe.features`` (its docstring fixes windows, order and
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

The snapshot written by ``save`` is Parquet + JSON (no pickle): the retained transactions, the
locations when a feature uses them, and the config.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
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
    epoch_seconds,
)
from fraudpipe.features import (
    AMOUNT_RATIO,
    AMOUNT_ZSCORE,
    CUSTOMER_TERMINAL_DISTANCE,
    NB_TERMINALS,
    SECONDS_SINCE_PREV_TX,
    TX_DURING_NIGHT,
    TX_DURING_WEEKEND,
    FeatureConfig,
    amount_ratio,
    amount_zscore,
    calendar_flags,
    check_transactions,
    distance,
    feature_names,
    locations,
    split_cents,
    window_mean,
)
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.io import read_parquet, write_json, write_parquet

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


class _CustomerHistory:
    __slots__ = ("times", "seqs", "tids", "amounts", "cents", "residuals", "terminals")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.seqs: list[int] = []
        self.tids: list[int] = []
        self.amounts: list[float] = []
        self.cents: list[int] = []
        self.residuals: list[float] = []
        self.terminals: list[int] = []

    def insert(self, t: int, seq: int, tid: int, amount: float, terminal: int) -> None:
        i = bisect_right(self.times, t)  # after same-second ones: arrival order
        cents, residual = split_cents(amount)
        for lst, v in zip(
            (self.times, self.seqs, self.tids, self.amounts, self.cents, self.residuals, self.terminals),
            (t, seq, tid, amount, int(cents), float(residual), terminal),
        ):
            lst.insert(i, v)

    def drop_until(self, horizon: int) -> None:
        k = bisect_right(self.times, horizon)
        for name in self.__slots__:
            del getattr(self, name)[:k]


class _TerminalHistory:
    __slots__ = ("times", "tids")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.tids: list[int] = []

    def insert(self, t: int, tid: int) -> None:
        i = bisect_right(self.times, t)
        self.times.insert(i, t)
        self.tids.insert(i, tid)

    def drop_until(self, horizon: int) -> None:
        k = bisect_right(self.times, horizon)
        del self.times[:k], self.tids[:k]


def _location_map(table: pd.DataFrame, key: str) -> dict[int, tuple[float, float]]:
    ids, x, y = table[key].to_numpy(np.int64), table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    return {int(i): (float(a), float(b)) for i, a, b in zip(ids, x, y)}


class OnlineState:
    """Per-customer and per-terminal recent transactions (+ labels) for one-transaction features."""

    def __init__(
        self, config: FeatureConfig, customers: pd.DataFrame | None = None, terminals: pd.DataFrame | None = None
    ) -> None:
        self.config = config
        self.feature_names: list[str] = feature_names(config)
        self._customers: dict[int, _CustomerHistory] = {}
        self._terminals: dict[int, _TerminalHistory] = {}
        self._labels: dict[int, int | None] = {}  # every retained transaction_id -> its label (None: unknown)
        self._seq = 0
        self._now: int | None = None
        self._pruned_at: int | None = None
        self._location_tables: dict[str, pd.DataFrame] = {}
        self._xy: dict[str, dict[int, tuple[float, float]]] = {}
        if config.needs_locations:
            for key, table, what in ((CUSTOMER_ID, customers, "customer"), (TERMINAL_ID, terminals, "terminal")):
                locations(np.empty(0, np.int64), table, key, what)  # presence and uniqueness checks
                assert table is not None
                kept = table[[key, "x", "y"]].sort_values(key, kind="stable").reset_index(drop=True)
                self._location_tables[key] = kept
                self._xy[key] = _location_map(kept, key)

    # --- building --------------------------------------------------------------------------

    @classmethod
    def from_history(
        cls,
        tx: pd.DataFrame,
        config: FeatureConfig,
        customers: pd.DataFrame | None = None,
        terminals: pd.DataFrame | None = None,
    ) -> OnlineState:
        """The state after seeing ``tx`` (sorted by tx_datetime, transaction_id) with its labels."""
        seconds = check_transactions(tx)
        if config.needs_locations:  # the same errors as offline for ids without a location
            locations(tx[CUSTOMER_ID].to_numpy(np.int64), customers, CUSTOMER_ID, "customer")
            locations(tx[TERMINAL_ID].to_numpy(np.int64), terminals, TERMINAL_ID, "terminal")
        state = cls(config, customers, terminals)
        state._add_rows(tx, seconds)
        return state

    def _add_rows(self, tx: pd.DataFrame, seconds: np.ndarray) -> None:
        """Fill an empty state with rows in arrival order, in bulk (``update`` is the one-by-one path)."""
        assert not self._labels, "bulk load is for an empty state"
        if not len(tx):
            return
        now = int(seconds.max())
        keep = seconds > now - self.config.retention_days * SECONDS_PER_DAY
        t = seconds[keep]
        tid = tx[TRANSACTION_ID].to_numpy(np.int64)[keep]
        customer = tx[CUSTOMER_ID].to_numpy(np.int64)[keep]
        terminal = tx[TERMINAL_ID].to_numpy(np.int64)[keep]
        amount = tx[TX_AMOUNT].to_numpy(np.float64)[keep]
        if TX_FRAUD in tx:
            labels = tx[TX_FRAUD][keep].astype("Int8")
            fraud = [None if na else int(f) for f, na in zip(labels.fillna(0).tolist(), labels.isna().tolist())]
        else:
            fraud = [None] * len(t)
        seq = self._seq + np.arange(len(t))
        self._seq += len(t)
        cents, residual = split_cents(amount)
        self._labels.update(zip(tid.tolist(), fraud))
        for keys, store, make in ((customer, self._customers, _CustomerHistory), (terminal, self._terminals, _TerminalHistory)):
            order = np.argsort(keys, kind="stable")
            bounds = np.flatnonzero(np.diff(keys[order])) + 1
            for rows in np.split(order, bounds) if len(order) else []:
                h = store.setdefault(int(keys[rows[0]]), make())
                h.times += t[rows].tolist()
                h.tids += tid[rows].tolist()
                if isinstance(h, _CustomerHistory):
                    h.seqs += seq[rows].tolist()
                    h.amounts += amount[rows].tolist()
                    h.cents += cents[rows].tolist()
                    h.residuals += residual[rows].tolist()
                    h.terminals += terminal[rows].tolist()
        self._now = now
        self._pruned_at = now

    # --- serving ---------------------------------------------------------------------------

    def features(self, customer_id: int, terminal_id: int, tx_datetime: Any, tx_amount: float) -> np.ndarray:
        """The feature vector (float64, ``feature_names`` order) of a new transaction, not yet added."""
        config = self.config
        t, amount = to_epoch_second(tx_datetime), float(tx_amount)
        if not math.isfinite(amount):
            raise DataError(f"{TX_AMOUNT} must be a finite number, got {tx_amount!r}")
        cents, residual = (v.item() for v in split_cents(amount))
        weekend, night = calendar_flags(np.array([t]))
        out: dict[str, float] = {TX_AMOUNT: amount, TX_DURING_WEEKEND: weekend[0], TX_DURING_NIGHT: night[0]}

        c = self._customers.get(int(customer_id)) or _CustomerHistory()
        end = bisect_right(c.times, t)  # known transactions up to and including second t
        windows: dict[int, tuple[int, int, float]] = {}  # days -> start, count, mean
        for days in dict.fromkeys(config.customer_windows + config.customer_extra_windows):
            start = bisect_right(c.times, t - days * SECONDS_PER_DAY, 0, end)
            count = end - start + 1
            mean = window_mean(sum(c.cents[start:end]) + cents, sum(c.residuals[start:end]) + residual, count)
            windows[days] = (start, count, float(mean))
        for days in config.customer_windows:
            out[f"customer_id_nb_tx_{days}day_window"] = windows[days][1]
            out[f"customer_id_avg_amount_{days}day_window"] = windows[days][2]

        term = self._terminals.get(int(terminal_id)) or _TerminalHistory()
        stop = bisect_right(term.times, t - config.delay_days * SECONDS_PER_DAY)
        for days in config.terminal_windows:
            start = bisect_right(term.times, t - (config.delay_days + days) * SECONDS_PER_DAY, 0, stop)
            count = stop - start
            frauds = sum(self._labels.get(i) or 0 for i in term.tids[start:stop])
            out[f"terminal_id_nb_tx_{days}day_window"] = count
            out[f"terminal_id_risk_{days}day_window"] = frauds / count if count else 0.0

        for days in config.extra_windows if AMOUNT_RATIO in config.extras else ():
            out[f"customer_id_{AMOUNT_RATIO}_{days}day_window"] = float(amount_ratio(amount, windows[days][2]))
        for days in config.extra_windows if AMOUNT_ZSCORE in config.extras else ():
            start, count, _ = windows[days]
            s1 = sum(c.cents[start:end]) + cents
            s2 = sum(v * v for v in c.cents[start:end]) + cents * cents
            out[f"customer_id_{AMOUNT_ZSCORE}_{days}day_window"] = float(amount_zscore(cents, s1, s2, count))
        for days in config.extra_windows if NB_TERMINALS in config.extras else ():
            start = windows[days][0]
            out[f"customer_id_{NB_TERMINALS}_{days}day_window"] = len({*c.terminals[start:end], int(terminal_id)})
        if SECONDS_SINCE_PREV_TX in config.extras:
            cap = config.customer_horizon_days * SECONDS_PER_DAY
            out[f"customer_id_{SECONDS_SINCE_PREV_TX}"] = min(t - c.times[end - 1], cap) if end else cap
        if config.needs_locations:
            cx, cy = self._location(CUSTOMER_ID, customer_id)
            tx_, ty = self._location(TERMINAL_ID, terminal_id)
            out[CUSTOMER_TERMINAL_DISTANCE] = float(distance(cx, cy, tx_, ty))
        return np.array([out[name] for name in self.feature_names], dtype=np.float64)

    def _location(self, key: str, value: int) -> tuple[float, float]:
        try:
            return self._xy[key][int(value)]
        except KeyError:
            raise DataError(f"{key} {value} has no location: {CUSTOMER_TERMINAL_DISTANCE} cannot be computed") from None

    def update(
        self,
        transaction_id: int,
        customer_id: int,
        terminal_id: int,
        tx_datetime: Any,
        tx_amount: float,
        tx_fraud: int | None = None,
    ) -> None:
        """Add a transaction (label optional). Re-sending a known transaction only sets its label."""
        tid = int(transaction_id)
        if tid in self._labels:
            if tx_fraud is not None:
                self.label(tid, tx_fraud)
            return
        t, amount = to_epoch_second(tx_datetime), float(tx_amount)
        if not math.isfinite(amount):
            raise DataError(f"{TX_AMOUNT} must be a finite number, got {tx_amount!r}")
        self._labels[tid] = None if tx_fraud is None or pd.isna(tx_fraud) else int(tx_fraud)
        self._customers.setdefault(int(customer_id), _CustomerHistory()).insert(t, self._seq, tid, amount, int(terminal_id))
        self._terminals.setdefault(int(terminal_id), _TerminalHistory()).insert(t, tid)
        self._seq += 1
        self._now = t if self._now is None else max(self._now, t)
        if self._pruned_at is None:
            self._pruned_at = self._now
        elif self._now - self._pruned_at >= SECONDS_PER_DAY:  # amortised: once a day of data
            self.prune()

    def label(self, transaction_id: int, tx_fraud: int) -> bool:
        """Record a label that arrived later; False when the transaction is not (or no longer) kept."""
        tid = int(transaction_id)
        if int(tx_fraud) not in (0, 1):
            raise DataError(f"{TX_FRAUD} must be 0 or 1, got {tx_fraud!r} (transaction_id {tid})")
        if tid not in self._labels:
            return False
        self._labels[tid] = int(tx_fraud)
        return True

    def prune(self) -> None:
        """Forget transactions too old to reach any window of a transaction at or after now."""
        if self._now is None:
            return
        horizon = self._now - self.config.retention_days * SECONDS_PER_DAY
        for store in (self._customers, self._terminals):
            for key in list(store):
                h = store[key]
                h.drop_until(horizon)
                if not h.times:
                    del store[key]
        kept = {tid for h in self._customers.values() for tid in h.tids}
        self._labels = {tid: label for tid, label in self._labels.items() if tid in kept}
        self._pruned_at = self._now

    # --- snapshot ----------------------------------------------------------------------------

    @property
    def as_of(self) -> pd.Timestamp | None:
        """The newest transaction time seen."""
        return None if self._now is None else pd.Timestamp(self._now, unit="s")

    def history(self) -> pd.DataFrame:
        """The retained transactions in arrival order, in the transaction contract (tx_fraud nullable)."""
        rows = [
            (h.times[i], h.seqs[i], h.tids[i], key, h.terminals[i], h.amounts[i])
            for key, h in self._customers.items()
            for i in range(len(h.times))
        ]
        rows.sort(key=lambda r: (r[0], r[1]))
        t, _, tid, customer, terminal, amount = (list(col) for col in zip(*rows)) if rows else ([],) * 6
        return pd.DataFrame(
            {
                TRANSACTION_ID: np.array(tid, dtype=np.int64),
                TX_DATETIME: np.array(t, dtype=np.int64).astype("datetime64[s]").astype(DATETIME_DTYPE),
                CUSTOMER_ID: np.array(customer, dtype=np.int64),
                TERMINAL_ID: np.array(terminal, dtype=np.int64),
                TX_AMOUNT: np.array(amount, dtype=np.float64),
                TX_FRAUD: pd.array([self._labels[i] for i in tid], dtype="Int8"),
            }
        )

    def save(self, directory: str | Path) -> None:
        """Write the snapshot into ``directory`` (wrap it in ``io.atomic_dir`` for an atomic swap)."""
        self.prune()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        history = self.history()
        write_parquet(history, directory / HISTORY_FILE)
        for key, table in self._location_tables.items():
            write_parquet(table, directory / LOCATION_FILES[key])
        write_json(
            {
                "format": FORMAT_VERSION,
                "features": self.config.to_dict(),
                "feature_names": self.feature_names,
                "as_of": None if self.as_of is None else self.as_of.isoformat(),
                "transactions": len(history),
            },
            directory / STATE_FILE,
        )

    @classmethod
    def load(cls, directory: str | Path) -> OnlineState:
        directory = Path(directory)
        meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(f"{directory / STATE_FILE}: format {meta.get('format')!r}, this code reads {FORMAT_VERSION}")
        try:
            config = FeatureConfig.parse(meta["features"], "features")
        except ConfigError as exc:
            raise DataError(f"{directory / STATE_FILE}: the saved features config does not parse: {exc}") from None
        if meta["feature_names"] != feature_names(config):
            raise DataError(f"{directory}: saved feature list differs from what this code produces for its config")
        tables = {k: read_parquet(directory / f) for k, f in LOCATION_FILES.items() if (directory / f).exists()}
        state = cls(config, tables.get(CUSTOMER_ID), tables.get(TERMINAL_ID))
        history = read_parquet(directory / HISTORY_FILE)
        state._add_rows(history, epoch_seconds(history[TX_DATETIME].to_numpy()))  # saved in arrival order
        if meta["as_of"] is not None:
            state._now = state._pruned_at = to_epoch_second(meta["as_of"])
        return state
