"""A transaction file in the common Kaggle layout, generated from the simulator for tests.

Public card-transaction datasets often look like this: an unnamed index column, the time as
``trans_date_trans_time``, the card number as ``cc_num``, the merchant's *name* (with commas, so
quoted in CSV), a 32-hex ``trans_num``, the amount as ``amt``, customer and merchant coordinates
as ``lat``/``long`` and ``merch_lat``/``merch_long``, ``is_fraud``, and columns no model should
use. The rows come from the simulator, relabelled into that layout, with a lower fraud rate than
the simulator's and irregular density (some weeks thinned out), as real files are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.data.simulate import SimulatorConfig, simulate

SURNAMES = [
    "Kirlin",
    "Sporer",
    "Rippin",
    "Kub",
    "Mann",
    "Heller",
    "Gutmann",
    "Zieme",
    "Lind",
    "Buckridge",
    "Keeling",
    "Crist",
    "Haley",
    "Abbott",
    "Koss",
    "Stracke",
    "Lesch",
    "Bauch",
    "Kuhn",
    "Romaguera",
]
CATEGORIES = [
    "misc_net",
    "grocery_pos",
    "entertainment",
    "gas_transport",
    "misc_pos",
    "grocery_net",
    "shopping_net",
    "shopping_pos",
    "food_dining",
    "personal_care",
    "health_fitness",
    "travel",
    "kids_pets",
    "home",
]


def simulator_config(**overrides) -> SimulatorConfig:
    base = {
        "n_customers": 300,
        "n_terminals": 1500,
        "n_days": 120,
        "start_date": "2019-01-01",
        "radius": 5.0,
        "seed": 7,
        "fraud": {
            "amount_threshold": 220.0,
            "terminals_per_day": 1,
            "terminal_days": 28,
            "customers_per_day": 1,
            "customer_days": 14,
            "customer_share": 0.3333333333333333,
            "customer_amount_factor": 5.0,
        },
        "drift": {"start_day": None, "amount_factor": 1.0, "terminals_per_day": None, "night_fraud_share": 0.0},
    }
    return (
        SimulatorConfig.model_validate(base | overrides)
        if hasattr(SimulatorConfig, "model_validate")
        else SimulatorConfig.parse(base | overrides, "data.simulator")
    )


def kaggle_frame(
    config: SimulatorConfig | None = None, seed: int = 11, rows: int | None = None, frauds: int | None = None
) -> pd.DataFrame:
    """The simulator's rows in the Kaggle layout; ``rows`` and ``frauds``: a random sample of that
    many rows holding that many frauds, as the samples of such files people share are."""
    sim = simulate(config or simulator_config())
    rng = np.random.default_rng(seed)
    tx = sim.transactions.copy()
    # Irregular density: every third week keeps only a quarter of its genuine rows.
    week = ((tx["tx_datetime"] - tx["tx_datetime"].min()).dt.days // 7).to_numpy()
    fraud = tx["tx_fraud"].to_numpy() == 1
    thin = (week % 3 == 2) & ~fraud & (rng.random(len(tx)) < 0.75)
    rare = fraud & (rng.random(len(tx)) < 0.9)  # about 0.4 % fraud, half the simulator's rate
    tx = tx[~thin & ~rare].reset_index(drop=True)
    if rows is not None and frauds is not None:
        is_fraud = tx["tx_fraud"].to_numpy() == 1
        keep = np.concatenate(
            [
                rng.choice(np.flatnonzero(is_fraud), frauds, replace=False),
                rng.choice(np.flatnonzero(~is_fraud), rows - frauds, replace=False),
            ]
        )
        tx = tx.iloc[np.sort(keep)].reset_index(drop=True)

    cards = rng.integers(10**15, 10**16, size=len(sim.customers), dtype=np.int64).astype(str)
    names = [
        f"fraud_{SURNAMES[i % 20]}, {SURNAMES[(i * 7 + 3) % 20]} and {SURNAMES[(i * 13 + 5) % 20]} {i}"
        for i in range(len(sim.terminals))
    ]
    customers = sim.customers.set_index("customer_id")
    terminals = sim.terminals.set_index("terminal_id")
    c, t = tx["customer_id"].to_numpy(), tx["terminal_id"].to_numpy()
    frame = pd.DataFrame(
        {
            "trans_date_trans_time": tx["tx_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "cc_num": cards[c],
            "merchant": np.asarray(names)[t],
            "category": np.asarray(CATEGORIES)[rng.integers(0, len(CATEGORIES), len(tx))],
            "amt": tx["tx_amount"].round(2),
            "lat": (30 + customers.loc[c, "y"].to_numpy() / 5).round(4),
            "long": (-100 + customers.loc[c, "x"].to_numpy() / 5).round(4),
            "city_pop": rng.integers(100, 2_000_000, len(tx)),
            "trans_num": [hashlib.md5(f"{seed}-{i}".encode()).hexdigest() for i in tx["transaction_id"]],
            "unix_time": (tx["tx_datetime"].astype("int64") // 10**6).to_numpy()
            - 1_325_376_000,  # the dataset's odd epoch
            "merch_lat": (30 + terminals.loc[t, "y"].to_numpy() / 5).round(6),
            "merch_long": (-100 + terminals.loc[t, "x"].to_numpy() / 5).round(6),
            "is_fraud": tx["tx_fraud"].astype(int),
        }
    )
    return frame


def small_kaggle_frame(seed: int = 11) -> pd.DataFrame:
    """A small real-world sample: 25,102 rows over 15 months (456 days) with 123 frauds."""
    return kaggle_frame(simulator_config(n_days=456), seed=seed, rows=25_102, frauds=123)


def write_kaggle_csv(path: Path, frame: pd.DataFrame | None = None) -> Path:
    """The file as such datasets ship it: the pandas index as an unnamed first column."""
    (frame if frame is not None else kaggle_frame()).to_csv(path, index=True)
    return path


def contract_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The Kaggle layout mapped onto the transaction contract by hand (what onboarding should propose)."""
    return pd.DataFrame(
        {
            "transaction_id": frame["trans_num"],
            "tx_datetime": pd.to_datetime(frame["trans_date_trans_time"]),
            "customer_id": frame["cc_num"],
            "terminal_id": frame["merchant"],
            "tx_amount": frame["amt"],
            "tx_fraud": frame["is_fraud"].astype("int8"),
        }
    )
