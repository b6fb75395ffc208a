"""`fraudpipe serve`: real-time fraud scores for single transactions, with the training features.

- ``config``: ``ServeConfig``, the command's options.
- ``schema``: request and response bodies; malformed requests described field by field.
- ``stores/memory``: the ``StateStore`` interface (get history / add transaction / add label / the
  answer given to a transaction_id) and ``InProcessStore``, the default (one worker).
- ``stores/redis``: ``RedisStore``, the same state in Redis, shared by several workers or machines.
- ``journal``: the durable log (SQLite WAL) and ``read_service_log`` for monitoring (from a journal
  directory, or from Redis given its URL).
- ``service``: what a request does, and the restart (snapshot + journal replay).
- ``metrics``: Prometheus metrics and their ASGI middleware.
- ``app``: the FastAPI app and ``run`` (uvicorn: one worker, or several with the state in Redis).
"""

from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.journal import ServiceLog, read_service_log

__all__ = ["ServeConfig", "ServiceLog", "read_service_log"]
