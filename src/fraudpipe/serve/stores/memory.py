"""The default state store: ``online.OnlineState`` in this process, one worker.

Its durability comes from the service's journal (``serve.journal``) and snapshots: ``save`` writes
the state and ``scored.parquet`` (every retained answer, ``servicelog.SCORED_COLUMNS``), ``load``
restarts from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    DATETIME_DTYPE,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    canonical_ids,
    id_array,
)
from fraudpipe.errors import DataError
from fraudpipe.features.online import History, OnlineState
from fraudpipe.features.online.history import NO_CUSTOMER, NO_TERMINAL
from fraudpipe.io import read_parquet, write_parquet
from fraudpipe.serve.stores.base import Prepared, Scored, Transaction, four_coordinates
from fraudpipe.servicelog import (
    SCORED_COLUMNS,
    SCORED_FILE,
    SHADOW_ALERT,
    SHADOW_MODEL,
    SHADOW_SCORE,
    with_shadow,
)


class InProcessStore:
    """The default store: ``OnlineState`` in this process, plus the answers given per transaction_id."""

    def __init__(self, state: OnlineState, scored: dict[str, Scored] | None = None) -> None:
        self.state = state
        self.config = state.config
        self._scored: dict[str, Scored] = scored or {}
        self._pruned_at = state.pruned_at

    @classmethod
    def load(cls, directory: Path, late_days: int) -> InProcessStore:
        """A snapshot written by ``save`` (or a bare ``OnlineState`` snapshot, e.g. featurize's)."""
        state = OnlineState.load(directory, late_days=late_days)
        scored = _read_scored(directory / SCORED_FILE) if (directory / SCORED_FILE).is_file() else {}
        return cls(state, {k: v for k, v in scored.items() if state.knows(k)})

    def get_history(self, customer_id: str, terminal_id: str, t: int) -> History:
        return self.state.lookup(customer_id, terminal_id)

    def prepare(self, tx: Transaction) -> Prepared:
        state = self.state
        history = state.lookup(tx.customer_id, tx.terminal_id)
        size = state.size()
        return Prepared(
            self._scored.get(tx.transaction_id),
            state.knows(tx.transaction_id),
            state.earliest_exact,
            history,
            newest=state.newest,
            new_customer=history.customer is NO_CUSTOMER,
            new_terminal=history.terminal is NO_TERMINAL,
            customers=size["customers"],
            terminals=size["terminals"],
        )

    def add_transaction(self, scored: Scored, basis: Prepared | None = None) -> Scored | None:
        tx = scored.transaction
        if self.state.knows(tx.transaction_id):
            return self._scored.get(tx.transaction_id)
        self.state.add(
            tx.transaction_id, tx.customer_id, tx.terminal_id, tx.t, tx.tx_amount, coordinates=tx.coordinates
        )
        self._scored[tx.transaction_id] = scored
        if self.state.pruned_at != self._pruned_at:  # the state forgot old transactions: so do the answers
            self._pruned_at = self.state.pruned_at
            self._scored = {k: v for k, v in self._scored.items() if self.state.knows(k)}
        return None

    def add_label(self, transaction_id: str, tx_fraud: int) -> bool:
        return self.state.label(transaction_id, tx_fraud)

    def get_scored(self, transaction_id: str) -> Scored | None:
        return self._scored.get(transaction_id)

    def answers(self) -> list[Scored]:
        """Every answer still held (what a shared store is seeded with)."""
        return list(self._scored.values())

    def has_transaction(self, transaction_id: str) -> bool:
        return self.state.knows(transaction_id)

    def earliest_exact(self) -> int | None:
        return self.state.earliest_exact

    def newest(self) -> int | None:
        return self.state.newest

    def start_period(self, start: int) -> int | None:
        newest = self.state.newest
        if newest is None or start <= newest:
            return None
        return self.state.start_period(start)

    def size(self) -> dict[str, int]:
        return self.state.size() | {"scored": len(self._scored)}

    def save(self, directory: Path) -> None:
        self.state.save(directory)  # prunes first
        self._scored = {k: v for k, v in self._scored.items() if self.state.knows(k)}
        self._pruned_at = self.state.pruned_at
        write_parquet(_scored_table(list(self._scored.values()), self.state), directory / SCORED_FILE)


def _scored_table(records: list[Scored], state: OnlineState) -> pd.DataFrame:
    tx = [r.transaction for r in records]
    columns = {
        TRANSACTION_ID: id_array([x.transaction_id for x in tx]),
        CUSTOMER_ID: id_array([x.customer_id for x in tx]),
        TERMINAL_ID: id_array([x.terminal_id for x in tx]),
        TX_DATETIME: np.array([x.tx_datetime for x in tx], dtype="datetime64[us]").astype(DATETIME_DTYPE),
        TX_AMOUNT: np.array([x.tx_amount for x in tx], dtype=np.float64),
    }
    for i, name in enumerate(COORDINATE_COLUMNS):
        columns[name] = np.array(
            [np.nan if x.coordinates[i] is None else x.coordinates[i] for x in tx], dtype=np.float64
        )
    columns |= {
        "score": np.array([r.score for r in records], dtype=np.float64),
        "alert": np.array([r.alert for r in records], dtype=bool),
        "threshold": np.array([r.threshold for r in records], dtype=np.float64),
        "model_version": pd.array([r.model_version for r in records], dtype="str"),
        SHADOW_SCORE: np.array([np.nan if r.shadow_score is None else r.shadow_score for r in records], np.float64),
        SHADOW_MODEL: pd.array([r.shadow_model for r in records], dtype="str"),
        SHADOW_ALERT: pd.array([r.shadow_alert for r in records], dtype="boolean"),
        TX_FRAUD: pd.array([state.label_of(x.transaction_id) for x in tx], dtype="Int8"),
    }
    return pd.DataFrame(columns)


def _read_scored(path: Path) -> dict[str, Scored]:
    table = with_shadow(read_parquet(path))  # a snapshot written before the shadow columns: none scored
    missing = [c for c in SCORED_COLUMNS if c not in table]
    if missing:
        raise DataError(f"{path}: lacks column(s) {missing}: not a snapshot written by `fraudpipe serve`")
    tids, customers, terminals = (
        canonical_ids(table[c], c).tolist() for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)
    )
    when = table[TX_DATETIME].dt.to_pydatetime().tolist() if len(table) else []
    seconds = table[TX_DATETIME].to_numpy().astype("datetime64[s]").astype(np.int64).tolist()
    xy = table[list(COORDINATE_COLUMNS)].to_numpy(np.float64).tolist()
    amounts, scores, thresholds = (table[c].to_numpy(np.float64).tolist() for c in (TX_AMOUNT, "score", "threshold"))
    alerts, versions = table["alert"].to_numpy(bool).tolist(), table["model_version"].astype(str).tolist()
    shadows = [None if v != v else v for v in table[SHADOW_SCORE].to_numpy(np.float64).tolist()]  # NaN: none
    challengers = [None if pd.isna(v) else str(v) for v in table[SHADOW_MODEL].tolist()]
    shadow_alerts = [None if pd.isna(v) else bool(v) for v in table[SHADOW_ALERT].tolist()]
    out = {}
    for i, tid in enumerate(tids):
        coordinates = four_coordinates([None if v != v else v for v in xy[i]])  # NaN: not carried
        tx = Transaction(tid, customers[i], terminals[i], when[i], seconds[i], amounts[i], coordinates)
        out[tid] = Scored(
            tx, scores[i], alerts[i], thresholds[i], versions[i], shadows[i], challengers[i], shadow_alerts[i]
        )
    return out
