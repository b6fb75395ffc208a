"""The online state in Redis: several service workers, on one machine or many, share one history.

``RedisStore`` implements ``store.StateStore`` with the semantics of ``InProcessStore`` (same
retention window, pruned at the same moments, same-second order = arrival order, late labels,
duplicate transaction ids, ``earliest_exact``), so the features, computed by the same
``online.history_features``, are the same whichever worker scores a transaction.

Keys, under a prefix (``--redis-prefix``, default ``fraudpipe``; one prefix = one shared state):

    P:meta          JSON: the state it was seeded from (identity, as_of), features config, late_days.
                    Written last by the seeding worker: its presence means "loaded".
    P:seeding       the worker seeding now (SET NX with an expiry: one seeder, a dead one's lock lapses)
    P:clock         hash: now (newest time seen), pruned_at, complete_since, seq (arrival counter), lseq (labels),
                    changes (every change of a history: the versions)
    P:count         hash: customers, terminals (keys holding history, for /metrics)
    P:tx            hash transaction_id -> JSON [t, seq, label (-1 unknown), customer, terminal, amount]
    P:all           sorted set of transaction_ids by time (what pruning forgets)
    P:c:<customer>  sorted set by time of "<seq:012d>|<amount repr>|<terminal>": equal times sort by
                    member, i.e. by arrival (the zero-padded seq), as the in-process state orders them
    P:t:<terminal>  sorted set by time of "<seq:012d>|<transaction_id>"
    P:f:<terminal>  the same members, only those labelled fraud (a label adds or removes one)
    P:scored        hash transaction_id -> JSON answer (for retries, and monitoring's service log)
    P:labels        hash transaction_id -> JSON [tx_fraud, received_at, lseq] (labels received)
    P:ver           hash "c:<customer>" / "t:<terminal>" -> the number (P:clock changes) of the last change of that history
    P:xy:c, P:xy:t  hash id -> "x y": the last known locations (distance feature only)

Every change is one Lua script (``_ADD``, ``_LABEL``): Redis runs it atomically, so two workers
racing on one transaction_id see one order; the pruning that the in-process state does once a day
of data runs inside the same script at the same moment. Scoring reads the histories, computes in
Python, then writes: optimistic concurrency makes that serializable. ``prepare`` reads the
customer's and terminal's versions with the histories; ``_ADD`` refuses (``Conflict``) when
either moved meanwhile, and the service reads and scores again, so two transactions of one card
arriving at two workers at once are scored as if one came first (as one worker would). A read is one
round trip (a pipeline of range queries bounded by the windows). Redis persistence (AOF,
``appendonly yes``) is the durable log: a script's writes are in it before the answer is sent.
Keys are built inside the scripts from the prefix, so this needs one Redis (or a primary with
replicas), not Redis Cluster.

Seeding: the first worker to find no ``P:meta`` takes ``P:seeding`` (SET NX EX), clears any
half-written state a crashed seeder left, writes the snapshot (``--state``: featurize's, or one a
store saved) in bulk, then ``P:meta``; the others wait for ``P:meta`` and attach. A worker whose
``--state``, features config or ``--late-days`` differs from what ``P:meta`` records is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
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
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features.definitions import FeatureConfig, feature_names, split_cents
from fraudpipe.features.online import STATE_FILE, CustomerHistory, History, OnlineState, TerminalHistory
from fraudpipe.serve.stores.memory import (
    Conflict,
    InProcessStore,
    Prepared,
    Scored,
    StoreUnavailable,
    Transaction,
    epoch_second,
)

FORMAT = 1
SCHEMES = ("redis://", "rediss://", "unix://")
_EPOCH = datetime(1970, 1, 1)

# The pruning of OnlineState.prune, in Lua: forget what is at or before now - kept, once a day of data.
_PRUNE = """
local function prune(p, now, kept)
  local horizon = now - kept
  local old = redis.call('ZRANGEBYSCORE', p..':all', '-inf', horizon)
  local done = {}  -- each customer's and terminal's sorted sets are trimmed once
  for lo = 1, #old, 500 do  -- in chunks: one HMGET and three HDELs per 500 transactions
    local chunk = {unpack(old, lo, math.min(lo + 499, #old))}
    local raws = redis.call('HMGET', p..':tx', unpack(chunk))
    for i = 1, #chunk do
      if raws[i] then
        local r = cjson.decode(raws[i])
        local ckey, tkey = p..':c:'..r[4], p..':t:'..r[5]
        if not done[ckey] then
          done[ckey] = true
          if redis.call('ZREMRANGEBYSCORE', ckey, '-inf', horizon) > 0 and redis.call('EXISTS', ckey) == 0 then
            redis.call('HINCRBY', p..':count', 'customers', -1)
            redis.call('HDEL', p..':ver', 'c:'..r[4])  -- a version read before differs from any set later: a retry
          end
        end
        if not done[tkey] then
          done[tkey] = true
          if redis.call('ZREMRANGEBYSCORE', tkey, '-inf', horizon) > 0 and redis.call('EXISTS', tkey) == 0 then
            redis.call('HINCRBY', p..':count', 'terminals', -1)
            redis.call('HDEL', p..':ver', 't:'..r[5])
          end
          redis.call('ZREMRANGEBYSCORE', p..':f:'..r[5], '-inf', horizon)
        end
      end
    end
    redis.call('HDEL', p..':tx', unpack(chunk))
    redis.call('HDEL', p..':scored', unpack(chunk))
    redis.call('HDEL', p..':labels', unpack(chunk))
  end
  redis.call('ZREMRANGEBYSCORE', p..':all', '-inf', horizon)
  local since = tonumber(redis.call('HGET', p..':clock', 'complete_since'))
  if since == nil or horizon > since then redis.call('HSET', p..':clock', 'complete_since', horizon) end
  redis.call('HSET', p..':clock', 'pruned_at', now)
  return #old
end
"""

# KEYS: none (one Redis; keys are built from the prefix). ARGV: prefix, tid, customer, terminal, t, amount (repr),
# answer (JSON), kept seconds, customer "x y" or '', terminal "x y" or '', the customer's and the terminal's
# versions the features were computed at ('' and '': not checked).
# Returns {1, seq} when added; {0, answer or false} when the transaction_id is already held; {2} when a
# version moved (another worker changed that history: compute again).
_ADD = (
    _PRUNE
    + """
local p, tid, customer, terminal = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t, kept = tonumber(ARGV[5]), tonumber(ARGV[8])
if redis.call('HEXISTS', p..':tx', tid) == 1 then
  return {0, redis.call('HGET', p..':scored', tid)}
end
if ARGV[11] ~= '' then
  local seen = redis.call('HMGET', p..':ver', 'c:'..customer, 't:'..terminal)
  if (seen[1] or '0') ~= ARGV[11] or (seen[2] or '0') ~= ARGV[12] then return {2} end
end
local change = redis.call('HINCRBY', p..':clock', 'changes', 1)  -- never reused: a version cannot come back
redis.call('HSET', p..':ver', 'c:'..customer, change, 't:'..terminal, change)
local seq = redis.call('HINCRBY', p..':clock', 'seq', 1)
local pad = string.format('%012d', seq)
local ckey, tkey = p..':c:'..customer, p..':t:'..terminal
if redis.call('EXISTS', ckey) == 0 then redis.call('HINCRBY', p..':count', 'customers', 1) end
if redis.call('EXISTS', tkey) == 0 then redis.call('HINCRBY', p..':count', 'terminals', 1) end
redis.call('ZADD', ckey, t, pad..'|'..ARGV[6]..'|'..terminal)
redis.call('ZADD', tkey, t, pad..'|'..tid)
redis.call('HSET', p..':tx', tid, cjson.encode({t, seq, -1, customer, terminal, ARGV[6]}))
redis.call('ZADD', p..':all', t, tid)
redis.call('HSET', p..':scored', tid, ARGV[7])
if ARGV[9] ~= '' then redis.call('HSET', p..':xy:c', customer, ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', p..':xy:t', terminal, ARGV[10]) end
local clock = redis.call('HMGET', p..':clock', 'now', 'pruned_at')
local now, pruned = tonumber(clock[1]), tonumber(clock[2])
if now == nil or t > now then
  now = t
  redis.call('HSET', p..':clock', 'now', now)
end
if pruned == nil then
  redis.call('HSET', p..':clock', 'pruned_at', now)
elseif now - pruned >= 86400 then
  prune(p, now, kept)
end
return {1, seq}
"""
)

# ARGV: prefix, tid, tx_fraud (0/1), received_at. Returns 1, or 0 when the transaction is not held.
_LABEL = """
local p, tid, fraud = ARGV[1], ARGV[2], tonumber(ARGV[3])
local raw = redis.call('HGET', p..':tx', tid)
if not raw then return 0 end
local r = cjson.decode(raw)
r[3] = fraud
redis.call('HSET', p..':tx', tid, cjson.encode(r))
local member = string.format('%012d', r[2])..'|'..tid
-- the terminal's frauds change: features read before are stale
redis.call('HSET', p..':ver', 't:'..r[5], redis.call('HINCRBY', p..':clock', 'changes', 1))
if fraud == 1 then
  redis.call('ZADD', p..':f:'..r[5], r[1], member)
else
  redis.call('ZREM', p..':f:'..r[5], member)
end
local lseq = redis.call('HINCRBY', p..':clock', 'lseq', 1)
redis.call('HSET', p..':labels', tid, '['..fraud..','..cjson.encode(ARGV[4])..','..lseq..']')
return 1
"""

# ARGV: prefix, kept seconds. Prunes now (before an export), as OnlineState.save does.
_PRUNE_NOW = (
    _PRUNE
    + """
local now = tonumber(redis.call('HGET', ARGV[1]..':clock', 'now'))
if now == nil then return 0 end
return prune(ARGV[1], now, tonumber(ARGV[2]))
"""
)


def is_redis_url(value: str) -> bool:
    return value.startswith(SCHEMES)


def _reaching(method):
    """A request's store call: Redis down or timing out is ``StoreUnavailable`` (503), not a 500."""
    import functools

    import redis

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise StoreUnavailable(
                f"the Redis state store is unavailable ({type(exc).__name__}: {exc}); nothing was recorded"
            ) from None

    return call


def connect(url: str):
    """A client for ``url`` (redis://host:port/db, rediss://..., unix:///path.sock?db=N), checked with
    a PING: an unreachable Redis is a one-line ConfigError naming the URL."""
    import redis

    try:
        client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise ConfigError(
            f"--store {url}: cannot reach Redis ({type(exc).__name__}: {exc}); start redis-server or fix the URL"
        ) from None
    return client


def state_identity(state: Path) -> str:
    """What a seeded state is known by: the snapshot's state.json (its as_of, config, count) hashed."""
    path = state / STATE_FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: --state must be an online state snapshot (featurize writes data/features/online_state)"
        )
    return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def _answer_json(scored: Scored) -> str:
    tx = scored.transaction
    return json.dumps(
        [
            tx.customer_id,
            tx.terminal_id,
            tx.tx_datetime.isoformat(timespec="microseconds"),
            tx.tx_amount,
            list(tx.coordinates),
            float(scored.score),
            bool(scored.alert),
            float(scored.threshold),
            scored.model_version,
        ]
    )


def _answer(tid: str, raw: str) -> Scored:
    customer, terminal, when, amount, coordinates, score, alert, threshold, version = json.loads(raw)
    when = datetime.fromisoformat(when)
    tx = Transaction(tid, customer, terminal, when, epoch_second(when), amount, tuple(coordinates))
    return Scored(tx, score, alert, threshold, version)


def _xy(raw: str | None) -> tuple[float, float] | None:
    if raw is None:
        return None
    x, y = raw.split(" ")
    return float(x), float(y)


class RedisStore:
    """The state shared by every worker that opens the same Redis and prefix."""

    def __init__(
        self, client: Any, prefix: str, config: FeatureConfig, late_days: int, meta: dict[str, Any], seeded: bool
    ) -> None:
        self.client, self.prefix, self.config, self.late_days = client, prefix, config, late_days
        self.meta, self.seeded = meta, seeded  # seeded: this worker wrote the state (else it found it there)
        self._kept = (config.retention_days + late_days) * SECONDS_PER_DAY
        days = config.customer_windows + config.customer_extra_windows
        self._customer_back = max(days + (0,)) * SECONDS_PER_DAY
        self._delay = config.delay_days * SECONDS_PER_DAY
        self._terminal_back = (config.delay_days + max(config.terminal_windows + (0,))) * SECONDS_PER_DAY
        self._locations = config.needs_locations
        self._add = client.register_script(_ADD)
        self._label = client.register_script(_LABEL)
        self._prune_now = client.register_script(_PRUNE_NOW)

    def __repr__(self) -> str:
        return f"RedisStore({self.prefix!r})"

    # --- opening: seed once, or attach ---------------------------------------------------------

    @classmethod
    def open(cls, url: str, prefix: str, state: Path, late_days: int, wait: float = 600.0) -> RedisStore:
        """Attach to the state under ``prefix``, seeding it from ``state`` first when nobody has (one
        worker seeds, the others wait for it; see the module docstring)."""
        client = connect(url)
        identity = state_identity(state) if (state / STATE_FILE).is_file() else None
        meta_key, lock_key = f"{prefix}:meta", f"{prefix}:seeding"
        token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        deadline = time.monotonic() + wait
        while True:
            raw = client.get(meta_key)
            if raw is not None:
                return cls._attach(client, url, prefix, json.loads(raw), state, identity, late_days, seeded=False)
            if identity is None:
                state_identity(state)  # raises: nothing in Redis, nothing to seed from
            if client.set(lock_key, token, nx=True, ex=300):
                try:
                    if client.get(meta_key) is None:  # nobody finished seeding between our two reads
                        meta = _seed(client, prefix, state, identity, late_days, lock_key, token)
                        return cls._attach(client, url, prefix, meta, state, identity, late_days, seeded=True)
                finally:
                    _release(client, lock_key, token)
                continue
            if time.monotonic() > deadline:
                raise DataError(
                    f"--store {url}: another worker ({client.get(lock_key)}) is still seeding prefix {prefix!r} "
                    f"after {wait:.0f} s; wait for it or delete the key {lock_key} if it died"
                )
            time.sleep(0.2)

    @classmethod
    def _attach(
        cls,
        client: Any,
        url: str,
        prefix: str,
        meta: dict[str, Any],
        state: Path,
        identity: str | None,
        late_days: int,
        seeded: bool,
    ) -> RedisStore:
        where = f"--store {url} (prefix {prefix!r})"
        if meta.get("format") != FORMAT:
            raise DataError(
                f"{where} holds a state of format {meta.get('format')!r}; this code reads {FORMAT}: use another --redis-prefix"
            )
        if identity is not None and meta["identity"] != identity:
            raise DataError(
                f"{where} holds the state seeded from {meta['source']} ({meta['identity']}), not {state} ({identity}): "
                "start with the same --state, or another --redis-prefix to seed a new shared state"
            )
        if meta["late_days"] != late_days:
            raise ConfigError(
                f"--late-days {late_days}: the shared state in {where} keeps {meta['late_days']} late day(s); "
                "every worker must use the same --late-days"
            )
        try:
            config = FeatureConfig.parse(meta["features"], "features")
        except ConfigError as exc:
            raise DataError(f"{where}: the features config it records does not parse: {exc}") from None
        if meta["feature_names"] != feature_names(config):
            raise DataError(f"{where}: its feature list differs from what this code produces for its config")
        return cls(client, prefix, config, late_days, meta, seeded)

    # --- StateStore -----------------------------------------------------------------------------

    def _history_reads(self, pipe: Any, customer: str, terminal: str, t: int) -> None:
        p = self.prefix
        pipe.zrangebyscore(f"{p}:c:{customer}", t - self._customer_back, t, withscores=True, score_cast_func=int)
        low, high = t - self._terminal_back, t - self._delay
        pipe.zrangebyscore(f"{p}:t:{terminal}", low, high, withscores=True, score_cast_func=int)
        pipe.zrangebyscore(f"{p}:f:{terminal}", low, high)
        if self._locations:
            pipe.hget(f"{p}:xy:c", customer)
            pipe.hget(f"{p}:xy:t", terminal)

    def _history(self, customer: str, terminal: str, found: list[Any]) -> History:
        c = CustomerHistory()
        if found[0]:
            members, times = zip(*found[0])
            parts = [m.split("|", 2) for m in members]
            amounts = [float(a) for _, a, _ in parts]
            cents, residuals = split_cents(np.array(amounts))
            c.times, c.amounts, c.cents, c.residuals = list(times), amounts, cents.tolist(), residuals.tolist()
            c.seqs, c.terminals = [int(s) for s, _, _ in parts], [x for _, _, x in parts]
        term = TerminalHistory()
        if found[1]:
            members, times = zip(*found[1])
            frauds = set(found[2])
            term.times, term.frauds = list(times), [int(m in frauds) for m in members]
            term.tids = [m.split("|", 1)[1] for m in members]
        xy = (_xy(found[3]), _xy(found[4])) if self._locations else (None, None)
        return History(customer, terminal, c, term, *xy)

    @_reaching
    def get_history(self, customer_id: str, terminal_id: str, t: int) -> History:
        pipe = self.client.pipeline(transaction=False)
        self._history_reads(pipe, customer_id, terminal_id, t)
        return self._history(customer_id, terminal_id, pipe.execute())

    @_reaching
    def prepare(self, tx: Transaction) -> Prepared:
        """One round trip: the answer given to this id, whether it is held, the clock, the history."""
        p = self.prefix
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(f"{p}:scored", tx.transaction_id)
        pipe.hexists(f"{p}:tx", tx.transaction_id)
        pipe.hmget(f"{p}:clock", "now", "complete_since")
        pipe.hmget(f"{p}:ver", f"c:{tx.customer_id}", f"t:{tx.terminal_id}")
        pipe.exists(f"{p}:meta")
        self._history_reads(pipe, tx.customer_id, tx.terminal_id, tx.t)
        found = pipe.execute()
        if not found[4]:
            raise StoreUnavailable(
                f"the shared state (prefix {p!r}) is gone from Redis (flushed, or restarted without its "
                "append-only file): nothing was recorded; restart `fraudpipe serve` to seed it again"
            )
        scored = None if found[0] is None else _answer(tx.transaction_id, found[0])
        version = tuple(v or "0" for v in found[3])
        return Prepared(
            scored,
            bool(found[1]),
            self._earliest(found[2]),
            self._history(tx.customer_id, tx.terminal_id, found[5:]),
            version,
        )

    @_reaching
    def add_transaction(self, scored: Scored, basis: Prepared | None = None) -> Scored | None:
        tx = scored.transaction
        cx, cy, tx_, ty = tx.coordinates
        given = (
            "" if cx is None else f"{float(cx)!r} {float(cy)!r}",
            "" if tx_ is None else f"{float(tx_)!r} {float(ty)!r}",
        )
        if not self._locations:
            given = ("", "")
        version = basis.version if basis is not None and basis.version is not None else ("", "")
        result = self._add(
            args=[
                self.prefix,
                tx.transaction_id,
                tx.customer_id,
                tx.terminal_id,
                tx.t,
                repr(float(tx.tx_amount)),
                _answer_json(scored),
                self._kept,
                *given,
                *version,
            ]
        )
        if result[0] == 2:
            raise Conflict(
                f"the history of customer {tx.customer_id} or terminal {tx.terminal_id} changed since it was read"
            )
        if result[0] == 1 or result[1] is None:
            return None
        return _answer(tx.transaction_id, result[1])  # another worker recorded this transaction_id first

    @_reaching
    def add_label(self, transaction_id: str, tx_fraud: int) -> bool:
        if int(tx_fraud) not in (0, 1):
            raise DataError(f"{TX_FRAUD} must be 0 or 1, got {tx_fraud!r} (transaction_id {transaction_id})")
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        return bool(self._label(args=[self.prefix, transaction_id, int(tx_fraud), now]))

    @_reaching
    def get_scored(self, transaction_id: str) -> Scored | None:
        raw = self.client.hget(f"{self.prefix}:scored", transaction_id)
        return None if raw is None else _answer(transaction_id, raw)

    @_reaching
    def has_transaction(self, transaction_id: str) -> bool:
        return bool(self.client.hexists(f"{self.prefix}:tx", transaction_id))

    def _earliest(self, clock: list[str | None]) -> int | None:
        now, since = clock
        if now is None:
            return None
        earliest = int(now) - self.late_days * SECONDS_PER_DAY
        if since is not None:
            earliest = max(earliest, int(since) + self.config.retention_days * SECONDS_PER_DAY)
        return earliest

    @_reaching
    def earliest_exact(self) -> int | None:
        return self._earliest(self.client.hmget(f"{self.prefix}:clock", "now", "complete_since"))

    @_reaching
    def size(self) -> dict[str, int]:
        p = self.prefix
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(f"{p}:tx"), pipe.hmget(f"{p}:count", "customers", "terminals"), pipe.hlen(f"{p}:scored")
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
        p, client = self.prefix, self.client
        records = client.hgetall(f"{p}:tx")
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
                known = {k: _xy(v) for k, v in client.hgetall(f"{p}:xy:{name}").items()}
                tables[key] = pd.DataFrame(
                    {
                        key: id_array(list(known)),
                        "x": [v[0] for v in known.values()],
                        "y": [v[1] for v in known.values()],
                    }
                )
        now, since = client.hmget(f"{p}:clock", "now", "complete_since")
        state = OnlineState.restore(
            history,
            self.config,
            tables.get(CUSTOMER_ID),
            tables.get(TERMINAL_ID),
            late_days=self.late_days,
            now=None if now is None else int(now),
            complete_since=None if since is None else int(since),
        )
        scored = {k: _answer(k, v) for k, v in client.hgetall(f"{p}:scored").items()}
        return InProcessStore(state, {k: v for k, v in scored.items() if state.knows(k)})

    def compact(self) -> str:
        """Ask Redis to rewrite its append-only file (the durable log) to the current state."""
        import redis

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


def _release(client: Any, lock_key: str, token: str) -> None:
    client.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        lock_key,
        token,
    )


def _clear(client: Any, prefix: str) -> None:
    """Delete every key of ``prefix`` but the seeding lock: what a seeder that died half-way wrote."""
    batch = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        if key != f"{prefix}:seeding":
            batch.append(key)
        if len(batch) >= 1000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def _seed(
    client: Any, prefix: str, state: Path, identity: str, late_days: int, lock_key: str, token: str
) -> dict[str, Any]:
    """Write the snapshot ``state`` under ``prefix`` in bulk (pipelines of whole sorted sets and hash
    chunks), then ``P:meta`` last. Seqs follow the snapshot's arrival order."""
    start = time.perf_counter()
    _clear(client, prefix)
    store = InProcessStore.load(state, late_days)
    online, p = store.state, prefix
    history = online.history()  # arrival order, ids as in the contract
    n = len(history)
    seconds = history[TX_DATETIME].to_numpy().astype("datetime64[s]").astype(np.int64)
    tids, customers, terminals = (
        np.array([str(v) for v in history[c].tolist()], dtype=object)
        for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)
    )
    amounts = [repr(v) for v in history[TX_AMOUNT].to_numpy(np.float64).tolist()]
    labels = history[TX_FRAUD].fillna(-1).astype(np.int64).to_numpy()
    pads = [f"{s:012d}" for s in range(1, n + 1)]
    pipe = client.pipeline(transaction=False)
    pending = 0

    def flush(force: bool = False) -> None:
        nonlocal pending
        if pending >= 2000 or (force and pending):
            pipe.execute()
            pending = 0
            client.expire(lock_key, 300)  # still alive: keep the lock

    t_list, l_list = seconds.tolist(), labels.tolist()
    members = {
        "c": [f"{a}|{b}|{c}" for a, b, c in zip(pads, amounts, terminals)],
        "t": [f"{a}|{b}" for a, b in zip(pads, tids)],
    }
    quoted = {}  # each id's JSON text, once per id
    for key, ids in (("c", customers), ("t", terminals)):
        codes, uniques = pd.factorize(ids)
        quoted[key] = [json.dumps(u) for u in uniques.tolist()], codes.tolist()
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        member = members[key]
        for rows in np.split(order, bounds) if n else []:
            rows = rows.tolist()
            pipe.zadd(f"{p}:{key}:{ids[rows[0]]}", {member[i]: t_list[i] for i in rows})
            if key == "t":
                frauds = {member[i]: t_list[i] for i in rows if l_list[i] == 1}
                if frauds:
                    pipe.zadd(f"{p}:f:{ids[rows[0]]}", frauds)
            pending += 1
            flush()
        pipe.hset(f"{p}:count", "customers" if key == "c" else "terminals", len(uniques))
    (cq, cc), (tq, tc) = quoted["c"], quoted["t"]
    records = [f'[{t_list[i]},{i + 1},{l_list[i]},{cq[cc[i]]},{tq[tc[i]]},"{amounts[i]}"]' for i in range(n)]
    for lo in range(0, n, 10_000):
        hi = min(n, lo + 10_000)
        pipe.hset(f"{p}:tx", mapping=dict(zip(tids[lo:hi].tolist(), records[lo:hi])))
        pipe.zadd(f"{p}:all", dict(zip(tids[lo:hi].tolist(), t_list[lo:hi])))
        pending += 2
        flush()
    scored = list(store._scored.values())
    for lo in range(0, len(scored), 5000):
        pipe.hset(
            f"{p}:scored", mapping={s.transaction.transaction_id: _answer_json(s) for s in scored[lo : lo + 5000]}
        )
        pending += 1
        flush()
    if online.config.needs_locations:
        for key, name in ((CUSTOMER_ID, "c"), (TERMINAL_ID, "t")):
            table = online.known_locations()[key]
            ids = [str(v) for v in table[key].tolist()]
            xs, ys = table["x"].tolist(), table["y"].tolist()
            for lo in range(0, len(ids), 5000):
                pipe.hset(
                    f"{p}:xy:{name}",
                    mapping={ids[i]: f"{xs[i]!r} {ys[i]!r}" for i in range(lo, min(len(ids), lo + 5000))},
                )
                pending += 1
                flush()
    clock = {"seq": n, "lseq": 0}
    if online.as_of is not None:
        now = int((online.as_of.to_pydatetime() - _EPOCH).total_seconds())
        clock |= {"now": now, "pruned_at": now, "complete_since": online.complete_since}
    pipe.hset(f"{p}:clock", mapping=clock)
    flush(force=True)
    meta = {
        "format": FORMAT,
        "identity": identity,
        "source": str(state.resolve()),
        "late_days": late_days,
        "features": online.config.to_dict(),
        "feature_names": feature_names(online.config),
        "as_of": None if online.as_of is None else online.as_of.isoformat(),
        "transactions": n,
        "seeded_by": token,
        "seeded_at": datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat(),
        "seed_seconds": round(time.perf_counter() - start, 3),
    }
    client.set(f"{p}:meta", json.dumps(meta))  # the commit point: from now on every worker attaches
    return meta


# --- for monitoring -----------------------------------------------------------------------------


def read_service_log(url: str, prefix: str = "fraudpipe"):
    """``journal.read_service_log`` for a service whose state is in Redis: the scored transactions
    it still retains (acceptance order) and the labels it received for retained transactions
    (order of arrival), as ``journal.ServiceLog`` frames."""
    from fraudpipe.serve.journal import LABEL_LOG_COLUMNS, SCORED_LOG_COLUMNS, ServiceLog, _typed

    client = connect(url)
    try:
        if client.get(f"{prefix}:meta") is None:
            raise DataError(f"--store {url} (prefix {prefix!r}) holds no service state: nothing to read")
        answers = client.hgetall(f"{prefix}:scored")
        tids = list(answers)
        records = client.hmget(f"{prefix}:tx", tids) if tids else []
        seqs = [json.loads(r)[1] if r else 0 for r in records]
        scored = [_answer(tids[i], answers[tids[i]]) for i in sorted(range(len(tids)), key=seqs.__getitem__)]
        received = client.hgetall(f"{prefix}:labels")
    finally:
        client.close()
    tx = [s.transaction for s in scored]
    scored_frame = pd.DataFrame(
        {
            TRANSACTION_ID: [x.transaction_id for x in tx],
            CUSTOMER_ID: [x.customer_id for x in tx],
            TERMINAL_ID: [x.terminal_id for x in tx],
            TX_DATETIME: np.array([x.tx_datetime for x in tx], dtype="datetime64[us]"),
            TX_AMOUNT: [x.tx_amount for x in tx],
            **{
                c: [np.nan if x.coordinates[i] is None else x.coordinates[i] for x in tx]
                for i, c in enumerate(COORDINATE_COLUMNS)
            },
            "score": [s.score for s in scored],
            "alert": [s.alert for s in scored],
            "model_version": [s.model_version for s in scored],
        },
        columns=list(SCORED_LOG_COLUMNS),
    )
    entries = sorted(((k, *json.loads(v)) for k, v in received.items()), key=lambda e: e[3])
    labels_frame = pd.DataFrame(
        {
            TRANSACTION_ID: [e[0] for e in entries],
            TX_FRAUD: [e[1] for e in entries],
            "received_at": np.array([e[2] for e in entries], dtype="datetime64[us]"),
        },
        columns=list(LABEL_LOG_COLUMNS),
    )
    return ServiceLog(_typed([scored_frame], SCORED_LOG_COLUMNS), _typed([labels_frame], LABEL_LOG_COLUMNS))
