"""The journal under sustained load: its write-ahead log stays bounded (issue 18, item 2).

A real `fraudpipe serve` on loopback takes the benchmark's kind of load (new transactions from
kept-alive clients, as fast as they are answered) for 15 s while its log file is watched."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fraudpipe.serve.journal import DEFAULT_WAL_LIMIT
from helpers.load import score_load
from helpers.serve import Server, world

SOAK_SECONDS = 15
PER_REQUEST = 4_700  # bytes of log a request appends: a 4 KB page and its frame header, sometimes two pages


@pytest.mark.slow
def test_the_write_ahead_log_stays_bounded_under_sustained_load(tmp_path):
    w = world()
    journal = tmp_path / "journal"
    wal = journal / "journal.sqlite3-wal"
    sizes: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            sizes.append(wal.stat().st_size if wal.exists() else 0)

    with Server(tmp_path, w.bundle_dir, w.state_dir, journal) as server:
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            load = score_load(
                server.url(""),
                np.unique(w.tx["customer_id"]),
                np.unique(w.tx["terminal_id"]),
                w.cut,
                SOAK_SECONDS,
                step=2.0,
            )
        finally:
            stop.set()
            watcher.join()
        metrics = server.client.get("/metrics").text
    peak = max(sizes)
    print(f"soak: {load.requests:,} requests at {load.rate:.0f}/s; log peak {peak:,} bytes, at the end {sizes[-1]:,}")
    assert load.statuses == {200: load.requests} and 'status="500"' not in metrics
    assert load.requests * PER_REQUEST > 2 * DEFAULT_WAL_LIMIT  # an unbounded log would be well past the bound
    # the limit, plus what two rounds of the background checkpoint (a second each) let through
    bound = DEFAULT_WAL_LIMIT + 2 * load.rate * PER_REQUEST
    assert peak <= bound, f"the log reached {peak:,} bytes after {load.requests:,} requests (bound {bound:,.0f})"
