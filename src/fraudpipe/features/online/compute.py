"""One place for the feature math online: a transaction's features from its customer's and terminal's history.

``history_features`` computes them from a ``History`` (its customer's and terminal's retained
transactions, the frauds among the terminal's, the last known locations). ``OnlineState.features``
passes it views of its own dictionaries; a shared store (the service's Redis store) fetches the
same histories and calls the same function. The windows are re-derived with ``bisect`` on the
histories, not with the offline composites, and only the per-value formulas of
``features.definitions`` are shared, so a parity test comparing the two paths checks the windows.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import mul
from typing import Any

import numpy as np

from fraudpipe.contract import CUSTOMER_ID, SECONDS_PER_DAY, TERMINAL_ID
from fraudpipe.features.definitions import (
    AMOUNT_RATIO,
    AMOUNT_ZSCORE,
    NB_TERMINALS,
    SECONDS_SINCE_PREV_TX,
    FeatureConfig,
    amount_ratio,
    amount_zscore,
    calendar_flags,
    distance,
    split_cents,
    window_mean,
)
from fraudpipe.features.online.history import History, given_location, resolve_location


@dataclass(frozen=True)
class _Plan:
    """What ``history_features`` needs of a config, worked out once per config."""

    customer_horizons: tuple[int, ...]  # seconds of each distinct customer window, shortest first
    customer_at: tuple[int, ...]  # each of config.customer_windows: its place in customer_horizons
    extra_at: tuple[int, ...]  # each of config.extra_windows (when a windowed extra is asked for): the same
    terminal_bounds: tuple[tuple[int, int], ...]  # (days, seconds back to the window's start), shortest first
    delay: int  # seconds
    ratio: bool
    zscore: bool
    distinct: bool
    gap_cap: int | None  # seconds_since_prev_tx's cap, or None when not asked for
    locations: bool


@lru_cache(maxsize=32)
def _plan(config: FeatureConfig) -> _Plan:
    days = sorted(dict.fromkeys(config.customer_windows + config.customer_extra_windows))
    return _Plan(
        customer_horizons=tuple(n * SECONDS_PER_DAY for n in days),
        customer_at=tuple(days.index(n) for n in config.customer_windows),
        extra_at=tuple(days.index(n) for n in config.customer_extra_windows),
        terminal_bounds=tuple((n, (config.delay_days + n) * SECONDS_PER_DAY) for n in sorted(config.terminal_windows)),
        delay=config.delay_days * SECONDS_PER_DAY,
        ratio=AMOUNT_RATIO in config.extras,
        zscore=AMOUNT_ZSCORE in config.extras,
        distinct=NB_TERMINALS in config.extras,
        gap_cap=config.customer_horizon_days * SECONDS_PER_DAY if SECONDS_SINCE_PREV_TX in config.extras else None,
        locations=config.needs_locations,
    )


def history_features(
    config: FeatureConfig,
    history: History,
    t: int,
    amount: float,
    coordinates: Sequence[Any] = (None, None, None, None),
) -> np.ndarray:
    """The feature vector (float64, ``feature_names(config)`` order) of a new transaction at epoch
    second ``t`` of ``amount`` (finite), from its customer's and terminal's history: the one place
    the online features are computed. ``coordinates`` are the transaction's own customer_x,
    customer_y, terminal_x, terminal_y (None or NaN: not carried; the last known ones count).

    Values are appended in ``feature_names`` order (amount, calendar flags, customer windows,
    terminal windows, then the extras in ``features.EXTRAS`` order)."""
    plan = _plan(config)
    cents, residual = (v.item() for v in split_cents(amount))
    weekend, night = calendar_flags(np.array([t]))
    out: list[Any] = [amount, weekend.item(), night.item()]

    # Customer windows (t - n days, t] all end at t, so they nest: one pass from the shortest to the
    # longest adds each older slice once (integer cents are exact in any order).
    c = history.customer
    times, all_cents, all_residuals, all_terminals = c.times, c.cents, c.residuals, c.terminals
    end = bisect_right(times, t)  # known transactions up to and including second t
    zscore, distinct = plan.zscore, plan.distinct
    s1, s_res, s2, prev, seen = cents, residual, cents * cents, end, {history.terminal_id}
    counts, sums, residuals, squares, terminals = [], [], [], [], []
    for horizon in plan.customer_horizons:
        start = bisect_right(times, t - horizon, 0, prev)
        older = all_cents[start:prev]
        s1 += sum(older)
        s_res += sum(all_residuals[start:prev])
        if zscore:
            s2 += sum(map(mul, older, older))
        if distinct:
            seen.update(all_terminals[start:prev])
        counts.append(end - start + 1)
        sums.append(s1)
        residuals.append(s_res)
        squares.append(s2)
        terminals.append(len(seen))
        prev = start
    count = np.array(counts, dtype=np.int64)
    means = window_mean(np.array(sums, dtype=np.int64), np.array(residuals), count).tolist()
    for i in plan.customer_at:
        out += (counts[i], means[i])

    # Terminal windows (t - d - n days, t - d] all end at t - d: the same single pass over frauds.
    term = history.terminal
    stop = bisect_right(term.times, t - plan.delay)
    frauds, prev, windows = 0, stop, {}
    for n, bound in plan.terminal_bounds:
        start = bisect_right(term.times, t - bound, 0, prev)
        frauds += sum(term.frauds[start:prev])
        prev = start
        windows[n] = (stop - start, frauds / (stop - start) if stop > start else 0.0)
    for n in config.terminal_windows:
        out += windows[n]

    extra = plan.extra_at  # empty when no windowed extra is asked for
    if extra and plan.ratio:
        out += amount_ratio(amount, np.array([means[i] for i in extra])).tolist()
    if extra and zscore:
        out += amount_zscore(
            cents,
            np.array([sums[i] for i in extra], dtype=np.int64),
            np.array([squares[i] for i in extra], dtype=np.int64),
            count[list(extra)],
        ).tolist()
    if extra and distinct:
        out += [terminals[i] for i in extra]
    if plan.gap_cap is not None:
        out.append(min(t - times[end - 1], plan.gap_cap) if end else plan.gap_cap)
    if plan.locations:
        cx, cy, tx_, ty = coordinates
        cx, cy = resolve_location(
            CUSTOMER_ID, history.customer_id, given_location(CUSTOMER_ID, cx, cy), history.customer_xy
        )
        tx_, ty = resolve_location(
            TERMINAL_ID, history.terminal_id, given_location(TERMINAL_ID, tx_, ty), history.terminal_xy
        )
        out.append(float(distance(cx, cy, tx_, ty)))
    return np.array(out, dtype=np.float64)
