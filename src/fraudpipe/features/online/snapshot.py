"""The online state's snapshot on disk: Parquet + JSON (no pickle), written by featurize, read by the service.

A snapshot directory holds the retained transactions (``history.parquet``, in arrival order, in
the transaction contract: id columns int64 when every id is a canonical integer, else text), the
known locations (``customers.parquet``/``terminals.parquet``: id, x, y) when a feature uses them,
and ``state.json``: the format version, the features config and its feature list, the newest
transaction time seen (``as_of``), ``complete_since`` when the history reaches back further
than the retention window, and ``periods`` ([start, jump] epoch seconds) once an operator moved
the clock (``online.periods``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.contract import (
    CUSTOMER_ID,
    DATETIME_DTYPE,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    canonical_ids,
    id_array,
    id_codes,
)
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.inputs import LOCATION_COLUMNS
from fraudpipe.features.online.history import CustomerHistory, to_epoch_second
from fraudpipe.features.online.periods import Period, parse_periods
from fraudpipe.io import read_parquet, write_json, write_parquet

FORMAT_VERSION = 1
STATE_FILE, HISTORY_FILE = "state.json", "history.parquet"
LOCATION_FILES = {CUSTOMER_ID: "customers.parquet", TERMINAL_ID: "terminals.parquet"}


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot holds, read back: ``now`` and ``complete_since`` in epoch seconds (None: not
    recorded, i.e. an empty state, or a history complete over the retention window before ``now``)."""

    history: pd.DataFrame
    config: FeatureConfig
    customers: pd.DataFrame | None
    terminals: pd.DataFrame | None
    now: int | None
    complete_since: int | None
    periods: list[Period] = field(default_factory=list)  # the operator's moves of the clock (``online.periods``)


def _history_table(
    tid: np.ndarray,
    t: np.ndarray,
    customer: np.ndarray,
    terminal: np.ndarray,
    amount: np.ndarray,
    fraud: pd.api.extensions.ExtensionArray,
) -> pd.DataFrame:
    """A snapshot's history in the transaction contract, from keys (``canonical_id``), epoch seconds,
    amounts and nullable labels in arrival order (each id column int64 when all its ids are
    canonical integers, else text)."""
    return pd.DataFrame(
        {
            TRANSACTION_ID: id_array(tid),
            TX_DATETIME: t.astype("datetime64[s]").astype(DATETIME_DTYPE),
            CUSTOMER_ID: id_array(customer),
            TERMINAL_ID: id_array(terminal),
            TX_AMOUNT: amount,
            TX_FRAUD: fraud,
        }
    )


def rows_history(tx: pd.DataFrame, seconds: np.ndarray) -> pd.DataFrame:
    """Transaction rows in arrival order (``seconds``: their epoch seconds) as a snapshot's history: what
    ``retained_history`` gives for a state that kept just these rows."""
    fraud = tx[TX_FRAUD].astype("Int8").array if TX_FRAUD in tx else pd.array([None] * len(tx), dtype="Int8")
    ids = {c: canonical_ids(tx[c], c) for c in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)}
    return _history_table(
        ids[TRANSACTION_ID], seconds, ids[CUSTOMER_ID], ids[TERMINAL_ID], tx[TX_AMOUNT].to_numpy(np.float64), fraud
    )


def retained_history(customers: Mapping[str, CustomerHistory], labels: Mapping[str, int | None]) -> pd.DataFrame:
    """The transactions of the customer histories in arrival order, as ``history_table``; ``labels``
    holds each one's label (None: unknown)."""
    items = list(customers.items())
    sizes = [len(h.times) for _, h in items]
    t, seq = (
        np.fromiter(chain.from_iterable(getattr(h, a) for _, h in items), np.int64, sum(sizes))
        for a in ("times", "seqs")
    )
    amount = np.fromiter(chain.from_iterable(h.amounts for _, h in items), np.float64, sum(sizes))
    tid, terminal = (
        np.array(list(chain.from_iterable(getattr(h, a) for _, h in items)), dtype=object)
        for a in ("tids", "terminals")
    )
    customer = np.repeat(np.array([key for key, _ in items], dtype=object), sizes)
    order = np.lexsort((seq, t))  # arrival order: time, then the order of arrival within a second
    tid = tid[order]
    fraud = pd.array([labels[i] for i in tid.tolist()], dtype="Int8")
    return _history_table(tid, t[order], customer[order], terminal[order], amount[order], fraud)


def location_tables(known: Mapping[str, Mapping[str, tuple[float, float]]]) -> dict[str, pd.DataFrame]:
    """Per key (customer_id, terminal_id), its last known locations as a table (id, x, y) sorted by
    id (numbers, or text in code point order)."""
    tables = {}
    for key, xy_of in known.items():
        ids = id_array(list(xy_of))
        xy = np.array(list(xy_of.values()), dtype=np.float64).reshape(-1, 2)
        order = np.argsort(id_codes(pd.Series(ids), key, ordered=True), kind="stable")
        tables[key] = pd.DataFrame(
            {key: ids[order], LOCATION_COLUMNS[0]: xy[order, 0], LOCATION_COLUMNS[1]: xy[order, 1]}
        )
    return tables


def write_snapshot(
    directory: str | Path,
    config: FeatureConfig,
    history: pd.DataFrame,
    locations: Mapping[str, pd.DataFrame],
    now: int | None,
    complete_since: int | None,
    periods: Sequence[Period] = (),
) -> None:
    """Write a snapshot into ``directory`` (wrap it in ``io.atomic_dir`` for an atomic swap)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_parquet(history, directory / HISTORY_FILE)
    for key, table in locations.items():
        write_parquet(table, directory / LOCATION_FILES[key])
    write_json(
        {
            "format": FORMAT_VERSION,
            "features": config.to_dict(),
            "feature_names": feature_names(config),
            "as_of": None if now is None else pd.Timestamp(now, unit="s").isoformat(),
            "transactions": len(history),
        }
        | _complete_since_entry(config, now, complete_since)
        | ({"periods": [list(p) for p in periods]} if periods else {}),
        directory / STATE_FILE,
    )


def _complete_since_entry(config: FeatureConfig, now: int | None, complete_since: int | None) -> dict[str, str]:
    """``complete_since``, when the state keeps more than the retention window (``late_days``)."""
    if now is None or complete_since is None:
        return {}
    if complete_since >= now - config.retention_days * SECONDS_PER_DAY:
        return {}
    return {"complete_since": pd.Timestamp(complete_since, unit="s").isoformat()}


def snapshot_identity(directory: Path) -> str:
    """What a state snapshot is known by (its state.json hashed: as_of, config, counts), so that a
    journal or a shared store can tell it was built on this one; one line if it is no snapshot."""
    path = directory / STATE_FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: --state must be an online state snapshot "
            "(featurize writes data/features/online_state)"
        )
    return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def read_snapshot(directory: str | Path) -> Snapshot:
    """A snapshot, checked: its format is this code's and its feature list what this code produces."""
    directory = Path(directory)
    meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"{directory / STATE_FILE}: format {meta.get('format')!r}, this code reads {FORMAT_VERSION}")
    try:
        config = FeatureConfig.parse(meta["features"], "features")
    except ConfigError as exc:
        raise DataError(f"{directory / STATE_FILE}: the saved features config does not parse: {exc}") from None
    if meta["feature_names"] != feature_names(config):
        raise DataError(f"{directory}: saved feature list differs from what this code produces for its config")
    tables = {k: read_parquet(directory / f) for k, f in LOCATION_FILES.items() if (directory / f).exists()}
    saved = meta.get("complete_since")
    return Snapshot(
        history=read_parquet(directory / HISTORY_FILE),
        config=config,
        customers=tables.get(CUSTOMER_ID),
        terminals=tables.get(TERMINAL_ID),
        now=None if meta["as_of"] is None else to_epoch_second(meta["as_of"]),
        complete_since=to_epoch_second(saved) if saved else None,
        periods=parse_periods(meta.get("periods")),
    )
