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

Keys. Every id (transaction, customer, terminal) is kept under ``contract.canonical_id``, so an id
sent as text or as an integer finds the same history ("7" and 7 are one card, "007" another).

Locations (the distance feature only): the last known coordinates per customer and per terminal,
from the side tables, then from every transaction that carries its own (``update``, or rows of
``from_history``), never pruned. A transaction's own coordinates, when given, are used for its
distance; otherwise the last known ones of its customer (terminal); otherwise a DataError.

The snapshot written by ``save`` is Parquet + JSON (no pickle): the retained transactions (id
columns int64 when every id is a canonical integer, else text, as in the contract), the known
locations (``customers.parquet``/``terminals.parquet``: id, x, y) when a feature uses them, and
the config.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from itertools import chain
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
from fraudpipe.features import (
    AMOUNT_RATIO,
    AMOUNT_ZSCORE,
    COORDINATES,
    CUSTOMER_TERMINAL_DISTANCE,
    LOCATION_COLUMNS,
    NB_TERMINALS,
    SECONDS_SINCE_PREV_TX,
    TX_DURING_NIGHT,
    TX_DURING_WEEKEND,
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

    def drop_until(self, horizon: int) -> None:
        k = bisect_right(self.times, horizon)
        for name in self.__slots__:
            del getattr(self, name)[:k]


class _TerminalHistory:
    __slots__ = ("times", "tids")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.tids: list[str] = []

    def insert(self, t: int, tid: str) -> None:
        i = bisect_right(self.times, t)
        self.times.insert(i, t)
        self.tids.insert(i, tid)

    def drop_until(self, horizon: int) -> None:
        k = bisect_right(self.times, horizon)
        del self.times[:k], self.tids[:k]


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


def _keyed(ids: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, keys): each row's code and each code's ``canonical_id``, so ``keys[codes]`` are the rows' keys."""
    id_is_text(ids, column)  # int64 or text, nothing else
    codes, uniques = pd.factorize(ids)
    return codes.astype(np.int64, copy=False), canonical_ids(pd.Series(uniques, dtype=ids.dtype), column)


class OnlineState:
    """Per-customer and per-terminal recent transactions (+ labels) for one-transaction features.

    ``customers``/``terminals`` (id, x, y) are the side tables of locations, when the source has
    them; with the distance feature and transactions that carry no coordinates they are needed.
    """

    def __init__(
        self, config: FeatureConfig, customers: pd.DataFrame | None = None, terminals: pd.DataFrame | None = None
    ) -> None:
        self.config = config
        self.feature_names: list[str] = feature_names(config)
        self._customers: dict[str, _CustomerHistory] = {}
        self._terminals: dict[str, _TerminalHistory] = {}
        self._labels: dict[str, int | None] = {}  # every retained transaction_id -> its label (None: unknown)
        self._seq = 0
        self._now: int | None = None
        self._pruned_at: int | None = None
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
    ) -> OnlineState:
        """The state after seeing ``tx`` (sorted by tx_datetime, transaction_id) with its labels
        (and the coordinates it carries, if any)."""
        seconds = check_transactions(tx)
        state = cls(config, customers, terminals)
        if config.needs_locations:  # each row's location, as offline (and with its errors); the last per id stays known
            for key, table in ((CUSTOMER_ID, customers), (TERMINAL_ID, terminals)):
                codes = id_codes(tx[key], key)
                x, y = transaction_locations(tx, key, table, codes)
                _, from_end = np.unique(codes[::-1], return_index=True)
                last = len(codes) - 1 - from_end  # each id's last row
                ids = canonical_ids(tx[key].iloc[last], key)
                state._xy[key].update(zip(ids.tolist(), zip(x[last].tolist(), y[last].tolist())))
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
        tx = tx[keep]
        tid = canonical_ids(tx[TRANSACTION_ID], TRANSACTION_ID)
        (customer, customer_keys), (terminal, terminal_keys) = (_keyed(tx[c], c) for c in (CUSTOMER_ID, TERMINAL_ID))
        amount = tx[TX_AMOUNT].to_numpy(np.float64)
        if TX_FRAUD in tx:
            labels = tx[TX_FRAUD].astype("Int8")
            fraud = [None if na else int(f) for f, na in zip(labels.fillna(0).tolist(), labels.isna().tolist())]
        else:
            fraud = [None] * len(t)
        seq = self._seq + np.arange(len(t))
        self._seq += len(t)
        cents, residual = split_cents(amount)
        self._labels.update(zip(tid.tolist(), fraud))
        groups = ((customer, customer_keys, self._customers, _CustomerHistory), (terminal, terminal_keys, self._terminals, _TerminalHistory))
        for codes, keys, store, make in groups:
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            for rows in np.split(order, bounds) if len(order) else []:
                h = store.setdefault(keys[codes[rows[0]]], make())
                h.times += t[rows].tolist()
                h.tids += tid[rows].tolist()
                if isinstance(h, _CustomerHistory):
                    h.seqs += seq[rows].tolist()
                    h.amounts += amount[rows].tolist()
                    h.cents += cents[rows].tolist()
                    h.residuals += residual[rows].tolist()
                    h.terminals += terminal_keys[terminal[rows]].tolist()
        self._now = now
        self._pruned_at = now

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
        config = self.config
        customer, terminal = canonical_id(customer_id), canonical_id(terminal_id)
        t, amount = to_epoch_second(tx_datetime), float(tx_amount)
        if not math.isfinite(amount):
            raise DataError(f"{TX_AMOUNT} must be a finite number, got {tx_amount!r}")
        cents, residual = (v.item() for v in split_cents(amount))
        weekend, night = calendar_flags(np.array([t]))
        out: dict[str, float] = {TX_AMOUNT: amount, TX_DURING_WEEKEND: weekend[0], TX_DURING_NIGHT: night[0]}

        c = self._customers.get(customer) or _CustomerHistory()
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

        term = self._terminals.get(terminal) or _TerminalHistory()
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
            out[f"customer_id_{NB_TERMINALS}_{days}day_window"] = len({*c.terminals[start:end], terminal})
        if SECONDS_SINCE_PREV_TX in config.extras:
            cap = config.customer_horizon_days * SECONDS_PER_DAY
            out[f"customer_id_{SECONDS_SINCE_PREV_TX}"] = min(t - c.times[end - 1], cap) if end else cap
        if config.needs_locations:
            cx, cy = self._location(CUSTOMER_ID, customer_id, customer_x, customer_y)
            tx_, ty = self._location(TERMINAL_ID, terminal_id, terminal_x, terminal_y)
            out[CUSTOMER_TERMINAL_DISTANCE] = float(distance(cx, cy, tx_, ty))
        return np.array([out[name] for name in self.feature_names], dtype=np.float64)

    def _location(self, key: str, value: int | str, x: Any, y: Any) -> tuple[float, float]:
        """The transaction's own coordinates of one side, else the last known ones of the id."""
        given = _given_location(key, x, y)
        if given is not None:
            return given
        known = canonical_id(value)
        try:
            return self._xy[key][known]
        except KeyError:
            names = ", ".join(COORDINATES[key])
            raise DataError(
                f"{key} {known} has no location: the transaction carries no {names} and none is known from history, "
                f"so {CUSTOMER_TERMINAL_DISTANCE} cannot be computed"
            ) from None

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
        tid = canonical_id(transaction_id)
        if tid in self._labels:
            if tx_fraud is not None:
                self.label(tid, tx_fraud)
            return
        customer, terminal = canonical_id(customer_id), canonical_id(terminal_id)
        t, amount = to_epoch_second(tx_datetime), float(tx_amount)
        if not math.isfinite(amount):
            raise DataError(f"{TX_AMOUNT} must be a finite number, got {tx_amount!r}")
        if self.config.needs_locations:  # both checked before the state changes
            given = {(CUSTOMER_ID, customer): _given_location(CUSTOMER_ID, customer_x, customer_y),
                     (TERMINAL_ID, terminal): _given_location(TERMINAL_ID, terminal_x, terminal_y)}  # fmt: skip
            for (key, value), xy in given.items():
                if xy is not None:
                    self._xy[key][value] = xy
        self._labels[tid] = None if tx_fraud is None or pd.isna(tx_fraud) else int(tx_fraud)
        self._customers.setdefault(customer, _CustomerHistory()).insert(t, self._seq, tid, amount, terminal)
        self._terminals.setdefault(terminal, _TerminalHistory()).insert(t, tid)
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
        """The retained transactions in arrival order, in the transaction contract (tx_fraud nullable;
        each id column int64 when all its ids are canonical integers, else text)."""
        customers = list(self._customers.items())
        sizes = [len(h.times) for _, h in customers]
        t, seq = (np.fromiter(chain.from_iterable(getattr(h, a) for _, h in customers), np.int64, sum(sizes)) for a in ("times", "seqs"))
        amount = np.fromiter(chain.from_iterable(h.amounts for _, h in customers), np.float64, sum(sizes))
        tid, terminal = (np.array(list(chain.from_iterable(getattr(h, a) for _, h in customers)), dtype=object) for a in ("tids", "terminals"))
        customer = np.repeat(np.array([key for key, _ in customers], dtype=object), sizes)
        order = np.lexsort((seq, t))  # arrival order: time, then the order of arrival within a second
        tid = tid[order]
        return pd.DataFrame(
            {
                TRANSACTION_ID: id_array(tid),
                TX_DATETIME: t[order].astype("datetime64[s]").astype(DATETIME_DTYPE),
                CUSTOMER_ID: id_array(customer[order]),
                TERMINAL_ID: id_array(terminal[order]),
                TX_AMOUNT: amount[order],
                TX_FRAUD: pd.array([self._labels[i] for i in tid.tolist()], dtype="Int8"),
            }
        )

    def known_locations(self) -> dict[str, pd.DataFrame]:
        """Per key (customer_id, terminal_id), the last known locations as a table (id, x, y) sorted by
        id (numbers, or text in code point order); empty when no feature uses locations."""
        tables = {}
        for key, known in self._xy.items():
            ids = id_array(list(known))
            xy = np.array(list(known.values()), dtype=np.float64).reshape(-1, 2)
            order = np.argsort(id_codes(pd.Series(ids), key, ordered=True), kind="stable")
            tables[key] = pd.DataFrame({key: ids[order], LOCATION_COLUMNS[0]: xy[order, 0], LOCATION_COLUMNS[1]: xy[order, 1]})
        return tables

    def save(self, directory: str | Path) -> None:
        """Write the snapshot into ``directory`` (wrap it in ``io.atomic_dir`` for an atomic swap)."""
        self.prune()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        history = self.history()
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
