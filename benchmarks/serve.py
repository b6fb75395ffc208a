"""Benchmark of `fraudpipe serve`: one-transaction scoring in process, and over HTTP under load.

Needs wrk, the HTTP load generator (Debian: `apt-get install -y wrk`); a benchmark dependency,
not a test one. Uses the pipeline's outputs (models/bundle, data/features/online_state: run
`dvc repro` first) and a fresh journal in a temporary directory (the durable log is on).

    python benchmarks/serve.py                 # everything, about 6 minutes
    python benchmarks/serve.py --seconds 5     # shorter runs
    python benchmarks/serve.py --parts scale   # only the workers x stores table
    python benchmarks/serve.py --parts snapshot   # latency while a snapshot is written
    python benchmarks/serve.py --json F        # also write the figures to F as JSON (benchmarks/run.py)

From code (``benchmarks/run.py``): ``run(seconds=..., parts=...)`` returns the figures as a dict.

It prints:
- in process: p50/p99 of one transaction's online features + model (the fast path), and of the
  whole `Service.score` (+ retry check, journal append, state update);
- over HTTP: the real server (uvicorn, one worker, `fraudpipe.serve.app.run`) in its own process,
  driven by wrk from another on loopback, at fixed request rates (wrk 4 has no rate option: each
  connection waits a random pause, of a fixed mean, between requests; the rate achieved is printed) and
  at saturation: requests/s, p50/p99 latency, errors. In the same run and on the same server set-up
  (same app, middleware and uvicorn settings) it measures two reference endpoints: an empty
  `async def` endpoint (the ceiling) and the common tutorial pattern (a pydantic body parsed by
  FastAPI, the same online features, a one-row pandas DataFrame, `XGBClassifier.predict_proba`);
  then the ratios. On 2 cores wrk competes with the server: compare the endpoints as ratios.

- scale: the real command (`fraudpipe serve`) with 1 worker and the in-process state, then with
  the state in Redis (a throwaway redis-server on a unix socket, AOF on, `appendfsync everysec`,
  seeded once from the state) with 1 and 2 workers behind one port: requests/s and p50/p99 at
  saturation and p99 at a fixed rate, each process's CPU per request, and how many of wrk's
  connections each worker held halfway through the saturation run. In-process with 2 workers is
  refused by the command (each worker would hold its own history), so that row is absent.

- snapshot: the real command (in-process store) at a fixed rate, first alone, then while a
  snapshot is written (POST /v1/admin/snapshot a second into the run): p50/p99/max latency of
  /v1/score in both runs and how long the snapshot took.

Targets: in process p50 <= 0.5 ms; HTTP p99 <= 10 ms at 300 requests/s with no error; at
saturation >= 1,000 requests/s, >= 45 % of the empty endpoint and >= 4x the naive endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import serve_breakdown
from pydantic import BaseModel

if TYPE_CHECKING:  # imported where used: the driver process never loads the service
    from fraudpipe.serve.config import ServeConfig

ROOT = Path(__file__).resolve().parents[1]
MODEL, STATE = ROOT / "models/bundle", ROOT / "data/features/online_state"

#: wrk script: a new transaction per request (unique id per wrk thread and request; ``step`` seconds
#: of data time later each (whole seconds), from just after the state's newest transaction; existing
#: customers and terminals).
LUA = r"""
local threads, counter, base, pause, step = 0, 0, %(base)d, %(pause)f, %(step)f
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) math.randomseed(tid * 7919) end
-- a random pause (mean `pause`) per request, so that the connections do not send in step (bursts)
function delay() if pause > 0 then return pause * 2 * math.random() end return 0 end
request = function()
  counter = counter + 1
  local t = base + math.floor(counter * step) + tid
  local body = string.format('{"transaction_id":"%(prefix)s%%d-%%d","customer_id":%%d,"terminal_id":%%d,'
    .. '"tx_datetime":"%%s","tx_amount":%%.2f}',
    tid, counter, (counter * 7919 + tid * 31) %% %(customers)d, (counter * 104729 + tid * 17) %% %(terminals)d,
    os.date("!%%Y-%%m-%%dT%%H:%%M:%%S", t), (counter * 37 %% 20000) / 100.0)
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""


# --- the server process ---------------------------------------------------------------------


class Transaction(BaseModel):
    """The naive endpoint's body, as a tutorial declares it (FastAPI parses and validates it)."""

    transaction_id: int | str
    customer_id: int | str
    terminal_id: int | str
    tx_datetime: str
    tx_amount: float


def reference_routes(app) -> None:
    """The two reference endpoints, added to the real app (same middleware, same server)."""
    import pandas as pd
    import xgboost
    from fastapi import Response

    from fraudpipe.features.online import history_features
    from fraudpipe.serve.stores.base import epoch_second

    serve_breakdown.timing_routes(app)

    @app.post("/bench/empty")
    async def empty() -> Response:
        return Response(b"{}", media_type="application/json")

    classifier: list = []

    @app.post("/bench/naive")
    def naive(tx: Transaction) -> dict:
        from datetime import datetime

        service = app.state.holder.service
        if not classifier:
            clf = xgboost.XGBClassifier(n_jobs=1)
            clf.load_model(str(MODEL / "model.ubj"))
            classifier.append(clf)
        when = datetime.fromisoformat(tx.tx_datetime)
        t = epoch_second(when)
        history = service.store.get_history(str(tx.customer_id), str(tx.terminal_id), t)
        x = history_features(service.store.config, history, t, tx.tx_amount)
        bundle = service.live.champion.bundle
        x = (x - bundle.mean) / bundle.scale
        frame = pd.DataFrame([dict(zip(service.names, x))])
        p = float(classifier[0].predict_proba(frame)[0, 1])
        return {"transaction_id": tx.transaction_id, "fraud_probability": p, "alert": p >= service.threshold}


def serve(port: int, journal: Path, setup: str) -> None:
    from fraudpipe.serve import server as serve_app

    config = bench_config(journal, port=port, log_level="warning", **SETUPS[setup])
    sys.exit(serve_app.run(config, customize=reference_routes))


# --- the driver -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


#: uvicorn set-ups: its plain install (h11 parser, asyncio loop), and the C parser and loop (uvloop,
#: httptools) that `fraudpipe serve` uses when installed (the default).
SETUPS = {
    "uvloop+httptools": {"http": "httptools", "loop": "uvloop"},
    "asyncio+h11": {"http": "h11", "loop": "asyncio"},
}
#: data time: 20 transactions a second (5,000 req/s for 15 s = about an hour of data) and an hour between
#: the starts of two wrk runs: a run never starts more than a day before the newest transaction seen (too
#: late, --late-days 1) nor more than a day after it (--max-time-jump-seconds); the daily prune (which a
#: real day of traffic brings once a day) falls in the first warm-up, not in the measured runs;
#: ``prune_pause`` measures it on its own.
DATA_STEP, RUN_SPACING = 0.05, 3_600


def first_time() -> int:
    """The data time of the first benchmark transaction: a second after the state's newest."""
    return int(_epoch(json.loads((STATE / "state.json").read_text())["as_of"])) + 1


def wrk(
    port: int,
    path: str,
    prefix: str,
    seconds: int,
    connections: int,
    pause_ms: float,
    base: int,
    work: Path,
    step: float = DATA_STEP,
    spacing: int = RUN_SPACING,
) -> dict:
    base += spacing * len(list(work.glob("*.lua")))
    script = work / f"{prefix}.lua"
    script.write_text(
        LUA
        % {
            "base": base,
            "pause": pause_ms,
            "prefix": prefix,
            "customers": 4981,
            "terminals": 10000,
            "path": path,
            "step": step,
        }
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if set(latency) != {"50", "99"}:
        raise SystemExit(f"wrk gave no latency distribution (server down?):\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "errors": errors,
        "requests": requests,
    }


def at_rate(
    port: int, path: str, prefix: str, rate: float, seconds: int, base: int, work: Path, **data_time: float
) -> dict:
    """wrk paced to about ``rate`` requests/s: connections that each wait between requests; corrected once."""
    connections = max(4, int(rate // 25))
    pause = 1000.0 * connections / (1.02 * rate) - 1.0  # aim a little above: the answers take time too
    result = wrk(port, path, prefix, seconds, connections, pause, base, work, **data_time)
    if result["rps"] < rate:  # the answers took longer than assumed: shorten the pause once
        pause = max(0.0, pause - 1000.0 * connections * (1 / result["rps"] - 1 / rate))
        result = wrk(port, path, prefix + "b", seconds, connections, pause, base, work, **data_time)
    return result


def bench_config(journal_dir: Path, **changes: object) -> ServeConfig:
    """The benchmarked service's configuration: the default model and state, its own journal, the
    benchmark's API-key variable; ``changes``: other options (a port, a server set-up, a shadow)."""
    from fraudpipe.serve.config import ServeConfig

    options = {
        "model": MODEL,
        "state": STATE,
        "journal_dir": journal_dir,
        "host": "127.0.0.1",
        "port": 0,
        "max_batch": 100,
        "max_body_bytes": 1 << 20,
        "max_amount": 1e5,
        "late_days": 1,
        "max_future_seconds": 300,
        "api_key_env": "FRAUDPIPE_BENCH_API_KEY",
    }
    return ServeConfig.parse(options | changes, "serve")


def in_process(n: int = 3000) -> dict[str, np.ndarray]:
    """Per transaction: features + model, then the whole Service.score, on a private journal (each
    call commits its own entry, as calls one at a time would), with the server's garbage collector
    settings. The first transaction (it sets off the daily prune) is left out."""
    from fraudpipe.features.online import history_features
    from fraudpipe.serve.app import YOUNG_GC_THRESHOLD
    from fraudpipe.serve.schema import TransactionIn
    from fraudpipe.serve.service import Service
    from fraudpipe.serve.stores.base import epoch_second

    with tempfile.TemporaryDirectory() as tmp:
        service = Service.open(bench_config(Path(tmp)))
        import gc

        gc.freeze()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        base = _epoch(service.store.state.as_of.isoformat())
        rng = np.random.default_rng(0)
        bodies = [
            TransactionIn(
                transaction_id=f"p{i}",
                customer_id=int(rng.integers(4981)),
                terminal_id=int(rng.integers(10000)),
                tx_datetime=_utc(base + 60 + i),
                tx_amount=round(float(rng.gamma(2, 30)), 2),
            )
            for i in range(n)
        ]
        features, whole, cpu = np.empty(n), np.empty(n), np.empty(n)
        for i, tx in enumerate(bodies):
            when = tx.naive_utc
            t = epoch_second(when)
            start = time.perf_counter_ns()
            history = service.store.get_history(str(tx.customer_id), str(tx.terminal_id), t)
            service.live.champion.score(history_features(service.store.config, history, t, tx.tx_amount))
            middle, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
            service.score(tx)
            cpu[i] = (time.thread_time_ns() - cpu_start) / 1e6
            features[i], whole[i] = (middle - start) / 1e6, (time.perf_counter_ns() - middle) / 1e6
        fast = service.fast_path.on
        service.close()
    return {
        "features + model": features[1:],
        "Service.score (+ journal, state)": whole[1:],
        "Service.score CPU": cpu[1:],
        "fast": fast,
    }


def _epoch(iso: str) -> float:
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def _utc(seconds: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def http_runs(setup: str, rates: list[float], seconds: int) -> tuple[list[tuple[str, str, dict]], dict]:
    """The real server (this set-up) in its own process, driven by wrk: fixed rates, then saturation
    (with the server's CPU per request), then a profiled saturation run of /v1/score (``serve_breakdown``)."""
    import httpx

    work = Path(tempfile.mkdtemp(prefix="fraudpipe-bench-"))
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, __file__, "--server", str(port), "--journal", str(work / "journal"), "--setup", setup]
    proc = subprocess.Popen(command, env=env)
    rows = []
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(port, proc)
        base = first_time()
        endpoints = {"score": "/v1/score", "empty": "/bench/empty", "naive": "/bench/naive"}
        for name, path in endpoints.items():  # warm up (the naive endpoint loads its classifier on first use)
            wrk(port, path, f"warm{name}", 2, 4, 0.0, base, work)
        for rate in rates:
            rows.append(
                (
                    "POST /v1/score",
                    f"{rate:.0f}/s",
                    at_rate(port, "/v1/score", f"r{rate:.0f}", rate, seconds, base, work),
                )
            )
        for name, path in endpoints.items():
            cpu = serve_breakdown.server_cpu(proc.pid)
            result = wrk(port, path, f"s{name}", seconds, 16, 0.0, base, work)
            result["cpu_us"] = 1e6 * (serve_breakdown.server_cpu(proc.pid) - cpu) / result["requests"]
            rows.append((f"POST {path}", "saturation", result))
        commits = serve_breakdown.commits_of(httpx.get(f"{url}/metrics").text)
        httpx.post(f"{url}/bench/timings/start").raise_for_status()
        cpu = serve_breakdown.server_cpu(proc.pid)
        profiled = wrk(port, "/v1/score", "profiled", seconds, 16, 0.0, base, work)
        profiled_cpu = 1e6 * (serve_breakdown.server_cpu(proc.pid) - cpu) / profiled["requests"]
        timings = httpx.get(f"{url}/bench/timings").json()
        metrics = httpx.get(f"{url}/metrics").text
        after = serve_breakdown.commits_of(metrics)
        check_answers(metrics)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    saturated = {e: r for e, ld, r in rows if ld == "saturation"}
    parts = serve_breakdown.breakdown(
        timings,
        profiled["requests"],
        profiled_cpu,
        saturated["POST /v1/score"]["cpu_us"],
        saturated["POST /bench/empty"]["cpu_us"],
    )
    profile = {
        "rps": profiled["rps"],
        "us_per_request": parts,
        "commits": after[0] - commits[0],
        "committed_requests": after[1] - commits[1],
    }
    return rows, profile


def check_answers(metrics: str) -> None:
    """Stop when /v1/score answered anything but 200: the figures would time error answers (a
    benchmark transaction refused, e.g. dated past what the service accepts)."""
    found = re.findall(
        r'fraudpipe_http_requests_total\{[^}]*route="/v1/score"[^}]*status="(\d+)"[^}]*\} (\S+)', metrics
    )
    wrong = {status: int(float(n)) for status, n in found if status != "200"}
    if wrong:
        raise SystemExit(f"/v1/score answered other statuses than 200: {wrong}; the figures are not valid")


# --- scale: workers x stores through the real command ----------------------------------------------


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a unix socket in ``directory`` (AOF on, everysec; no RDB)."""
    import redis

    sock = directory / "redis.sock"
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
        ]
    )
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            redis.Redis(unix_socket_path=str(sock)).ping()
            return proc, f"unix://{sock}?db=0"
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("redis-server did not start")


def wait_workers(port: int, proc: subprocess.Popen, workers: int, timeout: float = 300) -> None:
    """Ready, and (several workers) each of them answering: /readyz on new connections until every pid is seen."""
    import httpx

    wait_ready(port, proc, timeout)
    pids, end = set(), time.monotonic() + timeout
    while len(pids) < workers and time.monotonic() < end:
        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        if answer.status_code == 200:
            pids.add(answer.json().get("pid"))
        time.sleep(0.02)
    if len(pids) < workers:
        raise SystemExit(f"only {len(pids)} of {workers} workers answered")


def quiet_redis(url: str, timeout: float = 300) -> None:
    """Wait for a rewrite of the append-only file (which seeding's writes set off) to end: it forks and
    writes the whole state, which on 2 cores would be measured as the service's latency."""
    import redis

    client, end = redis.Redis.from_url(url), time.monotonic() + timeout
    while time.monotonic() < end:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            break
        time.sleep(0.5)
    client.close()


SCALE = (("in-process", 1), ("Redis", 1), ("Redis", 2))


def prune_pause(url: str) -> dict:
    """The longest pause of adding one transaction while a day of data passes (it includes the daily
    prune: forgetting the day that left the retention window), in process and in Redis (the state the
    scale runs left under the prefix ``bench``), and how many transactions that prune forgot."""

    from fraudpipe.serve.stores.base import Scored, Transaction, epoch_second
    from fraudpipe.serve.stores.memory import InProcessStore
    from fraudpipe.serve.stores.redis import RedisStore

    out = {}
    for name, store in (
        ("in-process", InProcessStore.load(STATE, 1)),
        ("Redis", RedisStore.open(url, "bench", STATE, 1)),
    ):
        now = store.earliest_exact() + 86_400  # the newest transaction seen (late_days 1)
        before, pauses = store.size()["transactions"], []
        for i in range(1, 26):  # one an hour: a day boundary, so one prune
            when = _utc(now + 3_600 * i).replace(tzinfo=None)
            tx = Transaction(f"prune-{name}-{i}", str(i), str(i), when, epoch_second(when), 10.0)
            started = time.perf_counter()
            store.add_transaction(Scored(tx, 0.1, False, 0.5, "bench"))
            pauses.append(time.perf_counter() - started)
        out[name] = {
            "max_ms": 1e3 * max(pauses),
            "median_ms": 1e3 * float(np.median(pauses)),
            "forgotten": before + 25 - store.size()["transactions"],
        }
    return out


def scale_runs(seconds: int, rate: float = 300.0) -> tuple[list[dict], dict]:
    """`fraudpipe serve` per configuration of SCALE, driven by wrk: a fixed rate, then saturation; then
    ``prune_pause``."""
    import httpx

    if not shutil.which("redis-server"):
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    work = Path(tempfile.mkdtemp(prefix="fraudpipe-scale-", dir="/tmp"))  # short: a unix socket path is limited
    redis_proc, url = start_redis(work)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    base = first_time()
    rows = []
    try:
        for store, workers in SCALE:
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "fraudpipe.cli",
                "serve",
                "--model",
                str(MODEL),
                "--state",
                str(STATE),
                "--journal-dir",
                str(work / f"journal-{store}-{workers}"),
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--workers",
                str(workers),
            ]
            if store == "Redis":
                command += [
                    "--store",
                    url,
                    "--redis-prefix",
                    "bench",
                ]  # the second Redis run attaches to the first's state
            started = time.perf_counter()
            proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            try:
                wait_workers(port, proc, workers)
                ready = time.perf_counter() - started
                if store == "Redis":
                    quiet_redis(url)
                wrk(port, "/v1/score", f"warm-{store}-{workers}", 2, 4, 0.0, base, work)  # the first prune
                fixed = at_rate(port, "/v1/score", f"rate-{store}-{workers}", rate, seconds, base, work)
                before = serve_breakdown.process_cpu(proc.pid, redis_proc.pid)
                timer, counted = serve_breakdown.count_connections_in(seconds / 2, proc.pid, port)
                saturated = wrk(port, "/v1/score", f"sat-{store}-{workers}", seconds, 16, 0.0, base, work)
                timer.join()
                cpu = serve_breakdown.cpu_per_request(before, proc.pid, redis_proc.pid, saturated["requests"])
                check_answers(httpx.get(f"http://127.0.0.1:{port}/metrics").text)  # one worker's figures
            finally:
                proc.send_signal(signal.SIGTERM)
                out = proc.communicate(timeout=60)[0]
            rows.append(
                {
                    "store": store,
                    "workers": workers,
                    "ready_s": round(ready, 1),
                    "rate": rate,
                    "rate_rps": fixed["rps"],
                    "rate_p50_ms": fixed["p50"],
                    "rate_p99_ms": fixed["p99"],
                    "saturation_rps": saturated["rps"],
                    "saturation_p50_ms": saturated["p50"],
                    "saturation_p99_ms": saturated["p99"],
                    "errors": fixed["errors"] + saturated["errors"],
                    **cpu,
                    "connections": counted[0] if counted else [],
                    "seeded": "seeded the shared state" in out,
                }
            )
        pauses = prune_pause(url)
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return rows, pauses


def snapshot_pause(seconds: int, rate: float = 300.0, delay: float = 1.0) -> dict:
    """/v1/score at ``rate`` requests/s on `fraudpipe serve` (in-process store): a run alone, then a run
    during which a snapshot is written (asked for ``delay`` seconds in); wrk's figures for both, and
    the snapshot's answer and wall time."""
    import threading

    import httpx

    work = Path(tempfile.mkdtemp(prefix="fraudpipe-snap-", dir="/tmp"))
    port = free_port()
    command = [sys.executable, "-m", "fraudpipe.cli", "serve", "--model", str(MODEL), "--state", str(STATE)]
    command += ["--journal-dir", str(work / "journal"), "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(command, env=dict(os.environ, OMP_NUM_THREADS="1"))
    base = first_time()
    connections = max(4, int(rate // 25))
    pause = 1000.0 * connections / (1.02 * rate) - 1.0
    try:
        wait_ready(port, proc)
        wrk(port, "/v1/score", "warm", 2, 4, 0.0, base, work)
        alone = wrk(port, "/v1/score", "alone", seconds, connections, pause, base, work)
        during: list[dict] = []
        load = threading.Thread(
            target=lambda: during.append(wrk(port, "/v1/score", "during", seconds, connections, pause, base, work))
        )
        load.start()
        time.sleep(delay)
        started = time.perf_counter()
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/admin/snapshot", timeout=600)
        wall = time.perf_counter() - started
        load.join()
        answer.raise_for_status()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)
    snap = answer.json()
    return {"rate": rate, "alone": alone, "during": during[0], "snapshot_wall_s": round(wall, 2), "snapshot": snap}


def print_snapshot(r: dict) -> None:
    print(f"\nsnapshot: /v1/score at {r['rate']:.0f} req/s, alone and while a snapshot is written (in-process store):")
    print(f"  {'run':<16} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6}")
    for name in ("alone", "during"):
        x = r[name]
        print(f"  {name:<16} {x['rps']:>7.0f} {x['p50']:>7.2f} {x['p99']:>8.2f} {x['errors']:>6}")
    print(
        f"  the snapshot: {r['snapshot'].get('transactions', 0):,} transactions, answered in {r['snapshot_wall_s']} s"
    )


def print_scale(rows: list[dict], pauses: dict) -> None:
    print(
        "\nscale: `fraudpipe serve` (uvloop+httptools), wrk 1 thread, 16 connections at saturation; "
        f"{os.cpu_count()} cores shared "
        "by the workers, Redis and wrk:"
    )
    print(
        f"  {'store':<11} {'workers':>7} {'ready s':>7} {'rate':>6} {'p99 ms':>7}   "
        f"{'saturation req/s':>16} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
    )
    for r in rows:
        print(
            f"  {r['store']:<11} {r['workers']:>7} {r['ready_s']:>7.1f} {r['rate_rps']:>6.0f} "
            f"{r['rate_p99_ms']:>7.2f}   {r['saturation_rps']:>16.0f} {r['saturation_p50_ms']:>7.2f} "
            f"{r['saturation_p99_ms']:>7.2f} {r['errors']:>6}"
        )
    print("  in-process with 2 workers: refused by `fraudpipe serve` (--workers 2 needs --store redis://...)")
    serve_breakdown.print_scale_cpu(rows)
    for name, p in pauses.items():
        print(
            f"  the daily prune, {name}: the longest add of a day {p['max_ms']:.0f} ms (forgetting {p['forgotten']:,} "
            f"transactions; median add {p['median_ms']:.2f} ms)"
        )


def run(
    seconds: int = 15,
    rates: tuple[float, ...] = (100, 300, 600),
    setups: tuple[str, ...] = tuple(SETUPS),
    parts: tuple[str, ...] = ("in_process", "http", "scale"),  # or "snapshot"
    echo: bool = False,
) -> dict:
    """Every measurement of this benchmark as a dict (for ``benchmarks/run.py``): ``in_process``
    (p50/p99 ms of the fast path and of ``Service.score``), ``http`` (per uvicorn set-up, the rows of
    the fixed-rate and saturation runs), ``scale`` (per store x workers: req/s, p50/p99 ms) and
    ``prune_pause`` (per store: the daily prune's pause, ms). Wall clock:
    keep the result out of the files `dvc metrics diff` compares. ``echo`` prints the tables too."""
    if ({"http", "scale", "snapshot"} & set(parts)) and not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    for path in (MODEL, STATE):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `dvc repro` first")
    out: dict = {"cores": os.cpu_count(), "seconds_per_run": seconds}
    if "in_process" in parts:
        timings = in_process()
        out["in_process"] = {
            "fast_path": bool(timings.pop("fast")),
            "service_score_cpu_mean_ms": float(np.mean(timings.pop("Service.score CPU"))),
        }
        for name, key in (
            ("features + model", "features_model"),
            ("Service.score (+ journal, state)", "service_score"),
        ):
            out["in_process"] |= {
                f"{key}_p50_ms": float(np.percentile(timings[name], 50)),
                f"{key}_p99_ms": float(np.percentile(timings[name], 99)),
                f"{key}_mean_ms": float(np.mean(timings[name])),
            }
        if echo:
            print("in process, one transaction at a time (3,000 new transactions on the default state):")
            print(
                "  fast path (float32 row -> XGBoost's C entry point): "
                f"{'on' if out['in_process']['fast_path'] else 'OFF (fallback)'}"
            )
            for name, key in (
                ("features + model", "features_model"),
                ("Service.score (+ journal, state)", "service_score"),
            ):
                figures = out["in_process"]
                print(
                    f"  {name:<36} p50 {figures[key + '_p50_ms']:.3f} ms   "
                    f"p99 {figures[key + '_p99_ms']:.3f} ms   mean {figures[key + '_mean_ms']:.3f} ms"
                )
            cpu_mean = out["in_process"]["service_score_cpu_mean_ms"]
            print(f"  {'Service.score, CPU time (thread)':<36} mean {cpu_mean:.3f} ms")
    if "http" in parts:
        runs = {setup: http_runs(setup, list(rates), seconds) for setup in setups}
        results = {setup: rows for setup, (rows, _) in runs.items()}
        out["http"] = {
            setup: [{"endpoint": e, "load": ld, **r} for e, ld, r in rows] for setup, rows in results.items()
        }
        out["breakdown"] = {setup: profile for setup, (_, profile) in runs.items()}
        if echo:
            print_http(results, out.get("in_process"), out["breakdown"])
    if "scale" in parts:
        out["scale"], out["prune_pause"] = scale_runs(seconds)
        if echo:
            print_scale(out["scale"], out["prune_pause"])
    if "snapshot" in parts:
        out["snapshot"] = snapshot_pause(max(seconds, 12))
        if echo:
            print_snapshot(out["snapshot"])
    return out


def print_http(results: dict, in_process: dict | None = None, profiles: dict | None = None) -> None:
    print("\nover HTTP on loopback (wrk 1 thread, separate process; server: uvicorn, 1 worker, journal on):")
    print(
        f"  {'server set-up':<17} {'endpoint':<19} {'load':>10} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
    )
    for setup, rows in results.items():
        for endpoint, load, r in rows:
            print(
                f"  {setup:<17} {endpoint:<19} {load:>10} {r['rps']:>7.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
                f"{r['errors']:>6}"
            )
    print()
    for setup, rows in results.items():
        saturated = {endpoint: r["rps"] for endpoint, load, r in rows if load == "saturation"}
        ours, empty, naive = saturated["POST /v1/score"], saturated["POST /bench/empty"], saturated["POST /bench/naive"]
        print(
            f"  {setup:<17} /v1/score at saturation: {ours:,.0f} req/s = {ours / empty:.0%} of the empty endpoint, "
            f"{ours / naive:.1f}x the naive one"
        )
        serve_breakdown.print_ratios(
            setup, {endpoint: r for endpoint, load, r in rows if load == "saturation"}, in_process
        )
        if profiles and setup in profiles:
            p = profiles[setup]
            commits = (p["commits"], p["committed_requests"])
            serve_breakdown.print_breakdown(setup, p["us_per_request"], p["rps"], commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run")
    parser.add_argument("--rates", default="100,300,600", help="fixed request rates, comma-separated")
    parser.add_argument(
        "--setups", default=",".join(SETUPS), help=f"uvicorn set-ups to measure, of {', '.join(SETUPS)}"
    )
    parser.add_argument(
        "--parts", default="in_process,http,scale", help="what to measure, of in_process, http, scale, snapshot"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument("--server", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", default="uvloop+httptools", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        serve(args.server, args.journal, args.setup)
        return
    figures = run(
        args.seconds,
        tuple(float(r) for r in args.rates.split(",") if r),
        tuple(args.setups.split(",")),
        tuple(args.parts.split(",")),
        echo=True,
    )
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
