"""The online state in Redis: several service workers, on one machine or many, share one history.

- ``store``: ``RedisStore``, the ``StateStore`` with the in-process store's semantics.
- ``seeding``: opening the shared state: one worker seeds it from a snapshot, the others attach.
- ``codec``: answers and locations as the keys hold them.
- ``scripts``: the Lua scripts every change runs as (``add.lua``, ``label.lua``, ``prune.lua``,
  ``prune_now.lua``, ``release.lua`` beside it, package data), and the read before a score
  (``prepare.lua``).

The key layout is ``fraudpipe.servicelog``'s, which monitoring reads too.
"""

from fraudpipe.serve.stores.redis.store import RedisStore

__all__ = ["RedisStore"]
