"""Transaction features, offline: the handbook's 15 baseline features and our extended set.

Implemented from the definitions in the handbook, ch. 3 "Baseline feature transformation" (its code is GPL and is
not used). ``fraudpipe.features.online`` computes the same features one transaction at a time; a parity
test holds the two together.

Time is whole epoch seconds (``contract.epoch_seconds``) and windows are continuous: "n days"
is ``n * 86400`` seconds, not calendar days.

Identifiers are opaque keys (``contract.ID_COLUMNS``): int64 or text columns give the same
features, since customers and terminals are grouped by integer codes (``contract.id_codes``:
the integers themselves, or ``pd.factorize`` of the text), never by Python objects.

Order and ties. A table is in the order of ``(tx_datetime, transaction_id)``, text ids in
lexicographic (code point) order, which is also the order in which online scoring sees
transactions. A feature of a transaction uses only the transactions up to and including itself
in that order (plus its own values), so a later transaction with the same timestamp never
counts: online, it has not arrived yet. Concretely:

- customer windows (t - n days, t] hold the current transaction and every *earlier* one of the
  customer with a time in the window, including those at exactly second t that precede it; this
  is also what pandas' time-based ``rolling`` does within a group;
- terminal windows (t - d - n days, t - d] hold earlier transactions only (with d > 0 they are
  necessarily earlier; with d = 0, ties at second t count when they precede);
- a missing label (``tx_fraud`` NA) counts as genuine in terminal risk: labels are assumed known
  once older than the delay, and no fraud report by then means none.

Speed: the windows are found by ``features.windows`` (a stable sort per key, ``searchsorted``
on a (key, time) composite, cumulative sums), so nothing loops over rows. Amount sums are exact
in cents (int64) plus a float residual for any sub-cent part, so a window sum does not inherit
the rounding error of a prefix sum over millions of rows. A window's extras are computed with it
and all windows reuse a few arrays: fresh memory (page faults) costs about as much as the arithmetic.

Locations (the distance feature): see ``features.inputs``, which checks the transactions and
finds each side's coordinates.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import AfterValidator, ConfigDict, Field, model_validator

from fraudpipe.config import AS_TUPLE, Config, rule_error
from fraudpipe.contract import (
    CUSTOMER_ID,
    KEY_COLUMNS,
    LABEL_TIME_COLUMNS,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TX_AMOUNT,
    TX_FRAUD,
    id_codes,
)
from fraudpipe.errors import DataError
from fraudpipe.features.inputs import CUSTOMER_TERMINAL_DISTANCE, check_transactions, transaction_locations
from fraudpipe.features.windows import ByKey, Columns, Repeats, prefix_sums

TX_DURING_WEEKEND = "tx_during_weekend"
TX_DURING_NIGHT = "tx_during_night"
NIGHT_LAST_HOUR = 6  # "night" is 00:00-06:59 (hour <= 6)

#: Extra features a config may ask for, in the order they appear in the table.
AMOUNT_RATIO = "amount_ratio"  # amount / customer's mean amount over the window
AMOUNT_ZSCORE = "amount_zscore"  # (amount - mean) / std over the customer's window, in cents
NB_TERMINALS = "nb_terminals"  # distinct terminals the customer used over the window
SECONDS_SINCE_PREV_TX = "seconds_since_prev_tx"  # capped at the longest customer window
# CUSTOMER_TERMINAL_DISTANCE (``features.inputs``) needs coordinates
EXTRAS: tuple[str, ...] = (AMOUNT_RATIO, AMOUNT_ZSCORE, NB_TERMINALS, SECONDS_SINCE_PREV_TX, CUSTOMER_TERMINAL_DISTANCE)
#: EXTRAS as a type (a type checker cannot read a Literal off a tuple); tests hold the two equal.
Extra = Literal["amount_ratio", "amount_zscore", "nb_terminals", "seconds_since_prev_tx", "customer_terminal_distance"]
WINDOWED_EXTRAS = frozenset({AMOUNT_RATIO, AMOUNT_ZSCORE, NB_TERMINALS})


def _distinct(windows: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(windows)) != len(windows):
        raise ValueError("must not repeat a window")
    return windows


#: Windows in whole days, each >= 1, none repeated.
Windows = Annotated[tuple[Annotated[int, Field(ge=1)], ...], AS_TUPLE, AfterValidator(_distinct)]


class FeatureConfig(Config):
    """Which features, over which windows (conf/features/); ``name`` is the key ``set``."""

    model_config = ConfigDict(serialize_by_alias=True)

    name: str = Field(alias="set")
    customer_windows: Windows
    terminal_windows: Windows
    delay_days: int = Field(ge=0)
    extras: Annotated[tuple[Extra, ...], AS_TUPLE]
    extra_windows: Windows

    @model_validator(mode="after")
    def _gap_has_a_cap(self) -> FeatureConfig:
        if SECONDS_SINCE_PREV_TX in self.extras and not self.customer_horizon_days:
            rule = f"{SECONDS_SINCE_PREV_TX!r} is capped at the longest customer window, and customer_windows has none"
            raise rule_error(rule, list(self.extras), key="extras")
        return self

    @property
    def customer_extra_windows(self) -> tuple[int, ...]:
        """Windows of the windowed extras, empty when none is asked for."""
        return self.extra_windows if WINDOWED_EXTRAS & set(self.extras) else ()

    @property
    def customer_horizon_days(self) -> int:
        """How far back any customer feature looks."""
        return max(self.customer_windows + self.customer_extra_windows + (0,))

    @property
    def terminal_horizon_days(self) -> int:
        return self.delay_days + max(self.terminal_windows) if self.terminal_windows else 0

    @property
    def retention_days(self) -> int:
        """History the online state must keep: older transactions can no longer change a feature."""
        return max(self.customer_horizon_days, self.terminal_horizon_days)

    @property
    def needs_locations(self) -> bool:
        return CUSTOMER_TERMINAL_DISTANCE in self.extras


def feature_names(config: FeatureConfig) -> list[str]:
    """The model inputs, in table order (``contract.feature_columns`` of the output)."""
    names = [TX_AMOUNT, TX_DURING_WEEKEND, TX_DURING_NIGHT]
    for n in config.customer_windows:
        names += [f"customer_id_nb_tx_{n}day_window", f"customer_id_avg_amount_{n}day_window"]
    for n in config.terminal_windows:
        names += [f"terminal_id_nb_tx_{n}day_window", f"terminal_id_risk_{n}day_window"]
    for extra in EXTRAS:
        if extra not in config.extras:
            continue
        if extra in WINDOWED_EXTRAS:
            names += [f"customer_id_{extra}_{n}day_window" for n in config.extra_windows]
        elif extra == SECONDS_SINCE_PREV_TX:
            names.append(f"customer_id_{extra}")
        else:
            names.append(extra)
    return names


# --- definitions shared with the online path (one formula each) ------------------------------


def calendar_flags(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weekend, night) as 0.0/1.0: weekday >= 5 (Saturday, Sunday); hour <= 6."""
    seconds = np.asarray(seconds, dtype=np.int64)
    weekday = (seconds // SECONDS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    hour = (seconds % SECONDS_PER_DAY) // 3600
    return (weekday >= 5).astype(np.float64), (hour <= NIGHT_LAST_HOUR).astype(np.float64)


def split_cents(amount: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Amount = cents / 100 + residual, with integer cents: sums of cents are exact."""
    amount = np.asarray(amount, dtype=np.float64)
    cents = np.rint(amount * 100.0).astype(np.int64)
    return cents, amount - cents / 100.0


def window_mean(
    cents_sum: np.ndarray, residual_sum: npt.ArrayLike, count: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    mean = np.divide(cents_sum, 100.0, out=out)
    mean += residual_sum
    mean /= count
    return mean


def amount_ratio(amount: npt.ArrayLike, mean: npt.ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """amount / mean; the window holds the amount itself, so mean is 0 only when all amounts are: 1.

    ``out`` may be ``mean`` itself: the offline path computes in place.
    """
    amount, mean = np.asarray(amount, dtype=np.float64), np.asarray(mean, dtype=np.float64)
    positive = mean > 0
    if out is None:
        out = np.empty(np.broadcast_shapes(amount.shape, mean.shape))
    np.divide(amount, mean, out=out, where=positive)
    np.copyto(out, 1.0, where=~positive)
    return out


def amount_zscore(
    cents: np.ndarray, s1: np.ndarray, s2: np.ndarray, count: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """z-score of the amount in cents from exact window sums of cents and cents²; 0 when std is 0.

    Integer sums make the result identical offline and online (same floats, same operations).
    """
    k = np.asarray(count, dtype=np.float64)
    shape = np.broadcast_shapes(np.shape(cents), np.shape(s1), np.shape(s2), k.shape)
    z = np.divide(s1, k, out=np.empty(shape) if out is None else out, dtype=np.float64)  # the mean, for now
    var = np.divide(s2, k, out=np.empty(shape), dtype=np.float64)
    var -= z * z
    positive = var > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.subtract(cents, z, out=z, dtype=np.float64)
        z /= np.sqrt(var, out=var)
    np.copyto(z, 0.0, where=~positive)
    return z


def distance(
    cx: npt.ArrayLike, cy: npt.ArrayLike, tx: npt.ArrayLike, ty: npt.ArrayLike, out: np.ndarray | None = None
) -> np.ndarray:
    """Euclidean distance between (cx, cy) and (tx, ty), in the units of the coordinates."""
    dx = np.asarray(cx, dtype=np.float64) - np.asarray(tx, dtype=np.float64)
    dy = np.asarray(cy, dtype=np.float64) - np.asarray(ty, dtype=np.float64)
    return np.hypot(dx, dy, out=out)


# --- offline computation ---------------------------------------------------------------------


def _customer_features(
    features: Columns, config: FeatureConfig, by: ByKey, terminals: ByKey, amount: np.ndarray
) -> None:
    """Customer windows (t - n, t]: rows start..i of the customer in grouped order, i included.

    A window's extras are computed with it, from its arrays, and every window reuses the same
    arrays: on a busy machine fresh memory costs about as much as the arithmetic done in it.
    """
    n = len(amount)
    extras = set(config.extras)
    cents, residual = split_cents(amount[by.order])
    cents_prefix = prefix_sums(cents)
    residual_prefix = prefix_sums(residual) if residual.any() else None  # all zero for amounts in cents
    del residual
    if AMOUNT_ZSCORE in extras:
        if len(cents) and int(np.abs(cents).max()) > 3_000_000_000:
            raise DataError(
                f"{AMOUNT_ZSCORE}: column {TX_AMOUNT!r} exceeds 30,000,000, too large for exact sums of squares"
            )
        squares_prefix = prefix_sums(cents * cents)  # int64 wraps; window differences stay exact
        squares = np.empty(n, dtype=np.int64)
    repeats = Repeats(by, terminals) if NB_TERMINALS in extras else None
    end = np.arange(1, n + 1)
    start, sums, count, mean = np.empty(n, dtype=np.intp), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n)
    for days in dict.fromkeys(config.customer_windows + config.customer_extra_windows):
        by.after(days * SECONDS_PER_DAY, out=start)
        np.subtract(end, start, out=count, dtype=np.float64)
        np.subtract(cents_prefix[1:], np.take(cents_prefix, start, out=sums), out=sums)
        window_mean(
            sums, 0.0 if residual_prefix is None else residual_prefix[1:] - residual_prefix[start], count, out=mean
        )
        if days in config.customer_windows:
            by.to_table(count, features[f"customer_id_nb_tx_{days}day_window"])
            table_mean = by.to_table(mean, features[f"customer_id_avg_amount_{days}day_window"])
        if days not in config.customer_extra_windows:
            continue
        if AMOUNT_RATIO in extras:
            column = features[f"customer_id_{AMOUNT_RATIO}_{days}day_window"]
            amount_ratio(
                amount, table_mean if days in config.customer_windows else by.to_table(mean, column), out=column
            )
        # the mean is spent: its array takes the other extras in turn
        if AMOUNT_ZSCORE in extras:
            np.subtract(squares_prefix[1:], np.take(squares_prefix, start, out=squares), out=squares)
            by.to_table(
                amount_zscore(cents, sums, squares, count, out=mean),
                features[f"customer_id_{AMOUNT_ZSCORE}_{days}day_window"],
            )
        if repeats is not None:
            by.to_table(repeats.distinct(start, out=mean), features[f"customer_id_{NB_TERMINALS}_{days}day_window"])
    if SECONDS_SINCE_PREV_TX in extras:
        cap = config.customer_horizon_days * SECONDS_PER_DAY
        gap = np.full(n, cap, dtype=np.float64)
        gap[1:] = np.where(by.first[1:], cap, np.minimum(by.gaps(), cap))
        by.to_table(gap, features[f"customer_id_{SECONDS_SINCE_PREV_TX}"])


def _terminal_features(features: Columns, config: FeatureConfig, by: ByKey, fraud: np.ndarray) -> None:
    """Terminal windows (t - d - n, t - d]: earlier rows of the terminal only."""
    if not config.terminal_windows:
        return
    n = len(fraud)
    fraud_prefix = prefix_sums(fraud[by.order])
    stop = np.minimum(by.after(config.delay_days * SECONDS_PER_DAY), np.arange(n))
    frauds_to_stop = fraud_prefix[stop]
    start, prefix, values = np.empty(n, dtype=np.intp), np.empty(n, dtype=np.int64), np.empty(n)
    for days in config.terminal_windows:
        by.after((config.delay_days + days) * SECONDS_PER_DAY, out=start)
        count = by.to_table(
            np.subtract(stop, start, out=values, dtype=np.float64), features[f"terminal_id_nb_tx_{days}day_window"]
        )
        frauds = np.subtract(frauds_to_stop, np.take(fraud_prefix, start, out=prefix), out=values, dtype=np.float64)
        risk = by.to_table(frauds, features[f"terminal_id_risk_{days}day_window"])
        np.divide(risk, count, out=risk, where=count > 0)  # an empty window has no frauds: risk 0


def build_features(
    tx: pd.DataFrame,
    config: FeatureConfig,
    customers: pd.DataFrame | None = None,
    terminals: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The feature table: KEY_COLUMNS (and ``contract.LABEL_TIME_COLUMNS`` when ``tx`` has them: the
    split needs them), then ``feature_names(config)`` (float64), rows as in ``tx``.

    ``tx`` must be sorted by (tx_datetime, transaction_id). Only the distance feature uses
    locations: the transactions' coordinate columns, else ``customers``/``terminals`` (id, x, y).
    The coordinates are not carried into the table: they are no model inputs.
    """
    seconds = check_transactions(tx)
    n = len(tx)
    amount = tx[TX_AMOUNT].to_numpy(np.float64)
    customer = id_codes(tx[CUSTOMER_ID], CUSTOMER_ID)
    terminal = id_codes(tx[TERMINAL_ID], TERMINAL_ID)
    features = Columns(feature_names(config), n)
    if config.needs_locations:
        cx, cy = transaction_locations(tx, CUSTOMER_ID, customers, customer)
        tx_, ty = transaction_locations(tx, TERMINAL_ID, terminals, terminal)
        distance(cx, cy, tx_, ty, out=features[CUSTOMER_TERMINAL_DISTANCE])
        del cx, cy, tx_, ty
    features[TX_AMOUNT] = amount
    features[TX_DURING_WEEKEND], features[TX_DURING_NIGHT] = calendar_flags(seconds)
    lag = config.retention_days * SECONDS_PER_DAY
    by_c, by_t = ByKey(customer, seconds, lag), ByKey(terminal, seconds, lag)
    del seconds

    _customer_features(features, config, by_c, by_t, amount)
    del by_c
    fraud = tx[TX_FRAUD].fillna(0).to_numpy(np.int64) if TX_FRAUD in tx else np.zeros(n, np.int64)
    _terminal_features(features, config, by_t, fraud)

    keys = {c: tx[c].array for c in (*KEY_COLUMNS, *LABEL_TIME_COLUMNS) if c in tx}
    if TX_FRAUD not in keys:
        keys[TX_FRAUD] = pd.array([pd.NA] * n, dtype="Int8")
    return pd.concat([pd.DataFrame(keys), features.frame()], axis=1)
