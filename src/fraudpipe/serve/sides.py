"""States of their own: the online state of a model trained with another features config than the service's.

A challenger trained with other windows, another label delay or other extras than the service's
state (``--state``) does not read the service's feature row: it reads a state of its own, with its
own features config (``serve.models``: ``Model.side``), which the service keeps beside its own and
feeds the same stream: every transaction accepted, every label, every move of the clock, in the
same order (``Service``). Its features are therefore those batch scoring with its config gives
(``features.definitions.build_features``), as far back as the history the service holds reaches.

Where it comes from: the service's own history, computed the other config's way. At start (and on
a restart), from the snapshot the service's state is loaded from (``--state`` or its latest
snapshot), then every journal entry after it, as the service's own state (``Service.open``). On a
swap that brings a model with a config no live model has (``serve.swap``), in a thread, from the
latest snapshot and the journal entries committed after it (``build``), then, on the event loop,
the entries appended meanwhile (``catch_up``, held ones included) right before the swap installs
it, with no await in between: no transaction is missed or counted twice. Meanwhile the snapshots
do not truncate the journal (``Snapshots.retain``). A state no live model reads any longer is
dropped; one that a swap keeps (a promoted challenger's) is kept as it is.

Limits: only the in-process store keeps such states (Redis: refused, ``serve.models``). The state
is not in the snapshots: a restart derives it again. Its history is the service's: a window
reaching further back than the service's retention (``features.retention_days + --late-days``)
holds what the service held, until the stream since its derivation has filled it
(``earliest_exact`` says from when it is complete).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fraudpipe.contract import SECONDS_PER_DAY
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState
from fraudpipe.features.online.snapshot import read_snapshot
from fraudpipe.serve.journal import Journal, read_periods
from fraudpipe.serve.models import Model
from fraudpipe.serve.replay import Entry, read_entries, replay
from fraudpipe.serve.stores.base import StateStore
from fraudpipe.serve.stores.memory import InProcessStore
from fraudpipe.servicelog import latest_snapshot


def wanted(models: Iterable[Model | None], have: Mapping[str, StateStore]) -> dict[str, FeatureConfig]:
    """The features configs of the models' own states that ``have`` lacks, by ``Model.side``."""
    out = {}
    for model in models:
        if model is not None and model.side is not None and model.side not in have:
            config = model.bundle.features_config
            assert config is not None  # a side is given only to a bundle recording its config (``load_model``)
            out[model.side] = config
    return out


def kept(models: Iterable[Model | None], *pools: Mapping[str, StateStore]) -> dict[str, StateStore]:
    """The states the models read, taken from ``pools`` (earlier ones first): the others are dropped."""
    out: dict[str, StateStore] = {}
    for model in models:
        if model is not None and model.side is not None:
            out[model.side] = next(pool[model.side] for pool in pools if model.side in pool)
    return out


def derive(source: Path, configs: Mapping[str, FeatureConfig], late_days: int) -> dict[str, InProcessStore]:
    """The snapshot ``source`` (a service's, or featurize's) computed with each of ``configs``."""
    if not configs:
        return {}
    snapshot = read_snapshot(source)
    since = snapshot.complete_since  # None: complete over the snapshot's own retention, not the other config's
    if since is None and snapshot.now is not None:
        since = snapshot.now - snapshot.config.retention_days * SECONDS_PER_DAY
    return {
        key: InProcessStore(
            OnlineState.restore(
                snapshot.history,
                config,
                snapshot.customers,
                snapshot.terminals,
                late_days=late_days,
                now=snapshot.now,
                complete_since=since,
                periods=snapshot.periods,
            )
        )
        for key, config in configs.items()
    }


def replay_all(stores: Iterable[StateStore], entries: Sequence[Entry], moves: Sequence[tuple[int, int]]) -> None:
    for store in stores:
        replay(store, entries, moves)


@dataclass
class Built:
    """States built off the loop, as of journal entry ``through``; ``retain`` is held until ``release``."""

    stores: dict[str, InProcessStore]
    through: int
    retain: threading.Lock

    def release(self) -> None:
        if self.retain.locked():
            self.retain.release()


def build(
    journal: Journal, state: Path, configs: Mapping[str, FeatureConfig], late_days: int, retain: threading.Lock
) -> Built:
    """The states of ``configs`` as of the last committed entry (call it in a thread): the latest
    snapshot (``state`` when none) and the committed entries after it. Returns holding ``retain``
    (the snapshots' truncation lock), so that ``catch_up`` finds every entry after ``through``."""
    retain.acquire()
    try:
        found = latest_snapshot(journal.directory)
        source, after = found if found else (state, 0)
        through = journal.committed_seq()
        stores = derive(source, configs, late_days)
        moves = [m for m in read_periods(journal.directory) if after <= m[0] <= through]
        replay_all(stores.values(), read_entries(journal.directory, after, through), moves)
    except BaseException:
        retain.release()
        raise
    return Built(stores, through, retain)


def catch_up(built: Built, journal: Journal) -> None:
    """Add what was appended after ``built.through`` (committed or held) to its states: on the event
    loop, right before they are installed (no await in between)."""
    entries = list(journal.entries(after=built.through))
    moves = [m for m in journal.periods() if m[0] >= built.through]  # one already applied is skipped
    replay_all(built.stores.values(), entries, moves)
