"""What `fraudpipe serve` says and checks around the start: the store's name, the checks before the
port binds (``preflight``), and the start-up line (``describe``)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from fraudpipe.errors import BundleError, ConfigError, DataError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import STATE_FILE
from fraudpipe.model import load_bundle
from fraudpipe.serve.admission import iso
from fraudpipe.serve.board import RedisBoard
from fraudpipe.serve.config import Release, ServeConfig
from fraudpipe.serve.lineup import start_sources
from fraudpipe.serve.models import Live, load_model
from fraudpipe.serve.service import Service
from fraudpipe.servicelog import latest_snapshot

STORE_NAME = "in-process state store"


def store_name(config: ServeConfig) -> str:
    """The store as the start-up line and /readyz name it (a Redis URL without its password)."""
    if not config.shared:
        return STORE_NAME
    url = urlsplit(config.store)
    where = (
        url._replace(netloc=(url.hostname or "") + (f":{url.port}" if url.port else "")).geturl()
        if url.password
        else config.store
    )
    return f"Redis state store {where} (prefix {config.redis_prefix})"


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
                    load_model(source, store.config, sides=False)
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
        features = FeatureConfig.parse(json.loads(path.read_text(encoding="utf-8"))["features"], "features")
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise DataError(f"{path}: not an online state snapshot ({type(exc).__name__}: {exc})") from None
    try:
        for source in (champion, shadow):
            if source is not None:
                load_model(source, features)
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
        else f"; shadow {live.shadow.version}{_registered(live.shadow.source.release)} (logged, not answered"
        f"{_own_state(live)})"
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


def _own_state(live: Live) -> str:
    """The challenger's own online state (``serve.sides``), when it reads one."""
    if live.shadow is None or live.shadow.side is None:
        return ""
    store = live.sides[live.shadow.side]
    exact = store.earliest_exact()
    since = "" if exact is None else f", complete from {iso(exact)}"
    return f"; its own online state: {store.size()['transactions']:,} transactions{since}"


def _registered(release: Release | None) -> str:
    """The registry version in the start-up line: `` = fraud-model@v1.2.0 (fraud-model#prod, commit abc123)``."""
    if release is None:
        return ""
    return f" = {release.label} ({release.reference}, commit {release.commit[:12]})"
