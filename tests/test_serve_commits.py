"""Group commit: requests handled together share one journal commit, no answer leaves before its
commit, and a failed commit records nothing of its batch (real SQLite files, a real file-size limit,
a real server killed with -9)."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fraudpipe.serve.commits import GroupCommit
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.stores.base import Scored, Transaction, epoch_second
from helpers.serve import Server, world

pytestmark = pytest.mark.timeout(600)


def scored(tid: str) -> Scored:
    when = datetime(2018, 5, 1, 10)
    return Scored(Transaction(tid, "7", "12", when, epoch_second(when), 12.5), 0.25, False, 0.5, "xgboost-0123456789ab")


def committed(path: Path) -> list[str]:
    """The transaction ids a journal holds, read on a connection of its own (what survives the process)."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT transaction_id FROM events ORDER BY seq")]
    finally:
        db.close()


def test_requests_handled_together_share_one_commit_and_wait_for_it(tmp_path):
    journal = Journal(tmp_path, checkpoint_every=None, hold=True)
    commits: list[int] = []
    group = GroupCommit(journal.commit, on_commit=commits.append)
    seen_before_answer: list[list[str]] = []

    async def request(tid: str) -> None:
        journal.append_transaction(scored(tid))  # what a request does while it is handled
        await group.wait()
        seen_before_answer.append(committed(journal.path))  # what another process sees once it is answered

    async def main() -> list[str]:
        await asyncio.gather(*(request(f"t{i}") for i in range(10)))  # ten requests ready in one turn
        before = committed(journal.path)
        await request("later")  # alone in its turn: a commit of its own
        return before

    before = asyncio.run(main())
    assert commits == [10, 1]
    assert before == [f"t{i}" for i in range(10)]
    assert all({f"t{i}" for i in range(10)} <= set(seen) for seen in seen_before_answer)
    journal.close()


FILL_UNTIL_FULL = """
import asyncio, resource, sys
from datetime import datetime
from pathlib import Path
sys.path[:0] = {path!r}
from fraudpipe.serve.commits import CommitFailed, GroupCommit
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.stores.base import Scored, Transaction, epoch_second

def scored(tid):
    when = datetime(2018, 5, 1, 10)
    return Scored(Transaction(tid, "7", "12", when, epoch_second(when), 12.5), 0.25, False, 0.5, "xgboost-0")

journal = Journal(Path({directory!r}), checkpoint_every=None, hold=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
failures = []
group = GroupCommit(journal.commit, on_failure=failures.append)

async def main():
    for batch in range(10_000):
        for k in range(5):
            journal.append_transaction(scored(f"b{{batch}}-{{k}}"))
        try:
            await group.wait()
        except CommitFailed as exc:
            print(batch, len(failures), group.failed == str(exc), journal.pending, flush=True)
            return

asyncio.run(main())
"""


def test_a_failed_commit_records_nothing_of_its_batch_and_fails_each_waiter(tmp_path):
    """The journal's file reaches a real size limit (RLIMIT_FSIZE) at a commit: that batch's waiters
    get CommitFailed, ``on_failure`` is called once, and the file keeps exactly the batches before."""
    script = FILL_UNTIL_FULL.format(path=sys.path, directory=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )
    assert proc.returncode == 0, proc.stderr
    batch, failures, same, pending = proc.stdout.split()
    assert int(batch) > 0 and failures == "1" and same == "True" and pending == "False"
    assert committed(tmp_path / "journal.sqlite3") == [f"b{b}-{k}" for b in range(int(batch)) for k in range(5)]


CLIENTS = 8


def request_body(k: int, i: int) -> dict[str, object]:
    """Client ``k``'s ``i``-th transaction: a new one, of a known customer at a known terminal."""
    w = world()
    customers, terminals = np.unique(w.tx["customer_id"]), np.unique(w.tx["terminal_id"])
    n = i * CLIENTS + k
    return {
        "transaction_id": f"kill-{k}-{i}",
        "customer_id": int(customers[n % len(customers)]),
        "terminal_id": int(terminals[(n * 7919) % len(terminals)]),
        "tx_datetime": (w.cut + pd.Timedelta(seconds=n)).isoformat(),
        "tx_amount": 10.0 + n % 50,
    }


def _client(url: str, k: int, answered: dict[str, float], stop: threading.Event) -> None:
    """New transactions one after the other until ``stop`` or the server goes away; records each 200."""
    with httpx.Client(base_url=url, timeout=30) as http:
        i = 0
        while not stop.is_set():
            body = request_body(k, i)
            try:
                answer = http.post("/v1/score", json=body)
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                answered[body["transaction_id"]] = answer.json()["fraud_probability"]
            i += 1


def test_concurrent_requests_share_commits_and_what_was_answered_survives_kill_9(tmp_path):
    w = world()
    server = Server(tmp_path, w.bundle_dir, w.state_dir, tmp_path / "journal").start()
    answered: dict[str, float] = {}
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client, args=(server.url(""), k, answered, stop), daemon=True) for k in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    try:
        end = time.monotonic() + 120
        while len(answered) < 400 and time.monotonic() < end:
            time.sleep(0.05)
        metrics = server.client.get("/metrics").text
        while len(answered) < 800 and time.monotonic() < end:
            time.sleep(0.05)
        server.stop(signal.SIGKILL)  # requests in flight: some answered, some not
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)
        server.stop()
    assert server.proc.returncode == -signal.SIGKILL and len(answered) >= 800
    found = dict(re.findall(r"^fraudpipe_journal_commit_requests_(count|sum) (\S+)$", metrics, re.M))
    commits, requests = float(found["count"]), float(found["sum"])
    assert requests >= 400 and commits < requests, (commits, requests)  # requests shared commits

    kept = set(committed(tmp_path / "journal" / "journal.sqlite3"))
    lost = sorted(set(answered) - kept)
    assert not lost, f"{len(lost)} transactions answered 200 before kill -9 are not in the journal: {lost[:5]}"
    server.start()  # replays the journal: each answered transaction is known, with the answer given
    try:
        for tid in sorted(answered)[:: max(1, len(answered) // 40)]:
            k, i = (int(x) for x in tid.split("-")[1:])
            again = server.score(request_body(k, i))
            assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true", again.text
            assert again.json()["fraud_probability"] == answered[tid]
    finally:
        server.stop()
