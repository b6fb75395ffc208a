"""The feature table on a Dask cluster (`engine: dask`): the same table as `features.build_features`.

A customer window looks only at that customer's transactions, a terminal window only at that
terminal's. So the transactions are shuffled twice: by customer (every customer's history in one
partition) and by terminal. On each partition `features.build_features` itself runs, with the
config narrowed to that side's windows: the windows are computed by the one implementation the
pandas engine, the tests and the online parity hold to, never re-implemented here. Each row carries
its position in the input table, the key that joins the two sides back into the input's order.

The table is assembled on the client, column block by column block as the partitions arrive,
since featurize writes it as the one Parquet file the later stages read (like the pandas engine).
The distance feature needs each side's coordinates filled forward within its own key (see
`features.inputs` "Locations"), so each side returns its coordinates and the client takes the distance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    KEY_COLUMNS,
    LABEL_TIME_COLUMNS,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)
from fraudpipe.engine import EngineConfig, cluster
from fraudpipe.features.definitions import (
    CUSTOMER_TERMINAL_DISTANCE,
    FeatureConfig,
    build_features,
    distance,
    feature_names,
)
from fraudpipe.features.inputs import check_transactions, transaction_locations

if TYPE_CHECKING:
    from distributed import Client, Future

#: The column that carries each row's position in the input table through the shuffles.
POSITION = "_position"
#: The side tables' (id, x, y) coordinates of each side, returned for the distance feature.
SIDE_XY = {CUSTOMER_ID: ("_customer_x", "_customer_y"), TERMINAL_ID: ("_terminal_x", "_terminal_y")}


def side_configs(config: FeatureConfig) -> dict[str, FeatureConfig]:
    """The config narrowed to each side: the customer side has the customer windows and extras
    (and the amount and calendar flags), the terminal side the terminal windows. The distance is
    neither side's: the client takes it from both sides' coordinates."""
    customer_extras = tuple(e for e in config.extras if e != CUSTOMER_TERMINAL_DISTANCE)
    return {
        CUSTOMER_ID: config.model_copy(update={"terminal_windows": (), "extras": customer_extras}),
        TERMINAL_ID: config.model_copy(update={"customer_windows": (), "extras": ()}),
    }


def side_columns(config: FeatureConfig) -> dict[str, list[str]]:
    """The feature columns each side computes; together, every feature but the distance, once."""
    sides = side_configs(config)
    customer = feature_names(sides[CUSTOMER_ID])
    shared = set(customer)
    return {CUSTOMER_ID: customer, TERMINAL_ID: [c for c in feature_names(sides[TERMINAL_ID]) if c not in shared]}


def _side_features(
    part: pd.DataFrame,
    side: str,
    config: FeatureConfig,
    columns: list[str],
    tables: dict[str, pd.DataFrame | None],
    with_locations: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One partition (every transaction of its keys) -> (positions, one float64 row per name of
    `side_outputs`): numpy arrays travel back to the client about twice as fast as a DataFrame.

    ``tables`` holds the location tables by id column."""
    customers, terminals = tables[CUSTOMER_ID], tables[TERMINAL_ID]
    part = part.sort_values(POSITION, kind="stable").reset_index(drop=True)  # the input's order
    table = build_features(part.drop(columns=POSITION), config, customers, terminals)
    block = np.empty((len(columns) + 2 * with_locations, len(part)))
    for i, column in enumerate(columns):
        block[i] = table[column].to_numpy()
    if with_locations:
        block[-2], block[-1] = transaction_locations(part, side, customers if side == CUSTOMER_ID else terminals)
    return part[POSITION].to_numpy(), block


def side_outputs(columns: list[str], side: str, with_locations: bool) -> list[str]:
    """What a side's block holds, row by row: its feature columns, then its coordinates."""
    return [*columns, *(SIDE_XY[side] if with_locations else ())]


def _key_frame(tx: pd.DataFrame) -> pd.DataFrame:
    """KEY_COLUMNS of the table as `build_features` writes them (no labels: an all-missing Int8)."""
    keys = {c: tx[c].array for c in (*KEY_COLUMNS, *LABEL_TIME_COLUMNS) if c in tx}
    if TX_FRAUD not in keys:
        keys[TX_FRAUD] = pd.array([pd.NA] * len(tx), dtype="Int8")
    return pd.DataFrame(keys)


def build_features_dask(
    client: Client,
    tx: pd.DataFrame,
    config: FeatureConfig,
    customers: pd.DataFrame | None = None,
    terminals: pd.DataFrame | None = None,
    partitions: int = 8,
) -> pd.DataFrame:
    """`features.build_features` on the cluster of ``client``: the same table (rows, columns, dtypes)."""
    import dask.dataframe as dd
    from dask import delayed
    from distributed import as_completed

    check_transactions(tx)  # the input's errors, once and in its own row positions
    n = len(tx)
    names = feature_names(config)
    with_locations = config.needs_locations
    inputs = [
        c
        for c in (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD, *COORDINATE_COLUMNS)
        if c in tx
    ]
    work = tx[inputs].assign(**{POSITION: np.arange(n, dtype=np.int64)})
    chunk = -(-n // partitions) if n else 1
    chunks = client.scatter([work.iloc[a : a + chunk] for a in range(0, max(n, 1), chunk)])
    data = dd.from_delayed(chunks, meta=work.iloc[:0], verify_meta=False)
    del work

    values = np.empty((len(names), n), dtype=np.float64)
    row = {name: i for i, name in enumerate(names)}
    xy = {c: np.empty(n) for cs in SIDE_XY.values() for c in cs} if with_locations else {}
    sides, columns = side_configs(config), side_columns(config)
    tables = {CUSTOMER_ID: customers, TERMINAL_ID: terminals}
    futures: list[Future] = []
    outputs: dict[str, list[str]] = {}
    compute = delayed(_side_features, pure=True)
    for side in (CUSTOMER_ID, TERMINAL_ID):
        if not columns[side] and not with_locations:
            continue
        parts = data.shuffle(on=side, npartitions=partitions).to_delayed()
        side_futures = client.compute(
            [compute(p, side, sides[side], columns[side], tables, with_locations) for p in parts]
        )
        outputs |= {f.key: side_outputs(columns[side], side, with_locations) for f in side_futures}
        futures += side_futures
    for future in as_completed(futures):  # each partition into its rows as it arrives, then freed
        position, block = future.result()
        for name, column in zip(outputs[future.key], block):
            target = values[row[name]] if name in row else xy[name]
            target[position] = column
        future.release()
    client.cancel(chunks)
    if with_locations:
        cx, cy, tx_, ty = (xy[c] for c in (*SIDE_XY[CUSTOMER_ID], *SIDE_XY[TERMINAL_ID]))
        distance(cx, cy, tx_, ty, out=values[row[CUSTOMER_TERMINAL_DISTANCE]])
    features = pd.DataFrame(values.T, columns=names, copy=False)
    return pd.concat([_key_frame(tx), features], axis=1)


def featurize(
    engine: EngineConfig,
    tx: pd.DataFrame,
    config: FeatureConfig,
    customers: pd.DataFrame | None = None,
    terminals: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The feature table on the configured engine (pandas: `features.build_features` as it is)."""
    if engine.name == "pandas":
        return build_features(tx, config, customers, terminals)
    with cluster(engine) as client:
        return build_features_dask(client, tx, config, customers, terminals, engine.partitions)
