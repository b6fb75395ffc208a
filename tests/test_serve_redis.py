"""`fraudpipe serve --store redis://...` as clients see it: real service processes on loopback
sharing one real redis-server; several workers behind one port; Redis going away and coming back."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import defaultdict

import httpx
import numpy as np
import psutil
import pytest

from fraudpipe.contract import TX_DATETIME
from helpers.serve import FRESH, ROOT, Server, body, world

pytestmark = pytest.mark.timeout(900)


def _labels_due(test, delay_days: int):
    """For each transaction of ``test`` in order, the labels (id, fraud) that have come due before it."""
    times, ids, frauds = test[TX_DATETIME].to_numpy(), test["transaction_id"].tolist(), test["tx_fraud"].tolist()
    sent = 0
    for row in test.itertuples(index=False):
        due = np.datetime64(row.tx_datetime) - np.timedelta64(delay_days, "D")
        labels = []
        while sent < len(times) and times[sent] <= due:
            labels.append({"transaction_id": ids[sent], "tx_fraud": int(frauds[sent])})
            sent += 1
        yield row, labels


def test_two_workers_sharing_redis_score_as_one_in_process_worker(redis_server, tmp_path):
    """Two `fraudpipe serve` processes on two ports, one Redis: each customer's transactions alternate
    between them (and so do the labels); every answer equals that of one in-process server sent
    everything, and the batch score."""
    w = world()
    test = w.test
    shared = ("--store", redis_server.unix_url, "--redis-prefix", "two")
    workers = [Server(tmp_path / name, w.bundle_dir, w.state_dir, tmp_path / name / "journal", shared) for name in "ab"]
    reference = Server(tmp_path / "r", w.bundle_dir, w.state_dir, tmp_path / "r" / "journal")
    for s in (*workers, reference):
        s.workdir.mkdir()
        s.start(wait=False)  # both Redis workers start at once: one seeds, the other waits and attaches
    try:
        for s in (*workers, reference):
            s.wait_ready()
        seen = defaultdict(int)  # transactions per customer so far
        on = defaultdict(set)  # the workers each customer's transactions went to
        got, expected = [], []
        for i, (row, labels) in enumerate(_labels_due(test, w.config.delay_days)):
            for k, label in enumerate(labels):
                for server in (workers[(i + k) % 2], reference):
                    answer = server.client.post("/v1/labels", json=label)
                    assert answer.status_code == 200, answer.text
            worker = seen[row.customer_id] % 2
            seen[row.customer_id] += 1
            on[row.customer_id].add(worker)
            answer, ref = workers[worker].score(body(row)), reference.score(body(row))
            assert answer.status_code == ref.status_code == 200, answer.text + ref.text
            got.append(answer.json()["fraud_probability"]), expected.append(ref.json()["fraud_probability"])
        assert got == expected, "the two workers sharing Redis answer as one in-process worker"
        batch = w.batch_scores(test["transaction_id"])
        assert len(got) == len(test) >= 1500 and np.abs(np.array(got) - batch).max() <= 1e-6
        assert sum(len(v) == 2 for v in on.values()) >= 90  # the customers really alternated
        sizes = [s.client.get("/readyz").json() for s in (*workers, reference)]
        keys = ("transactions", "customers", "terminals", "scored")
        assert [{k: r[k] for k in keys} for r in sizes] == [{k: sizes[2][k] for k in keys}] * 3
        assert sizes[0]["store"].startswith("Redis state store unix://") and sizes[0]["journal_entries"] == 0
        outputs = [s.stdout.read_text() for s in workers]
        assert sum("fraudpipe serve: seeded the shared state in the Redis state store" in o for o in outputs) == 1, (
            outputs
        )
        assert all("shared state already there" in o for o in outputs), (
            outputs
        )  # the command seeds, then its worker attaches
        assert all("durable log: Redis AOF (appendfsync everysec)" in o for o in outputs), outputs
        assert not any((s.journal / "journal.sqlite3").exists() for s in workers)  # Redis is the log
        retry = workers[1].score(body(test.iloc[0]))  # scored by worker a: worker b knows the answer
        assert retry.headers.get("idempotent-replayed") == "true" and retry.json()["fraud_probability"] == got[0]
        conflict = workers[1].score(body(test.iloc[0], tx_amount=1.0))
        assert conflict.status_code == 409 and "was scored with other values" in conflict.json()["detail"]
        snap = workers[0].client.post("/v1/admin/snapshot")  # with Redis: a rewrite of its append-only file
        assert snap.status_code == 200 and snap.json()["transactions"] == sizes[2]["transactions"], snap.text
        assert snap.json()["aof_rewrite"] == "started" or snap.json()["aof_rewrite"].startswith(
            "not started ("
        )  # one running
        workers[1].proc.send_signal(signal.SIGUSR1)
        for _ in range(100):
            if "SIGUSR1: Redis append-only file rewrite" in workers[1].stdout.read_text():
                break
            time.sleep(0.1)
        assert "SIGUSR1: Redis append-only file rewrite" in workers[1].stdout.read_text(), workers[1].output()
    finally:
        for s in (*workers, reference):
            s.stop()


def test_several_workers_behind_one_port(redis_server, tmp_path):
    """`--workers 2`: two processes accept on the one port and answer from the one shared state."""
    w = world()
    server = Server(
        tmp_path,
        w.bundle_dir,
        w.state_dir,
        tmp_path / "journal",
        ("--store", redis_server.url, "--redis-prefix", "port", "--workers", "2"),
    )
    with server:
        pids = set()
        for _ in range(400):  # a new connection each time: the kernel hands it to either worker
            answer = httpx.get(server.url("/readyz"), timeout=30)
            if answer.status_code == 200:
                assert answer.json()["workers"] == 2
                pids.add(answer.json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, f"only worker(s) {pids} answered"
        listening = {  # each worker on a socket of its own (SO_REUSEPORT), not one shared
            p.pid
            for p in psutil.Process(server.proc.pid).children()
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == server.port for c in p.net_connections("tcp"))
        }
        assert listening == pids
        clients = [httpx.Client(base_url=server.url("")) for _ in range(16)]  # keep-alive, as a load generator's
        held = {c.get("/readyz", timeout=30).json()["pid"] for c in clients}
        for c in clients:
            c.close()
        assert held == pids, "the kernel hands 16 connections to both workers (all to one: 2 in 65,536)"
        second = subprocess.run(
            Server(
                tmp_path / "second", w.bundle_dir, w.state_dir, tmp_path / "j2", server.args, port=server.port
            ).command(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 1 and f"serve failed: --port {server.port}: cannot bind" in second.stderr
        rows = w.test.head(400)
        scores = []
        for row in rows.itertuples(index=False):
            answer = FRESH.post(server.url("/v1/score"), json=body(row), timeout=30)
            assert answer.status_code == 200, answer.text
            scores.append(answer.json()["fraud_probability"])
        assert np.abs(np.array(scores) - w.batch_scores(rows["transaction_id"])).max() <= 1e-6
        out = server.stdout.read_text()
        assert (
            out.count("fraudpipe serve: ready on") == 2
            and "with 2 workers and the Redis state store redis://127.0.0.1" in out
        ), out
        assert server.proc.poll() is None
    assert server.proc.returncode == 0


def test_several_workers_need_a_shared_store(tmp_path):
    w = world()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraudpipe.cli",
            "serve",
            "--model",
            str(w.bundle_dir),
            "--state",
            str(w.state_dir),
            "--journal-dir",
            str(tmp_path / "j"),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr.startswith("serve failed: serve.workers: --workers 2 needs a shared state store")
        and "--store redis://" in proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1


def test_redis_going_away_is_a_503_and_its_return_keeps_the_history(redis_server, tmp_path):
    """Redis stopped under a running worker: scores and labels get 503 with Retry-After (nothing is
    recorded) and /readyz says so; Redis restarted (its append-only file replayed): the worker
    carries on with the whole history, as an in-process server that never lost anything."""
    w = world()
    test = w.test
    worker = Server(
        tmp_path / "a",
        w.bundle_dir,
        w.state_dir,
        tmp_path / "a" / "journal",
        ("--store", redis_server.unix_url, "--redis-prefix", "away"),
    )
    reference = Server(tmp_path / "r", w.bundle_dir, w.state_dir, tmp_path / "r" / "journal")
    for s in (worker, reference):
        s.workdir.mkdir()
        s.start()
    try:
        steps = list(_labels_due(test.iloc[:900], w.config.delay_days))
        for row, labels in steps[:600]:
            for s in (worker, reference):
                for label in labels:
                    assert s.client.post("/v1/labels", json=label).status_code == 200
                assert s.score(body(row)).status_code == 200
        redis_server.stop(signal.SIGTERM)
        row = steps[600][0]
        down = worker.score(body(row))
        assert down.status_code == 503 and down.headers["retry-after"] == "1", down.text
        assert (
            down.json()["errors"][0]["field"] == "store" and "Redis state store is unavailable" in down.json()["detail"]
        )
        assert (
            worker.client.post(
                "/v1/labels", json={"transaction_id": int(row.transaction_id), "tx_fraud": 1}
            ).status_code
            == 503
        )
        assert worker.client.get("/readyz").status_code == 503 and worker.client.get("/metrics").status_code == 200
        redis_server.start()
        got, expected = [], []
        for row, labels in steps[600:]:
            for s in (worker, reference):
                for label in labels:
                    assert s.client.post("/v1/labels", json=label).status_code == 200
            answer, ref = worker.score(body(row)), reference.score(body(row))
            assert answer.status_code == ref.status_code == 200, answer.text
            got.append(answer.json()["fraud_probability"]), expected.append(ref.json()["fraud_probability"])
        assert got == expected and len(got) == 300
        assert (
            worker.client.get("/readyz").json()["transactions"]
            == reference.client.get("/readyz").json()["transactions"]
        )
    finally:
        for s in (worker, reference):
            s.stop()
