"""Benchmark of `fraudpipe serve`: one-transaction scoring in process, and over HTTP under load.

Needs wrk, the HTTP load generator (Debian: `apt-get install -y wrk`); a benchmark dependency,
not a test one. Uses the pipeline's outputs (models/bundle, data/features/online_state: run
`dvc repro` first) and a fresh journal in a temporary directory (the durable log is on).

    python benchmarks/serve.py                 # everything, about 3 minutes
    python benchmarks/serve.py --seconds 5     # shorter runs
    python benchmarks/serve.py --json F        # also write the figures to F as JSON (benchmarks/run.py)

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

import numpy as np
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
MODEL, STATE = ROOT / "models/bundle", ROOT / "data/features/online_state"

#: wrk script: a new transaction per request (unique id per wrk thread and request; one second
#: later each, from the day after the state; existing customers and terminals).
LUA = r"""
local threads, counter, base, pause = 0, 0, %(base)d, %(pause)f
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) math.randomseed(tid * 7919) end
-- a random pause (mean `pause`) per request, so that the connections do not send in step (bursts)
function delay() if pause > 0 then return pause * 2 * math.random() end return 0 end
request = function()
  counter = counter + 1
  local t = base + counter * 2 + tid
  local body = string.format('{"transaction_id":"%(prefix)s%%d-%%d","customer_id":%%d,"terminal_id":%%d,"tx_datetime":"%%s","tx_amount":%%.2f}',
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



def reference_routes(app) -> None:  # noqa: ANN001
    """The two reference endpoints, added to the real app (same middleware, same server)."""
    import pandas as pd
    import xgboost
    from fastapi import Response

    from fraudpipe.online import history_features
    from fraudpipe.serve.store import epoch_second

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
        x = (x - service.bundle.mean) / service.bundle.scale
        frame = pd.DataFrame([dict(zip(service.names, x))])
        p = float(classifier[0].predict_proba(frame)[0, 1])
        return {"transaction_id": tx.transaction_id, "fraud_probability": p, "alert": p >= service.threshold}


def serve(port: int, journal: Path, setup: str) -> None:
    from fraudpipe.serve import app as serve_app
    from fraudpipe.serve.config import ServeConfig

    config = ServeConfig.parse(dict(model=MODEL, state=STATE, journal_dir=journal, host="127.0.0.1", port=port, max_batch=100,
                                    max_body_bytes=1 << 20, max_amount=100_000.0, late_days=1, max_future_seconds=300,
                                    api_key_env="FRAUDPIPE_BENCH_API_KEY", log_level="warning", **SETUPS[setup]), "serve")  # fmt: skip
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
SETUPS = {"uvloop+httptools": {"http": "httptools", "loop": "uvloop"}, "asyncio+h11": {"http": "h11", "loop": "asyncio"}}
RUN_SPACING = 3 * 86_400  # each wrk run starts 3 days of data after the previous one: never "too late"


def wrk(port: int, path: str, prefix: str, seconds: int, connections: int, pause_ms: float, base: int, work: Path) -> dict:
    base += RUN_SPACING * len(list(work.glob("*.lua")))
    script = work / f"{prefix}.lua"
    script.write_text(LUA % dict(base=base, pause=pause_ms, prefix=prefix, customers=4981, terminals=10000, path=path))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": _ms(latency["50"]),
            "p99": _ms(latency["99"]), "errors": errors, "requests": requests}  # fmt: skip


def at_rate(port: int, path: str, prefix: str, rate: float, seconds: int, base: int, work: Path) -> dict:
    """wrk paced to about ``rate`` requests/s: connections that each wait between requests; corrected once."""
    connections = max(4, int(rate // 25))
    pause = 1000.0 * connections / (1.02 * rate) - 1.0  # aim a little above: the answers take time too
    result = wrk(port, path, prefix, seconds, connections, pause, base, work)
    if result["rps"] < rate:  # the answers took longer than assumed: shorten the pause once
        pause = max(0.0, pause - 1000.0 * connections * (1 / result["rps"] - 1 / rate))
        result = wrk(port, path, prefix + "b", seconds, connections, pause, base, work)
    return result


def in_process(n: int = 3000) -> dict[str, np.ndarray]:
    """Per transaction: features + model, then the whole Service.score, on a private journal."""
    from fraudpipe.online import history_features
    from fraudpipe.serve.config import ServeConfig
    from fraudpipe.serve.schema import TransactionIn
    from fraudpipe.serve.service import Service
    from fraudpipe.serve.store import epoch_second

    with tempfile.TemporaryDirectory() as tmp:
        config = ServeConfig.parse(dict(model=MODEL, state=STATE, journal_dir=Path(tmp), host="127.0.0.1", port=0, max_batch=100,
                                        max_body_bytes=1 << 20, max_amount=1e5, late_days=1, max_future_seconds=300,
                                        api_key_env="FRAUDPIPE_BENCH_API_KEY"), "serve")  # fmt: skip
        service = Service.open(config)
        import gc

        gc.freeze()
        base = _epoch(service.store.state.as_of.isoformat())
        rng = np.random.default_rng(0)
        bodies = [TransactionIn(transaction_id=f"p{i}", customer_id=int(rng.integers(4981)), terminal_id=int(rng.integers(10000)),
                                tx_datetime=_utc(base + 60 + i), tx_amount=round(float(rng.gamma(2, 30)), 2)) for i in range(n)]  # fmt: skip
        features, whole = np.empty(n), np.empty(n)
        for i, tx in enumerate(bodies):
            when = tx.naive_utc
            t = epoch_second(when)
            start = time.perf_counter_ns()
            x = history_features(service.store.config, service.store.get_history(str(tx.customer_id), str(tx.terminal_id), t),
                                 t, tx.tx_amount)
            service.predict(x)
            middle = time.perf_counter_ns()
            service.score(tx)
            features[i], whole[i] = (middle - start) / 1e6, (time.perf_counter_ns() - middle) / 1e6
        fast = service.predict.fast
        service.close()
    return {"features + model": features, "Service.score (+ journal, state)": whole, "fast": fast}


def _epoch(iso: str) -> float:
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def _utc(seconds: float):  # noqa: ANN202
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def http_runs(setup: str, rates: list[float], seconds: int) -> list[tuple[str, str, dict]]:
    """The real server (this set-up) in its own process, driven by wrk: fixed rates, then saturation."""
    import httpx

    work = Path(tempfile.mkdtemp(prefix="fraudpipe-bench-"))
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, __file__, "--server", str(port), "--journal", str(work / "journal"), "--setup", setup]
    proc = subprocess.Popen(command, env=env)
    rows = []
    try:
        wait_ready(port, proc)
        as_of = json.loads((STATE / "state.json").read_text())["as_of"]
        base = int(_epoch(as_of)) + 86_400  # a day after the state's newest transaction
        endpoints = {"score": "/v1/score", "empty": "/bench/empty", "naive": "/bench/naive"}
        for name, path in endpoints.items():  # warm up (the naive endpoint loads its classifier on first use)
            wrk(port, path, f"warm{name}", 2, 4, 0.0, base, work)
        for rate in rates:
            rows.append(("POST /v1/score", f"{rate:.0f}/s", at_rate(port, "/v1/score", f"r{rate:.0f}", rate, seconds, base, work)))
        for name, path in endpoints.items():
            rows.append((f"POST {path}", "saturation", wrk(port, path, f"s{name}", seconds, 16, 0.0, base, work)))
        errors = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'status="500"' not in errors, "the server answered 500"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run")
    parser.add_argument("--rates", default="100,300,600", help="fixed request rates, comma-separated")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"uvicorn set-ups to measure, of {', '.join(SETUPS)}")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument("--server", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", default="uvloop+httptools", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        serve(args.server, args.journal, args.setup)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    for path in (MODEL, STATE):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `dvc repro` first")

    print("in process, one transaction at a time (3,000 new transactions on the default state):")
    timings = in_process()
    fast = bool(timings.pop("fast"))
    print(f"  fast path (float32 row -> XGBoost's C entry point): {'on' if fast else 'OFF (fallback)'}")
    for name, ms in timings.items():
        print(f"  {name:<36} p50 {np.percentile(ms, 50):.3f} ms   p99 {np.percentile(ms, 99):.3f} ms")
    figures: dict = {"fast_path": fast, "in_process": {name: {"p50_ms": round(float(np.percentile(ms, 50)), 4),
                                                              "p99_ms": round(float(np.percentile(ms, 99)), 4)} for name, ms in timings.items()}}  # fmt: skip

    rates = [float(r) for r in args.rates.split(",") if r]
    results = {setup: http_runs(setup, rates, args.seconds) for setup in args.setups.split(",")}
    print("\nover HTTP on loopback (wrk 1 thread, separate process; server: uvicorn, 1 worker, journal on):")
    print(f"  {'server set-up':<17} {'endpoint':<19} {'load':>10} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for setup, rows in results.items():
        for endpoint, load, r in rows:
            print(f"  {setup:<17} {endpoint:<19} {load:>10} {r['rps']:>7.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['errors']:>6}")
    print()
    for setup, rows in results.items():
        saturated = {endpoint: r["rps"] for endpoint, load, r in rows if load == "saturation"}
        ours, empty, naive = saturated["POST /v1/score"], saturated["POST /bench/empty"], saturated["POST /bench/naive"]
        print(f"  {setup:<17} /v1/score at saturation: {ours:,.0f} req/s = {ours / empty:.0%} of the empty endpoint, "
              f"{ours / naive:.1f}x the naive one")  # fmt: skip
    figures["http"] = {setup: [{"endpoint": e, "load": ld, **r} for e, ld, r in rows] for setup, rows in results.items()}
    print(json.dumps(figures["http"]))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
