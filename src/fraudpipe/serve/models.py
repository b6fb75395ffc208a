"""The models a service scores with: the champion that answers, and a challenger in the shadow.

Both are held by one immutable ``Live`` object, which a swap replaces by a single reference
assignment on the event loop (``serve.swap``): a request reads ``service.live`` once and scores
with what it read, so a request in flight finishes on the model it started with and the next one
uses the new one. Nothing here is mutated after it is built, except each model's row buffer, which
only the event loop's thread writes.

Each model reads the feature row of an online state whose features config is the one it was
trained with (``Bundle.features_config``, recorded by the train stage). A model trained with the
service's own state's config, or a bundle that does not record one (then same names are taken as
same definitions), reads the service's row, computed once per request: as it is when its feature list
is the state's, by index when it is a subset (a retrain that dropped a feature); one needing a
feature the state does not compute is refused (``Incompatible``). A model trained with another
config (other windows, delay, extras) reads a state of its own, kept beside the service's and fed
the same transactions and labels (``serve.sides``; its ``side`` names it), so that its score is the
one batch scoring with its own features gives. Only the in-process store keeps such a state.

The challenger's score, and whether its own threshold alerts, go to the log beside the answer
(``Scored.shadow_*``), never into the answer. On the service's row it costs a request one more row
prediction (the same XGBoost fast path, ``scoring.row``); on a state of its own, the lookup and
the features of that state as well. A challenger whose features cannot be computed for a request
(a location its distance feature needs and nobody gave) leaves that request's shadow columns empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraudpipe.config import Config
from fraudpipe.errors import BundleError, DataError
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import history_features
from fraudpipe.model import Bundle, load_bundle
from fraudpipe.scoring.row import FastPath, RowScorer
from fraudpipe.serve.config import Release
from fraudpipe.serve.stores.base import Scored, StateStore, Transaction


class Incompatible(BundleError):
    """A bundle needs features that the service's online state does not compute."""


def definitions(config: FeatureConfig) -> str:
    """What makes two features configs give the same feature row (all but the set's name), as a key."""
    return json.dumps(config.model_dump(mode="json", exclude={"name"}), sort_keys=True)


class ModelSource(Config):
    """Where a model comes from: what was given (a bundle directory or a registry reference), the
    bundle directory it resolved to, and the registry version (None: a directory). JSON in the
    journal's and Redis's record of the models serving."""

    given: str
    path: Path
    release: Release | None = None

    @property
    def label(self) -> str:
        """The registry version (``fraud-model@v1.2.0``), else the directory."""
        return self.release.label if self.release else str(self.path)


def resolve(given: str, registry: str, cache: Path | None) -> ModelSource:
    """``given`` as a bundle directory, or the registry version it names, fetched and verified now
    (``serve.registry``: GTO reads the tags, DVC fetches the bundle; seconds, so never on the loop)."""
    from fraudpipe.serve import registry as models  # GTO and DVC load only when a reference is used

    path, release = models.model_from(given, registry, models.MODEL_CACHE if cache is None else cache)
    return ModelSource(given=given, path=path, release=release)


def refetch(source: ModelSource, registry: str, cache: Path | None) -> ModelSource:
    """The same version again, on another worker or machine: by its commit, not re-resolved (a stage
    may have moved since the swap was asked for); a directory as it is."""
    if source.release is None:
        return source
    from fraudpipe.serve import registry as models  # see ``resolve``

    path = models.fetch(source.release, registry, models.MODEL_CACHE if cache is None else cache)
    return source.model_copy(update={"path": path})


def columns_for(bundle: Bundle, names: Sequence[str], what: str) -> np.ndarray | None:
    """The positions of the bundle's features in the state's feature row (None: the same list, the
    row as it is); ``Incompatible`` naming the features the state does not compute."""
    names = list(names)
    if list(bundle.features) == names:
        return None
    missing = [f for f in bundle.features if f not in names]
    if missing:
        raise Incompatible(
            f"{what}: its features {missing} are not computed by this service's online state (it computes "
            f"{len(names)} features: {names}); serve it on a state built with its features config"
        )
    return np.array([names.index(f) for f in bundle.features], dtype=np.intp)


@dataclass(frozen=True, eq=False)
class Model:
    """A verified bundle ready to score rows of the state's features (``side``: of a state of its own)."""

    bundle: Bundle
    source: ModelSource
    columns: np.ndarray | None  # ``columns_for``
    row: RowScorer
    side: str | None = None  # ``definitions`` of its features config when it reads a state of its own

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def threshold(self) -> float:
        return self.bundle.threshold

    @property
    def release(self) -> str | None:
        """``<artifact>@<version>`` when it came from the registry."""
        return self.source.release.label if self.source.release else None

    @property
    def fast_path(self) -> FastPath:
        return self.row.fast_path

    def score(self, x: np.ndarray) -> float:
        """P(fraud) of the state's feature row ``x``."""
        return self.row(x if self.columns is None else x[self.columns])

    def describe(self) -> dict[str, Any]:
        """For /readyz and the swap route's answer."""
        release = self.source.release
        return {
            "model_version": self.version,
            "model_registry_version": self.release,
            "model_source": self.source.given,
            "model_commit": release.commit if release else None,
            "threshold": self.threshold,
            "features": len(self.bundle.features),
            "own_state": self.side is not None,
        }


def load_model(source: ModelSource, base: FeatureConfig, sides: bool = True) -> Model:
    """Load and verify ``source``'s bundle (its sha256 sums) and fit it to the service's state (features
    config ``base``), or to a state of its own (``sides``: the store can keep one); a BundleError in
    one line otherwise. Seconds for a large model: call it off the loop."""
    bundle = load_bundle(source.path, nthread=1)
    what = source.given if source.release is None else f"{source.given} ({source.release.label})"
    own = bundle.features_config
    if own is None or definitions(own) == definitions(base):
        return Model(bundle, source, columns_for(bundle, feature_names(base), what), RowScorer(bundle))
    if not sides:
        raise Incompatible(
            f"{what}: trained with another features config than the shared state's ({_differs(own, base)}); "
            "a state of its own is kept with the in-process store only"
        )
    if own.needs_locations and not base.needs_locations:
        raise Incompatible(
            f"{what}: its features config needs locations (customer_terminal_distance), which this service's "
            "online state does not keep"
        )
    return Model(bundle, source, None, RowScorer(bundle), side=definitions(own))


def _differs(own: FeatureConfig, base: FeatureConfig) -> str:
    mine, theirs = own.to_dict(), base.to_dict()
    return ", ".join(f"{k} {mine[k]} against {theirs[k]}" for k in mine if k != "set" and mine[k] != theirs[k])


@dataclass(frozen=True, eq=False)
class Live:
    """What scores now: the champion (answers) and the challenger (logged only); ``generation``
    counts the swaps, so that workers sharing a state know whether they serve the latest."""

    champion: Model
    shadow: Model | None = None
    generation: int = 0
    #: the states of their own (``Model.side``), by ``definitions``: fed every transaction, label and move
    sides: Mapping[str, StateStore] = field(default_factory=dict)

    def row(self, model: Model, tx: Transaction, x: np.ndarray) -> np.ndarray:
        """The feature row ``model`` reads: ``x`` (the service's state's), or its own state's."""
        if model.side is None:
            return x
        store = self.sides[model.side]
        history = store.get_history(tx.customer_id, tx.terminal_id, tx.t)
        return history_features(store.config, history, tx.t, tx.tx_amount, tx.coordinates)

    def answer(self, tx: Transaction, x: np.ndarray) -> Scored:
        """The champion's answer to ``tx`` (feature row ``x``), the challenger's score beside it."""
        champion, shadow = self.champion, self.shadow
        score = champion.score(self.row(champion, tx, x))
        if shadow is None:
            return Scored(tx, score, score >= champion.threshold, champion.threshold, champion.version)
        try:
            other = shadow.score(self.row(shadow, tx, x))
        except DataError:  # a location its own state lacks: no shadow score for this one
            return Scored(tx, score, score >= champion.threshold, champion.threshold, champion.version)
        return Scored(
            tx,
            score,
            score >= champion.threshold,
            champion.threshold,
            champion.version,
            other,
            shadow.version,
            other >= shadow.threshold,
        )

    def describe(self) -> dict[str, Any]:
        return {
            **self.champion.describe(),
            "shadow": None if self.shadow is None else self.shadow.describe(),
            "generation": self.generation,
        }
