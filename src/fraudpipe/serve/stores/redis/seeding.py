"""Opening the shared state: one worker seeds it from a snapshot, every worker checks it and attaches.

The first worker to find no ``P:meta`` takes ``P:seeding`` (SET NX EX), clears any half-written
state a crashed seeder left, writes the snapshot (``--state``: featurize's, or one a store saved)
in bulk, then ``P:meta``; the others wait for ``P:meta`` and attach. A worker whose ``--state``,
features config or ``--late-days`` differs from what ``P:meta`` records is refused.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import snapshot_identity
from fraudpipe.serve.stores.memory import InProcessStore
from fraudpipe.serve.stores.redis.codec import answer_json, location_text
from fraudpipe.serve.stores.redis.scripts import RELEASE
from fraudpipe.servicelog import RedisKeys

FORMAT = 2  # 2: the history members carry their time (1: read WITHSCORES)
_EPOCH = datetime(1970, 1, 1)


def seed_or_wait(
    client: Any, url: str, prefix: str, state: Path, identity: str | None, late_days: int, wait: float
) -> tuple[dict[str, Any], bool]:
    """The ``P:meta`` of the state under ``prefix``, and whether this worker seeded it from ``state``
    (when nobody had: one worker seeds, the others wait up to ``wait`` seconds for it)."""
    keys = RedisKeys(prefix)
    token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    deadline = time.monotonic() + wait
    while True:
        raw = client.get(keys.meta)
        if raw is not None:
            return json.loads(raw), False
        if identity is None:
            identity = snapshot_identity(state)  # raises: nothing in Redis, nothing to seed from
        if client.set(keys.seeding, token, nx=True, ex=300):
            try:
                if client.get(keys.meta) is None:  # nobody finished seeding between our two reads
                    return _seed(client, prefix, state, identity, late_days, keys.seeding, token), True
            finally:
                client.eval(RELEASE, 1, keys.seeding, token)
            continue
        if time.monotonic() > deadline:
            raise DataError(
                f"--store {url}: another worker ({client.get(keys.seeding)}) is still seeding prefix {prefix!r} "
                f"after {wait:.0f} s; wait for it or delete the key {keys.seeding} if it died"
            )
        time.sleep(0.2)


def check_meta(
    meta: dict[str, Any], url: str, prefix: str, state: Path, identity: str | None, late_days: int
) -> FeatureConfig:
    """The features config of the shared state, once its ``P:meta`` agrees with this worker's options."""
    where = f"--store {url} (prefix {prefix!r})"
    if meta.get("format") != FORMAT:
        raise DataError(
            f"{where} holds a state of format {meta.get('format')!r}; this code reads {FORMAT}: "
            "use another --redis-prefix"
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
    return config


def _clear(client: Any, prefix: str) -> None:
    """Delete every key of ``prefix`` but the seeding lock: what a seeder that died half-way wrote."""
    batch, lock = [], RedisKeys(prefix).seeding
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        if key != lock:
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
    online, keys = store.state, RedisKeys(prefix)
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
    stamps = [f"{a}|{t}|" for a, t in zip(pads, t_list)]  # seq and time: add.lua's members (``servicelog``)
    members = {
        "c": [f"{a}{b}|{c}" for a, b, c in zip(stamps, amounts, terminals)],
        "t": [a + b for a, b in zip(stamps, tids)],
    }
    quoted = {}  # each id's JSON text, once per id
    for key, ids, history_key in (("c", customers, keys.customer), ("t", terminals, keys.terminal)):
        codes, uniques = pd.factorize(ids)
        quoted[key] = [json.dumps(u) for u in uniques.tolist()], codes.tolist()
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        member = members[key]
        for rows in np.split(order, bounds) if n else []:
            rows = rows.tolist()
            pipe.zadd(history_key(ids[rows[0]]), {member[i]: t_list[i] for i in rows})
            if key == "t":
                frauds = {member[i]: t_list[i] for i in rows if l_list[i] == 1}
                if frauds:
                    pipe.zadd(keys.frauds(ids[rows[0]]), frauds)
            pending += 1
            flush()
        pipe.hset(keys.count, "customers" if key == "c" else "terminals", len(uniques))
    (cq, cc), (tq, tc) = quoted["c"], quoted["t"]
    records = [f'[{t_list[i]},{i + 1},{l_list[i]},{cq[cc[i]]},{tq[tc[i]]},"{amounts[i]}"]' for i in range(n)]
    for lo in range(0, n, 10_000):
        hi = min(n, lo + 10_000)
        pipe.hset(keys.tx, mapping=dict(zip(tids[lo:hi].tolist(), records[lo:hi])))
        pipe.zadd(keys.all, dict(zip(tids[lo:hi].tolist(), t_list[lo:hi])))
        pending += 2
        flush()
    scored = store.answers()
    for lo in range(0, len(scored), 5000):
        pipe.hset(keys.scored, mapping={s.transaction.transaction_id: answer_json(s) for s in scored[lo : lo + 5000]})
        pending += 1
        flush()
    if online.config.needs_locations:
        for key, name in ((CUSTOMER_ID, "c"), (TERMINAL_ID, "t")):
            table = online.known_locations()[key]
            key_ids = [str(v) for v in table[key].tolist()]
            xs, ys = table["x"].tolist(), table["y"].tolist()
            for lo in range(0, len(key_ids), 5000):
                pipe.hset(
                    keys.locations(name),
                    mapping={key_ids[i]: location_text(xs[i], ys[i]) for i in range(lo, min(len(key_ids), lo + 5000))},
                )
                pending += 1
                flush()
    clock: dict[str, int | str] = {"seq": n, "lseq": 0}
    if online.as_of is not None:
        now = int((online.as_of.to_pydatetime() - _EPOCH).total_seconds())
        clock |= {"now": now, "pruned_at": now}
        if online.complete_since is not None:  # absent: every transaction is kept (the store reads None)
            clock["complete_since"] = online.complete_since
        if online.periods:  # the operator's moves of the clock (``online.periods``), as period.lua keeps them
            clock["periods"] = json.dumps([list(p) for p in online.periods])
    pipe.hset(keys.clock, mapping=clock)
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
    client.set(keys.meta, json.dumps(meta))  # the commit point: from now on every worker attaches
    return meta
