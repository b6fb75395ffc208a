"""``RedisStore``: the ``StateStore`` of several service workers, on one machine or many, sharing one
history in Redis (key layout: ``servicelog``; opening: ``seeding``; scripts: ``*.lua``).

Semantics of ``InProcessStore`` (same retention window, pruned at the same moments, same-second
order = arrival order, late labels, duplicate transaction ids, ``earliest_exact``), so the features,
computed by the same ``online.history_features``, are the same whichever worker scores a transaction.

Every change is one Lua script (``add.lua``, ``label.lua``): Redis runs it atomically, so two workers
racing on one transaction_id see one order; the pruning that the in-process state does once a day
of data runs inside the same script at the same moment. Scoring reads the histories, computes in
Python, then writes: optimistic concurrency makes that serializable. ``prepare`` reads the
customer's and terminal's versions with the histories; ``add.lua`` refuses (``Conflict``) when
either moved meanwhile, and the service reads and scores again, so two transactions of one card
arriving at two workers at once are scored as if one came first (as one worker would). A read is one
round trip: one pipeline of ``prepare.lua`` (the answer, the clock, the versions, the counts: a
dozen commands that redis-py packed and parsed at about 15 µs each) and the three range queries
bounded by the windows (as commands of their own: copied through Lua they cost Redis about 60 µs
more a request), members only: each member carries its time, since ``WITHSCORES`` made Redis 7.0
format every score as text (about 0.23 µs each: 26 of the 32 µs a customer's 115-member window
cost). Redis persistence (AOF, ``appendonly yes``) is the durable log: a script's writes are in it
before the answer is sent.
Keys are built inside the scripts from the prefix, so this needs one Redis (or a primary with
replicas), not Redis Cluster. An operator's move to a new period (``period.lua``) appends to the
``P:clock`` field ``periods`` (JSON [[start, jump], ...], ``online.periods``), which the pruning
reads to count retention in stream time, as the in-process state does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import redis

from fraudpipe.contract import (
    CUSTOMER_ID,
    DATETIME_DTYPE,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    id_array,
)
from fraudpipe.errors import DataError
from fraudpipe.features.definitions import FeatureConfig, split_cents
from fraudpipe.features.online import (
    STATE_FILE,
    CustomerHistory,
    History,
    OnlineState,
    TerminalHistory,
    snapshot_identity,
)
from fraudpipe.features.online.periods import parse_periods, period_start
from fraudpipe.serve.stores.base import Conflict, Prepared, Scored, StoreUnavailable, Transaction
from fraudpipe.serve.stores.memory import InProcessStore
from fraudpipe.serve.stores.redis import scripts
from fraudpipe.serve.stores.redis.codec import answer_json, location_of, location_text, parse_location, scored_answer
from fraudpipe.serve.stores.redis.seeding import check_meta, seed_or_wait
from fraudpipe.servicelog import RedisKeys, connect_redis

F = TypeVar("F", bound=Callable[..., Any])
_CLOCK = ("now", "complete_since", "periods")  # what ``_earliest`` reads of P:clock


def reaching(method: F) -> F:
    """A request's store call: Redis down or timing out is ``StoreUnavailable`` (503), not a 500."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise StoreUnavailable(
                f"the Redis state store is unavailable ({type(exc).__name__}: {exc}); nothing was recorded"
            ) from None

    return call  # type: ignore[return-value]


def _customer_window(members: list[str]) -> CustomerHistory:
    """A customer's window: members "seq|time|amount|terminal", split at once for the whole window; the
    seqs (the in-process state's bookkeeping, which ``history_features`` does not read) stay unparsed."""
    c = CustomerHistory()
    if not members:
        return c
    fields = "|".join(members).split("|")
    if len(fields) != 4 * len(members):  # a terminal id holding '|': member by member
        fields = [f for m in members for f in m.split("|", 3)]
    c.times, c.terminals = list(map(int, fields[1::4])), fields[3::4]
    c.amounts = list(map(float, fields[2::4]))
    cents, residuals = split_cents(np.array(c.amounts))
    c.cents, c.residuals = cents.tolist(), residuals.tolist()
    return c


def _terminal_window(members: list[str], frauds: list[str]) -> TerminalHistory:
    """A terminal's window: members "seq|time|transaction_id"; ``frauds``, those of them labelled fraud."""
    term = TerminalHistory()
    fields = [m.split("|", 2) for m in members]
    term.times, term.tids = [int(f[1]) for f in fields], [f[2] for f in fields]
    fraud = set(frauds)
    term.frauds = [int(m in fraud) for m in members] if fraud else [0] * len(members)
    return term


class RedisStore:
    """The state shared by every worker that opens the same Redis and prefix."""

    def __init__(
        self, client: Any, prefix: str, config: FeatureConfig, late_days: int, meta: dict[str, Any], seeded: bool
    ) -> None:
        self.client, self.prefix, self.config, self.late_days = client, prefix, config, late_days
        self.meta, self.seeded = meta, seeded  # seeded: this worker wrote the state (else it found it there)
        self._kept = (config.retention_days + late_days) * SECONDS_PER_DAY
        days = config.customer_windows + config.customer_extra_windows
        self._customer_back = max((*days, 0)) * SECONDS_PER_DAY
        self._delay = config.delay_days * SECONDS_PER_DAY
        self._terminal_back = (config.delay_days + max((*config.terminal_windows, 0))) * SECONDS_PER_DAY
        self._locations = config.needs_locations
        self._xy = "1" if self._locations else ""  # prepare.lua's ARGV: read the locations
        self.keys = RedisKeys(prefix)
        self._prepare = client.register_script(scripts.PREPARE)
        self._add = client.register_script(scripts.ADD)
        self._label = client.register_script(scripts.LABEL)
        self._prune_now = client.register_script(scripts.PRUNE_NOW)
        self._period = client.register_script(scripts.PERIOD)

    def __repr__(self) -> str:
        return f"RedisStore({self.prefix!r})"

    # --- opening: seed once, or attach ---------------------------------------------------------

    @classmethod
    def open(cls, url: str, prefix: str, state: Path, late_days: int, wait: float = 600.0) -> RedisStore:
        """Attach to the state under ``prefix``, seeding it from ``state`` first when nobody has (one
        worker seeds, the others wait for it; see ``seeding``)."""
        client = connect_redis(url)
        identity = snapshot_identity(state) if (state / STATE_FILE).is_file() else None
        meta, seeded = seed_or_wait(client, url, prefix, state, identity, late_days, wait)
        config = check_meta(meta, url, prefix, state, identity, late_days)
        return cls(client, prefix, config, late_days, meta, seeded)

    # --- StateStore -----------------------------------------------------------------------------

    def _run(self, script: Any, args: list[Any]) -> Any:
        """EVALSHA of a registered script (redis-py's ``Script.__call__`` costs about 15 µs more a call);
        loaded again when Redis lost its script cache (a restart)."""
        try:
            return self.client.evalsha(script.sha, 0, *args)
        except redis.exceptions.NoScriptError:
            return script(args=args)

    def _read(self, tid: str, customer: str, terminal: str, t: int) -> list[Any]:
        """One round trip: ``prepare.lua``'s reply, then the customer's window, the terminal's and its
        frauds (range queries bounded by the windows; members only: each carries its time)."""
        try:
            return self._reads(tid, customer, terminal, t)
        except redis.exceptions.NoScriptError:  # Redis restarted: its script cache is empty
            self._prepare.sha = self.client.script_load(self._prepare.script)
            return self._reads(tid, customer, terminal, t)

    def _reads(self, tid: str, customer: str, terminal: str, t: int) -> list[Any]:
        keys, low, high = self.keys, t - self._terminal_back, t - self._delay
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self._prepare.sha, 0, self.prefix, tid, customer, terminal, self._xy)
        pipe.execute_command("ZRANGEBYSCORE", keys.customer(customer), t - self._customer_back, t)
        pipe.execute_command("ZRANGEBYSCORE", keys.terminal(terminal), low, high)
        pipe.execute_command("ZRANGEBYSCORE", keys.frauds(terminal), low, high)
        return pipe.execute()

    def _history(self, customer: str, terminal: str, found: list[Any]) -> History:
        """The ``History`` of ``_read``'s windows."""
        xy = (parse_location(found[0][8]), parse_location(found[0][9])) if self._locations else (None, None)
        return History(customer, terminal, _customer_window(found[1]), _terminal_window(found[2], found[3]), *xy)

    @reaching
    def get_history(self, customer_id: str, terminal_id: str, t: int) -> History:
        return self._history(customer_id, terminal_id, self._read("", customer_id, terminal_id, t))

    @reaching
    def prepare(self, tx: Transaction) -> Prepared:
        """One round trip (``_read``): the answer given to this id, whether it is held, the clock, the
        history, and whether its customer and terminal are new (what the caps on the state count)."""
        read = self._read(tx.transaction_id, tx.customer_id, tx.terminal_id, tx.t)
        found = read[0]
        if not found[4]:
            raise StoreUnavailable(
                f"the shared state (prefix {self.prefix!r}) is gone from Redis (flushed, or restarted without its "
                "append-only file): nothing was recorded; restart `fraudpipe serve` to seed it again"
            )
        scored = None if found[0] is None else scored_answer(tx.transaction_id, found[0])
        version = tuple(v or "0" for v in found[3])
        customers, terminals = (int(v or 0) for v in found[7])
        return Prepared(
            scored,
            bool(found[1]),
            self._earliest(found[2]),
            self._history(tx.customer_id, tx.terminal_id, read),
            version,
            newest=None if found[2][0] is None else int(found[2][0]),
            new_customer=not found[5],
            new_terminal=not found[6],
            customers=customers,
            terminals=terminals,
        )

    @reaching
    def add_transaction(self, scored: Scored, basis: Prepared | None = None) -> Scored | None:
        tx = scored.transaction
        cx, cy, tx_, ty = tx.coordinates
        given = (location_text(cx, cy), location_text(tx_, ty)) if self._locations else ("", "")
        version = basis.version if basis is not None and basis.version is not None else ("", "")
        result = self._run(
            self._add,
            [
                self.prefix,
                tx.transaction_id,
                tx.customer_id,
                tx.terminal_id,
                tx.t,
                repr(float(tx.tx_amount)),
                answer_json(scored),
                self._kept,
                *given,
                *version,
            ],
        )
        if result[0] == 2:
            raise Conflict(
                f"the history of customer {tx.customer_id} or terminal {tx.terminal_id} changed since it was read"
            )
        if result[0] == 1 or result[1] is None:
            return None
        return scored_answer(tx.transaction_id, result[1])  # another worker recorded this transaction_id first

    @reaching
    def add_label(self, transaction_id: str, tx_fraud: int) -> bool:
        if int(tx_fraud) not in (0, 1):
            raise DataError(f"{TX_FRAUD} must be 0 or 1, got {tx_fraud!r} (transaction_id {transaction_id})")
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        return bool(self._label(args=[self.prefix, transaction_id, int(tx_fraud), now]))

    @reaching
    def get_scored(self, transaction_id: str) -> Scored | None:
        raw = self.client.hget(self.keys.scored, transaction_id)
        return None if raw is None else scored_answer(transaction_id, raw)

    @reaching
    def has_transaction(self, transaction_id: str) -> bool:
        return bool(self.client.hexists(self.keys.tx, transaction_id))

    def _earliest(self, clock: list[str | None]) -> int | None:
        now, since, periods = clock
        if now is None:
            return None
        earliest = int(now) - self.late_days * SECONDS_PER_DAY
        if since is not None:
            earliest = max(earliest, int(since) + self.config.retention_days * SECONDS_PER_DAY)
        start = period_start(parse_periods(None if periods is None else json.loads(periods)))
        return earliest if start is None else max(earliest, start)

    @reaching
    def earliest_exact(self) -> int | None:
        return self._earliest(self.client.hmget(self.keys.clock, *_CLOCK))

    @reaching
    def newest(self) -> int | None:
        now = self.client.hget(self.keys.clock, "now")
        return None if now is None else int(now)

    @reaching
    def start_period(self, start: int) -> int | None:
        """One script (``period.lua``): every worker sees the move at once."""
        moved, before = self._period(args=[self.prefix, start])
        return int(before) if moved else None

    @reaching
    def size(self) -> dict[str, int]:
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(keys.tx), pipe.hmget(keys.count, "customers", "terminals"), pipe.hlen(keys.scored)
        transactions, (customers, terminals), scored = pipe.execute()
        return {
            "transactions": transactions,
            "customers": int(customers or 0),
            "terminals": int(terminals or 0),
            "scored": scored,
        }

    def save(self, directory: Path) -> None:
        """Export the shared state as an ``InProcessStore`` snapshot (prunes first, as it does): what
        ``InProcessStore.load`` restarts from, and what seeds another Redis (``--state``)."""
        self._prune_now(args=[self.prefix, self._kept])
        self.to_in_process().save(directory)

    # --- beyond the protocol ----------------------------------------------------------------------

    def to_in_process(self) -> InProcessStore:
        """The whole shared state, copied into one process (read while others may write: not a
        point-in-time copy unless the workers are idle)."""
        keys, client = self.keys, self.client
        records = client.hgetall(keys.tx)
        tids = list(records)
        rows = [json.loads(records[k]) for k in tids]
        t = np.array([r[0] for r in rows], dtype=np.int64)
        order = np.lexsort((np.array([r[1] for r in rows], dtype=np.int64), t))  # arrival order
        labels = pd.array([None if r[2] < 0 else r[2] for r in rows], dtype="Int8")
        history = pd.DataFrame(
            {
                TRANSACTION_ID: id_array(np.array(tids, dtype=object)[order]),
                TX_DATETIME: t[order].astype("datetime64[s]").astype(DATETIME_DTYPE),
                CUSTOMER_ID: id_array(np.array([r[3] for r in rows], dtype=object)[order]),
                TERMINAL_ID: id_array(np.array([r[4] for r in rows], dtype=object)[order]),
                TX_AMOUNT: np.array([float(r[5]) for r in rows], dtype=np.float64)[order],
                TX_FRAUD: labels[order],
            }
        )
        tables = {}
        if self._locations:
            for key, name in ((CUSTOMER_ID, "c"), (TERMINAL_ID, "t")):
                known = {k: location_of(v) for k, v in client.hgetall(keys.locations(name)).items()}
                tables[key] = pd.DataFrame(
                    {
                        key: id_array(list(known)),
                        "x": [v[0] for v in known.values()],
                        "y": [v[1] for v in known.values()],
                    }
                )
        now, since, periods = client.hmget(keys.clock, *_CLOCK)
        state = OnlineState.restore(
            history,
            self.config,
            tables.get(CUSTOMER_ID),
            tables.get(TERMINAL_ID),
            late_days=self.late_days,
            now=None if now is None else int(now),
            complete_since=None if since is None else int(since),
            periods=parse_periods(None if periods is None else json.loads(periods)),
        )
        scored = {k: scored_answer(k, v) for k, v in client.hgetall(keys.scored).items()}
        return InProcessStore(state, {k: v for k, v in scored.items() if state.knows(k)})

    def compact(self) -> str:
        """Ask Redis to rewrite its append-only file (the durable log) to the current state."""
        try:
            self.client.bgrewriteaof()
        except redis.ResponseError as exc:  # one already running
            return f"not started ({exc})"
        return "started"

    def persistence(self) -> str:
        """How Redis keeps the state, for the start-up line."""
        info = self.client.info("persistence")
        if info.get("aof_enabled"):
            try:
                fsync = self.client.config_get("appendfsync").get("appendfsync", "?")
            except Exception:
                fsync = "?"
            return f"Redis AOF (appendfsync {fsync})"
        return "Redis WITHOUT AOF (appendonly no: a Redis restart loses what the service added since its last RDB save)"

    def close(self) -> None:
        self.client.close()
