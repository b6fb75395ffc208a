"""The models a service serves and their bookkeeping: what serves now, and what served before.

``Lineup`` holds the ``serve.models.Live`` object that requests read (replaced whole by a swap,
``serve.swap``) and the registry version of every bundle this process served, so that an answer
given by an earlier model still names its registry version. The helpers here build the first
``Live`` from the command line (or, for a worker joining others on Redis, from what they serve) and
turn a ``Live`` into the record of which models serve (``serve.board``).
"""

from __future__ import annotations

from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.serve.board import Serving, now
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.models import Live, ModelSource, load_model, refetch


class Lineup:
    """The models serving now (``live``) and the registry versions of those that served."""

    def __init__(self, live: Live) -> None:
        #: the registry version of each bundle this process served, for answers given by an earlier model
        self.releases: dict[str, str | None] = {}
        self.live = live
        self.install(live)

    def install(self, live: Live) -> None:
        """Serve ``live`` from the next request on: one reference assignment (on the event loop)."""
        for model in (live.champion, live.shadow):
            if model is not None:
                self.releases[model.version] = model.release
        self.live = live

    def release_of(self, version: str) -> str | None:
        """The registry version of the bundle that gave an answer (None: from a path, or not this process's)."""
        return self.releases.get(version)


def start_sources(config: ServeConfig) -> tuple[ModelSource, ModelSource | None]:
    """The models the command line names (--model, --shadow), as resolved by the `serve` command."""
    champion = ModelSource(given=config.model_given, path=config.model, release=config.release)
    if config.shadow is None or config.shadow_given is None:
        return champion, None
    return champion, ModelSource(given=config.shadow_given, path=config.shadow, release=config.shadow_release)


def first_live(config: ServeConfig, base: FeatureConfig, recorded: Serving | None) -> Live:
    """The command line's models, or, joining workers that share the state, the ones they serve; fitted
    to the state of features config ``base`` (their own states, ``serve.sides``, are not built here)."""
    sides = not config.shared
    if recorded is None:
        given, other = start_sources(config)
        shadow = None if other is None else load_model(other, base, sides)
        return Live(load_model(given, base, sides), shadow)
    champion = load_model(refetch(recorded.champion, config.registry, config.model_cache), base, sides)
    other = recorded.shadow
    shadow = None if other is None else load_model(refetch(other, config.registry, config.model_cache), base, sides)
    return Live(champion, shadow, recorded.generation)


def serving_now(live: Live) -> Serving:
    """``live`` as the record of which models serve (``serve.board``)."""
    shadow = None if live.shadow is None else live.shadow.source
    return Serving(generation=live.generation, champion=live.champion.source, shadow=shadow, at=now())
