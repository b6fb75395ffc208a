"""What a request does, without the web framework: score, label, snapshot, and the restart.

Scoring one transaction: validate its meaning (retry? too late? too far in the future or past the
newest transaction? too large? a new key past the state's caps? ``serve.admission``), fetch its
customer's and terminal's histories from the store, compute the feature row once with the training
definitions (``online.history_features``, as ``scoring.online.OnlineScorer`` does for the `parity`
stage), score it with the champion (the row as float32 into XGBoost's in-place prediction, one
thread) and, when there is one, the challenger in the shadow (``serve.models``: logged, not
answered), append the transaction with its answer to the journal, add it to the store, answer.
Nothing builds a DataFrame per request. The models are ``self.live``, read once per request and
replaced whole by a swap (``serve.swap``).

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
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from fraudpipe.contract import CUSTOMER_ID, canonical_id
from fraudpipe.errors import BundleError, DataError, PipelineError
from fraudpipe.features.definitions import feature_names
from fraudpipe.features.online import STATE_FILE, history_features
from fraudpipe.model import load_bundle
from fraudpipe.scoring.row import FastPath
from fraudpipe.serve.admission import Capacity, Refused, check_amount_and_time, iso
from fraudpipe.serve.board import RedisBoard, Serving, journal_record, now, resumable
from fraudpipe.serve.commits import CommitFailed, GroupCommit
from fraudpipe.serve.config import Release, ServeConfig
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.models import Live, ModelSource, load_model, refetch, resolve
from fraudpipe.serve.replay import replay
from fraudpipe.serve.schema import LabelIn, PeriodIn, TransactionIn
from fraudpipe.serve.snapshot import Snapshots
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
from fraudpipe.servicelog import latest_snapshot

STORE_NAME = "in-process state store"
_ATTEMPTS = 20  # reads and scorings of one transaction while other workers keep changing its histories


def store_name(config: ServeConfig) -> str:
    """The store as the start-up line and /readyz name it (a Redis URL without its password)."""
    if not config.shared:
        return STORE_NAME
    from urllib.parse import urlsplit

    url = urlsplit(config.store)
    where = (
        url._replace(netloc=(url.hostname or "") + (f":{url.port}" if url.port else "")).geturl()
        if url.password
        else config.store
    )
    return f"Redis state store {where} (prefix {config.redis_prefix})"


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
        self.config, self.live, self.store, self.journal, self.started = config, live, store, journal, started
        self.shared = shared
        self.board = None if shared is None else RedisBoard(getattr(shared, "client", None), config.redis_prefix)
        self.names = store_feature_names(store)  # the state's feature row, which every model reads from
        #: the registry version of each bundle this process served, for answers given by an earlier model
        self.releases: dict[str, str | None] = {}
        self.capacity = Capacity(config)
        self.commits: GroupCommit | None = None  # ``group_commits``
        self.snapshots = (
            None
            if journal is None
            else Snapshots(journal, config.state, config.late_days, config.snapshot_every, model_version=self.version)
        )
        self.install(live)

    @classmethod
    def open(cls, config: ServeConfig) -> Service:
        """Load the models and the latest state, replay the journal (see the module docstring)."""
        start = time.perf_counter()
        if config.shared:  # the state and its durability are Redis's: no journal
            from fraudpipe.serve.stores.redis import RedisStore

            shared = RedisStore.open(config.store, config.redis_prefix, config.state, config.late_days)
            recorded = RedisBoard(shared.client, config.redis_prefix).read()  # what the other workers serve
            live = _live(config, store_feature_names(shared), recorded)
            started = Started(config.state, False, 0, time.perf_counter() - start, seeded=shared.seeded)
            return cls(config, live, shared, None, started, shared=shared)
        journal = Journal(config.journal_dir, wal_limit=config.journal_wal_limit)
        found = journal.latest_snapshot()
        if found is None:
            _check_base(journal, config.state)
        source, seq = found if found else (config.state, 0)
        store = InProcessStore.load(source, config.late_days)
        recorded = resumable(journal, [config.model_given, config.shadow_given])  # a swap survives a restart
        live = _reopen(config, store_feature_names(store), recorded, journal)
        replayed = replay(store, journal.entries(after=seq), [m for m in journal.periods() if m[0] >= seq])
        journal_record(journal, serving_now(live))
        return cls(
            config, live, store, journal, Started(source, found is not None, replayed, time.perf_counter() - start)
        )

    # --- the models (``serve.models``; swapped by ``serve.swap``) ------------------------------------

    def install(self, live: Live) -> None:
        """Serve ``live`` from the next request on: one reference assignment (on the event loop)."""
        for model in (live.champion, live.shadow):
            if model is not None:
                self.releases[model.version] = model.release
        self.live = live
        if self.snapshots is not None:
            self.snapshots.info["model_version"] = live.champion.version

    @property
    def version(self) -> str:
        return self.live.champion.version

    @property
    def threshold(self) -> float:
        return self.live.champion.threshold

    @property
    def fast_path(self) -> FastPath:
        return self.live.champion.fast_path

    def release_of(self, version: str) -> str | None:
        """The registry version of the bundle that gave an answer (None: from a path, or not this process's)."""
        return self.releases.get(version)

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
        when = body.naive_utc
        tx = Transaction(
            canonical_id(body.transaction_id),
            canonical_id(body.customer_id),
            canonical_id(body.terminal_id),
            when,
            epoch_second(when),
            body.tx_amount,
            body.coordinates,
        )
        store, live = self.store, self.live  # one set of models for the whole request, whatever swaps meanwhile
        for _ in range(_ATTEMPTS):  # more than one only when another worker changes the same history meanwhile
            found = store.prepare(tx)
            if found.scored is not None:
                _check_retry(found.scored.transaction, tx)
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
                x = history_features(store.config, found.history, tx.t, tx.tx_amount, tx.coordinates)
            except DataError as exc:  # a location the distance feature needs and nobody gave
                raise Refused(
                    422, "customer_x" if str(exc).startswith(CUSTOMER_ID) else "terminal_x", str(exc)
                ) from None
            scored = live.answer(tx, x)
            if self.journal is not None:  # (the in-process store never conflicts: appended once)
                self._append(self.journal, self.journal.append_transaction, scored)
            try:
                first = store.add_transaction(scored, found)
            except Conflict:
                continue
            if first is not None:  # another worker scored this transaction_id meanwhile: its answer stands
                _check_retry(first.transaction, tx)
                return first, True
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


def store_feature_names(store: StateStore) -> list[str]:
    return feature_names(store.config)


def start_sources(config: ServeConfig) -> tuple[ModelSource, ModelSource | None]:
    """The models the command line names (--model, --shadow), as resolved by the `serve` command."""
    champion = ModelSource(given=config.model_given, path=config.model, release=config.release)
    if config.shadow is None or config.shadow_given is None:
        return champion, None
    return champion, ModelSource(given=config.shadow_given, path=config.shadow, release=config.shadow_release)


def _live(config: ServeConfig, names: list[str], recorded: Serving | None) -> Live:
    """The command line's models, or, joining workers that share the state, the ones they serve."""
    if recorded is None:
        given, other = start_sources(config)
        return Live(load_model(given, names), None if other is None else load_model(other, names))
    champion = load_model(refetch(recorded.champion, config.registry, config.model_cache), names)
    other = recorded.shadow
    shadow = None if other is None else load_model(refetch(other, config.registry, config.model_cache), names)
    return Live(champion, shadow, recorded.generation)


def _reopen(config: ServeConfig, names: list[str], recorded: Serving | None, journal: Journal) -> Live:
    """The command line's models, or the ones a swap put in service before this start (``recorded``,
    ``board.resumable``): a directory verified to hold the version recorded; else one line saying what to do."""
    if recorded is None:
        return _live(config, names, None)
    try:
        champion = load_model(_named_again(recorded.champion, config), names)
        shadow = None if recorded.shadow is None else load_model(_named_again(recorded.shadow, config), names)
        wrong = recorded.mismatch(champion.version, None if shadow is None else shadow.version)
    except (PipelineError, OSError) as exc:
        wrong = " ".join(str(exc).split())
    if wrong is None:
        return Live(champion, shadow, recorded.generation)
    also = "" if recorded.shadow is None else f" (shadow {recorded.shadow.label})"
    raise BundleError(
        f"{journal.path}: swap {recorded.generation} (at {recorded.at} UTC) put {recorded.champion.label}{also} "
        f"in service, and it cannot be reopened: {wrong}; put that bundle back, or start with another --model "
        "or --shadow than the last start's (a new command line serves its own models)"
    )


def _named_again(source: ModelSource, config: ServeConfig) -> ModelSource:
    """A recorded model as a start names it: a registry reference resolved anew, as --model is (a
    restart after a roll-back of the stage serves the rolled-back version), a directory as it is."""
    return source if source.release is None else resolve(source.given, config.registry, config.model_cache)


def serving_now(live: Live) -> Serving:
    """``live`` as the journal's record of which models serve (``serve.board``): bundle directories made
    absolute and the versions noted, so that a restart reopens the same ones."""
    champion, shadow = live.champion, live.shadow
    return Serving(
        generation=live.generation,
        champion=_absolute(champion.source),
        shadow=None if shadow is None else _absolute(shadow.source),
        at=now(),
        champion_version=champion.version,
        shadow_version=None if shadow is None else shadow.version,
    )


def _absolute(source: ModelSource) -> ModelSource:
    return source.model_copy(update={"path": source.path.absolute()})


def _check_retry(before: Transaction, now: Transaction) -> None:
    names = ("customer_id", "terminal_id", "tx_datetime", "tx_amount", "coordinates")
    differ = [
        f"{n}: {getattr(before, n)!r} then {getattr(now, n)!r}" for n in names if getattr(before, n) != getattr(now, n)
    ]
    if differ:
        raise Refused(
            409,
            "transaction_id",
            f"{before.transaction_id} was scored with other values ({'; '.join(differ)}): "
            "a retry must resend the same transaction; a new transaction needs a new transaction_id",
        )


def _base_identity(state: Path) -> str:
    path = state / STATE_FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: --state must be an online state snapshot "
            "(featurize writes data/features/online_state)"
        )
    return f"{state.resolve()} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def _check_base(journal: Journal, state: Path) -> None:
    """Without a snapshot of its own, the journal replays on top of --state: refuse another state than
    the one it was written on, whose transactions it would count twice or miss."""
    identity = _base_identity(state)
    recorded = journal.get_meta("base")
    if recorded is None:
        journal.set_meta("base", identity)
    elif recorded != identity and journal.last_seq() > 0:
        raise DataError(
            f"{journal.path} was written on top of {recorded}, not {identity}: start with the same --state, or "
            f"with another --journal-dir (or move {journal.directory} away) to start afresh from this one"
        )
    else:
        journal.set_meta("base", identity)


def preflight(config: ServeConfig) -> str | None:
    """What `fraudpipe serve` checks before it binds the port, each failure one line: the bundle (its
    sha256 sums), the state it would start from and its features, the journal directory, the API key.
    With Redis it seeds the shared state (once: a state already there is checked and kept), so that
    the workers it then starts only attach; it returns the line that says so (None otherwise)."""
    champion, shadow = start_sources(config)
    load_bundle(champion.path, nthread=1)  # its sha256 sums: a damaged bundle is named before any state is read
    if shadow is not None:
        load_bundle(shadow.path, nthread=1)
    if config.shared:
        from fraudpipe.serve.stores.redis import RedisStore

        store = RedisStore.open(config.store, config.redis_prefix, config.state, config.late_days)
        try:
            for source in (champion, shadow):
                if source is not None:
                    load_model(source, store_feature_names(store))
            RedisBoard(store.client, config.redis_prefix).publish(champion, shadow)  # what the workers load
        except BundleError as exc:
            raise BundleError(f"{exc} (the shared state in {store_name(config)})") from None
        finally:
            store.close()
        config.api_key()
        if not store.seeded:
            return None
        return (
            f"fraudpipe serve: seeded the shared state in the {store_name(config)} from {config.state}: "
            f"{store.meta['transactions']:,} transactions in {store.meta['seed_seconds']:.1f} s"
        )
    found = latest_snapshot(config.journal_dir)
    state = found[0] if found else config.state
    path = state / STATE_FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: --state must be an online state snapshot (the featurize stage writes "
            "data/features/online_state)"
        )
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["feature_names"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not an online state snapshot ({type(exc).__name__}: {exc})") from None
    try:
        for source in (champion, shadow):
            if source is not None:
                load_model(source, names)
    except BundleError as exc:
        raise BundleError(f"{exc} (the state {state})") from None
    config.journal_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(config.journal_dir, os.W_OK):
        raise DataError(f"{config.journal_dir} is not writable: the journal must be (--journal-dir)")
    config.api_key()
    return None


def describe(service: Service, config: ServeConfig) -> str:
    """The start-up line."""
    size, started = service.store.size(), service.started
    key = f"API key required ({config.api_key_env})" if config.api_key() else f"no API key ({config.api_key_env} unset)"
    workers = f"{config.workers} worker{'s' if config.workers > 1 else ''}"
    live = service.live
    champion = live.champion
    shadow = (
        ""
        if live.shadow is None
        else f"; shadow {live.shadow.version}{_registered(live.shadow.source.release)} (logged, not answered)"
    )
    head = (
        f"fraudpipe serve: ready on http://{config.host}:{config.port} with {workers} "
        f"and the {store_name(config)}; model "
        f"{champion.version}{_registered(champion.source.release)} ({len(champion.bundle.features)} features, "
        f"threshold {champion.threshold:.4g}, {champion.fast_path.describe()}){shadow}; "
    )
    if service.journal is None:
        assert service.shared is not None  # no journal: the store is shared (``Service.__init__``)
        meta = service.shared.meta
        how = "seeded by this worker" if started.seeded else f"already there (seeded at {meta['seeded_at']} UTC)"
        return (
            f"{head}worker pid {os.getpid()}; shared state {how} from {meta['source']} ({meta['identity']}) = "
            f"{size['transactions']:,} transactions now, ready in {started.seconds:.1f} s; durable log: "
            f"{service.shared.persistence()}; {key}"
        )
    source = f"its snapshot {started.source}" if started.own_snapshot else f"{started.source}"
    return (
        f"{head}state from {source} + "
        f"{started.replayed:,} journal {'entry' if started.replayed == 1 else 'entries'} "
        f"= {size['transactions']:,} transactions, "
        f"loaded in {started.seconds:.1f} s; "
        f"journal {service.journal.path} (SQLite WAL); {key}"
    )


def _registered(release: Release | None) -> str:
    """The registry version in the start-up line: `` = fraud-model@v1.2.0 (fraud-model#prod, commit abc123)``."""
    if release is None:
        return ""
    return f" = {release.label} ({release.reference}, commit {release.commit[:12]})"
