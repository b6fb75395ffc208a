"""`fraudpipe serve`: real-time fraud scores for single transactions, with the training features.

- ``config``: ``ServeConfig``, the command's options.
- ``registry``: ``--model`` as a registry reference (``fraud-model#prod``): GTO's tags resolved, the
  bundle of that commit fetched with DVC and verified.
- ``schema``: request and response bodies; malformed requests described field by field.
- ``stores/base``: the ``StateStore`` interface (get history / add transaction / add label / the
  answer given to a transaction_id) and the types every store and the journal share.
- ``stores/memory``: ``InProcessStore``, the default (one worker).
- ``stores/redis``: ``RedisStore``, the same state in Redis, shared by several workers or machines
  (the store, its seeding, its Lua scripts).
- ``journal``: the durable log (SQLite WAL) of the in-process store.
- ``snapshot``: the in-process store's snapshots, written by a child process while requests go on.
- ``limits``: slow and too many clients (header and body timeouts: 408; uvicorn's connection limit).
- ``admission``: what a transaction must meet before it is scored (amount, event time, state caps).
- ``models``: a model ready to score (a verified bundle fitted to the state's features) and ``Live``,
  the champion and the challenger in the shadow; ``lineup``: which serve now, and which served.
- ``swap``: model swaps (a route, SIGHUP, workers following each other); ``board``: their record.
- ``service``: what a request does, and the restart (snapshot + journal replay).
- ``startup``: the checks before the port binds (``preflight``) and the start-up line.
- ``metrics``: Prometheus metrics and their ASGI middleware.
- ``responses``: JSON answers, errors naming their field, bodies parsed from bytes.
- ``app``: the FastAPI app (lifespan, routes, the API-key dependency).
- ``server``: ``run`` (uvicorn: one worker, or several with the state in Redis).

What monitoring reads of the service (``read_service_log``: from a journal directory, or from
Redis given its URL) is ``fraudpipe.servicelog``, a ground module, so that monitoring does not
import the service; it is re-exported here.
"""

from fraudpipe.serve.config import ServeConfig
from fraudpipe.servicelog import ServiceLog, read_service_log

__all__ = ["ServeConfig", "ServiceLog", "read_service_log"]
