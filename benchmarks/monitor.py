"""Proof that monitoring catches simulated drift and stays quiet without it; the monitor stage's time.

Each scenario is the pipeline in one process, with the library's own code and the configuration
of conf/ (plus overrides): simulate, preprocess, featurize, split, train, score the test period
(the figures `evaluate` writes) and the live period (what `infer` writes), then
`monitor.monitor`. The drift scenarios turn on one knob of conf/data/simulated_drift.yaml each (all
three together is that file as it is), from the first live day on.

    python benchmarks/monitor.py                     # full size: 10 stable seeds + each drift, ~15 min
    python benchmarks/monitor.py --size tiny         # the tests' size, ~1 min
    python benchmarks/monitor.py --json F            # also write the figures to F as JSON (benchmarks/run.py)
    python benchmarks/monitor.py --stage-time        # `python stages/monitor.py` on this checkout's data, best of 3
    python benchmarks/monitor.py --screenshot reports/monitoring/screenshot.png   # the drifted report in Chromium

Prints one line of drift.json figures per run, the false-alarm rate over the stable seeds, and
which drifts raised the alert. `run_scenario` lives in tests/helpers/scenario.py, which the drift
scenario tests share.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fraudpipe.monitoring.monitor import MonitorResult

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the scenarios are the tests' (tests/helpers/scenario.py)

from helpers.scenario import SIZES, run_scenario  # noqa: E402

FIGURES = (
    "drift_share",
    "n_drifted",
    "prediction_psi",
    "alert_rate_change",
    "live_average_precision",
    "test_average_precision",
    "performance_drop",
    "max_segment_recall_gap",
    "alert",
)


def _line(name: str, result: MonitorResult, seconds: float) -> str:
    m = result.metrics
    figures = " ".join(f"{k}={m[k]:.3f}" if isinstance(m[k], float) else f"{k}={m[k]}" for k in FIGURES)
    drifted = result.features.loc[result.features["drifted"], "feature"].tolist()
    return f"{name:<28} {figures} ({seconds:.0f} s)\n    drifted: {drifted}\n    {result.summary}"


def stage_time(repeats: int = 3) -> float:
    """Best wall time of `python stages/monitor.py` on this checkout's data (DVC outputs present)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "stages/monitor.py"], cwd=ROOT, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def screenshot(path: Path, size: Sequence[str]) -> None:
    """The report of the drifted simulator (simulated_drift.yaml, every knob) as headless Chromium
    shows it: docs/monitoring.md's picture of an alert."""
    import shutil
    import tempfile

    from fraudpipe.monitoring.report import render

    result = run_scenario(size, drift=["amount_factor", "terminals_per_day", "night_fraud_share"])
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render(result), encoding="utf-8")
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp}/profile",
                "--hide-scrollbars",
                "--window-size=1200,1900",
                f"--screenshot={Path(path).resolve()}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"{path}: {result.summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--seeds", type=int, default=10, help="stable runs, simulator seeds 1..N")
    parser.add_argument("--stage-time", action="store_true", help="only time the monitor stage on this checkout's data")
    parser.add_argument("--screenshot", type=Path, help="only write a screenshot of the drifted report to this PNG")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    if args.screenshot:
        screenshot(args.screenshot, SIZES[args.size])
        return
    if args.stage_time:
        print(f"monitor stage: {stage_time():.2f} s (best of 3, `python stages/monitor.py`)")
        return
    size = SIZES[args.size]
    alarms = 0
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    for seed in range(1, args.seeds + 1):
        start = time.perf_counter()
        result = run_scenario(size, seed=seed)
        alarms += result.metrics["alert"]
        results[f"stable seed {seed}"] = result.metrics
        seconds[f"stable seed {seed}"] = time.perf_counter() - start
        print(_line(f"stable seed {seed}", result, seconds[f"stable seed {seed}"]), flush=True)
    print(f"false alarms: {alarms} of {args.seeds} stable seeds ({alarms / args.seeds:.0%})", flush=True)
    for name, kinds in (
        ("amount inflation", ["amount_factor"]),
        ("compromised terminal wave", ["terminals_per_day"]),
        ("new night fraud pattern", ["night_fraud_share"]),
        ("all three (simulated_drift.yaml)", ["amount_factor", "terminals_per_day", "night_fraud_share"]),
    ):
        start = time.perf_counter()
        result = run_scenario(size, drift=kinds, seed=1)
        results[name] = result.metrics
        seconds[name] = time.perf_counter() - start
        print(_line(name, result, seconds[name]), flush=True)
    print(json.dumps({k: {f: v[f] for f in FIGURES} for k, v in results.items()}, indent=1))
    if args.json:
        figures = {
            "size": args.size,
            "stable_seeds": args.seeds,
            "false_alarms": int(alarms),
            "drifts_alerted": sum(int(results[k]["alert"]) for k in results if not k.startswith("stable")),
            "drifts": sum(1 for k in results if not k.startswith("stable")),
            "seconds_per_scenario": round(sum(seconds.values()) / len(seconds), 2),
            "scenarios": {k: {f: v[f] for f in FIGURES} for k, v in results.items()},
        }
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
