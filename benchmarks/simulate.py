"""Benchmark: the default simulator run (conf/data/simulated.yaml) against the 3 s target and
the published figures (handbook ch. 3: 1,754,155 transactions, 14,681 frauds, 0.837 %,
973 / 9,077 / 4,631 by scenario; about 36 s for the published generator on these machines).

    python benchmarks/simulate.py [--repeats N] [--json F]   # F: the figures as JSON (benchmarks/run.py)

Timed runs go without tracemalloc (it slows allocation-heavy numpy code); a last run under
tracemalloc gives the peak of traced allocations, and ru_maxrss the process's peak resident set.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from pathlib import Path

import yaml

from fraudpipe.data.simulate import TX_FRAUD_SCENARIO, SimulatorConfig, simulate

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "simulated.yaml"
PUBLISHED = {"transactions": 1_754_155, "frauds": 14_681, 1: 973, 2: 9_077, 3: 4_631}
REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs (the best is reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    config = SimulatorConfig.parse(yaml.safe_load(CONF.read_text())["simulator"], "data.simulator")
    seconds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sim = simulate(config)
        seconds.append(time.perf_counter() - t0)
    tracemalloc.start()
    simulate(config)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    tx = sim.transactions
    rows, best = len(tx), min(seconds)
    print(
        f"default run: {config.n_customers:,} customers, {config.n_terminals:,} terminals, "
        f"{config.n_days} days from {config.start_date}, r = {config.radius}, seed {config.seed}"
    )
    print(f"rows            {rows:,}")
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"seconds         {best:.2f} (best of {args.repeats}: {runs}; target <= 3 s)")
    print(f"rows/s          {rows / best:,.0f}")
    print(f"peak memory     {traced_peak / 2**20:,.0f} MiB traced allocations, {maxrss_mib:,.0f} MiB max RSS")

    frauds = int(tx["tx_fraud"].sum())
    by_scenario = tx[TX_FRAUD_SCENARIO].value_counts()
    print()
    print(f"{'':16}{'ours':>12}{'published':>12}{'diff':>9}")
    figures = [("transactions", rows, PUBLISHED["transactions"]), ("frauds", frauds, PUBLISHED["frauds"])]
    figures += [(f"scenario {s}", int(by_scenario.get(s, 0)), PUBLISHED[s]) for s in (1, 2, 3)]
    for name, ours, theirs in figures:
        print(f"{name:16}{ours:>12,}{theirs:>12,}{ours / theirs - 1:>+9.2%}")
    published_rate = PUBLISHED["frauds"] / PUBLISHED["transactions"]
    print(f"{'fraud rate':16}{frauds / rows:>12.3%}{published_rate:>12.3%}")
    within = abs(rows / PUBLISHED["transactions"] - 1) <= 0.01
    if args.json:
        figures = {
            "rows": rows,
            "seconds": round(best, 3),
            "rows_per_s": round(rows / best),
            "traced_peak_mib": round(traced_peak / 2**20),
            "peak_rss_mib": round(maxrss_mib),
            "frauds": frauds,
            "fraud_rate": round(frauds / rows, 6),
        }
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    print(
        f"transactions within 1 % of published: {within}; rate in [0.75 %, 0.95 %]: "
        f"{0.0075 <= frauds / rows <= 0.0095}; all three scenarios: {all(by_scenario.get(s, 0) > 0 for s in (1, 2, 3))}"
    )


if __name__ == "__main__":
    main()
