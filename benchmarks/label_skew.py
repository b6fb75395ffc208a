"""How many rows' terminal-risk features a retrain on the service's log computes differently from the
service, because training counts every label and the service only those that had arrived.

The offline terminal risk of a transaction at time t counts the frauds of its terminal in
(t - delay - n days, t - delay], whatever their label's arrival; the service counts a label only
once it has it (``label_known_at``, its clock when the label came, <= t). A row differs in some
terminal-risk feature exactly when a fraud in its largest window was labelled after t.

No stored service log holds labels of real arrival times, so the arrivals are drawn: each fraud
label comes ``delay_days + X`` days after its transaction, X exponential with the mean given (0: the
loop's test and benchmark, which post each label a week after its transaction). Rows are those of
the last ``--days`` days of the interim transactions (what a retrain's log would hold); frauds before
them count with their arrival times too.

    python benchmarks/label_skew.py [--days 28] [--late 0 1 3 7] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from fraudpipe.contract import SECONDS_PER_DAY, TERMINAL_ID, TX_DATETIME, TX_FRAUD, canonical_ids
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.io import read_parquet
from fraudpipe.paths import INTERIM
from fraudpipe.pipeline.loader import load


def affected(
    terminal: np.ndarray, t: np.ndarray, fraud: np.ndarray, known: np.ndarray, lag: int, span: int
) -> np.ndarray:
    """Per row: whether a fraud of its terminal in (t - lag - span, t - lag] was labelled after t.

    A fraud at s labelled at k counts unknown for the rows of its terminal with t in
    [s + lag, min(s + lag + span, k)); a sweep over (terminal, time) counts the open intervals."""
    s, k, term = t[fraud], known[fraud], terminal[fraud]
    start, end = s + lag, np.minimum(s + lag + span, k)
    keep = end > start
    keys = np.r_[term[keep], term[keep], terminal]
    times = np.r_[start[keep], end[keep], t]
    step = np.r_[np.ones(keep.sum(), np.int64), -np.ones(keep.sum(), np.int64), np.zeros(len(t), np.int64)]
    kind = np.r_[np.zeros(keep.sum()), np.zeros(keep.sum()), np.ones(len(t))]  # at equal times, open/close first
    order = np.lexsort((kind, times, keys))
    open_now = np.empty(len(keys), np.int64)
    sorted_keys = keys[order]
    csum = np.cumsum(step[order])
    first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]  # the running count restarts per terminal
    base = np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))
    before = np.where(base > 0, csum[base - 1], 0)
    open_now[order] = csum - before
    return open_now[2 * keep.sum() :] > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--late", type=float, nargs="+", default=[0.0, 1.0, 3.0, 7.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = load("features", FeatureConfig)
    tx = read_parquet(INTERIM).sort_values([TX_DATETIME], kind="stable", ignore_index=True)
    t = tx[TX_DATETIME].to_numpy().astype("datetime64[s]").astype(np.int64)
    terminal = pd.factorize(canonical_ids(tx[TERMINAL_ID], TERMINAL_ID))[0]
    fraud = tx[TX_FRAUD].fillna(0).to_numpy(bool)
    lag, span = config.delay_days * SECONDS_PER_DAY, max(config.terminal_windows) * SECONDS_PER_DAY
    rows = t > t.max() - args.days * SECONDS_PER_DAY
    print(
        f"{rows.sum():,} rows of the last {args.days} days ({fraud[rows].sum():,} frauds); terminal windows "
        f"{config.terminal_windows} days after a delay of {config.delay_days}"
    )
    rng = np.random.default_rng(args.seed)
    for late in args.late:
        extra = rng.exponential(late, len(t)) if late > 0 else np.zeros(len(t))
        known = t + lag + np.round(extra * SECONDS_PER_DAY).astype(np.int64)
        hit = affected(terminal, t, fraud, known, lag, span)[rows]
        print(
            f"  labels {config.delay_days} + Exp(mean {late:g}) days after: {hit.sum():,} rows "
            f"({hit.mean():.2%}) differ in some terminal-risk feature, {fraud[rows][hit].sum():,} of them frauds "
            f"({fraud[rows][hit].sum() / max(fraud[rows].sum(), 1):.1%} of the frauds)"
        )


if __name__ == "__main__":
    main()
