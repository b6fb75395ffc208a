"""The record of which models serve (``Serving``): written at start and at every swap.

With the in-process store it goes into the journal's ``meta`` table (key ``models``: the latest
records, oldest first, each with the journal seq it followed, and the versions of the bundles), so
the journal says which model answered from which entry on (a replay does not need it: every entry
carries the answer and the version that gave it). It also makes a swap durable: a restart (or the
reload after a failed commit) with the command line the journal was last started with (key
``command``: --model and --shadow as given) reopens the models of the last record, swapped in by the
route or SIGHUP, each loaded again and verified (sha256 sums; a directory: the version recorded; a
registry reference is resolved anew, as --model is at a start); a command line naming other models
serves those (``resumable``).

With the state in Redis (several workers), ``RedisBoard`` is how the workers agree: a swap asked of
one worker (a route, a signal) takes ``P:models:lock`` (one swap at a time across the workers),
numbers itself with ``INCR P:models:generation`` and writes its record to ``P:models`` (JSON); every
worker looks at ``P:models`` every ``--follow-every`` seconds (one GET) and, when its generation is
newer than the one it serves, loads the same versions (a registry version by its commit, not
re-resolved) off its event loop and swaps; then it notes the generation it serves in
``P:models:ack`` (hash pid -> generation), which the swapping worker counts before it answers. A
worker (re)started by uvicorn loads the record, so it serves what the others serve; a new
`fraudpipe serve` command writes its own models first (``publish``, in its preflight).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fraudpipe.config import Config
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.models import ModelSource

JOURNAL_KEY = "models"  # the journal's meta key
COMMAND_KEY = "command"  # the journal's meta key: --model and --shadow as given at the last start
JOURNAL_KEEP = 100  # records kept in the journal's meta
LOCK_SECONDS = 600  # a swap's lock lapses after this (a worker killed mid-swap does not block the others)
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


class Serving(Config):
    """The models serving from ``generation`` on (0: as started), since ``at`` (UTC)."""

    generation: int
    champion: ModelSource
    shadow: ModelSource | None = None
    at: str
    after_seq: int | None = None  # in-process: the journal entry after which they answered
    champion_version: str | None = None  # in-process: the bundles' versions (a reopened swap must match them)
    shadow_version: str | None = None

    def mismatch(self, champion: str, shadow: str | None) -> str | None:
        """How the versions loaded from directories differ from the ones recorded (None: they do not, or
        none recorded); a registry reference is resolved anew, as a start resolves --model."""
        wrong = [
            f"{what} {source.path} now holds {got}, not {want}"
            for what, source, want, got in (
                ("the champion", self.champion, self.champion_version, champion),
                ("the challenger", self.shadow, self.shadow_version, shadow),
            )
            if source is not None and source.release is None and want is not None and got != want
        ]
        return "; ".join(wrong) or None

    @classmethod
    def parse_json(cls, raw: str) -> Serving:
        return cls.model_validate_json(raw, strict=False)


def journal_record(journal: Journal, serving: Serving) -> None:
    """Append ``serving`` to the journal's record (one committed statement, before the swap takes effect)."""
    records = journal_records(journal)[-(JOURNAL_KEEP - 1) :]
    record = serving.model_copy(update={"after_seq": journal.last_seq()})
    records.append(record)
    journal.set_meta(JOURNAL_KEY, json.dumps([json.loads(r.model_dump_json()) for r in records]))


def resumable(journal: Journal, command: list[str | None]) -> Serving | None:
    """The models to reopen: the journal's last record when a swap made it (generation above 0) and
    ``command`` (--model, --shadow as given) is the one the journal was last started with; None: the
    command line's. Notes ``command`` as the last start."""
    previous = journal.get_meta(COMMAND_KEY)
    journal.set_meta(COMMAND_KEY, json.dumps(command))
    records = journal_records(journal)
    if previous is None or json.loads(previous) != command or not records or records[-1].generation == 0:
        return None
    return records[-1]


def journal_records(journal: Journal) -> list[Serving]:
    raw = journal.get_meta(JOURNAL_KEY)
    return [Serving.model_validate(r, strict=False) for r in json.loads(raw)] if raw else []


class RedisBoard:
    """The models record in a shared Redis state (the module docstring)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.key, self.lock_key = f"{prefix}:models", f"{prefix}:models:lock"
        self.generation_key, self.ack_key = f"{prefix}:models:generation", f"{prefix}:models:ack"

    def read(self) -> Serving | None:
        raw = self.client.get(self.key)
        return None if raw is None else Serving.parse_json(raw)

    def publish(self, champion: ModelSource, shadow: ModelSource | None) -> Serving:
        """Record new models under the next generation (call it holding the lock, or before any worker runs)."""
        generation = int(self.client.incr(self.generation_key))
        serving = Serving(generation=generation, champion=champion, shadow=shadow, at=now())
        self.client.set(self.key, serving.model_dump_json())
        return serving

    def lock(self, owner: str) -> str | None:
        """Take the swap lock for ``owner``; None when taken, else who holds it."""
        if self.client.set(self.lock_key, owner, nx=True, ex=LOCK_SECONDS):
            return None
        return str(self.client.get(self.lock_key) or "a worker that just finished")

    def unlock(self, owner: str) -> None:
        self.client.eval(_UNLOCK, 1, self.lock_key, owner)

    def ack(self, pid: int, generation: int) -> None:
        self.client.hset(self.ack_key, str(pid), generation)

    def leave(self, pid: int) -> None:
        self.client.hdel(self.ack_key, str(pid))

    def serving(self, generation: int) -> int:
        """How many workers have noted that they serve ``generation`` (or a later one)."""
        return sum(int(v) >= generation for v in self.client.hvals(self.ack_key))
