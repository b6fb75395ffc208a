"""The service's online state behind one small interface: get history, add transaction, add label.

``StateStore`` is what the endpoints use, so that a shared store (Redis, for several workers or
machines) can replace the in-process one without touching them. A store keeps, per customer and
per terminal, the transactions of the last ``features.retention_days + late_days`` days as
structures sorted by time (Redis: sorted sets), the labels by transaction_id, and the known result
per scored transaction_id (for client retries). It does no feature math: ``get_history`` returns
``online.History`` views and ``online.history_features`` computes the features, the same
definitions training used, whichever store fetched them.

The implementations: ``memory.InProcessStore`` (one process, one worker) and ``redis.RedisStore``
(shared by several workers). Here: the interface and the types every store and the journal share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from fraudpipe.errors import DataError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import History

_EPOCH, _SECOND = datetime(1970, 1, 1), timedelta(seconds=1)
#: customer_x, customer_y, terminal_x, terminal_y of a transaction (None: not carried).
Coordinates = tuple[float | None, float | None, float | None, float | None]


def epoch_second(when: datetime) -> int:
    """Whole epoch seconds of a naive UTC datetime, as ``contract.epoch_seconds`` counts them."""
    return (when - _EPOCH) // _SECOND


def four_coordinates(values: Sequence[float | None]) -> Coordinates:
    """A stored row's coordinates (a list: JSON, a table row) as a ``Transaction`` holds them."""
    cx, cy, tx, ty = values
    return (cx, cy, tx, ty)


@dataclass(frozen=True, slots=True)
class Transaction:
    """An accepted transaction: ids as keys (``contract.canonical_id``), the time naive UTC."""

    transaction_id: str
    customer_id: str
    terminal_id: str
    tx_datetime: datetime
    t: int  # tx_datetime in whole epoch seconds, as the features count time
    tx_amount: float
    coordinates: Coordinates = (None, None, None, None)


@dataclass(frozen=True, slots=True)
class Scored:
    """A transaction and the answer the service gave it (returned again to a retry), and the
    challenger's score beside it (``serve.models``; logged, never answered)."""

    transaction: Transaction
    score: float
    alert: bool
    threshold: float
    model_version: str
    shadow_score: float | None = None  # None: no challenger scored it (NaN in the log's tables)
    shadow_model: str | None = None
    shadow_alert: bool | None = None  # the challenger's score against its own threshold


class StoreUnavailable(DataError):
    """A shared store could not be reached for a request (the service answers 503: retry later)."""


class Conflict(Exception):
    """Another worker changed the customer's or terminal's history between ``prepare`` and
    ``add_transaction``: the features read are stale; prepare and score again."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything scoring one transaction reads from the store (``StateStore.prepare``)."""

    scored: Scored | None  # the answer already given to its transaction_id (a retry), if any
    known: bool  # its transaction_id is held (scored, or in the history the store started from)
    earliest_exact: int | None  # ``StateStore.earliest_exact``
    history: History  # ``StateStore.get_history`` at its time
    version: Any = None  # a shared store: what the history was read at (``add_transaction`` checks it is still current)
    newest: int | None = None  # the newest transaction time seen (the clock a new transaction may move only so far)
    new_customer: bool = False  # its customer holds no history yet (adding it grows the state by a key)
    new_terminal: bool = False
    customers: int = 0  # customers and terminals held now (what --max-state-customers/terminals cap)
    terminals: int = 0


class StateStore(Protocol):
    """The online state as the service uses it. Ids are keys, times epoch seconds."""

    config: FeatureConfig

    def get_history(self, customer_id: str, terminal_id: str, t: int) -> History:
        """What the features of a transaction at ``t`` read: at least the customer's transactions in
        (t - customer horizon, t] and the terminal's in (t - terminal horizon, t - delay], their frauds."""
        ...

    def prepare(self, tx: Transaction) -> Prepared:
        """What scoring ``tx`` reads, at once (a shared store: one round trip)."""
        ...

    def add_transaction(self, scored: Scored, basis: Prepared | None = None) -> Scored | None:
        """Add a scored transaction to the histories and remember its answer. A transaction_id already
        held is not added again: the answer recorded for it is returned (a shared store: another worker
        scored it first), or None when there is none. ``basis``: what its features were computed from;
        a shared store raises ``Conflict`` when another worker changed that history since."""
        ...

    def add_label(self, transaction_id: str, tx_fraud: int) -> bool:
        """Set a transaction's label; False when the store does not hold the transaction."""
        ...

    def get_scored(self, transaction_id: str) -> Scored | None:
        """The answer given to a transaction still held, for a retry; None if none was given."""
        ...

    def has_transaction(self, transaction_id: str) -> bool:
        """Whether the transaction is held (scored here, or in the history the store started from)."""
        ...

    def earliest_exact(self) -> int | None:
        """The earliest time a new transaction may have for its windows to be complete (None: any)."""
        ...

    def newest(self) -> int | None:
        """The newest transaction time seen (None: none yet)."""
        ...

    def start_period(self, start: int) -> int | None:
        """The operator's move of the clock to ``start`` (``online.periods``): returns the newest time seen
        before, or None (nothing changed) when ``start`` is not after it or nothing was seen yet."""
        ...

    def size(self) -> dict[str, int]:
        """Counts for /metrics: transactions, customers, terminals held."""
        ...

    def save(self, directory: Path) -> None:
        """Write a snapshot that ``load`` of the same kind of store restarts from."""
        ...


class SharedStore(StateStore, Protocol):
    """A store several workers share (``redis.RedisStore``): durable on its own, without a journal."""

    meta: dict[str, Any]  # how the shared state was seeded: source, identity, when, transactions, seconds
    seeded: bool  # this worker seeded it (else it found it there)

    def compact(self) -> str:
        """Rewrite the store's durable log to the current state (a snapshot's work); what was done."""
        ...

    def persistence(self) -> str:
        """How the store keeps the state, for the start-up line."""
        ...
