"""What a request does, without the web framework: score, label, snapshot, and the restart.

Scoring one transaction: validate its meaning (retry? too late? too far in the future or past the
newest transaction? too large? a new key past the state's caps? ``serve.admission``), fetch its
customer's and terminal's histories from the store, compute the feature row once with the training
definitions (``online.history_features``, as ``scoring.online.OnlineScorer`` does for the `parity`
stage), score it with the champion (the row as float32 into XGBoost's in-place prediction, one
thread) and, when there is one, the challenger in the shadow (``serve.models``: logged, not
answered), append the transaction with its answer to the journal, add it to the store, answer.
Nothing builds a DataFrame per request. The models are ``self.live``, read once per request and
replaced whole by a swap (``serve.swap``; the bookkeeping in ``serve.lineup``). The checks
before the port binds and the start-up line are ``serve.startup``'s.

Durability: called without an event loop (tests, benchmarks) each journal entry is committed before
the call returns. The app turns on group commit (``group_commits``): the journal holds an entry
for the next commit, and the request awaits ``durable()`` before its answer, so that the requests
handled together share one commit (``serve.commits``). The state holds a transaction as
soon as it is scored (the next request's features count it); a failed commit therefore makes the
service refuse every request (503) until the app has rebuilt it from the journal.

A restart is ``Service.open``: the bundle, then the latest snapshot in the journal directory (or
``--state`` when there is none), then every journal entry after that snapshot, in order. With the
state in Redis (``--store redis://...``) there is no journal: Redis holds the state, its
append-only file is the durable log, and a worker (re)starting attaches to it (the first one seeds
it from ``--state``; ``serve.redis_store``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from fraudpipe.contract import CUSTOMER_ID, canonical_id
from fraudpipe.errors import DataError, PipelineError
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import history_features
from fraudpipe.scoring.row import FastPath
from fraudpipe.serve.admission import Capacity, Refused, check_amount_and_time, check_retry, iso
from fraudpipe.serve.board import RedisBoard, journal_record, resumable
from fraudpipe.serve.commits import CommitFailed, GroupCommit
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.lineup import Lineup, first_live, reopen, serving_now
from fraudpipe.serve.models import Live
from fraudpipe.serve.replay import replay
from fraudpipe.serve.schema import LabelIn, PeriodIn, TransactionIn
from fraudpipe.serve.sides import Built, build, derive, replay_all, wanted
from fraudpipe.serve.snapshot import Snapshots, check_base
from fraudpipe.serve.stores.base import (
    Conflict,
    Scored,
    SharedStore,
    StateStore,
    StoreUnavailable,
    Transaction,
    epoch_second,
)
from fraudpipe.serve.stores.memory import InProcessStore

_ATTEMPTS = 20  # reads and scorings of one transaction while other workers keep changing its histories


@dataclass(frozen=True)
class Started:
    """How the state was rebuilt at start, for the start-up line and /readyz."""

    source: Path  # the snapshot loaded
    own_snapshot: bool  # the service's own (else --state)
    replayed: int  # journal entries applied after it
    seconds: float
    seeded: bool | None = None  # Redis: this worker seeded the shared state (else it found it there); None: in-process


class Service:
    """One worker's model, state store and journal."""

    def __init__(
        self,
        config: ServeConfig,
        live: Live,
        store: StateStore,
        journal: Journal | None,
        started: Started,
        shared: SharedStore | None = None,
    ) -> None:
        """``journal`` with the in-process store; none with a ``shared`` one (then ``store`` too)."""
        self.config, self.store, self.journal, self.started = config, store, journal, started
        self.shared = shared
        self.lineup = Lineup(live)
        self.board = None if shared is None else RedisBoard(getattr(shared, "client", None), config.redis_prefix)
        self.names = store_feature_names(store)  # the state's feature row, which every model reads from
        self.capacity = Capacity(config)
        self.commits: GroupCommit | None = None  # ``group_commits``
        self.snapshots = (
            None
            if journal is None
            else Snapshots(journal, config.state, config.late_days, config.snapshot_every, model_version=self.version)
        )

    @classmethod
    def open(cls, config: ServeConfig) -> Service:
        """Load the models and the latest state, replay the journal (see the module docstring)."""
        start = time.perf_counter()
        if config.shared:  # the state and its durability are Redis's: no journal
            from fraudpipe.serve.stores.redis import RedisStore

            shared = RedisStore.open(config.store, config.redis_prefix, config.state, config.late_days)
            recorded = RedisBoard(shared.client, config.redis_prefix).read()  # what the other workers serve
            live = first_live(config, shared.config, recorded)
            started = Started(config.state, False, 0, time.perf_counter() - start, seeded=shared.seeded)
            return cls(config, live, shared, None, started, shared=shared)
        journal = Journal(config.journal_dir, wal_limit=config.journal_wal_limit)
        found = journal.latest_snapshot()
        if found is None:
            check_base(journal, config.state)
        source, seq = found if found else (config.state, 0)
        store = InProcessStore.load(source, config.late_days)
        recorded = resumable(journal, [config.model_given, config.shadow_given])  # a swap survives a restart
        live = reopen(config, store.config, recorded, journal)
        sides = derive(source, wanted((live.champion, live.shadow), {}), config.late_days)  # ``serve.sides``
        entries = list(journal.entries(after=seq))
        moves = [m for m in journal.periods() if m[0] >= seq]
        replayed = replay(store, entries, moves)
        replay_all(sides.values(), entries, moves)
        live = dataclasses.replace(live, sides=sides)
        journal_record(journal, serving_now(live))
        return cls(
            config, live, store, journal, Started(source, found is not None, replayed, time.perf_counter() - start)
        )

    def build_sides(self, configs: Mapping[str, FeatureConfig]) -> Built:
        """States of their own for a swap (``serve.sides.build``; in a thread). 409 with a shared store."""
        if self.journal is None or self.snapshots is None:
            raise Refused(409, "model", "a state of its own is kept with the in-process store only")
        try:
            return build(self.journal, self.config.state, configs, self.config.late_days, self.snapshots.retain)
        except (PipelineError, OSError, sqlite3.Error) as exc:
            raise Refused(503, "model", f"could not build its own online state: {' '.join(str(exc).split())}") from None

    # --- the models (``serve.lineup``; swapped by ``serve.swap``) ------------------------------------

    def install(self, live: Live) -> None:
        """Serve ``live`` from the next request on (``Lineup.install``); the snapshots name its champion."""
        self.lineup.install(live)
        if self.snapshots is not None:
            self.snapshots.info["model_version"] = live.champion.version

    @property
    def live(self) -> Live:
        """The models serving now: read once per request."""
        return self.lineup.live

    @property
    def version(self) -> str:
        return self.lineup.live.champion.version

    @property
    def threshold(self) -> float:
        return self.lineup.live.champion.threshold

    @property
    def fast_path(self) -> FastPath:
        return self.lineup.live.champion.fast_path

    def release_of(self, version: str) -> str | None:
        return self.lineup.release_of(version)

    # --- durability ---------------------------------------------------------------------------

    def group_commits(
        self, on_commit: Callable[[int], None] | None = None, on_failure: Callable[[str], None] | None = None
    ) -> None:
        """From now on journal entries wait for ``durable()`` (called in the event loop that will await
        it); ``on_commit(requests)`` after each commit, ``on_failure(reason)`` once one failed."""
        if self.journal is not None:
            self.journal.hold = True
            self.commits = GroupCommit(self.journal.commit, on_commit, on_failure)

    @property
    def failed(self) -> str | None:
        """Why this service must be rebuilt from its journal (a commit failed), or None."""
        return None if self.commits is None else self.commits.failed

    async def durable(self) -> None:
        """Return once every journal entry appended so far is committed: await before answering a
        request that appended one. Refused (503) when that commit failed."""
        if self.commits is None or self.journal is None or not self.journal.pending:
            return
        try:
            await self.commits.wait()
        except CommitFailed as exc:
            raise Refused(503, "journal", f"{exc}; nothing was recorded") from None

    def _check_journal(self) -> None:
        if (failed := self.failed) is not None:
            raise Refused(503, "journal", f"{failed}: the service is reloading its state from the journal, retry")

    # --- requests -----------------------------------------------------------------------------

    def score(self, body: TransactionIn) -> tuple[Scored, bool]:
        """The answer for one transaction, and whether it is a retry (the answer given before); with
        group commit, durable once ``durable()`` returns."""
        self._check_journal()
        try:
            return self._score(body)
        except StoreUnavailable as exc:
            raise Refused(503, "store", str(exc)) from None

    def _score(self, body: TransactionIn) -> tuple[Scored, bool]:
        tx = transaction_of(body)
        store, live = self.store, self.live  # one set of models for the whole request, whatever swaps meanwhile
        for _ in range(_ATTEMPTS):  # more than one only when another worker changes the same history meanwhile
            found = store.prepare(tx)
            if found.scored is not None:
                check_retry(found.scored.transaction, tx)
                return found.scored, True
            if found.known:
                raise Refused(
                    409,
                    "transaction_id",
                    f"{tx.transaction_id} is in the history the service started from (not "
                    "scored here): a transaction_id names one transaction, scored once",
                )
            check_amount_and_time(self.config, tx, found)
            self.capacity.check(found)
            try:
                scored = live.answer(
                    tx, history_features(store.config, found.history, tx.t, tx.tx_amount, tx.coordinates)
                )
            except DataError as exc:  # a location the distance feature needs and nobody gave
                raise Refused(
                    422, "customer_x" if str(exc).startswith(CUSTOMER_ID) else "terminal_x", str(exc)
                ) from None
            if self.journal is not None:  # (the in-process store never conflicts: appended once)
                self._append(self.journal, self.journal.append_transaction, scored)
            try:
                first = store.add_transaction(scored, found)
            except Conflict:
                continue
            if first is not None:  # another worker scored this transaction_id meanwhile: its answer stands
                check_retry(first.transaction, tx)
                return first, True
            for side in live.sides.values():  # the states of their own see what the service's saw (``serve.sides``)
                side.add_transaction(scored)
            return scored, False
        raise Refused(
            503,
            "store",
            f"the history of customer {tx.customer_id} / terminal {tx.terminal_id} changed under each "
            f"of {_ATTEMPTS} attempts to score it; nothing was recorded, retry",
        )

    def label(self, body: LabelIn) -> None:
        self._check_journal()
        try:
            self._label(body)
        except StoreUnavailable as exc:
            raise Refused(503, "store", str(exc)) from None

    def _label(self, body: LabelIn) -> None:
        key = canonical_id(body.transaction_id)
        if not self.store.has_transaction(key):
            days = self.store.config.retention_days + self.config.late_days
            raise Refused(
                404,
                "transaction_id",
                f"{key} is not known: never scored here, or older than the {days} days of history the service keeps",
            )
        if self.journal is not None:
            self._append(self.journal, self.journal.append_label, key, body.tx_fraud)
        if not self.store.add_label(
            key, body.tx_fraud
        ):  # a shared store: forgotten meanwhile (pruned by another worker)
            raise Refused(404, "transaction_id", f"{key} is not known: older than the history the service keeps")
        for side in self.live.sides.values():
            side.add_label(key, body.tx_fraud)  # False: older than that state keeps

    @staticmethod
    def _append(journal: Journal, write: Callable[..., object], *args: object) -> None:
        try:
            write(*args)
        except sqlite3.Error as exc:  # nothing changed: the client may retry
            raise Refused(503, "journal", f"could not append to {journal.path} ({exc}); nothing was recorded") from None

    # --- the operator's move to a new period ------------------------------------------------------

    def start_period(self, body: PeriodIn) -> dict[str, object]:
        """Move the clock to ``body.start`` (``online.periods``): the stream resumes there, what is held
        stays held for its retention window. Journalled (in-process) before it takes effect."""
        self._check_journal()
        try:
            return self._start_period(body)
        except StoreUnavailable as exc:
            raise Refused(503, "store", str(exc)) from None

    def _start_period(self, body: PeriodIn) -> dict[str, object]:
        start = epoch_second(body.naive_utc)
        if start > time.time() + self.config.max_future_seconds:
            raise Refused(
                422,
                "start",
                f"{iso(start)} is in the future (more than {self.config.max_future_seconds} s after this server's "
                "clock, --max-future-seconds)",
            )
        newest = self.store.newest()
        if newest is not None and start > newest and self.journal is not None:
            self._append(self.journal, self.journal.append_period, start)
        before = self.store.start_period(start)
        if before is None:  # a shared store: another worker moved it meanwhile, or nothing to move
            newest = self.store.newest()
            seen = "none yet" if newest is None else iso(newest)
            raise Refused(
                422,
                "start",
                f"{iso(start)} is not after the newest transaction seen ({seen}): a new period starts after it",
            )
        for side in self.live.sides.values():
            side.start_period(start)
        return {"start": iso(start), "previous_newest": iso(before), **self.store.size()}

    # --- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """``start_snapshot``, waited for (the caller blocks; the service does not)."""
        return self.start_snapshot().result()

    def start_snapshot(self) -> Future[dict[str, object]]:
        """Write the state (and the answers given) as a snapshot in the background, then drop the journal
        entries it holds (``serve.snapshot``); with Redis, rewrite its append-only file."""
        if self.snapshots is not None:
            return self.snapshots.start()
        assert self.shared is not None  # no journal: the store is shared (``__init__``)
        start = time.perf_counter()  # Redis: its append-only file is the log; rewriting it is what bounds it
        done: Future[dict[str, object]] = Future()
        done.set_result(
            {
                "aof_rewrite": self.shared.compact(),
                "transactions": self.store.size()["transactions"],
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
        return done

    def journal_entries(self) -> int:
        """Entries a restart would replay (none with Redis: nothing is replayed)."""
        return 0 if self.journal is None else self.journal.count()

    def close(self) -> None:
        if self.board is not None:
            with contextlib.suppress(Exception):  # Redis gone: nothing to tidy
                self.board.leave(os.getpid())
        if self.snapshots is not None:
            self.snapshots.close()
        if self.journal is not None:
            self.journal.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def transaction_of(body: TransactionIn) -> Transaction:
    """A request's transaction: ids as keys, the time naive UTC and in epoch seconds."""
    when = body.naive_utc
    return Transaction(
        canonical_id(body.transaction_id),
        canonical_id(body.customer_id),
        canonical_id(body.terminal_id),
        when,
        epoch_second(when),
        body.tx_amount,
        body.coordinates,
    )


def store_feature_names(store: StateStore) -> list[str]:
    return feature_names(store.config)
