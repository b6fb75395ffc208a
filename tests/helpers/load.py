"""Load on a real `fraudpipe serve`, as ``benchmarks/serve.py`` sends it (without wrk): new transactions
of known customers and terminals, each a data-time step after the previous one, from a few client
threads with kept-alive connections, for a bounded time (loopback only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import pandas as pd


@dataclass
class Load:
    """What a load run did: answers by status, and each answer's latency (seconds) with its end time."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # time.monotonic() at each answer
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def score_load(
    url: str,
    customers: Sequence[int],
    terminals: Sequence[int],
    start: pd.Timestamp,
    seconds: float,
    threads: int = 4,
    prefix: str = "load",
    step: float = 1.0,
    until: Callable[[], bool] | None = None,
) -> Load:
    """POST /v1/score from ``threads`` clients for ``seconds`` (or until ``until()`` is true): transaction
    ``i`` of thread ``k`` is ``{prefix}-{k}-{i}`` at ``start + (i * threads + k) * step`` seconds."""
    load, lock = Load(), threading.Lock()
    began = time.monotonic()
    end = began + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = 0
            while time.monotonic() < end and not (until and until()):
                n = i * threads + k
                body = {
                    "transaction_id": f"{prefix}-{k}-{i}",
                    "customer_id": int(customers[n % len(customers)]),
                    "terminal_id": int(terminals[(n * 7919) % len(terminals)]),
                    "tx_datetime": (start + pd.Timedelta(seconds=n * step)).isoformat(),
                    "tx_amount": 10.0 + n % 50,
                }
                sent = time.monotonic()
                status = http.post("/v1/score", json=body).status_code
                done = time.monotonic()
                with lock:
                    load.statuses[status] = load.statuses.get(status, 0) + 1
                    load.latencies.append(done - sent)
                    load.ends.append(done)
                i += 1

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    load.seconds = time.monotonic() - began
    return load
