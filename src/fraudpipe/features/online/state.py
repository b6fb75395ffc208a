"""The online state: per-customer and per-terminal histories that featurize one transaction at a time.

What is kept: per customer, its transactions (time, amount, terminal) and per terminal its
transactions, for the last ``config.retention_days`` before the newest transaction seen; older
ones can no longer change any feature. Labels are stored when they arrive (``update`` or
``label``) but a terminal window only ever reaches transactions older than the delay, so a
label counts only once its transaction is older than ``delay_days``. Transactions are expected
in time order; same-second transactions are ordered by arrival (offline: by transaction_id,
which is the same order when a scorer receives them in table order).

Locations (the distance feature only): the last known coordinates per customer and per terminal,
from the side tables, then from every transaction that carries its own (``update``, or rows of
``from_history``), never pruned. A transaction's own coordinates, when given, are used for its
distance; otherwise the last known ones of its customer (terminal); otherwise a DataError.

Lateness (``late_days``, 0 by default): a state that also accepts transactions arriving up to that
many days after newer ones keeps ``retention_days + late_days`` of history, so that the windows of
a late transaction are still complete; ``earliest_exact`` says from when on that holds.

Periods: an operator may move the clock to a new period (``start_period``); retention then counts
stream time, so what was held stays held for its window (``online.periods``).

The features themselves are computed by ``history_features`` (``online.compute``); ``save`` and
``load`` go through the snapshot format (``online.snapshot``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    CUSTOMER_ID,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    canonical_id,
    epoch_seconds,
)
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.inputs import check_location_table, check_transactions
from fraudpipe.features.online.bulk import fill_histories, last_locations
from fraudpipe.features.online.compute import history_features
from fraudpipe.features.online.history import (
    NO_CUSTOMER,
    NO_TERMINAL,
    CustomerHistory,
    History,
    TerminalHistory,
    given_location,
    location_map,
    to_epoch_second,
)
from fraudpipe.features.online.periods import Period, horizon, period_start
from fraudpipe.features.online.snapshot import (
    location_tables,
    read_snapshot,
    retained_history,
    rows_history,
    write_snapshot,
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
        self._periods: list[Period] = []  # the operator's moves of the clock (``online.periods``)
        #: the last known (x, y) per customer_id and per terminal_id key; only with the distance feature
        self._xy: dict[str, dict[str, tuple[float, float]]] = {}
        if config.needs_locations:
            for key, table, what in ((CUSTOMER_ID, customers, "customer"), (TERMINAL_ID, terminals, "terminal")):
                self._xy[key] = {} if table is None else location_map(check_location_table(table, key, what), key)

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
        # tx is in arrival order (check_transactions), which is the order `history` restores
        state._write(directory, rows_history(kept, seconds[keep]))
        return state.as_of

    def _learn_locations(
        self, tx: pd.DataFrame, customers: pd.DataFrame | None, terminals: pd.DataFrame | None
    ) -> None:
        """Each row's location, as offline (and with its errors); the last per id stays known."""
        if not self.config.needs_locations:
            return
        for key, table in ((CUSTOMER_ID, customers), (TERMINAL_ID, terminals)):
            self._xy[key].update(last_locations(tx, key, table))

    def _add_rows(self, tx: pd.DataFrame, seconds: np.ndarray) -> None:
        """Fill an empty state with rows in arrival order, in bulk (``update`` is the one-by-one path)."""
        assert not self._labels, "bulk load is for an empty state"
        if not len(tx):
            return
        now = int(seconds.max())
        keep = seconds > horizon(self._periods, now, self._kept_seconds)
        t = seconds[keep]
        seq = self._seq + np.arange(len(t))
        self._seq += len(t)
        fill_histories(self._customers, self._terminals, self._labels, self._terminal_of, tx[keep], t, seq)
        self._now = now
        self._pruned_at = now
        self._complete_since = horizon(self._periods, now, self._kept_seconds)

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
            self._customers.get(customer) or NO_CUSTOMER,
            self._terminals.get(terminal) or NO_TERMINAL,
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
                (CUSTOMER_ID, customer): given_location(CUSTOMER_ID, cx, cy),
                (TERMINAL_ID, terminal): given_location(TERMINAL_ID, tx_, ty),
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
        cut = horizon(self._periods, self._now, self._kept_seconds)
        for key in list(self._customers):  # every transaction is in one customer's history: forget it there
            h = self._customers[key]
            for tid in h.drop_until(cut):
                del self._labels[tid], self._terminal_of[tid]
            if not h.times:
                del self._customers[key]
        for key in list(self._terminals):
            th = self._terminals[key]
            th.drop_until(cut)
            if not th.times:
                del self._terminals[key]
        self._pruned_at = self._now
        self._complete_since = cut if self._complete_since is None else max(self._complete_since, cut)

    def start_period(self, start: int) -> int:
        """The operator's move of the clock to ``start`` (after the newest transaction seen): the stream
        resumes there; nothing held is forgotten sooner for it (``online.periods``). Returns the newest
        time seen before."""
        if self._now is None or start <= self._now:
            raise DataError(f"a new period must start after the newest transaction seen ({self.as_of}), got {start}")
        before = self._now
        self._periods.append((start, start - before))
        self._now = self._pruned_at = start
        return before

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
        start = period_start(self._periods)
        return earliest if start is None else max(earliest, start)

    @property
    def newest(self) -> int | None:
        """The newest transaction time seen (epoch seconds; after a move, the period's start)."""
        return self._now

    @property
    def periods(self) -> list[Period]:
        """The moves of the clock so far (``online.periods``)."""
        return list(self._periods)

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
        return retained_history(self._customers, self._labels)

    def known_locations(self) -> dict[str, pd.DataFrame]:
        """Per key (customer_id, terminal_id), the last known locations as a table (id, x, y) sorted by
        id (numbers, or text in code point order); empty when no feature uses locations."""
        return location_tables(self._xy)

    def save(self, directory: str | Path) -> None:
        """Write the snapshot into ``directory`` (wrap it in ``io.atomic_dir`` for an atomic swap)."""
        self.prune()
        self._write(directory, self.history())

    def _write(self, directory: str | Path, history: pd.DataFrame) -> None:
        write_snapshot(
            directory, self.config, history, self.known_locations(), self._now, self._complete_since, self._periods
        )

    @classmethod
    def load(cls, directory: str | Path, *, late_days: int = 0) -> OnlineState:
        """A saved state; ``late_days`` as in the constructor (it may differ from the saved state's: a
        late transaction is featurized exactly only once the kept history reaches back far enough)."""
        snapshot = read_snapshot(directory)
        return cls.restore(
            snapshot.history,
            snapshot.config,
            snapshot.customers,
            snapshot.terminals,
            late_days=late_days,
            now=snapshot.now,
            complete_since=snapshot.complete_since,
            periods=snapshot.periods,
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
        periods: Sequence[Period] = (),
    ) -> OnlineState:
        """A state from what ``save`` writes, however it was stored (files, or a shared store exporting
        one): ``history`` in arrival order, the newest time seen ``now`` and ``complete_since`` (None:
        the history is complete over the retention window before ``now``)."""
        state = cls(config, customers, terminals, late_days=late_days)
        state._periods = list(periods)
        state._add_rows(history, epoch_seconds(history[TX_DATETIME].to_numpy()))  # saved in arrival order
        if now is not None:
            state._now = state._pruned_at = now
            since = complete_since if complete_since is not None else now - config.retention_days * SECONDS_PER_DAY
            state._complete_since = max(since, horizon(state._periods, now, state._kept_seconds))
        return state
