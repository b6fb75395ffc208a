"""Transactions for the feature tests: feature configs from conf/, small random data with every edge
the definitions have, text ids, coordinates and location tables (offline and online tests share them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fraudpipe.features.definitions import EXTRAS, FeatureConfig

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
START = np.datetime64("2018-04-01T00:00:00")  # a Sunday

HANDBOOK_CONF = yaml.safe_load((ROOT / "conf/features/handbook.yaml").read_text())


def features_config(**changes) -> FeatureConfig:
    """conf/features/handbook.yaml with some keys changed (``set=`` names the option)."""
    return FeatureConfig.parse(HANDBOOK_CONF | changes, "features")


#: Short windows and delay so that small data is dense in every window.
SMALL = features_config(
    set="small", customer_windows=(1, 3), terminal_windows=(1, 2), delay_days=2, extras=EXTRAS, extra_windows=(2, 4)
)
HANDBOOK = features_config()
EXTENDED = features_config(set="extended", extras=EXTRAS, extra_windows=(7, 30))
NO_DELAY = features_config(
    set="no_delay", customer_windows=(1,), terminal_windows=(1, 3), delay_days=0, extras=EXTRAS, extra_windows=(1,)
)
CONFIGS = {"small": SMALL, "handbook": HANDBOOK, "extended": EXTENDED, "no_delay": NO_DELAY}


# --- data ------------------------------------------------------------------------------------


def frame(seconds, customer, terminal, amount, fraud, tid=None) -> pd.DataFrame:
    """A contract frame sorted by (tx_datetime, transaction_id)."""
    n = len(seconds)
    out = pd.DataFrame(
        {
            "transaction_id": np.asarray(np.arange(n) if tid is None else tid, dtype=np.int64),
            "tx_datetime": (START + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")).astype(
                "datetime64[us]"
            ),
            "customer_id": np.asarray(customer, dtype=np.int64),
            "terminal_id": np.asarray(terminal, dtype=np.int64),
            "tx_amount": np.asarray(amount, dtype=np.float64),
            "tx_fraud": np.asarray(fraud, dtype=np.int8),
        }
    )
    return out.sort_values(["tx_datetime", "transaction_id"], kind="stable").reset_index(drop=True)


def make_transactions(
    seed: int, n: int = 300, days: int = 12, n_customers: int = 12, n_terminals: int = 15
) -> pd.DataFrame:
    """Small random data with every edge the definitions have.

    Same-second ties (also within one customer and one terminal), pairs exactly 1..37 days apart
    on the same customer and terminal (window and delay edges), a customer with one transaction,
    a terminal used once (no history), zero and sub-cent amounts, ids not in time order.
    """
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, days * DAY, n)
    customer = rng.integers(0, n_customers, n)
    terminal = rng.integers(0, n_terminals, n)
    copy_to, copy_from = rng.choice(n, n // 5, replace=False), rng.choice(n, n // 5)
    seconds[copy_to] = seconds[copy_from]  # ties across keys
    copy_to = copy_to[: n // 10]
    customer[copy_to], terminal[copy_to] = (
        customer[copy_from[: n // 10]],
        terminal[copy_from[: n // 10]],
    )  # ties within keys
    for k, lag in enumerate(lag for lag in (1, 2, 3, 4, 7, 8, 9, 30, 37) * 2 if lag < days):
        a, b = 2 * k + 10, 2 * k + 11  # the later one in the last part of the period (the replayed part)
        seconds[b] = days * DAY - 1 - k * 7_919
        seconds[a] = seconds[b] - lag * DAY
        customer[b], terminal[b] = customer[a], terminal[a]
    customer[0], terminal[1] = 10_000, 20_000  # one transaction each
    amount = np.round(rng.gamma(2.0, 40.0, n), 2)
    amount[2:5] = 0.0
    amount[5:8] = [10 / 3, 1e-3, 123.4567]
    fraud = rng.random(n) < 0.2
    return frame(seconds, customer, terminal, amount, fraud, tid=rng.permutation(n) + 100)


#: Ids a real source has: hex hashes, names with commas and quotes, numbers with leading zeros
#: beside the same number without them, things that look like numbers, non-ASCII text.
_ODD_IDS = [
    "7",
    "007",
    "07",
    "5e3",
    "-0",
    "1_000",
    "+7",
    "Kirlin, Sporer and Mann",
    'Zieme "Lind", Inc.',
    "Zürich, Café 3",
    "ß",
    "ǅ",
    "a",
    "A",
]


def text_names(n: int, salt: str) -> list[str]:
    """``n`` distinct texts: the odd ids above first, then 40-hex hashes and names with commas."""
    extra = [
        hashlib.sha1(f"{salt}{i}".encode()).hexdigest() if i % 3 else f"fraud_{salt}, merchant {i}" for i in range(n)
    ]
    return list(dict.fromkeys(_ODD_IDS + extra))[:n]


def text_ids(tx: pd.DataFrame, *tables: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """``tx`` (and location tables) with every id replaced by text, one text per integer id.

    Customers and terminals get the texts in no particular order. Transaction ids get texts whose
    lexicographic (code point) order is the order of the integers, so the table stays sorted by
    (tx_datetime, transaction_id) and the features must be those of the integer ids, row for row.
    """

    def mapping(values: np.ndarray, salt: str, ordered: bool) -> dict[int, str]:
        keys = np.unique(values).tolist()
        names = text_names(len(keys), salt)
        return dict(zip(keys, sorted(names) if ordered else names))

    maps = {
        "transaction_id": mapping(tx["transaction_id"].to_numpy(), "tx", ordered=True),
        "customer_id": mapping(
            np.concatenate([tx["customer_id"], *[t["customer_id"] for t in tables if "customer_id" in t]]), "c", False
        ),
        "terminal_id": mapping(
            np.concatenate([tx["terminal_id"], *[t["terminal_id"] for t in tables if "terminal_id" in t]]), "t", False
        ),
    }

    def convert(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(
            **{c: pd.array([m[i] for i in frame[c].tolist()], dtype="str") for c, m in maps.items() if c in frame}
        )

    return tuple(convert(frame) for frame in (tx, *tables))


def coordinates(tx: pd.DataFrame, seed: int = 0, missing: float = 0.0) -> pd.DataFrame:
    """``tx`` with per-transaction coordinates (latitude/longitude-like, different on every row);
    a share ``missing`` of the rows carry none (NaN), for the last-known rule."""
    rng = np.random.default_rng(seed)
    n = len(tx)
    xy = {c: np.round(rng.uniform(-90, 90, n), 6) for c in ("customer_x", "customer_y", "terminal_x", "terminal_y")}
    for side in ("customer", "terminal"):
        gone = rng.random(n) < missing
        xy[f"{side}_x"][gone] = np.nan
        xy[f"{side}_y"][gone] = np.nan
    return tx.assign(**xy)


def location_tables(tx: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    c, t = np.unique(tx["customer_id"]), np.unique(tx["terminal_id"])
    return (
        pd.DataFrame({"customer_id": c, "x": rng.uniform(0, 100, len(c)), "y": rng.uniform(0, 100, len(c))}),
        pd.DataFrame({"terminal_id": t, "x": rng.uniform(0, 100, len(t)), "y": rng.uniform(0, 100, len(t))}),
    )
