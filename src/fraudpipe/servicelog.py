"""The service's log as monitoring reads it: what `fraudpipe serve` scored and the labels it received.

A ground module, so that monitoring reads the log without importing the service: it holds the layout
both sides share (the journal's file names and columns, the snapshot's scored table, the Redis keys
and records) and the readers. The writers (``serve.journal``, ``serve.stores.memory``,
``serve.stores.redis``) import the layout from here.

Two places a service keeps its log:

- A journal directory (the in-process store): ``journal.sqlite3``, table ``events``, one row per
  accepted transaction or label (schema in ``serve.journal``), and ``snapshots/<seq>/``, complete
  once ``service.json`` is in it; a snapshot's ``scored.parquet`` holds every transaction the
  service still retained with its answer and label, and the entries up to its seq are gone from
  the log.
- Redis (``--store redis://...``, no journal), under a key prefix P (``RedisKeys``):

      P:meta          JSON: the state it was seeded from (identity, as_of), features config, late_days, and
                      its format (2: the history members below; a worker refuses another format).
                      Written last by the seeding worker: its presence means "loaded".
      P:seeding       the worker seeding now (SET NX with an expiry: one seeder, a dead one's lock lapses)
      P:clock         hash: now (newest time seen), pruned_at, complete_since, seq (arrival counter),
                      lseq (labels), changes (every change of a history: the versions)
      P:count         hash: customers, terminals (keys holding history, for /metrics)
      P:tx            hash transaction_id -> JSON [t, seq, label (-1 unknown), customer, terminal, amount]
      P:all           sorted set of transaction_ids by time (what pruning forgets)
      P:c:<customer>  sorted set by time of "<seq:012d>|<time>|<amount repr>|<terminal>": equal times sort
                      by member, i.e. by arrival (the zero-padded seq), as the in-process state orders them;
                      the time (epoch seconds, the score) is in the member so a window is read without scores
      P:t:<terminal>  sorted set by time of "<seq:012d>|<time>|<transaction_id>"
      P:f:<terminal>  the same members, only those labelled fraud (a label adds or removes one)
      P:scored        hash transaction_id -> JSON answer (``Answer``: for retries, and this reader)
      P:labels        hash transaction_id -> JSON [tx_fraud, received_at, lseq, clock] (labels received;
                      clock: P:clock's now when it came, epoch seconds; absent in records older than it)
      P:ver           hash "c:<customer>" / "t:<terminal>" -> the number (P:clock changes) of the last
                      change of that history
      P:xy:c, P:xy:t  hash id -> "x y": the last known locations (distance feature only)

  The store's Lua scripts (``serve/stores/redis/*.lua``) build the same keys from the prefix.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field

from fraudpipe.config import Config
from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    DATETIME_DTYPE,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    id_array,
)
from fraudpipe.errors import ConfigError, DataError, redact_url
from fraudpipe.io import read_parquet

# --- the journal directory ------------------------------------------------------------------------

JOURNAL_FILE = "journal.sqlite3"
SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_MARK = "service.json"  # written last into a snapshot: its journal seq; a snapshot without it is incomplete
TRANSACTION, LABEL = "transaction", "label"  # the kinds of journal entry
SCORED_FILE = "scored.parquet"
#: The challenger's answer beside the champion's (``fraudpipe serve --shadow``): its score (NaN where no
#: challenger scored the transaction), its version (None: none), whether its own threshold alerted
#: (None: none). Logs written before the shadow existed lack them: they read as NaN / None.
SHADOW_SCORE, SHADOW_MODEL, SHADOW_ALERT = "shadow_score", "shadow_model", "shadow_alert"
SHADOW_COLUMNS = (SHADOW_SCORE, SHADOW_MODEL, SHADOW_ALERT)
#: scored.parquet (in a snapshot): every retained transaction the service scored, with its answer.
SCORED_COLUMNS = (
    TRANSACTION_ID,
    CUSTOMER_ID,
    TERMINAL_ID,
    TX_DATETIME,
    TX_AMOUNT,
    *COORDINATE_COLUMNS,
    "score",
    "alert",
    "threshold",
    "model_version",
    *SHADOW_COLUMNS,
    TX_FRAUD,
)
#: The columns of the journal's ``events`` table, in order: an entry's seq and kind, the scored
#: transaction's columns (a label entry fills only its id and tx_fraud), and when it was received.
EVENT_COLUMNS = ("seq", "kind", *SCORED_COLUMNS, "received_at")

# --- Redis -----------------------------------------------------------------------------------------

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(value: str) -> bool:
    return value.startswith(REDIS_SCHEMES)


class RedisKeys:
    """The keys of one shared state (the module docstring describes each)."""

    def __init__(self, prefix: str) -> None:
        p = self.prefix = prefix
        self.meta, self.seeding, self.clock, self.count = f"{p}:meta", f"{p}:seeding", f"{p}:clock", f"{p}:count"
        self.tx, self.all, self.scored, self.labels = f"{p}:tx", f"{p}:all", f"{p}:scored", f"{p}:labels"
        self.ver = f"{p}:ver"

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}:c:{customer_id}"

    def terminal(self, terminal_id: str) -> str:
        return f"{self.prefix}:t:{terminal_id}"

    def frauds(self, terminal_id: str) -> str:
        return f"{self.prefix}:f:{terminal_id}"

    def locations(self, side: str) -> str:
        """``side``: ``c`` (customers) or ``t`` (terminals)."""
        return f"{self.prefix}:xy:{side}"


class Answer(NamedTuple):
    """A ``P:scored`` value: a scored transaction and the answer given (JSON: this list, in order)."""

    customer_id: str
    terminal_id: str
    tx_datetime: str  # ISO 8601, naive UTC, microseconds
    tx_amount: float
    coordinates: list[float | None]
    score: float
    alert: bool
    threshold: float
    model_version: str
    shadow_score: float | None = None  # the challenger's (``SHADOW_COLUMNS``); absent from older records
    shadow_model: str | None = None
    shadow_alert: bool | None = None

    def to_json(self) -> str:
        return json.dumps(list(self) if self.shadow_model is not None else list(self)[:9])

    @classmethod
    def from_json(cls, raw: str) -> Answer:
        return cls(*json.loads(raw))


#: Positions in a ``P:tx`` record and in a ``P:labels`` record.
TX_SEQ = 1
LABEL_FRAUD, LABEL_RECEIVED, LABEL_SEQ, LABEL_CLOCK = 0, 1, 2, 3


def connect_redis(url: str) -> Any:
    """A client for ``url`` (redis://host:port/db, rediss://..., unix:///path.sock?db=N), checked with
    a PING: an unreachable Redis is a one-line ConfigError naming the URL."""
    import redis  # only a Redis-backed service or log needs the client library

    try:
        client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise ConfigError(
            f"--store {url}: cannot reach Redis ({type(exc).__name__}: {exc}); start redis-server or fix the URL"
        ) from None
    return client


# --- where the log is: the keys `data=service_log` and `monitor` share ---------------------------------


class LogLocation(Config):
    """Where a service keeps its log, named the same way wherever it is read (conf/data/service_log.yaml,
    conf/monitor/): ``log``, the service's --journal-dir or the Redis URL of its --store
    (``read_service_log`` tells them apart); ``redis_prefix``, its --redis-prefix (a Redis log only)."""

    log: str = Field(min_length=1)
    redis_prefix: str = Field(min_length=1)

    @property
    def log_where(self) -> str:
        return log_where(self.log, self.redis_prefix)

    def read_log(self) -> ServiceLog:
        return read_service_log(self.log, self.redis_prefix)


def log_where(log: str, redis_prefix: str) -> str:
    """The log's place as messages name it: the directory, or the Redis URL (without its password)
    and the prefix."""
    return f"Redis {redact_url(log)}, prefix {redis_prefix}" if is_redis_url(log) else log


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLog:
    """What the service scored and the labels it received (``read_service_log``)."""

    #: transaction_id, customer_id, terminal_id, tx_datetime, tx_amount, the coordinates the request
    #: carried (NaN where none), score, alert, threshold, model_version, and the challenger's
    #: shadow_score (NaN where none scored), shadow_model (None), shadow_alert (None)
    scored: pd.DataFrame
    #: transaction_id, tx_fraud, received_at (wall clock; NaT: the label was already known when the
    #: snapshot was written), known_at (the service's clock then: the newest transaction time it had
    #: seen; for a snapshot's labels, the snapshot's newest transaction time)
    labels: pd.DataFrame


SCORED_LOG_COLUMNS = (
    TRANSACTION_ID,
    CUSTOMER_ID,
    TERMINAL_ID,
    TX_DATETIME,
    TX_AMOUNT,
    *COORDINATE_COLUMNS,
    "score",
    "alert",
    "threshold",
    "model_version",
    *SHADOW_COLUMNS,
)
LABEL_LOG_COLUMNS = (TRANSACTION_ID, TX_FRAUD, "received_at", "known_at")


def latest_snapshot(directory: Path) -> tuple[Path, int] | None:
    """The newest complete snapshot under ``directory/snapshots`` and the journal seq it holds."""
    root = directory / SNAPSHOTS_DIR
    complete = (
        [p for p in root.iterdir() if (p / SNAPSHOT_MARK).is_file() and not p.name.startswith(".")]
        if root.is_dir()
        else []
    )
    if not complete:
        return None
    newest = max(complete, key=lambda p: p.name)
    return newest, int(json.loads((newest / SNAPSHOT_MARK).read_text(encoding="utf-8"))["journal_seq"])


def read_service_log(directory: str | Path, redis_prefix: str = "fraudpipe") -> ServiceLog:
    """The scored transactions and the labels of a service's journal directory (``read_journal_log``),
    or, given a Redis URL instead (a service run with ``--store redis://...``, which keeps no journal),
    the same frames from the shared state under ``redis_prefix`` (``read_redis_log``)."""
    if isinstance(directory, str) and is_redis_url(directory):
        return read_redis_log(directory, redis_prefix)
    return read_journal_log(Path(directory))


def read_journal_log(directory: Path) -> ServiceLog:
    """A journal directory, read-only: the transactions of its latest snapshot (still retained by the
    service) then every entry after it, in order of acceptance. Ids in the contract's dtypes (int64
    when every id is a canonical integer, else text)."""
    path = directory / JOURNAL_FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: no service journal in {directory} (see `fraudpipe serve --journal-dir`)"
        )
    snapshot = latest_snapshot(directory)
    after = snapshot[1] if snapshot else 0
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT {event_selection(db)} FROM events WHERE seq > ? ORDER BY seq", (after,)).fetchall()
    finally:
        db.close()
    log = pd.DataFrame.from_records(rows, columns=list(EVENT_COLUMNS))
    log[TX_DATETIME] = pd.to_datetime(log[TX_DATETIME]).astype(DATETIME_DTYPE)
    kept = with_shadow(read_parquet(snapshot[0] / SCORED_FILE)) if snapshot else None
    start = kept[TX_DATETIME].max() if kept is not None and len(kept) else None
    log["known_at"] = service_clock(log[TX_DATETIME].to_numpy(), start)
    tx_rows, label_rows = log[log["kind"] == TRANSACTION], log[log["kind"] == LABEL]
    scored = [tx_rows[list(SCORED_LOG_COLUMNS)]]
    labels = [label_rows[list(LABEL_LOG_COLUMNS)].assign(received_at=pd.to_datetime(label_rows["received_at"]))]
    if kept is not None:
        scored.insert(0, kept[list(SCORED_LOG_COLUMNS)])
        known = kept[kept[TX_FRAUD].notna()]
        labels.insert(
            0,
            pd.DataFrame(
                {
                    TRANSACTION_ID: known[TRANSACTION_ID],
                    TX_FRAUD: known[TX_FRAUD],
                    "received_at": pd.Series(pd.NaT, index=known.index, dtype=DATETIME_DTYPE),
                    "known_at": pd.Series(start, index=known.index, dtype=DATETIME_DTYPE),
                }
            ),
        )
    return ServiceLog(typed_log(scored, SCORED_LOG_COLUMNS), typed_log(labels, LABEL_LOG_COLUMNS))


def event_selection(db: sqlite3.Connection) -> str:
    """``EVENT_COLUMNS`` as a SELECT list on a journal's ``events`` table, NULL for the shadow columns
    of a journal written before they existed."""
    present = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    return ", ".join(c if c in present or c not in SHADOW_COLUMNS else f"NULL AS {c}" for c in EVENT_COLUMNS)


def with_shadow(table: pd.DataFrame) -> pd.DataFrame:
    """A ``scored.parquet`` table with the shadow columns (NaN / None in one written before them)."""
    missing = {SHADOW_SCORE: np.nan, SHADOW_MODEL: None, SHADOW_ALERT: None}
    return table.assign(**{c: v for c, v in missing.items() if c not in table})


def service_clock(times: np.ndarray, start: pd.Timestamp | None = None) -> np.ndarray:
    """The service's clock after each entry of a log in acceptance order: the newest transaction time
    seen so far (``times``: a transaction entry's time, NaT for a label), from ``start`` (the
    snapshot's). Entries before any transaction time get the first one (the clock of a service that
    has seen nothing logged yet is not recorded: the first logged time bounds it)."""
    stamps = np.asarray(times, dtype=DATETIME_DTYPE)
    floor = np.iinfo(np.int64).min  # NaT's own int64 value: below every time
    values = np.where(np.isnat(stamps), floor, stamps.view(np.int64))
    if start is not None and not pd.isna(start):
        values = np.maximum(values, np.datetime64(start, "us").view(np.int64))
    clock = np.maximum.accumulate(values) if len(values) else values
    seen = clock != floor
    if seen.any():
        clock[~seen] = clock[seen][0]
    return clock.view(DATETIME_DTYPE)


def read_redis_log(url: str, prefix: str = "fraudpipe") -> ServiceLog:
    """A Redis-backed service's log: the scored transactions it still retains (acceptance order) and
    the labels it received for retained transactions (order of arrival)."""
    keys = RedisKeys(prefix)
    client = connect_redis(url)
    try:
        if client.get(keys.meta) is None:
            raise DataError(f"--store {url} (prefix {prefix!r}) holds no service state: nothing to read")
        answers = client.hgetall(keys.scored)
        tids = list(answers)
        records = client.hmget(keys.tx, tids) if tids else []
        received = client.hgetall(keys.labels)
    finally:
        client.close()
    seqs = [json.loads(r)[TX_SEQ] if r else 0 for r in records]
    order = sorted(range(len(tids)), key=seqs.__getitem__)
    entries = sorted(((k, *json.loads(v)) for k, v in received.items()), key=lambda e: e[1 + LABEL_SEQ])
    labels = pd.DataFrame(
        {
            TRANSACTION_ID: [e[0] for e in entries],
            TX_FRAUD: [e[1 + LABEL_FRAUD] for e in entries],
            "received_at": np.array([e[1 + LABEL_RECEIVED] for e in entries], dtype="datetime64[us]"),
            "known_at": np.array(
                [e[1 + LABEL_CLOCK] * 1_000_000 if len(e) > 1 + LABEL_CLOCK else None for e in entries],
                dtype="float64",
            ).astype("datetime64[us]"),
        },
        columns=list(LABEL_LOG_COLUMNS),
    )
    scored = _answers_frame([tids[i] for i in order], [Answer.from_json(answers[tids[i]]) for i in order])
    return ServiceLog(typed_log([scored], SCORED_LOG_COLUMNS), typed_log([labels], LABEL_LOG_COLUMNS))


def _answers_frame(tids: list[str], answers: list[Answer]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            TRANSACTION_ID: tids,
            CUSTOMER_ID: [a.customer_id for a in answers],
            TERMINAL_ID: [a.terminal_id for a in answers],
            TX_DATETIME: np.array([datetime.fromisoformat(a.tx_datetime) for a in answers], dtype="datetime64[us]"),
            TX_AMOUNT: [a.tx_amount for a in answers],
            **{
                c: [np.nan if a.coordinates[i] is None else a.coordinates[i] for a in answers]
                for i, c in enumerate(COORDINATE_COLUMNS)
            },
            "score": [a.score for a in answers],
            "alert": [a.alert for a in answers],
            "threshold": [a.threshold for a in answers],
            "model_version": [a.model_version for a in answers],
            SHADOW_SCORE: [np.nan if a.shadow_score is None else a.shadow_score for a in answers],
            SHADOW_MODEL: [a.shadow_model for a in answers],
            SHADOW_ALERT: [a.shadow_alert for a in answers],
        },
        columns=list(SCORED_LOG_COLUMNS),
    )


def typed_log(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """The parts one after the other, in the contract's dtypes."""
    dtypes: dict[str, npt.DTypeLike] = {
        TX_DATETIME: DATETIME_DTYPE,
        "received_at": DATETIME_DTYPE,
        "known_at": DATETIME_DTYPE,
        "threshold": np.float64,
        TX_AMOUNT: np.float64,
        "score": np.float64,
        SHADOW_SCORE: np.float64,
        "alert": bool,
        TX_FRAUD: np.int8,
        **dict.fromkeys(COORDINATE_COLUMNS, np.float64),
    }
    out = {}
    for c in columns:
        if c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID):  # int64 or text: str() is the key either way
            out[c] = id_array([str(v) for p in parts for v in p[c].tolist()])
        elif c == "model_version":
            out[c] = pd.array([str(v) for p in parts for v in p[c].tolist()], dtype="str")
        elif c == SHADOW_MODEL:  # None where no challenger scored
            out[c] = pd.array([None if _missing(v) else str(v) for p in parts for v in p[c].tolist()], dtype="str")
        elif c == SHADOW_ALERT:  # SQLite's 0/1, Parquet's nullable booleans, JSON's true/false; None: none
            out[c] = pd.array([None if _missing(v) else bool(v) for p in parts for v in p[c].tolist()], dtype="boolean")
        else:
            kind = dtypes[c]
            out[c] = (
                np.concatenate([np.asarray(p[c].to_numpy(), dtype=kind) for p in parts])
                if parts
                else np.array([], dtype=kind)
            )
    return pd.DataFrame(out)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)
