"""The online state behind the service: in process (one worker) or in Redis (several).

- ``base``: the ``StateStore`` interface and the types every store and the journal share
  (``Transaction``, ``Scored``, ``Prepared``, ``Conflict``, ``StoreUnavailable``).
- ``memory``: ``InProcessStore``, the default: one process, durable through the journal.
- ``redis``: ``RedisStore``, shared by several workers or machines (a package: the store, its
  seeding, its Lua scripts).
"""
