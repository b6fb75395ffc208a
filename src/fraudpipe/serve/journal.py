"""The service's durable log: every accepted transaction and label, written before the answer.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit is an append to the write-ahead log
without an fsync, which survives a killed process (``kill -9``), not a power cut. A restart loads
the latest snapshot and replays the entries after it, in order, so the state is what it was.
Checkpoints (copying the log into the database file, with an fsync) would stall the request that
triggers them for milliseconds; SQLite's automatic ones are off and a background thread runs a
passive checkpoint every second instead, which never blocks the writer. A passive checkpoint from
another connection never lets the log restart from its beginning while requests keep arriving
(the writer appends during its fsyncs, so it never ends with every frame copied), so the log would
grow by a page (4 KB) a request. Hence the bound: once the background checkpoint finds the log
over ``wal_limit`` bytes, the writer's next append finishes the checkpoint on its own connection
(a few frames and the fsyncs, milliseconds, at most once per background round), after which the
following append restarts the log, and ``journal_size_limit`` cuts the file back to ``wal_limit``.
A checkpoint stops at the oldest open read transaction: a long reader (``read_service_log``)
holds the log's restart back until it ends.

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
    shadow_score, shadow_model, shadow_alert   REAL, TEXT, INTEGER   the challenger's (``--shadow``);
                                          NULL when none scored it (columns added to an older journal on open)
    -- label rows
    tx_fraud                              INTEGER  0 or 1
    received_at     TEXT     wall clock (UTC, ISO 8601) when the entry was accepted

Table ``meta`` (key, value) holds the format, the state the journal was started on, and the
operator's moves of the clock (``periods``: JSON [[the seq it followed, start epoch second], ...]).

Snapshots (``POST /v1/admin/snapshot``, SIGUSR1, every ``--snapshot-every`` entries; written by
``serve.snapshot``) go to ``<journal dir>/snapshots/<seq>/`` (the
last seq they hold; complete once ``service.json`` is in them), then the entries up to that seq
are deleted, so the log holds only what happened since the latest snapshot. The file names and
columns are ``servicelog``'s, whose ``read_service_log`` gives monitoring the scored transactions and
labels of the latest snapshot (those the service still retains) and of the log after it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
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
from fraudpipe.serve.stores.base import Scored, StateStore, Transaction, epoch_second
from fraudpipe.servicelog import (
    EVENT_COLUMNS,
    JOURNAL_FILE,
    LABEL,
    SHADOW_ALERT,
    SHADOW_MODEL,
    SHADOW_SCORE,
    SNAPSHOT_MARK,
    SNAPSHOTS_DIR,
    TRANSACTION,
    event_selection,
    latest_snapshot,
)

FORMAT = 1
PERIODS_KEY = "periods"  # meta: the operator's moves of the clock, JSON [[after seq, start], ...]
DEFAULT_WAL_LIMIT = 4 << 20  # bytes of write-ahead log (about 1,000 appends) before the writer restarts it

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('{TRANSACTION}', '{LABEL}')),
    transaction_id TEXT NOT NULL,
    customer_id TEXT, terminal_id TEXT, tx_datetime TEXT, tx_amount REAL,
    customer_x REAL, customer_y REAL, terminal_x REAL, terminal_y REAL,
    score REAL, alert INTEGER, threshold REAL, model_version TEXT,
    shadow_score REAL, shadow_model TEXT, shadow_alert INTEGER,
    tx_fraud INTEGER CHECK (tx_fraud IN (0, 1)),
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT_TX = (
    "INSERT INTO events (kind, transaction_id, customer_id, terminal_id, tx_datetime, tx_amount, "
    "customer_x, customer_y, terminal_x, terminal_y, score, alert, threshold, model_version, "
    "shadow_score, shadow_model, shadow_alert, received_at) "
    f"VALUES ('{TRANSACTION}', "
    "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Columns added after format 1 was first written: an older journal gets them on open (NULL in its rows).
_ADDED = {SHADOW_SCORE: "REAL", SHADOW_MODEL: "TEXT", SHADOW_ALERT: "INTEGER"}
_INSERT_LABEL = f"INSERT INTO events (kind, transaction_id, tx_fraud, received_at) VALUES ('{LABEL}', ?, ?, ?)"


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The sequence number an INSERT gave its entry (sqlite3 has None only before any INSERT)."""
    seq = cursor.lastrowid
    if seq is None:
        raise sqlite3.OperationalError("the journal's INSERT gave no row id")
    return seq


@dataclass(frozen=True)
class Entry:
    """One journal row, as replay needs it: a scored transaction, or a label."""

    seq: int
    scored: Scored | None = None
    transaction_id: str = ""
    tx_fraud: int = 0


class Journal:
    """The append-only log of one service (one thread appends; see the module docstring)."""

    def __init__(
        self, directory: Path, checkpoint_every: float | None = 1.0, wal_limit: int = DEFAULT_WAL_LIMIT
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        self.wal_limit = wal_limit
        try:
            self._db = self.connect()
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # effective on a new file: truncation then shrinks it
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")  # see the module docstring
            self._db.executescript(_SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
            for column, kind in _ADDED.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")
            found = self.get_meta("format")
            self._frame_bytes = self._db.execute("PRAGMA page_size").fetchone()[0] + 24  # + the frame header
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"{self.path}: not a journal this service can open ({exc}); move it away to start afresh"
            ) from None
        if found is None:
            self.set_meta("format", str(FORMAT))
        elif found != str(FORMAT):
            raise DataError(f"{self.path}: journal format {found}, this code writes {FORMAT}")
        self._stop = threading.Event()
        self._restart_due = False  # set by the checkpointer, cleared by the writer
        self._checkpointer = None
        if checkpoint_every:
            self._checkpointer = threading.Thread(
                target=self._checkpoint, args=(checkpoint_every,), name="journal-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def connect(self) -> sqlite3.Connection:
        """A connection of its own (one per thread that uses it), autocommit, with the log's size limit."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA journal_size_limit = {int(self.wal_limit)}")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _checkpoint(self, every: float) -> None:
        db = self.connect()
        try:
            while not self._stop.wait(every):
                try:
                    busy, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # busy or closing: the next round does it
                    continue
                if not busy and frames * self._frame_bytes >= self.wal_limit:
                    self._restart_due = True
        finally:
            db.close()

    def _after_append(self) -> None:
        """Finish the checkpoint on the writer's connection when the log is over its limit: nothing is
        appended meanwhile, so every frame is copied (unless a reader holds an older snapshot) and the
        next append starts the log over."""
        if self._restart_due:
            self._restart_due = False  # once per background round, even when a reader keeps it from completing
            with contextlib.suppress(sqlite3.Error):  # busy: the next round does it
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file (0 when there is none)."""
        wal = self.path.with_name(self.path.name + "-wal")
        return wal.stat().st_size if wal.exists() else 0

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
                scored.shadow_score,
                scored.shadow_model,
                None if scored.shadow_alert is None else int(scored.shadow_alert),
                _now(),
            ),
        )
        self._after_append()
        return _row_id(cursor)

    def append_label(self, transaction_id: str, tx_fraud: int) -> int:
        seq = _row_id(self._db.execute(_INSERT_LABEL, (transaction_id, tx_fraud, _now())))
        self._after_append()
        return seq

    def truncate(self, through: int, chunk: int = 2_000) -> None:
        """Delete the entries up to ``through`` (a snapshot holds them) and give the space back; the
        newest entry stays, so that seqs are never reused (no AUTOINCREMENT: it costs a page per append).
        On a connection of its own, in short transactions of ``chunk`` rows (or pages): any thread may
        call it while the writer appends, which waits for one chunk at most."""
        db = self.connect()
        try:
            while (
                db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? AND seq < "
                    "(SELECT max(seq) FROM events) ORDER BY seq LIMIT ?)",
                    (through, chunk),
                ).rowcount
                > 0
            ):
                pass
            before = None
            while (free := db.execute("PRAGMA freelist_count").fetchone()[0]) and free != before:
                before = free
                db.execute(f"PRAGMA incremental_vacuum({chunk})").fetchall()  # a page a step: run it to the end
        finally:
            db.close()

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

    def committed_seq(self) -> int:
        """``last_seq`` read on a connection of its own, for a thread other than the writer's."""
        db = sqlite3.connect(self.path)
        try:
            return int(db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
        finally:
            db.close()

    def count(self) -> int:
        """Entries after the latest snapshot: what a restart replays."""
        found = self.latest_snapshot()
        return int(
            self._db.execute("SELECT count(*) FROM events WHERE seq > ?", (found[1] if found else 0,)).fetchone()[0]
        )

    def entries(self, after: int) -> Iterator[Entry]:
        """The entries after seq ``after``, in order."""
        rows = self._db.execute(f"SELECT {event_selection(self._db)} FROM events WHERE seq > ? ORDER BY seq", (after,))
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
        return snapshot_dir(self.directory, seq)

    def mark_snapshot(self, directory: Path, seq: int, **info: Any) -> None:
        mark_snapshot(directory, seq, **info)

    def drop_other_snapshots(self, keep: Path) -> None:
        for old in (self.directory / SNAPSHOTS_DIR).iterdir():
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


def snapshot_dir(directory: Path, seq: int) -> Path:
    """Where the snapshot holding the entries up to ``seq`` goes, in a journal directory."""
    return directory / SNAPSHOTS_DIR / f"{seq:012d}"


def mark_snapshot(directory: Path, seq: int, **info: Any) -> None:
    """Complete a snapshot directory: its journal seq, written last."""
    (directory / SNAPSHOT_MARK).write_text(json.dumps({"journal_seq": seq, **info}, indent=2) + "\n", encoding="utf-8")


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
    return [_entry(dict(zip(EVENT_COLUMNS, row))) for row in rows]


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


def read_periods(directory: Path) -> list[tuple[int, int]]:
    """The moves of the clock a journal directory records, read on a read-only connection of its own."""
    db = sqlite3.connect(f"{(directory / JOURNAL_FILE).resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (PERIODS_KEY,)).fetchone()
    finally:
        db.close()
    return [(int(after), int(start)) for after, start in json.loads(row[0])] if row else []


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
