"""Benchmark of `featurize` on the default simulated data.

Prints, in one run: the time and peak memory of the 15 handbook features, the time of a
straightforward pandas version of the same 15 (groupby + time-based rolling, written here) and
the ratio, the time of the extended set against the 15, how far the two implementations differ,
the online state's build time and per-transaction latency, and describe() of the features.
Targets: the 15 in <= 3 s and <= 2 GB, >= 5x faster than pandas, extended <= 2x the 15.

    python benchmarks/features.py            # the default data of params.yaml
    python benchmarks/features.py --days 30  # a shorter run
    python benchmarks/features.py --text-ids # also the same data with text ids: time ratio text / int
    python benchmarks/features.py --json F   # also write the figures to F as JSON (benchmarks/run.py)

With ``--text-ids`` the customer and terminal ids become 40-hex hashes and the transaction ids
zero-padded hex text (which keeps the table's order), so the features must come out identical;
the text runs are interleaved with the integer runs (target: text <= 1.2x int).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fraudpipe.contract import TRANSACTION_DTYPES
from fraudpipe.features.definitions import EXTRAS, FeatureConfig, build_features, feature_names
from fraudpipe.features.online import OnlineState

ROOT = Path(__file__).resolve().parents[1]


def simulated(simulator: dict) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, str]:
    """The simulator's data; a numpy stand-in of the same shape while the simulator is missing."""
    try:
        from fraudpipe.data.simulate import SimulatorConfig, simulate
    except ImportError:
        return (*_stand_in(simulator), "numpy stand-in (fraudpipe.data.simulate not importable)")
    sim = simulate(SimulatorConfig.parse(simulator, "data.simulator"))
    return sim.transactions, sim.customers, sim.terminals, "fraudpipe.data.simulate"


def _stand_in(simulator: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(simulator.get("seed", 0))
    n_c, n_t, days = simulator["n_customers"], simulator["n_terminals"], simulator["n_days"]
    rate = rng.uniform(0, 4, n_c)
    counts = rng.poisson(rate[:, None], (n_c, days))
    customer = np.repeat(np.repeat(np.arange(n_c), days), counts.ravel())
    day = np.repeat(np.tile(np.arange(days), n_c), counts.ravel())
    seconds = day * 86_400 + np.clip(rng.normal(43_200, 20_000, len(day)), 1, 86_399).astype(np.int64)
    home = rng.integers(0, n_t, n_c)
    terminal = (home[customer] + rng.integers(0, 100, len(day))) % n_t
    mean = rng.uniform(5, 100, n_c)[customer]
    amount = np.round(np.abs(rng.normal(mean, mean / 2)), 2)
    order = np.argsort(seconds, kind="stable")
    tx = pd.DataFrame(
        {
            "transaction_id": np.arange(len(order)),
            "tx_datetime": np.datetime64(simulator["start_date"]) + seconds[order].astype("timedelta64[s]"),
            "customer_id": customer[order],
            "terminal_id": terminal[order],
            "tx_amount": amount[order],
            "tx_fraud": rng.random(len(order)) < 0.0084,
        }
    ).astype(TRANSACTION_DTYPES)
    xy = lambda n: {"x": rng.uniform(0, 100, n), "y": rng.uniform(0, 100, n)}  # noqa: E731
    return (
        tx,
        pd.DataFrame({"customer_id": np.arange(n_c), **xy(n_c)}),
        pd.DataFrame({"terminal_id": np.arange(n_t), **xy(n_t)}),
    )


def pandas_baseline(tx: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """The 15 features the straightforward way: groupby + time-based rolling, per window."""
    df = tx.copy()
    out = pd.DataFrame(index=df.index)
    out["tx_amount"] = df["tx_amount"]
    out["tx_during_weekend"] = (df["tx_datetime"].dt.day_of_week >= 5).astype(float)
    out["tx_during_night"] = (df["tx_datetime"].dt.hour <= 6).astype(float)
    # groupby().rolling() returns rows grouped by key (keys sorted, table order within a key)
    by_customer = np.argsort(df["customer_id"].to_numpy(), kind="stable")
    by_terminal = np.argsort(df["terminal_id"].to_numpy(), kind="stable")

    def back(values: pd.Series, order: np.ndarray) -> np.ndarray:
        out = np.empty(len(order))
        out[order] = values.to_numpy()
        return out

    for n in config.customer_windows:
        rolled = df.groupby("customer_id").rolling(f"{n}D", on="tx_datetime")["tx_amount"]
        out[f"customer_id_nb_tx_{n}day_window"] = back(rolled.count(), by_customer)
        out[f"customer_id_avg_amount_{n}day_window"] = back(rolled.mean(), by_customer)
    d = config.delay_days
    df["fraud"] = df["tx_fraud"].astype(float)

    def terminal_rolling(days: int) -> tuple[pd.Series, pd.Series]:
        rolled = df.groupby("terminal_id").rolling(f"{days}D", on="tx_datetime")["fraud"]
        return back(rolled.count(), by_terminal), back(rolled.sum(), by_terminal)

    count_delay, fraud_delay = terminal_rolling(d)
    for n in config.terminal_windows:
        count_all, fraud_all = terminal_rolling(d + n)
        count, frauds = count_all - count_delay, fraud_all - fraud_delay
        out[f"terminal_id_nb_tx_{n}day_window"] = count
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"terminal_id_risk_{n}day_window"] = np.where(count > 0, frauds / count, 0.0)
    return out


def hashed(values: pd.Series, salt: str) -> pd.Series:
    """Integer ids as 40-hex text (SHA-1 of salt + id): distinct ids stay distinct."""
    uniques, inverse = np.unique(values.to_numpy(), return_inverse=True)
    names = np.array([hashlib.sha1(f"{salt}{u}".encode()).hexdigest() for u in uniques.tolist()], dtype=object)
    return pd.Series(names[inverse], index=values.index, dtype="str")


def text_ids(tx: pd.DataFrame) -> pd.DataFrame:
    """The same transactions with text ids: hex hashes for customers and terminals, zero-padded hex
    for transactions (same order as the integers, so the table stays sorted)."""
    tid = pd.Series([f"{i:016x}" for i in tx["transaction_id"].tolist()], index=tx.index, dtype="str")
    return tx.assign(
        transaction_id=tid, customer_id=hashed(tx["customer_id"], "c"), terminal_id=hashed(tx["terminal_id"], "t")
    )


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, help="override data.simulator.n_days")
    parser.add_argument("--text-ids", action="store_true", help="also time the features on the same data with text ids")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    figures: dict[str, float | int | bool] = {}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    simulator = dict(params["data"]["simulator"])
    if args.days:
        simulator["n_days"] = args.days
    base = FeatureConfig.parse(yaml.safe_load((ROOT / "conf/features/handbook.yaml").read_text()), "features")
    # The extended set's windows with every extra (the default leaves out the distance): the worst case.
    extended = FeatureConfig.parse(
        yaml.safe_load((ROOT / "conf/features/extended.yaml").read_text()) | {"extras": list(EXTRAS)}, "features"
    )

    (tx, customers, terminals, source), t_sim = timed(simulated, simulator)
    print(
        f"data: {source}, {len(tx):,} transactions, {tx['customer_id'].nunique():,} customers, "
        f"{tx['terminal_id'].nunique():,} terminals, fraud {tx['tx_fraud'].mean():.3%} ({t_sim:.1f} s)"
    )
    figures.update(rows=len(tx), simulate_seconds=round(t_sim, 3))
    print(f"machine: {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}")

    # Interleaved runs, best of three each: on this shared VM, memory freed a few seconds earlier
    # goes back to the host and costs page faults when touched again, so back-to-back runs of one
    # set and a pause before the other would skew the ratio. CPU time (user + system) is printed too.
    runs_of = [("base", tx, base, ()), ("ext", tx, extended, (customers, terminals))]
    if args.text_ids:
        tx_text = text_ids(tx)
        c_text = customers.assign(customer_id=hashed(customers["customer_id"], "c"))
        t_text = terminals.assign(terminal_id=hashed(terminals["terminal_id"], "t"))
        runs_of += [("base_text", tx_text, base, ()), ("ext_text", tx_text, extended, (c_text, t_text))]
    times: dict[str, list[tuple[float, float]]] = {key: [] for key, *_ in runs_of}
    for _ in range(3):
        for key, data, config, extra in runs_of:
            cpu = time.process_time()
            table, t = timed(build_features, data, config, *extra)
            times[key].append((t, time.process_time() - cpu))
            del table
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    table = build_features(tx, base)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (t_base, c_base), (t_ext, c_ext) = (min(times[k]) for k in ("base", "ext"))
    runs = {k: ", ".join(f"{t:.2f}" for t, _ in v) for k, v in times.items()}
    print(
        f"handbook 15 features: {t_base:.2f} s, CPU {c_base:.2f} s (runs: {runs['base']}); "
        f"peak allocation {peak / 2**20:,.0f} MiB; process peak RSS so far {rss_after:,.0f} MiB"
    )
    figures.update(
        handbook_seconds=round(t_base, 3),
        handbook_cpu_seconds=round(c_base, 3),
        handbook_peak_alloc_mib=round(peak / 2**20),
        peak_rss_mib=round(rss_after),
        extended_features=len(feature_names(extended)),
        extended_seconds=round(t_ext, 3),
        extended_cpu_seconds=round(c_ext, 3),
        extended_over_handbook=round(t_ext / t_base, 3),
    )
    print(
        f"extended {len(feature_names(extended))} features: {t_ext:.2f} s, CPU {c_ext:.2f} s (runs: {runs['ext']}); "
        f"{t_ext / t_base:.2f}x the 15 in time, {c_ext / c_base:.2f}x in CPU (target <= 2x)"
    )
    if args.text_ids:
        for key, name, config, extra, text_extra in (
            ("base", "handbook 15", base, (), ()),
            ("ext", f"extended {len(feature_names(extended))}", extended, (customers, terminals), (c_text, t_text)),
        ):
            (t_int, c_int), (t_txt, c_txt) = min(times[key]), min(times[f"{key}_text"])
            same = build_features(tx, config, *extra)[feature_names(config)].equals(
                build_features(tx_text, config, *text_extra)[feature_names(config)]
            )
            figures.update(
                {
                    f"{key}_text_seconds": round(t_txt, 3),
                    f"{key}_text_over_int": round(t_txt / t_int, 3),
                    f"{key}_text_identical": bool(same),
                }
            )
            print(
                f"text ids, {name} features: {t_txt:.2f} s, CPU {c_txt:.2f} s (runs: {runs[f'{key}_text']}); "
                f"{t_txt / t_int:.2f}x the int64 ids in time, {c_txt / c_int:.2f}x in CPU (target <= 1.2x); "
                f"features identical: {same}"
            )

    ext_table = build_features(tx, extended, customers, terminals)
    naive, t_naive = timed(pandas_baseline, tx, base)
    print(f"pandas groupby+rolling 15 features: {t_naive:.2f} s; ours is {t_naive / t_base:.1f}x faster (target >= 5x)")
    names = feature_names(base)
    diff = naive[names].to_numpy() - table[names].to_numpy()
    figures.update(
        pandas_seconds=round(t_naive, 3),
        speedup_over_pandas=round(t_naive / t_base, 2),
        max_abs_diff_pandas=float(np.abs(diff).max()),
    )
    print(
        f"max |pandas - ours| over the 15: {np.abs(diff).max():.2e} (rows with any difference > 1e-9: "
        f"{int((np.abs(diff) > 1e-9).any(axis=1).sum())})"
    )

    state, t_state = timed(OnlineState.from_history, tx, extended, customers, terminals)
    kept = len(state.history())
    last = tx.tail(2000)
    lat = []
    for row in last.itertuples(index=False):
        start = time.perf_counter()
        state.features(row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount)
        lat.append(time.perf_counter() - start)
    upd = []
    for k, row in enumerate(last.itertuples(index=False)):
        start = time.perf_counter()
        state.update(10**12 + k, row.customer_id, row.terminal_id, row.tx_datetime, row.tx_amount)
        upd.append(time.perf_counter() - start)
    lat_ms, upd_ms = np.array(lat) * 1e3, np.array(upd) * 1e3
    figures.update(
        online_from_history_seconds=round(t_state, 3),
        online_features_p50_ms=round(float(np.median(lat_ms)), 4),
        online_features_p99_ms=round(float(np.percentile(lat_ms, 99)), 4),
        online_update_p50_ms=round(float(np.median(upd_ms)), 4),
        online_update_p99_ms=round(float(np.percentile(upd_ms, 99)), 4),
    )
    print(
        f"online (extended): from_history {t_state:.2f} s, {kept:,} transactions kept; "
        f"features() p50 {np.median(lat_ms):.3f} ms p99 {np.percentile(lat_ms, 99):.3f} ms; "
        f"update() p50 {np.median(upd_ms):.3f} ms p99 {np.percentile(upd_ms, 99):.3f} ms"
    )

    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.float_format", "{:,.3f}".format):
        print("\ndescribe() of the extended features (the first 15 are the handbook's):")
        print(ext_table[feature_names(extended)].describe().T.to_string())
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
