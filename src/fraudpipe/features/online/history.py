"""Per-key histories: what the online state keeps of each customer and terminal, and their locations.

Keys. Every id (transaction, customer, terminal) is kept under ``contract.canonical_id``, so an id
sent as text or as an integer finds the same history ("7" and 7 are one card, "007" another).

Locations (the distance feature only) are (x, y) pairs per key: a transaction's own coordinates
when it carries them, else the last known ones of its customer (terminal), else a DataError.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import TX_DATETIME, canonical_ids, epoch_seconds
from fraudpipe.errors import DataError
from fraudpipe.features.definitions import CUSTOMER_TERMINAL_DISTANCE, split_cents
from fraudpipe.features.inputs import COORDINATES


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
        self.times.insert(i, t)
        self.seqs.insert(i, seq)
        self.tids.insert(i, tid)
        self.amounts.insert(i, amount)
        self.cents.insert(i, int(cents))
        self.residuals.insert(i, float(residual))
        self.terminals.insert(i, terminal)

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


NO_CUSTOMER, NO_TERMINAL = CustomerHistory(), TerminalHistory()  # a cold start reads these; never written


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


def location_map(table: pd.DataFrame, key: str) -> dict[str, tuple[float, float]]:
    ids, x, y = canonical_ids(table[key], key), table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    return {i: (float(a), float(b)) for i, a, b in zip(ids, x.tolist(), y.tolist())}


def given_location(key: str, x: Any, y: Any) -> tuple[float, float] | None:
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


def resolve_location(
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
