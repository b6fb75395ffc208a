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

Group commit (``hold``, what the service runs with): appends are kept in order in memory and
``commit`` inserts them (``executemany``) and commits them at once, so that the requests answered
together cost one transaction (``serve.commits`` decides when). Inserting them there rather than in
each request also keeps SQLite's code warm: an INSERT took 30 µs of CPU in the server between two
requests' scoring, 8 µs in a loop of them. Without ``hold`` each append is committed on its own and
gives its seq. Seqs follow the order of appending either way; readers on other connections
(snapshots, ``read_service_log``) see committed entries only.

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
import itertools
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudpipe.errors import DataError
from fraudpipe.serve.replay import Entry, entry_of
from fraudpipe.serve.stores.base import Scored
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


class Journal:
    """The append-only log of one service (one thread appends; see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        checkpoint_every: float | None = 1.0,
        wal_limit: int = DEFAULT_WAL_LIMIT,
        hold: bool = False,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        self.wal_limit = wal_limit
        self.hold = hold  # appends wait for ``commit`` (group commit) instead of each committing on its own
        self._held: list[tuple[str, tuple[Any, ...]]] = []  # (statement, parameters) appended, not inserted yet
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

    # --- writing (each call committed on its own, or held for ``commit``) ------------------------------

    def _write(self, sql: str, params: tuple[Any, ...]) -> int | None:
        """Commit one entry now and give its seq, or (``hold``) keep it for ``commit`` (None)."""
        if self.hold:
            self._held.append((sql, params))
            return None
        seq = _row_id(self._db.execute(sql, params))
        self._after_append()
        return seq

    def _insert_held(self) -> None:
        """Insert the held entries into the open transaction, in order (seqs given), uncommitted."""
        if not self._held:
            return
        held, self._held = self._held, []
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        for sql, group in itertools.groupby(held, key=lambda entry: entry[0]):
            self._db.executemany(sql, [params for _, params in group])

    @property
    def pending(self) -> bool:
        """Entries appended and not committed yet (``hold``)."""
        return bool(self._held) or self._db.in_transaction

    def commit(self) -> None:
        """Commit what was appended since the last commit, in one write to the log. On an error none of
        it is recorded (rolled back) and the error is raised."""
        try:
            self._insert_held()
            if not self._db.in_transaction:
                return
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._held = []
            with contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise
        self._after_append()

    def append_transaction(self, scored: Scored) -> int | None:
        """Its seq, or None while held (``hold``: given at the commit, in the order of appending)."""
        tx = scored.transaction
        return self._write(
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

    def append_label(self, transaction_id: str, tx_fraud: int) -> int | None:
        return self._write(_INSERT_LABEL, (transaction_id, tx_fraud, _now()))

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
        """Committed at once, or (``hold``) with the entries held before it."""
        if self.hold:
            self._insert_held()
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # --- reading ------------------------------------------------------------------------------

    def last_seq(self) -> int:
        """The seq of the latest entry appended (0 for a new journal)."""
        self._insert_held()
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
        self._insert_held()
        return int(
            self._db.execute("SELECT count(*) FROM events WHERE seq > ?", (found[1] if found else 0,)).fetchone()[0]
        )

    def entries(self, after: int) -> Iterator[Entry]:
        """The entries after seq ``after``, in order."""
        self._insert_held()
        rows = self._db.execute(f"SELECT {event_selection(self._db)} FROM events WHERE seq > ? ORDER BY seq", (after,))
        for row in rows:
            yield entry_of(dict(zip(EVENT_COLUMNS, row)))

    def close(self) -> None:
        """Commit what is held (its answers may not have been sent: a retry gets them), then close."""
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        with contextlib.suppress(sqlite3.Error):
            self.commit()
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


def read_periods(directory: Path) -> list[tuple[int, int]]:
    """The moves of the clock a journal directory records, read on a read-only connection of its own."""
    db = sqlite3.connect(f"{(directory / JOURNAL_FILE).resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (PERIODS_KEY,)).fetchone()
    finally:
        db.close()
    return [(int(after), int(start)) for after, start in json.loads(row[0])] if row else []
