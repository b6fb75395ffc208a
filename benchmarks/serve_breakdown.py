"""Where a `POST /v1/score` request's time goes, for ``benchmarks/serve.py`` (its ``http`` part).

Two kinds of figures, both from the real server under wrk:

- the server process's CPU time per request at saturation (``/proc/<pid>/stat``, user + system,
  over a run, divided by the requests answered): unlike requests/s, it hardly depends on how much
  of a core the server got on a shared machine;
- a profiled saturation run: timers (thread CPU time) put around the steps of a score request in
  the server (``/bench/timings/start``, taken off by ``GET /bench/timings``), summed per step. The
  timers cost about a microsecond each; the run's own requests/s are not reported.

The ratio the issue sets (throughput at saturation against 1 / (empty endpoint + in-process
``Service.score``)) is computed from requests/s (wall clock, as the issue measures it) and again
from server CPU per request.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The steps timed in the profiled run: (name, what it holds); indented names are inside the one above.
STEPS = (
    ("parse", "body: validation (pydantic, once) and the duplicate-key scan"),
    ("Service.score", "Service.score: everything below, plus ids, admission checks, the answer"),
    ("  prepare", "state reads: history, retry, clock, caps"),
    ("  features", "the online features from the history (``history_features``)"),
    ("  model", "XGBoost's one-row prediction (the champion's; the shadow's too when one runs)"),
    ("  journal append", "the journal row built and kept for the commit"),
    ("  state update", "the transaction added to the in-process state"),
    ("commit", "the group commit: the rows inserted (executemany) and committed, once per turn of the loop"),
    ("response", "the JSON answer (pydantic_core.to_json) and its Response"),
)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used; 0.0 where there is no /proc."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(server: int, redis: int) -> dict[str, float]:
    """CPU seconds so far of the server (its process and its worker processes), of redis-server, and
    of this process's children already waited for (wrk, once a run of it has ended)."""
    import resource

    import psutil

    root = psutil.Process(server)
    workers = sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    redis_cpu = sum(psutil.Process(redis).cpu_times()[:2])
    return {"server": workers, "redis": redis_cpu, "wrk": children.ru_utime + children.ru_stime}


def connections_per_worker(server: int, port: int) -> list[int]:
    """The established connections to ``port`` each process of the server holds (several workers: its
    worker processes; one: the server itself), most first: how the kernel spread the load generator's."""
    import psutil

    root = psutil.Process(server)
    counts = []
    for process in [root, *root.children(recursive=True)]:
        try:
            held = process.net_connections(kind="tcp")
        except psutil.Error:  # a helper process that ended meanwhile
            continue
        n = sum(1 for c in held if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
        if n:
            counts.append(n)
    return sorted(counts, reverse=True)


def count_connections_in(delay: float, server: int, port: int) -> tuple[threading.Timer, list[list[int]]]:
    """A started timer that puts ``connections_per_worker`` into the list returned, ``delay`` seconds from now."""
    counted: list[list[int]] = []
    timer = threading.Timer(delay, lambda: counted.append(connections_per_worker(server, port)))
    timer.start()
    return timer, counted


def cpu_per_request(before: dict[str, float], server: int, redis: int, requests: int) -> dict[str, float]:
    """µs of CPU per request of the server's processes, redis-server and wrk since ``before``."""
    after = process_cpu(server, redis)
    return {f"cpu_us_{k}": 1e6 * (after[k] - before[k]) / max(requests, 1) for k in before}


def print_scale_cpu(rows: list[dict]) -> None:
    """Each process's CPU per request at saturation, against the wall time per request: a worker busy
    less than the whole time waits (for Redis: the client is synchronous, so its event loop waits with
    it); two workers share the cores with redis-server and wrk, which bounds them by all three."""
    print("  per request at saturation (µs): wall time, then CPU of the workers, redis-server and wrk")
    for r in rows:
        if "cpu_us_server" not in r:
            continue
        server, redis, load = r["cpu_us_server"], r["cpu_us_redis"], r["cpu_us_wrk"]
        wall = 1e6 / r["saturation_rps"] * r["workers"]  # per request and worker
        bound = 1e6 / server if r["workers"] == 1 else 2e6 / (server + redis + load)
        print(
            f"  {r['store']:<11} {r['workers']:>7}   wall {wall:6.0f} a worker   workers {server:6.0f}   "
            f"redis-server {redis:5.0f}   wrk {load:4.0f}   -> CPU bound {bound:,.0f} req/s "
            f"({'its own CPU' if r['workers'] == 1 else 'all three on 2 cores'}), measured {r['saturation_rps']:,.0f}"
        )
    print(
        "  wrk's connections per worker during the saturation run, and CPU µs per request of a worker + redis-server:"
    )
    for r in rows:
        if "connections" in r:
            print(
                f"  {r['store']:<11} {r['workers']:>7}   {' + '.join(map(str, r['connections'])):<9} "
                f"{r['cpu_us_server'] + r['cpu_us_redis']:6.0f} µs"
            )
    one = next((r for r in rows if r["store"] == "Redis" and r["workers"] == 1), None)
    two = next((r for r in rows if r["store"] == "Redis" and r["workers"] == 2), None)
    if one and two:
        print(f"  Redis, 2 workers / 1 worker: {two['saturation_rps'] / one['saturation_rps']:.2f}x")


def _timed(totals: dict[str, list[int]], name: str, function: Callable) -> Callable:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            total = totals[name]
            total[0] += time.thread_time_ns() - start
            total[1] += 1

    return timed


def timing_routes(app: Any) -> None:
    """``POST /bench/timings/start`` puts the timers on the loaded service; ``GET /bench/timings``
    takes them off and answers {step: [nanoseconds, calls]}."""
    from fastapi import Response
    from pydantic_core import to_json

    from fraudpipe.serve import routes
    from fraudpipe.serve import service as service_module

    totals: dict[str, list[int]] = {}
    undo: list[Callable[[], None]] = []

    def put(owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        in_dict = attribute in getattr(owner, "__dict__", {})
        totals[name] = [0, 0]
        setattr(owner, attribute, _timed(totals, name, original))
        undo.append(lambda: setattr(owner, attribute, original) if in_dict else delattr(owner, attribute))

    @app.post("/bench/timings/start")
    async def start() -> Response:
        service = app.state.holder.service
        put(routes, "parse_body", "parse")
        put(routes, "json_response", "response")
        put(service, "score", "Service.score")
        put(service.store, "prepare", "  prepare")
        put(service_module, "history_features", "  features")
        put(type(service.live.champion), "score", "  model")
        put(service.journal, "append_transaction", "  journal append")
        put(service.store, "add_transaction", "  state update")
        put(service.commits, "_commit", "commit")
        return Response(b"{}", media_type="application/json")

    @app.get("/bench/timings")
    async def stop() -> Response:
        while undo:
            undo.pop()()
        return Response(to_json(totals), media_type="application/json")


def ratio(score_rps: float, empty_ms: float, score_ms: float) -> float:
    """Throughput at saturation over 1 / (empty endpoint + in-process Service.score)."""
    return score_rps * (empty_ms + score_ms) / 1e3


def print_ratios(setup: str, saturated: dict[str, dict], in_process: dict | None) -> None:
    """The issue's ratio from requests/s with the in-process Service.score's p50 (as the issue
    writes it), and again from CPU time: the server's per request, and Service.score's mean CPU in
    process (on a shared machine, wall-clock means carry the time other processes took the core)."""
    score, empty = saturated["POST /v1/score"], saturated["POST /bench/empty"]
    empty_ms = 1e3 / empty["rps"]
    print(
        f"  {setup:<17} empty endpoint {empty_ms:.3f} ms a request (server CPU {empty['cpu_us']:.0f} µs); "
        f"/v1/score {1e3 / score['rps']:.3f} ms (server CPU {score['cpu_us']:.0f} µs)"
    )
    if not in_process:
        return
    service_ms = in_process["service_score_p50_ms"]
    print(
        f"  {setup:<17} ratio: {score['rps']:,.0f} req/s against 1 / (empty {empty_ms:.3f} ms + Service.score p50 "
        f"{service_ms:.3f} ms) = {1e3 / (empty_ms + service_ms):,.0f} req/s: "
        f"{ratio(score['rps'], empty_ms, service_ms):.0%} (target >= 75%)"
    )
    cpu_ms = in_process["service_score_cpu_mean_ms"]
    if score["cpu_us"]:
        print(
            f"  {setup:<17} ratio in CPU time: (empty {empty['cpu_us'] / 1e3:.3f} ms + Service.score mean CPU "
            f"{cpu_ms:.3f} ms) / /v1/score {score['cpu_us'] / 1e3:.3f} ms = "
            f"{(empty['cpu_us'] / 1e3 + cpu_ms) / (score['cpu_us'] / 1e3):.0%}"
        )


HTTP = "HTTP + framework"


def breakdown(
    timings: dict[str, list[int]], requests: int, profiled_us: float, cpu_us: float, empty_cpu_us: float
) -> dict[str, float]:
    """µs of server CPU per request: the empty endpoint's whole request (HTTP + framework), each timed
    step (from the profiled run, each with its own timer's cost), the rest of ``cpu_us`` (the unprofiled
    run's), and what the timers cost (the profiled run's CPU per request beyond the unprofiled one)."""
    out = {HTTP: empty_cpu_us}
    out |= {name: timings.get(name, [0, 0])[0] / 1e3 / max(requests, 1) for name, _ in STEPS}
    out["the rest"] = cpu_us - sum(v for k, v in out.items() if not k.startswith("  "))
    out["total"] = cpu_us
    out["timers"] = profiled_us - cpu_us
    return out


def commits_of(metrics: str) -> tuple[float, float]:
    """(commits, requests they answered) from /metrics (``fraudpipe_journal_commit_requests``)."""
    import re

    found = dict(re.findall(r"^fraudpipe_journal_commit_requests_(count|sum) (\S+)$", metrics, re.M))
    return float(found.get("count", 0)), float(found.get("sum", 0))


def print_breakdown(setup: str, parts: dict[str, float], rps: float, commits: tuple[float, float]) -> None:
    print(
        f"\n  {setup}: where a POST /v1/score request's server CPU goes at saturation (µs per request; the "
        f"steps from a profiled run, {rps:,.0f} req/s):"
    )
    described = {
        HTTP: "uvicorn, httptools, the socket, FastAPI: the empty endpoint's whole request",
        **dict(STEPS),
        "the rest": "the body read, this route's request handling against the empty one's, metrics, the "
        "task's resumption after the commit",
        "total": "/v1/score's server CPU per request at saturation (the unprofiled run)",
        "timers": "not in the total: what the profiled run's timers cost (its CPU per request beyond the total)",
    }
    if commits[0]:
        described["commit"] += f": {commits[1] / commits[0]:.1f} requests a commit"
    for name, what in described.items():
        print(f"    {name:<20} {parts[name]:7.1f}  {what}")
