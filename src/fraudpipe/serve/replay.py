"""Journal entries as a restart and a snapshot use them: read from a journal file, replayed on a store.

Beside ``serve.journal``, the writer; the journal's layout (file name, columns) is ``servicelog``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)
from fraudpipe.serve.stores.base import Scored, StateStore, Transaction, epoch_second
from fraudpipe.servicelog import (
    EVENT_COLUMNS,
    JOURNAL_FILE,
    LABEL,
    SHADOW_ALERT,
    SHADOW_MODEL,
    SHADOW_SCORE,
    event_selection,
)


@dataclass(frozen=True)
class Entry:
    """One journal row, as replay needs it: a scored transaction, or a label."""

    seq: int
    scored: Scored | None = None
    transaction_id: str = ""
    tx_fraud: int = 0


def read_entries(directory: Path, after: int, through: int) -> list[Entry]:
    """The entries ``after`` < seq <= ``through`` of a journal directory, read at once on a read-only
    connection of their own (another process may be appending): the read transaction ends before
    they are used, so it holds no checkpoint back for longer than the read."""
    db = sqlite3.connect(f"{(directory / JOURNAL_FILE).resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            f"SELECT {event_selection(db)} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", (after, through)
        ).fetchall()
    finally:
        db.close()
    return [entry_of(dict(zip(EVENT_COLUMNS, row))) for row in rows]


def replay(store: StateStore, entries: Iterable[Entry], moves: Sequence[tuple[int, int]] = ()) -> int:
    """Apply journal entries to a store, in order, and the operator's moves of the clock (``periods``:
    (the seq it followed, start)) where they were made: what a restart and a snapshot do. A move the
    store already holds is behind its clock and skipped (``start_period`` does nothing). How many entries."""
    pending = sorted(moves)
    count = 0
    for entry in entries:
        while pending and pending[0][0] < entry.seq:
            store.start_period(pending.pop(0)[1])
        if entry.scored is not None:
            store.add_transaction(entry.scored)
        else:
            store.add_label(entry.transaction_id, entry.tx_fraud)  # False: forgotten since (older than retained)
        count += 1
    for _, start in pending:
        store.start_period(start)
    return count


def entry_of(row: dict[str, Any]) -> Entry:
    if row["kind"] == LABEL:
        return Entry(row["seq"], transaction_id=row[TRANSACTION_ID], tx_fraud=int(row[TX_FRAUD]))
    when = datetime.fromisoformat(row[TX_DATETIME])
    tx = Transaction(
        row[TRANSACTION_ID],
        row[CUSTOMER_ID],
        row[TERMINAL_ID],
        when,
        epoch_second(when),
        row[TX_AMOUNT],
        tuple(row[c] for c in COORDINATE_COLUMNS),
    )
    shadow, challenger, alert = row[SHADOW_SCORE], row[SHADOW_MODEL], row[SHADOW_ALERT]
    return Entry(
        row["seq"],
        Scored(
            tx,
            row["score"],
            bool(row["alert"]),
            row["threshold"],
            row["model_version"],
            shadow,
            challenger,
            None if alert is None else bool(alert),
        ),
    )
