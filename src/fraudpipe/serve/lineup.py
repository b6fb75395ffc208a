"""The models a service serves and their bookkeeping: what serves now, and what served before.

``Lineup`` holds the ``serve.models.Live`` object that requests read (replaced whole by a swap,
``serve.swap``) and the registry version of every bundle this process served, so that an answer
given by an earlier model still names its registry version. The helpers here build the first
``Live`` from the command line (or, for a worker joining others on Redis, from what they serve) and
turn a ``Live`` into the record of which models serve (``serve.board``).
"""

from __future__ import annotations

from fraudpipe.errors import BundleError, PipelineError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.serve.board import Serving, now
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.models import Live, ModelSource, load_model, refetch, resolve


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


def reopen(config: ServeConfig, base: FeatureConfig, recorded: Serving | None, journal: Journal) -> Live:
    """The command line's models, or the ones a swap put in service before this start (``recorded``,
    ``board.resumable``): a directory verified to hold the version recorded; else one line saying what to do."""
    if recorded is None:
        return first_live(config, base, None)
    try:
        champion = load_model(_named_again(recorded.champion, config), base, True)
        other = recorded.shadow
        shadow = None if other is None else load_model(_named_again(other, config), base, True)
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
