"""Snapshots written without stopping the service (issue 18, items 2 and 3), on a real `fraudpipe serve`:
requests are answered while one is written, and one is taken on its own every --snapshot-every entries."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from fraudpipe.servicelog import latest_snapshot
from helpers.load import score_load
from helpers.serve import Server, world


def _load(server: Server, until, prefix: str, seconds: float = 60):
    w = world()
    customers, terminals = np.unique(w.tx["customer_id"]), np.unique(w.tx["terminal_id"])
    return score_load(server.url(""), customers, terminals, w.cut, seconds, threads=2, prefix=prefix, until=until)


@pytest.mark.slow
def test_requests_are_answered_while_a_snapshot_is_written(tmp_path):
    w = world()
    with Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal") as server:
        done = threading.Event()
        loads = []
        driver = threading.Thread(target=lambda: loads.append(_load(server, done.is_set, "during")))
        driver.start()
        time.sleep(1.0)
        asked = time.monotonic()
        snap = httpx.post(server.url("/v1/admin/snapshot"), timeout=120)
        answered = time.monotonic()
        time.sleep(0.5)
        done.set()
        driver.join()
        ready = server.client.get("/readyz").json()
    load = loads[0]
    assert snap.status_code == 200, snap.text
    meanwhile = sorted(end for end in load.ends if asked < end < answered)
    window = answered - asked
    longest = float(np.diff([asked, *meanwhile, answered]).max())  # the longest time without an answer
    print(
        f"snapshot of {snap.json()['transactions']:,} transactions in {window:.2f} s: {len(meanwhile)} requests "
        f"answered meanwhile, never more than {1e3 * longest:.0f} ms without an answer"
    )
    assert load.statuses == {200: load.requests}
    # scoring went on: answers all along the snapshot, not only before and after it
    assert len(meanwhile) >= 20 and longest < window / 5, (len(meanwhile), longest, window)
    found = latest_snapshot(tmp_path / "journal")
    assert found is not None and found[1] == snap.json()["journal_seq"] > 0
    assert ready["journal_entries"] == load.requests - snap.json()["journal_seq"]  # truncated up to the snapshot


@pytest.mark.slow
def test_a_snapshot_is_taken_every_n_entries_and_a_restart_loads_it(tmp_path):
    w = world()
    journal = tmp_path / "journal"
    server = Server(tmp_path, w.bundle_dir, w.state_dir, journal, ("--snapshot-every", "300"))
    with server:
        load = _load(server, lambda: (latest_snapshot(journal) or (None, 0))[1] >= 300, "auto", seconds=30)
        time.sleep(0.5)
        before = server.client.get("/readyz").json()
    found = latest_snapshot(journal)
    assert found is not None and found[1] >= 300, f"no snapshot after {load.requests} entries"
    assert before["journal_entries"] < load.requests  # the journal was truncated up to the snapshot
    with server:
        after = server.client.get("/readyz").json()
    assert f"its snapshot {found[0]}" in server.stdout.read_text()
    assert after["transactions"] == before["transactions"] and after["scored"] == before["scored"]
