"""Benchmark of the models a running `fraudpipe serve` holds: the challenger in the shadow, and swaps.

Needs wrk (Debian: `apt-get install -y wrk`) and the pipeline's outputs (models/bundle,
data/features/online_state: `dvc repro` first). The challenger is a copy of the default bundle with
another threshold (so another version): a retrain with the same settings costs the same per row.
The challenger "with its own features" is such a copy that records another features config (the
state's with ``delay_days`` one less: the same feature names and trees), so that the service keeps
a second online state for it (``serve.sides``): it costs a request what a retrain with its own
features config would (a lookup, the features of that state, one more row prediction, the
transaction and labels added to that state too).

    python benchmarks/serve_models.py                      # both parts, about 2 minutes
    python benchmarks/serve_models.py --parts shadow       # the shadow's cost only
    python benchmarks/serve_models.py --parts swap --swaps 10

It prints:
- shadow: in process, ``Service.score`` p50/p99 without a challenger, with one on the same features
  and with one on its own features (the three services alternate on the same transactions, so the
  machine's noise falls on all); over HTTP, the real command in the same three set-ups, each driven
  by wrk at a fixed rate: req/s, p50/p99, errors;
- swap: the real command at a fixed rate, alone, then while ``POST /v1/admin/model`` swaps the
  champion back and forth ``--swaps`` times: the requests that failed (wrk's non-2xx and socket
  errors: the figure that must be 0), p50/p99 of both runs, and how long the swaps took to answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from serve import MODEL, STATE, _epoch, _utc, bench_config, free_port, wait_ready, wrk

from fraudpipe.model.bundle import write_checksums

#: data time between two wrk runs' first transactions: more than a run covers (2 s of data a request),
#: less than the service's --max-time-jump-seconds (a day)
SPACING = 6 * 3600


def challenger(work: Path) -> Path:
    """The default bundle with another threshold: another version, the same cost per row."""
    target = work / "challenger"
    shutil.copytree(MODEL, target)
    meta = json.loads((target / "bundle.json").read_text())
    meta["threshold"] = round(meta["threshold"] * 0.9, 6)
    (target / "bundle.json").write_text(json.dumps(meta))
    write_checksums(target)
    return target


def own_features(work: Path) -> Path:
    """The default bundle recording another features config than the state's (``delay_days`` one less)."""
    target = challenger(work)
    meta = json.loads((target / "bundle.json").read_text())
    config = json.loads((STATE / "state.json").read_text())["features"]
    meta["features_config"] = config | {"set": "own", "delay_days": config["delay_days"] - 1}
    (target / "bundle.json").write_text(json.dumps(meta))
    write_checksums(target)
    return target


SETUPS = ("without shadow", "same features", "own features")


def _shadow(work: Path, name: str) -> Path | None:
    """The challenger of a set-up (``SETUPS``)."""
    make = {"same features": challenger, "own features": own_features}.get(name)
    return None if make is None else make(work / f"{name.replace(' ', '-')}-model")


def in_process(work: Path, n: int = 3000) -> dict:
    """``Service.score`` without a shadow, with one on the same features, with one on its own, in turn (ms)."""
    from fraudpipe.serve.schema import TransactionIn
    from fraudpipe.serve.service import Service

    services = [
        Service.open(bench_config(work / name.replace(" ", "-"), shadow=_shadow(work, name))) for name in SETUPS
    ]
    base = _epoch(services[0].store.state.as_of.isoformat())
    rng = np.random.default_rng(0)
    times = np.empty((len(services), n))
    for i in range(n):
        tx = TransactionIn(
            transaction_id=f"p{i}",
            customer_id=int(rng.integers(4981)),
            terminal_id=int(rng.integers(10000)),
            tx_datetime=_utc(base + 60 + i),
            tx_amount=round(float(rng.gamma(2, 30)), 2),
        )
        for k in np.roll(np.arange(len(services)), i):  # which goes first rotates
            start = time.perf_counter_ns()
            services[k].score(tx)
            times[k, i] = (time.perf_counter_ns() - start) / 1e6
    for s in services:
        s.close()
    return {
        name: {"p50_ms": float(np.percentile(times[k], 50)), "p99_ms": float(np.percentile(times[k], 99))}
        for k, name in enumerate(SETUPS)
    }


def _start(work: Path, name: str, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "fraudpipe.cli", "serve", "--model", str(MODEL), "--state", str(STATE)]
    command += ["--journal-dir", str(work / name), "--port", str(port), "--log-level", "warning", *args]
    proc = subprocess.Popen(command, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, port


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def _paced(rate: float) -> tuple[int, float]:
    connections = max(4, int(rate // 25))
    return connections, 1000.0 * connections / (1.02 * rate) - 1.0


def over_http(work: Path, seconds: int, rate: float) -> dict:
    """The real command in each of ``SETUPS``, at ``rate`` requests/s."""
    base = int(_epoch(json.loads((STATE / "state.json").read_text())["as_of"])) + 60
    connections, pause = _paced(rate)
    out = {}
    for name in SETUPS:
        shadow = _shadow(work, name)
        slug = name.replace(" ", "-")
        proc, port = _start(work, slug, *(() if shadow is None else ("--shadow", str(shadow))))
        scripts = work / f"{slug}-wrk"  # a fresh server each: its runs' data time counts from its state
        scripts.mkdir()
        try:
            wrk(port, "/v1/score", "warm", 2, 4, 0.0, base, scripts, spacing=SPACING)
            out[name] = wrk(port, "/v1/score", "run", seconds, connections, pause, base, scripts, spacing=SPACING)
        finally:
            _stop(proc)
    return out


def swap_runs(work: Path, seconds: int, rate: float, swaps: int) -> dict:
    """At ``rate`` requests/s: a run alone, then one during which the champion is swapped ``swaps`` times."""
    import httpx

    base = int(_epoch(json.loads((STATE / "state.json").read_text())["as_of"])) + 60
    connections, pause = _paced(rate)
    other = challenger(work / "c")
    proc, port = _start(work, "swap")
    walls: list[float] = []
    try:
        wrk(port, "/v1/score", "warm", 2, 4, 0.0, base, work, spacing=SPACING)
        alone = wrk(port, "/v1/score", "alone", seconds, connections, pause, base, work, spacing=SPACING)
        during: list[dict] = []
        load = threading.Thread(
            target=lambda: during.append(
                wrk(port, "/v1/score", "during", seconds, connections, pause, base, work, spacing=SPACING)
            )
        )
        load.start()
        gap = seconds / (swaps + 1)
        for i in range(swaps):
            time.sleep(gap)
            target = other if i % 2 == 0 else MODEL
            start = time.perf_counter()
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/admin/model", json={"model": str(target)}, timeout=60)
            walls.append(time.perf_counter() - start)
            answer.raise_for_status()
        load.join()
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
    finally:
        _stop(proc)
    return {
        "rate": rate,
        "swaps": swaps,
        "generation": ready["model_generation"],
        "alone": alone,
        "during": during[0],
        "swap_answer_ms": {"median": 1e3 * float(np.median(walls)), "max": 1e3 * max(walls)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="shadow,swap", help="shadow, swap")
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run")
    parser.add_argument("--rate", type=float, default=300.0, help="requests/s of the paced runs")
    parser.add_argument("--swaps", type=int, default=8, help="swaps during the swap run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    for path in (MODEL, STATE):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `dvc repro` first")
    work = Path(tempfile.mkdtemp(prefix="fraudpipe-models-", dir="/tmp"))
    figures: dict = {}
    try:
        if "shadow" in args.parts:
            figures["shadow_in_process"] = in_process(work / "inproc")
            figures["shadow_http"] = over_http(work / "http", args.seconds, args.rate)
            print("shadow: Service.score in process (3,000 new transactions, the three services in turn):")
            for name, r in figures["shadow_in_process"].items():
                print(f"  {name:<15} p50 {r['p50_ms']:.3f} ms   p99 {r['p99_ms']:.3f} ms")
            print(f"shadow: `fraudpipe serve` over HTTP, wrk at {args.rate:.0f} req/s for {args.seconds} s:")
            print(f"  {'':<15} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
            for name, r in figures["shadow_http"].items():
                print(f"  {name:<15} {r['rps']:>7.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['errors']:>6}")
        if "swap" in args.parts:
            r = figures["swap"] = swap_runs(work / "swap", args.seconds, args.rate, args.swaps)
            print(
                f"swap: `fraudpipe serve` at {r['rate']:.0f} req/s for {args.seconds} s, alone, then with {r['swaps']} "
                f"swaps of the champion (POST /v1/admin/model, back and forth; generation {r['generation']}):"
            )
            print(f"  {'run':<15} {'requests':>8} {'failed':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
            for name in ("alone", "during"):
                x = r[name]
                print(
                    f"  {name:<15} {x['requests']:>8} {x['errors']:>6} {x['rps']:>7.0f} {x['p50']:>7.2f} "
                    f"{x['p99']:>7.2f}"
                )
            w = r["swap_answer_ms"]
            print(f"  a swap answered in {w['median']:.0f} ms (median), {w['max']:.0f} ms at most")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
