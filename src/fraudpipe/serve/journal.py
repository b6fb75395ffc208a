"""The service's durable log: every accepted transaction and label, written before the answer.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit is an append to the write-ahead log
without an fsync, which survives a killed process (``kill -9``), not a power cut. A restart loads
the latest snapshot and replays the entries after it, in order, so the state is what it was.
Checkpoints (copying the log into the database file, with an fsync) would stall the request that
triggers them for milliseconds; SQLite's automatic ones are off and a background thread runs a
passive checkpoint every second instead, which never blocks the writer.

Schema (``<journal dir>/journal.sqlite3``, table ``events``; one row per accepted entry):

    seq             INTEGER PRIMARY KEY   order of acceptance = replay order; never reused (truncation keeps
                                          the newest row, so SQLite's next rowid stays above every seq given)
    kind            TEXT     'transaction' or 'label'
    transaction_id  TEXT     the key (``contract.canonical_id``)
    -- transaction rows: the transaction as scored and the answer given
    customer_id, terminal_id              TEXT   keys
    tx_datetime                           TEXT   ISO 8601, naive UTC, microseconds
    tx_amount                             REAL
    customer_x, customer_y, terminal_x, terminal_y   REAL   NULL when not carried
    score                                 REAL   P(fraud)
    alert                                 INTEGER  1 when score >= threshold
    threshold                             REAL
    model_version                         TEXT   "<estimator>-<12 hex digits>"
    -- label rows
    tx_fraud                              INTEGER  0 or 1
    received_at     TEXT     wall clock (UTC, ISO 8601) when the entry was accepted

Table ``meta`` (key, value) holds the format, the state the journal was started on, and the
operator's moves of the clock (``periods``: JSON [[the seq it followed, start epoch second], ...]).

Snapshots (``POST /v1/admin/snapshot`` or SIGUSR1) go to ``<journal dir>/snapshots/<seq>/`` (the
last seq they hold; complete once ``service.json`` is in them), then the entries up to that seq
are deleted, so the log holds only what happened since the latest snapshot. The file names and
columns are ``servicelog``'s, whose ``read_service_log`` gives monitoring the scored transactions and
labels of the latest snapshot (those the service still retains) and of the log after it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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
from fraudpipe.errors import DataError
from fraudpipe.serve.stores.base import Scored, Transaction, epoch_second
from fraudpipe.servicelog import (
    EVENT_COLUMNS,
    JOURNAL_FILE,
    LABEL,
    SNAPSHOT_MARK,
    SNAPSHOTS_DIR,
    TRANSACTION,
    latest_snapshot,
)

FORMAT = 1
PERIODS_KEY = "periods"  # meta: the operator's moves of the clock, JSON [[after seq, start], ...]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('{TRANSACTION}', '{LABEL}')),
    transaction_id TEXT NOT NULL,
    customer_id TEXT, terminal_id TEXT, tx_datetime TEXT, tx_amount REAL,
    customer_x REAL, customer_y REAL, terminal_x REAL, terminal_y REAL,
    score REAL, alert INTEGER, threshold REAL, model_version TEXT,
    tx_fraud INTEGER CHECK (tx_fraud IN (0, 1)),
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT_TX = (
    "INSERT INTO events (kind, transaction_id, customer_id, terminal_id, tx_datetime, tx_amount, customer_x, customer_y, "
    f"terminal_x, terminal_y, score, alert, threshold, model_version, received_at) VALUES ('{TRANSACTION}', "
    "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_LABEL = f"INSERT INTO events (kind, transaction_id, tx_fraud, received_at) VALUES ('{LABEL}', ?, ?, ?)"


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Entry:
    """One journal row, as replay needs it: a scored transaction, or a label."""

    seq: int
    scored: Scored | None = None
    transaction_id: str = ""
    tx_fraud: int = 0


class Journal:
    """The append-only log of one service (one process writes it)."""

    def __init__(self, directory: Path, checkpoint_every: float | None = 1.0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # effective on a new file: truncation then shrinks it
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")  # see the module docstring
            self._db.executescript(_SCHEMA)
            found = self.get_meta("format")
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"{self.path}: not a journal this service can open ({exc}); move it away to start afresh"
            ) from None
        if found is None:
            self.set_meta("format", str(FORMAT))
        elif found != str(FORMAT):
            raise DataError(f"{self.path}: journal format {found}, this code writes {FORMAT}")
        self._stop = threading.Event()
        self._checkpointer = None
        if checkpoint_every:
            self._checkpointer = threading.Thread(
                target=self._checkpoint, args=(checkpoint_every,), name="journal-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint(self, every: float) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # busy or closing: the next round does it
                    pass
        finally:
            db.close()

    # --- writing (each call is one committed transaction) -----------------------------------------

    def append_transaction(self, scored: Scored) -> int:
        tx = scored.transaction
        cursor = self._db.execute(
            _INSERT_TX,
            (
                tx.transaction_id,
                tx.customer_id,
                tx.terminal_id,
                tx.tx_datetime.isoformat(timespec="microseconds"),
                tx.tx_amount,
                *tx.coordinates,
                scored.score,
                int(scored.alert),
                scored.threshold,
                scored.model_version,
                _now(),
            ),
        )
        return cursor.lastrowid

    def append_label(self, transaction_id: str, tx_fraud: int) -> int:
        return self._db.execute(_INSERT_LABEL, (transaction_id, tx_fraud, _now())).lastrowid

    def truncate(self, through: int) -> None:
        """Delete the entries up to ``through`` (a snapshot holds them) and give the space back; the
        newest entry stays, so that seqs are never reused (no AUTOINCREMENT: it costs a page per append)."""
        self._db.execute("DELETE FROM events WHERE seq <= ? AND seq < (SELECT max(seq) FROM events)", (through,))
        self._db.execute("PRAGMA incremental_vacuum")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def append_period(self, start: int) -> None:
        """Record the operator's move of the clock to ``start`` (``online.periods``) after the latest
        entry, so that a replay moves it at the same point; in ``meta`` (one committed statement), as
        the ``events`` table holds transactions and labels only."""
        moves = self.periods()
        moves.append((self.last_seq(), start))
        self.set_meta(PERIODS_KEY, json.dumps(moves))

    def periods(self) -> list[tuple[int, int]]:
        """Every move of the clock recorded: (the seq of the entry it followed, its start), in order."""
        raw = self.get_meta(PERIODS_KEY)
        return [(int(after), int(start)) for after, start in json.loads(raw)] if raw else []

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # --- reading ------------------------------------------------------------------------------

    def last_seq(self) -> int:
        """The seq of the latest entry appended (0 for a new journal)."""
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def count(self) -> int:
        """Entries after the latest snapshot: what a restart replays."""
        found = self.latest_snapshot()
        return int(
            self._db.execute("SELECT count(*) FROM events WHERE seq > ?", (found[1] if found else 0,)).fetchone()[0]
        )

    def entries(self, after: int) -> Iterator[Entry]:
        """The entries after seq ``after``, in order."""
        rows = self._db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE seq > ? ORDER BY seq", (after,))
        for row in rows:
            yield _entry(dict(zip(EVENT_COLUMNS, row)))

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        self._db.close()

    # --- snapshots ----------------------------------------------------------------------------

    def latest_snapshot(self) -> tuple[Path, int] | None:
        """The newest complete snapshot in the journal directory and the seq it holds."""
        return latest_snapshot(self.directory)

    def snapshot_dir(self, seq: int) -> Path:
        return self.directory / SNAPSHOTS_DIR / f"{seq:012d}"

    def mark_snapshot(self, directory: Path, seq: int, **info: Any) -> None:
        """Complete a snapshot directory: its journal seq, written last."""
        (directory / SNAPSHOT_MARK).write_text(
            json.dumps({"journal_seq": seq, **info}, indent=2) + "\n", encoding="utf-8"
        )

    def drop_other_snapshots(self, keep: Path) -> None:
        for old in (self.directory / SNAPSHOTS_DIR).iterdir():
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


def _entry(row: dict[str, Any]) -> Entry:
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
    return Entry(row["seq"], Scored(tx, row["score"], bool(row["alert"]), row["threshold"], row["model_version"]))
