"""The handbook's transaction simulator (Le Borgne et al. 2022, ch. 3, "Transaction data simulator"), vectorised.

Implemented from the published definition, not from its (GPL) code. One
``numpy.random.default_rng(seed)`` drives every draw, always in the same order and with shapes
that do not depend on the drift knobs, so the same config gives the same output and turning
drift on leaves every day before ``drift.start_day`` untouched.

Semantics the definition leaves open, decided here as the handbook's generator behaves:

- Space is the square [0, 100)²; a customer uses the terminals within Euclidean distance
  ``radius`` (inclusive; the boundary has probability zero), each with equal probability.
  A customer with no terminal in range makes no transaction.
- Times are whole seconds: a draw from N(43200, 20000) is truncated to an integer and kept only
  when 0 < t < 86400, so about 3.1 % of draws are dropped and the daily count is "Poisson, then
  thinned".
- Days are 0-based indices from ``start_date``. A compromise on day ``d`` for ``n`` days covers
  days ``d, d+1, ..., d+n-1`` (the day itself and the next n-1 days); windows that run past the
  last day are cut there.
- Scenario 2: each day, ``terminals_per_day`` distinct terminals (uniform, without replacement)
  are compromised; every transaction at such a terminal inside a window is fraud.
- Scenario 3: each day, ``customers_per_day`` distinct customers are compromised; of the pooled
  transactions of those customers inside that day's windows, exactly
  ``floor(customer_share * pool size)`` chosen uniformly are fraud and have their amount
  multiplied by ``customer_amount_factor``. A transaction picked by two overlapping compromises
  is multiplied twice, as published.
- Scenario 1 is ``amount > amount_threshold`` (strict).
- Scenarios run in order 1, 2, 3 (then the drift pattern 4); a later scenario overwrites the
  label, so scenario 1 is judged on the amount before scenario 3 inflates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from fraudpipe.config import Config, IsoText, rule_error
from fraudpipe.contract import (
    CUSTOMER_ID,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_DTYPES,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)

TX_FRAUD_SCENARIO = "tx_fraud_scenario"
GENUINE, SCENARIO_AMOUNT, SCENARIO_TERMINAL, SCENARIO_CUSTOMER, SCENARIO_NIGHT = range(5)

AREA_SIDE = 100.0
TIME_MEAN, TIME_STD = SECONDS_PER_DAY / 2, 20_000.0
NIGHT_END = 7 * 3600  # "night" is hour <= 6, as the handbook's tx_during_night feature

Share = Annotated[float, Field(ge=0, le=1)]


class FraudConfig(Config):
    """``data.simulator.fraud``: the three scenarios' rates and effects."""

    amount_threshold: float
    terminals_per_day: int = Field(ge=0)
    terminal_days: int = Field(ge=1)
    customers_per_day: int = Field(ge=0)
    customer_days: int = Field(ge=1)
    customer_share: Share
    customer_amount_factor: float = Field(gt=0)


class DriftConfig(Config):
    """``data.simulator.drift``: changes from day index ``start_day`` on, for monitoring to detect; null turns it off.

    ``amount_factor`` inflates every amount before the scenarios run (so more of them cross
    scenario 1's threshold); ``terminals_per_day`` (null: unchanged) replaces scenario 2's daily
    rate; ``night_fraud_share`` makes each night transaction (hour <= 6) fraud with that
    probability, labelled scenario 4, after scenarios 1-3.
    """

    start_day: Annotated[int, Field(ge=0)] | None
    amount_factor: float = Field(gt=0)
    terminals_per_day: Annotated[int, Field(ge=0)] | None
    night_fraud_share: Share

    @property
    def active(self) -> bool:
        return self.start_day is not None and (
            self.amount_factor != 1.0 or self.terminals_per_day is not None or self.night_fraud_share > 0
        )


def _iso_date(value: str) -> str:
    try:
        np.datetime64(value, "D")
    except ValueError:
        raise ValueError("must be an ISO date (YYYY-MM-DD)") from None
    return value


class SimulatorConfig(Config):
    """``data.simulator`` (conf/data/simulated.yaml)."""

    n_customers: int = Field(ge=1)
    n_terminals: int = Field(ge=1)
    n_days: int = Field(ge=1)
    start_date: Annotated[IsoText, AfterValidator(_iso_date)]
    radius: float = Field(gt=0)
    seed: int = Field(ge=0)
    fraud: FraudConfig
    drift: DriftConfig

    @model_validator(mode="after")
    def _rates_fit_the_population(self) -> SimulatorConfig:
        """Each day's compromised terminals and customers are distinct: there must be that many."""
        for key, rate, population, what in (
            ("fraud.terminals_per_day", self.fraud.terminals_per_day, self.n_terminals, "n_terminals"),
            ("fraud.customers_per_day", self.fraud.customers_per_day, self.n_customers, "n_customers"),
            ("drift.terminals_per_day", self.drift.terminals_per_day, self.n_terminals, "n_terminals"),
        ):
            if rate is not None and rate > population:
                raise rule_error(f"must be <= {what} ({population})", rate, key=key)
        return self



@dataclass(frozen=True)
class Simulation:
    transactions: pd.DataFrame
    customers: pd.DataFrame
    terminals: pd.DataFrame


def simulate(config: SimulatorConfig) -> Simulation:
    """Customers, terminals and their labelled transactions, sorted by time."""
    fraud, drift = config.fraud, config.drift
    rng = np.random.default_rng(config.seed)
    customers = _customer_profiles(rng, config.n_customers)
    terminals = _terminal_locations(rng, config.n_terminals)
    offsets, reachable = _terminals_within_radius(customers, terminals, config.radius)
    tx = _genuine_transactions(rng, customers, offsets, reachable, config.n_days)

    start = drift.start_day if drift.active else None
    amount = tx.amount
    if start is not None and drift.amount_factor != 1.0:
        amount = np.where(tx.day >= start, np.round(amount * drift.amount_factor, 2), amount)

    scenario = np.where(amount > fraud.amount_threshold, SCENARIO_AMOUNT, GENUINE).astype(np.int8)
    terminal_rate = np.full(config.n_days, fraud.terminals_per_day, dtype=np.int64)
    if start is not None and drift.terminals_per_day is not None:
        terminal_rate[start:] = drift.terminals_per_day
    scenario[_terminal_fraud(rng, tx, config.n_terminals, terminal_rate, fraud.terminal_days)] = SCENARIO_TERMINAL
    picked = _customer_fraud(rng, tx, config.n_customers, fraud)
    scenario[picked > 0] = SCENARIO_CUSTOMER
    amount = np.where(picked > 0, np.round(amount * fraud.customer_amount_factor**picked, 2), amount)
    if start is not None and drift.night_fraud_share > 0:
        scenario[_night_fraud(rng, tx, start, drift.night_fraud_share)] = SCENARIO_NIGHT

    return Simulation(_transaction_table(tx, amount, scenario, config.start_date), customers, terminals)


@dataclass(frozen=True)
class _Transactions:
    """Genuine transactions in generation order (customer, then day, then draw).

    Each customer's days are contiguous, so ``cell_start[c * n_days + d]`` is where customer c's
    day d begins: scenario 3 finds a customer's transactions in a window by two lookups.
    """

    customer: np.ndarray
    day: np.ndarray
    second: np.ndarray  # of the day, 1..86399
    terminal: np.ndarray
    amount: np.ndarray
    cell_start: np.ndarray
    n_days: int


def _customer_profiles(rng: np.random.Generator, n: int) -> pd.DataFrame:
    xy = rng.uniform(0, AREA_SIDE, size=(n, 2))
    mean_amount = rng.uniform(5, 100, size=n)
    return pd.DataFrame(
        {
            CUSTOMER_ID: np.arange(n, dtype=np.int64),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": rng.uniform(0, 4, size=n),
        }
    )


def _terminal_locations(rng: np.random.Generator, n: int) -> pd.DataFrame:
    xy = rng.uniform(0, AREA_SIDE, size=(n, 2))
    return pd.DataFrame({TERMINAL_ID: np.arange(n, dtype=np.int64), "x": xy[:, 0], "y": xy[:, 1]})


def _terminals_within_radius(
    customers: pd.DataFrame, terminals: pd.DataFrame, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """CSR form: customer c reaches ``reachable[offsets[c]:offsets[c+1]]`` (sorted terminal ids)."""
    from scipy.spatial import cKDTree  # imported where used: config checks import this module

    tree = cKDTree(terminals[["x", "y"]].to_numpy())
    lists = tree.query_ball_point(customers[["x", "y"]].to_numpy(), r=radius, return_sorted=True)
    counts = np.fromiter((len(t) for t in lists), dtype=np.int64, count=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if offsets[-1] == 0:
        return offsets, np.empty(0, dtype=np.int64)
    return offsets, np.concatenate([np.asarray(t, dtype=np.int64) for t in lists])


def _genuine_transactions(
    rng: np.random.Generator, customers: pd.DataFrame, offsets: np.ndarray, reachable: np.ndarray, n_days: int
) -> _Transactions:
    n_customers = len(customers)
    counts = rng.poisson(customers["mean_nb_tx_per_day"].to_numpy()[:, None], size=(n_customers, n_days))
    counts[offsets[1:] == offsets[:-1]] = 0  # no terminal in range: no transaction
    cell = np.repeat(np.arange(n_customers * n_days, dtype=np.int64), counts.ravel())
    second = np.trunc(rng.normal(TIME_MEAN, TIME_STD, size=len(cell)))
    keep = (second > 0) & (second < SECONDS_PER_DAY)
    cell, second = cell[keep], second[keep].astype(np.int64)
    customer, day = np.divmod(cell, n_days)

    mean = customers["mean_amount"].to_numpy()[customer]
    amount = rng.normal(mean, customers["std_amount"].to_numpy()[customer])
    negative = np.flatnonzero(amount < 0)
    amount[negative] = rng.uniform(0, 2 * mean[negative])

    n_reach = offsets[customer + 1] - offsets[customer]
    terminal = reachable[offsets[customer] + rng.integers(0, n_reach)]
    cell_start = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=n_customers * n_days))])
    return _Transactions(customer, day, second, terminal, np.round(amount, 2), cell_start, n_days)


def _daily_picks(rng: np.random.Generator, n_items: int, per_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(day, item) pairs: ``per_day[d]`` distinct items drawn uniformly on day d.

    One uniform key per item and day; day d takes its ``per_day[d]`` smallest keys. The draw's
    shape never depends on ``per_day``, so raising the rate on later days leaves earlier picks
    (and every later draw of the generator) as they were.
    """
    keys = rng.random((len(per_day), n_items))
    k = int(per_day.max(initial=0))
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    smallest = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n_items else np.argsort(keys, axis=1)
    smallest = np.take_along_axis(smallest, np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1), axis=1)
    mask = np.arange(k)[None, :] < per_day[:, None]
    days = np.broadcast_to(np.arange(len(per_day))[:, None], mask.shape)
    return days[mask].astype(np.int64), smallest[mask].astype(np.int64)


def _terminal_fraud(
    rng: np.random.Generator, tx: _Transactions, n_terminals: int, per_day: np.ndarray, span: int
) -> np.ndarray:
    """Scenario 2 mask, via a (terminal, day) coverage grid built from window start/end increments."""
    day, terminal = _daily_picks(rng, n_terminals, per_day)
    edges = np.zeros((n_terminals, tx.n_days + 1), dtype=np.int32)
    np.add.at(edges, (terminal, day), 1)
    np.add.at(edges, (terminal, np.minimum(day + span, tx.n_days)), -1)
    covered = np.cumsum(edges, axis=1)[:, : tx.n_days] > 0
    return covered[tx.terminal, tx.day]


def _customer_fraud(rng: np.random.Generator, tx: _Transactions, n_customers: int, fraud: FraudConfig) -> np.ndarray:
    """Scenario 3: how many compromises picked each transaction (0 = none).

    Each day's pool is the window transactions of that day's customers; a uniform subset of it
    is the one with the smallest random keys.
    """
    n_days = tx.n_days
    day, customer = _daily_picks(rng, n_customers, np.full(n_days, fraud.customers_per_day, dtype=np.int64))
    first = tx.cell_start[customer * n_days + day]
    length = tx.cell_start[customer * n_days + np.minimum(day + fraud.customer_days, n_days)] - first
    total = int(length.sum())
    if total == 0:
        return np.zeros(len(tx.day), dtype=np.int64)
    pool_day = np.repeat(day, length)
    pool_tx = np.repeat(first - np.cumsum(length) + length, length) + np.arange(total)
    pool_size = np.bincount(pool_day, minlength=n_days)
    # Rounded before the floor so that a share of 1/3 of 3 transactions is 1, not 0.99999...
    n_fraud = np.floor(np.round(pool_size * fraud.customer_share, 9)).astype(np.int64)
    order = np.lexsort((rng.random(total), pool_day))
    rank = np.arange(total) - np.concatenate([[0], np.cumsum(pool_size)])[pool_day[order]]
    chosen = pool_tx[order[rank < n_fraud[pool_day[order]]]]
    return np.bincount(chosen, minlength=len(tx.day))


def _night_fraud(rng: np.random.Generator, tx: _Transactions, start_day: int, share: float) -> np.ndarray:
    """Drift pattern 4: indices of night transactions (hour <= 6) from ``start_day`` made fraud."""
    candidates = np.flatnonzero((tx.day >= start_day) & (tx.second < NIGHT_END))
    return candidates[rng.random(len(candidates)) < share]


def _transaction_table(tx: _Transactions, amount: np.ndarray, scenario: np.ndarray, start_date: str) -> pd.DataFrame:
    """The contract's columns, sorted by time; ties keep generation order so the sort is reproducible."""
    seconds = tx.day * SECONDS_PER_DAY + tx.second
    order = np.argsort(seconds, kind="stable")
    table = pd.DataFrame(
        {
            TRANSACTION_ID: np.arange(len(order), dtype=np.int64),
            TX_DATETIME: np.datetime64(start_date, "us") + seconds[order].astype("timedelta64[s]"),
            CUSTOMER_ID: tx.customer[order],
            TERMINAL_ID: tx.terminal[order],
            TX_AMOUNT: amount[order],
            TX_FRAUD: (scenario[order] > GENUINE).astype(np.int8),
            TX_FRAUD_SCENARIO: scenario[order],
        }
    )
    return table.astype({**TRANSACTION_DTYPES, TX_FRAUD_SCENARIO: "int8"})
