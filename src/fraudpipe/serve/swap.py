"""Swapping the models of a running service: a route, a signal, and workers that follow each other.

A swap builds a new ``serve.models.Live`` off the event loop (in a thread: resolving a registry
reference, fetching and verifying the bundle, fitting it to the state's features and probing its
fast path take from milliseconds to seconds, and requests are scored meanwhile), then installs it on
the loop with one reference assignment (``Service.install``): a request reads the models once, so
the requests in flight finish on the old ones and the next one is scored by the new ones; no request
waits for the load and none fails because of it. A bundle that does not load or does not fit is
refused in one line (``Refused``: 422 when it cannot be loaded, 409 when it does not fit the state's
features or another swap is loading) and the models serving stay as they were.

What can be asked (``ModelIn``, ``POST /v1/admin/model``): a new champion (``model``: a bundle
directory or a registry reference), a new challenger in the shadow (``shadow``; null drops it), or
``promote``: the challenger becomes the champion (no load: it is loaded already) and the shadow is
empty unless ``shadow`` names a new one. SIGHUP re-resolves what the champion and the challenger were
loaded from (``fraud-model#prod`` then names the version prod holds now, after a ``gto assign``; a
directory is read again) and swaps when a version changed.

One swap at a time: in process, a swap asked while another loads is refused (409); with the state in
Redis the lock is shared by the workers (``serve.board``). Each swap is recorded (``serve.board``):
in the journal's meta (in process), or in Redis, where every other worker finds it within
``--follow-every`` seconds and swaps to the same versions; the route answers once every worker of
this command serves the new models (or after ``FOLLOW_WAIT`` seconds, saying how many do).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fraudpipe.errors import PipelineError
from fraudpipe.serve.admission import Refused
from fraudpipe.serve.board import RedisBoard, Serving, journal_record
from fraudpipe.serve.lineup import serving_now
from fraudpipe.serve.models import Incompatible, Live, Model, ModelSource, load_model, refetch, resolve
from fraudpipe.serve.service import Service
from fraudpipe.serve.sides import Built, catch_up, kept, wanted

FOLLOW_WAIT = 30.0  # seconds the route waits for the other workers to serve what it swapped in


class ModelIn(BaseModel):
    """``POST /v1/admin/model``: what to swap in (at least one of the three)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="the new champion: a bundle directory, or a registry reference (fraud-model#prod, "
        "fraud-model@v1.2.0, fraud-model@latest)",
    )
    shadow: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="the new challenger scored in the shadow (same forms); null drops it; absent keeps it",
    )
    promote: bool = Field(
        default=False, description="the challenger becomes the champion (the shadow is then empty unless `shadow`)"
    )


def _say(line: str, error: bool = False) -> None:
    print(f"fraudpipe serve: {line}", file=sys.stderr if error else sys.stdout, flush=True)


def _same(model: Model | None, source: ModelSource | None) -> bool:
    return (model is None and source is None) or (model is not None and model.source == source)


class Swapper:
    """One worker's swaps (the module docstring). Its coroutines run on the event loop."""

    def __init__(self, service: Service, on_swap: Callable[[Live], None]) -> None:
        self.service, self.config, self.on_swap = service, service.config, on_swap
        self.board: RedisBoard | None = service.board
        self.loading: str | None = None  # what is being loaded now (one swap at a time)
        self._since = 0.0
        self._failed = 0  # a generation this worker could not load: not tried again
        self._follower: asyncio.Task | None = None

    # --- the route ----------------------------------------------------------------------------

    async def request(self, body: ModelIn) -> dict[str, Any]:
        """Swap what ``body`` asks for; the models serving after it (``Refused`` otherwise)."""
        given = body.model_fields_set
        if body.model is None and "shadow" not in given and not body.promote:
            raise Refused(422, "model", "give model (a new champion), shadow (a challenger; null drops it) or promote")
        if body.promote and body.model is not None:
            raise Refused(422, "promote", "promote makes the challenger the champion: give it without model")
        if body.promote and self.service.live.shadow is None:
            raise Refused(409, "promote", "no challenger in the shadow to promote (start one with shadow)")
        keep_shadow = "shadow" not in given and not body.promote

        def build(live: Live) -> tuple[Model, Model | None]:
            champion = live.shadow if body.promote and live.shadow is not None else live.champion
            champion = champion if body.model is None else self._load("model", body.model)
            if keep_shadow:
                return champion, live.shadow
            return champion, None if body.shadow is None else self._load("shadow", body.shadow)

        what = " ".join(f"{k}={getattr(body, k)!r}" for k in ("model", "shadow", "promote") if k in given)
        return await self._guarded(what or "promote", build)

    # --- SIGHUP -------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Load again what the models were loaded from; swap when a version changed (SIGHUP)."""

        def build(live: Live) -> tuple[Model, Model | None]:
            champion = self._load("model", live.champion.source.given)
            shadow = None if live.shadow is None else self._load("shadow", live.shadow.source.given)
            return champion, shadow

        try:
            await self._guarded("SIGHUP", build, only_if_changed=True)
        except Refused as exc:
            _say(f"SIGHUP: nothing swapped: {exc.field}: {exc.message}", error=True)

    # --- the swap -----------------------------------------------------------------------------

    def _load(self, field: str, given: str) -> Model:
        """Resolve, fetch, verify and fit a model (in a thread); ``Refused`` in one line naming ``field``."""
        try:
            source = resolve(given, self.config.registry, self.config.model_cache)
            return load_model(source, self.service.store.config, self.service.journal is not None)
        except Incompatible as exc:
            raise Refused(409, field, " ".join(str(exc).split())) from None
        except (PipelineError, OSError) as exc:
            raise Refused(422, field, f"{given}: {' '.join(str(exc).split())}") from None

    async def _guarded(
        self, what: str, build: Callable[[Live], tuple[Model, Model | None]], only_if_changed: bool = False
    ) -> dict[str, Any]:
        if self.loading is not None:
            raise Refused(
                409,
                "model",
                f"another swap is loading ({self.loading}, for {time.monotonic() - self._since:.1f} s); "
                "nothing changed: retry once it is done",
            )
        self.loading, self._since = what, time.monotonic()
        owner = f"pid {os.getpid()}: {what}"
        try:
            if self.board is not None:
                held = await self._redis(self.board.lock, owner)
                if held is not None:
                    raise Refused(409, "model", f"another worker is swapping ({held}); nothing changed: retry")
            try:
                before = self.service.live
                start = time.perf_counter()
                champion, shadow = await asyncio.to_thread(build, before)
                seconds = time.perf_counter() - start
                if only_if_changed and _named(champion, shadow) == _named(before.champion, before.shadow):
                    _say(f"{what}: {champion.source.label} is still {champion.version}: nothing to swap")
                    return self.answer(before, before, seconds)
                configs = wanted((champion, shadow), before.sides)  # states of their own to build (``serve.sides``)
                built = None if not configs else await asyncio.to_thread(self.service.build_sides, configs)
                try:
                    live = await self._commit(champion, shadow, built)
                finally:
                    if built is not None:
                        built.release()
                seconds = time.perf_counter() - start
                _say(
                    f"{what}: swapped in {self._line(live)} (was {self._line(before)}), loaded in {seconds:.2f} s",
                )
            finally:
                if self.board is not None:
                    await self._redis(self.board.unlock, owner)
        finally:
            self.loading = None
        answer = self.answer(live, before, seconds)
        if self.board is not None:
            answer["workers"] = await self._followed(live.generation)
        return answer

    async def _commit(self, champion: Model, shadow: Model | None, built: Built | None = None) -> Live:
        """Record the new models (journal or Redis), then serve them: one assignment, on the loop; the
        states ``built`` for them catch up with the journal first, with no await in between."""
        service = self.service
        if self.board is not None:
            shadow_source = None if shadow is None else shadow.source
            recorded = await self._redis(self.board.publish, champion.source, shadow_source)
            live = Live(champion, shadow, recorded.generation)
        else:
            stores = {} if built is None else built.stores
            live = Live(
                champion, shadow, service.live.generation + 1, kept((champion, shadow), service.live.sides, stores)
            )
            if service.journal is not None:  # committed before it serves: a restart reopens it (``serve.board``)
                journal_record(service.journal, serving_now(live))
                await service.durable()
                if built is not None:  # what arrived meanwhile, then served: no await in between
                    catch_up(built, service.journal)
        service.install(live)
        self.on_swap(live)
        if self.board is not None:
            await self._redis(self.board.ack, os.getpid(), live.generation)
        return live

    @staticmethod
    def _line(live: Live) -> str:
        def one(model: Model) -> str:
            return f"{model.version} ({model.source.label})"

        return one(live.champion) + ("" if live.shadow is None else f", shadow {one(live.shadow)}")

    @staticmethod
    def answer(live: Live, before: Live, seconds: float) -> dict[str, Any]:
        return {
            **live.describe(),
            "changed": live is not before,
            "previous": {"model_version": before.champion.version, "shadow_version": _version(before.shadow)},
            "seconds": round(seconds, 3),
        }

    # --- several workers (the state in Redis) --------------------------------------------------

    def start(self) -> None:
        """Note what this worker serves and follow the others' swaps (several workers only)."""
        if self.board is not None:
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()

    async def _follow(self) -> None:
        board = self.board
        assert board is not None
        await self._redis(board.ack, os.getpid(), self.service.live.generation)
        while True:
            await asyncio.sleep(self.config.follow_every)
            if self.loading is not None:
                continue
            try:
                recorded = await self._redis(board.read)
            except Refused:  # Redis unreachable: the requests say so; look again later
                continue
            live = self.service.live
            if recorded is None or recorded.generation <= live.generation or recorded.generation == self._failed:
                continue
            await self._follow_to(recorded, live)

    async def _follow_to(self, recorded: Serving, live: Live) -> None:
        self.loading, self._since = f"following generation {recorded.generation}", time.monotonic()
        try:
            champion, shadow = await asyncio.to_thread(self._recorded, recorded, live)
        except (PipelineError, OSError, Refused) as exc:
            self._failed = recorded.generation
            _say(
                f"could not follow the swap to generation {recorded.generation}: {exc}; still serving "
                f"{self._line(live)}",
                error=True,
            )
            return
        finally:
            self.loading = None
        new = Live(champion, shadow, recorded.generation)
        self.service.install(new)
        if champion is not live.champion or shadow is not live.shadow:  # else only the number moved (a restart)
            self.on_swap(new)
            _say(f"followed the swap to generation {recorded.generation}: {self._line(new)}")
        assert self.board is not None
        await self._redis(self.board.ack, os.getpid(), recorded.generation)

    def _recorded(self, recorded: Serving, live: Live) -> tuple[Model, Model | None]:
        """The recorded models: those this worker holds already are reused, the others loaded."""
        held = [m for m in (live.champion, live.shadow) if m is not None]

        def get(source: ModelSource) -> Model:
            for model in held:
                if _same(model, source):
                    return model
            fetched = refetch(source, self.config.registry, self.config.model_cache)
            return load_model(fetched, self.service.store.config, self.service.journal is not None)

        return get(recorded.champion), None if recorded.shadow is None else get(recorded.shadow)

    async def _followed(self, generation: int) -> dict[str, int]:
        """How many workers serve ``generation``, waiting up to ``FOLLOW_WAIT`` s for this command's all."""
        assert self.board is not None
        end = time.monotonic() + FOLLOW_WAIT
        serving = 0
        while time.monotonic() < end:
            serving = await self._redis(self.board.serving, generation)
            if serving >= self.config.workers:
                break
            await asyncio.sleep(0.05)
        return {"serving": serving, "of": self.config.workers}

    async def _redis(self, call: Callable[..., Any], *args: Any) -> Any:
        """A board call in a thread (a round trip to Redis, off the loop); 503 when Redis is unreachable."""
        try:
            return await asyncio.to_thread(call, *args)
        except Exception as exc:  # redis-py's errors (the client is imported only with a Redis store)
            if type(exc).__module__.startswith("redis"):
                raise Refused(503, "store", f"Redis: {exc}") from None
            raise


def _named(*models: Model | None) -> list[tuple[str, str | None] | None]:
    """What answers name of each model: its version and its registry version (a stage moved to another
    registered version of the same bundle changes what the answers say: a swap)."""
    return [None if m is None else (m.version, m.release) for m in models]


def _version(model: Model | None) -> str | None:
    return None if model is None else model.version
