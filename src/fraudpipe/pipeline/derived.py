"""The settings that depend on a labelled file, chosen from its own daily counts, and what no
setting can fix (labels missing or not 0/1, too few frauds to learn or measure anything):
`fraudpipe data add` writes the first and refuses the second, naming the cause and the keys that
override the choice. Every choice meets the minimums of `rules`, which check_data checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD
from fraudpipe.pipeline.rules import (
    MIN_TEST_FRAUDS,
    MIN_THRESHOLD_FRAUDS,
    MIN_TRAIN_FRAUDS,
    fraud_flags,
    typical_daily_cards,
)

#: What data add aims for when the file has the frauds: a test period whose metrics hold still to a
#: few hundredths, a training period of a hundred frauds, ten to choose the threshold on. A file
#: with fewer shares them out (a quarter to the test period, the rest to training), down to the
#: minimums of `rules` that check_data checks; below those it is refused.
TARGET_TRAIN_FRAUDS = 100
TARGET_TEST_FRAUDS = 30
TARGET_THRESHOLD_FRAUDS = 10
TEST_SHARE = 0.25
MIN_PERIOD_DAYS = 7  # a whole week: weekday and weekend behaviour both present
LABEL_DELAY_DAYS = 7  # the handbook's label delay; a property of the fraud process, not the file
LIVE_DAYS = 7  # the last week, scored by infer and watched by monitor, as the monitor workflow retrains
MAX_FOLDS = 4
MAX_CARD_BUDGET = 100  # the handbook's card precision@100
CARD_BUDGET_SHARE = 0.1  # at most a tenth of a day's cards: checking most of them scores any model alike
#: The periods a user may fix (``data add --set``); the others are then chosen around them.
SPLIT_KEYS = ("split.live_days", "split.delay_days", "split.test_days", "split.train_days")


#: Label values that usually mean "fraud", to write the example of a 0/1 mapping the right way round.
_FRAUD_WORDS = frozenset({"1", "y", "yes", "true", "t", "fraud", "fraudulent"})


def label_problem(labels: pd.Series, column: str) -> str | None:
    """Why the labels of a file (its ``column``, as parsed into tx_fraud) cannot train a model, or
    None: no label at all, or labels other than 0 and 1. Rows without a label among labelled ones
    are unlabelled rows, not a problem."""
    present = labels.dropna()
    present = present[present.astype(str).str.strip() != ""]
    key = f"data.columns.tx_fraud: column {column!r}"
    if present.empty:
        return (
            f"{key} holds no labels (every value is missing): data add needs labelled transactions, "
            "1 for a fraud and 0 for a genuine one"
        )
    if pd.api.types.is_numeric_dtype(present) and present.isin([0, 1]).all():
        return None
    values = sorted({str(v).strip() for v in present.unique()})
    shown = ", ".join(repr(v) for v in values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")
    frauds = [v for v in values if v.lower() in _FRAUD_WORDS]
    if len(values) == 2 and len(frauds) == 1:
        example = ", ".join(f"{v!r}: {int(v in frauds)}" for v in values)
        how = f"(e.g. with pandas: df[{column!r}] = df[{column!r}].map({{{example}}}))"
    else:
        how = "(map each value to 1 (fraud) or 0 (genuine))"
    return (
        f"{key} holds {shown}, not 0/1 labels: write 1 for a fraud and 0 for a genuine transaction in the "
        f"file {how}, then add it again"
    )


@dataclass(frozen=True)
class Derived:
    """One setting chosen from the data, with the reason a user can check."""

    key: str
    value: object
    reason: str


@dataclass(frozen=True)
class SplitChoice:
    """The periods in whole days counted back from the end of the data (day indices half-open),
    and the frauds they hold."""

    n_days: int
    live_days: int
    delay_days: int
    test_days: int
    train_days: int
    test_goal: int
    daily: np.ndarray  # frauds per day, day 0 = the data's first day

    @property
    def test_end(self) -> int:
        return self.n_days - self.live_days

    @property
    def test_start(self) -> int:
        return self.test_end - self.test_days

    @property
    def train_end(self) -> int:
        return self.test_start - self.delay_days

    @property
    def train_start(self) -> int:
        return self.train_end - self.train_days

    def frauds(self, start: int, end: int) -> int:
        return int(self.daily[max(start, 0) : max(end, 0)].sum())


def _suffix_days(daily: np.ndarray, end: int, minimum: int, floor: int) -> int | None:
    """The fewest whole days ending before day ``end`` (>= ``floor``) that hold ``minimum`` frauds."""
    total = 0
    for length in range(1, end + 1):
        total += int(daily[end - length])
        if length >= floor and total >= minimum:
            return length
    return None


def _split_with(daily: np.ndarray, live: int, delay: int, fixed: Mapping[str, Any]) -> SplitChoice | None:
    """The test period: the fewest days before the live ones holding its share of the frauds; the
    training period: the fewest before the delay holding the target, else every day there is.
    None when either falls below its minimum."""
    n_days = len(daily)
    test_end = n_days - live
    if test_end < 1:
        return None
    share = round(TEST_SHARE * int(daily[:test_end].sum()))
    goal = int(min(TARGET_TEST_FRAUDS, max(MIN_TEST_FRAUDS, share)))
    test_days = fixed.get("split.test_days") or _suffix_days(daily, test_end, goal, MIN_PERIOD_DAYS)
    if test_days is None:
        return None
    train_end = test_end - int(test_days) - delay
    if train_end < 1:
        return None
    train_days = (
        fixed.get("split.train_days")
        or _suffix_days(daily, train_end, TARGET_TRAIN_FRAUDS, MIN_PERIOD_DAYS)
        or train_end
    )
    choice = SplitChoice(n_days, live, delay, int(test_days), int(train_days), goal, daily)
    if (
        choice.train_start < 0
        or choice.frauds(choice.test_start, choice.test_end) < MIN_TEST_FRAUDS
        or choice.frauds(choice.train_start, choice.train_end) < MIN_TRAIN_FRAUDS
    ):
        return None
    return choice


def choose_split(daily: np.ndarray, fixed: Mapping[str, Any]) -> SplitChoice | str:
    """The periods for a file's daily fraud counts, a live week first and none if the frauds of
    that week are needed; or why no split can learn and measure anything, with the keys to set."""
    delay = int(fixed.get("split.delay_days", LABEL_DELAY_DAYS))
    lives = [int(fixed["split.live_days"] or 0)] if "split.live_days" in fixed else [LIVE_DAYS, 0]
    for live in lives:
        if choice := _split_with(daily, live, delay, fixed):
            return choice
    given = ", ".join(f"{k}={fixed[k]}" for k in SPLIT_KEYS if k in fixed)
    return (
        f"the file holds {int(daily.sum())} frauds over {len(daily)} days"
        + (f" (with {given})" if given else "")
        + f": a test period needs at least {MIN_TEST_FRAUDS} and a training period at least {MIN_TRAIN_FRAUDS} "
        f"before it, {delay} days of label delay apart, or nothing can be learnt or measured; to choose the "
        "periods yourself add --set for any of " + ", ".join(SPLIT_KEYS) + " (e.g. --set split.delay_days=2 "
        "when labels arrive sooner; check_data holds them to the same minimums)"
    )


def _split_settings(c: SplitChoice) -> list[Derived]:
    test, train = c.frauds(c.test_start, c.test_end), c.frauds(c.train_start, c.train_end)
    uncertain = (
        f"; metrics on {test} frauds are uncertain: reports/metrics.json gives their intervals (*_ci_low, *_ci_high)"
    )
    live = (
        f"the last {c.live_days} days are live: infer scores them and monitor watches them"
        if c.live_days
        else "no live period: the file's last week is needed for its frauds (infer and monitor have nothing to do)"
    )
    reasons = {
        "split.live_days": live,
        "split.delay_days": "labels arrive about a week after the transaction (the handbook's delay)",
        "split.test_days": f"the {c.test_days} days {'before the live period' if c.live_days else 'at the end'} "
        f"hold {test} frauds "
        f"(aim: a quarter of the file's, {MIN_TEST_FRAUDS} to {TARGET_TEST_FRAUDS}){uncertain}",
        "split.train_days": f"days {c.train_start}..{c.train_end - 1} hold {train} frauds "
        f"(aim: {TARGET_TRAIN_FRAUDS}, at least {MIN_TRAIN_FRAUDS})",
    }
    values = {
        "split.live_days": c.live_days,
        "split.delay_days": c.delay_days,
        "split.test_days": c.test_days,
        "split.train_days": c.train_days,
    }
    return [Derived(k, values[k], reasons[k]) for k in SPLIT_KEYS]


def _threshold_days(c: SplitChoice) -> Derived:
    """The last training days holding the target frauds, if they are at most a third of training
    and leave the minimum to fit on; else 0 (in-sample)."""
    v = _suffix_days(c.daily, c.train_end, TARGET_THRESHOLD_FRAUDS, 1)
    if v is None or v > c.train_days // 3 or c.frauds(c.train_start, c.train_end - v) < MIN_TRAIN_FRAUDS:
        return Derived(
            "model.threshold_validation_days",
            0,
            f"fewer than {TARGET_THRESHOLD_FRAUDS} frauds in the last third of training, or too few left to fit "
            "on without them: the threshold is chosen in-sample",
        )
    return Derived(
        "model.threshold_validation_days",
        v,
        f"the last {v} training days hold {c.frauds(c.train_end - v, c.train_end)} frauds "
        f"(>= {TARGET_THRESHOLD_FRAUDS}; at least {MIN_THRESHOLD_FRAUDS})",
    )


def _folds(c: SplitChoice) -> Derived:
    """Backtest folds, each shifted back one test period, holding what the split itself holds."""
    need_train = min(TARGET_TRAIN_FRAUDS, c.frauds(c.train_start, c.train_end))
    need_test = min(c.test_goal, c.frauds(c.test_start, c.test_end))
    folds = 1
    while folds < MAX_FOLDS:
        shift = folds * c.test_days
        if (
            c.train_start - shift < 0
            or c.frauds(c.train_start - shift, c.train_end - shift) < need_train
            or c.frauds(c.test_start - shift, c.test_end - shift) < need_test
        ):
            break
        folds += 1
    return Derived(
        "split.n_folds",
        folds,
        f"{folds} backtest fold(s) fit in the data with as many frauds as the split (at most {MAX_FOLDS})",
    )


def _card_budget(transactions: pd.DataFrame, day: np.ndarray, c: SplitChoice) -> Derived:
    test = (day >= c.test_start) & (day < c.test_end)
    typical = typical_daily_cards(transactions.loc[test, CUSTOMER_ID], transactions.loc[test, TX_DATETIME]) or 1
    k = max(1, min(MAX_CARD_BUDGET, int(typical * CARD_BUDGET_SHARE)))
    return Derived(
        "evaluate.card_precision_k",
        k,
        f"a tenth of a typical test day's {typical} distinct cards (at most {MAX_CARD_BUDGET}): checking most "
        "of a day's cards would score any model alike",
    )


def _bands(transactions: pd.DataFrame, fraud: np.ndarray) -> list[Derived]:
    """The validation band and gate floors, from the file's own fraud rate, amounts and dates."""
    rate = float(fraud.mean())
    low, high = _significant(rate / 4), min(1.0, _significant(rate * 4))
    out = [
        Derived("validation.min_fraud_rate", low, f"a quarter of the file's fraud rate {rate:.4%}"),
        Derived("validation.max_fraud_rate", high, f"four times the file's fraud rate {rate:.4%}"),
        Derived(
            "validation.min_rows",
            min(1000, len(transactions)),
            f"a batch may not be smaller than this (ingest keeps {len(transactions):,} rows of the file)",
        ),
    ]
    amounts = transactions[TX_AMOUNT].to_numpy(dtype="float64", na_value=np.nan)
    amount = float(np.max(amounts, initial=0.0, where=np.isfinite(amounts)))  # inf and NaN are no amounts
    if amount > 100_000:
        ceiling = float(10 ** len(str(int(amount))))
        out.append(Derived("validation.max_amount", ceiling, f"the file's largest amount is {amount:,.2f}"))
    times = transactions[TX_DATETIME]
    first, last = times.min(), times.max()
    if first < pd.Timestamp("2000-01-01") or last > pd.Timestamp("2030-12-31T23:59:59"):
        out.append(Derived("validation.min_datetime", f"{first.year}-01-01T00:00:00", f"the file starts {first}"))
        out.append(Derived("validation.max_datetime", f"{last.year + 5}-12-31T23:59:59", f"the file ends {last}"))
    floor = _significant(max(2 * rate, 0.001))
    out.append(
        Derived(
            "evaluate.gate.minimums.average_precision",
            floor,
            f"twice the AP of a random ranking (the fraud rate {rate:.4%})",
        )
    )
    out.append(Derived("evaluate.gate.minimums.roc_auc", 0.6, "clearly better than a random ranking (0.5)"))
    return out


def _label_policy(transactions: pd.DataFrame, day: np.ndarray, c: SplitChoice) -> list[Derived]:
    """Unlabelled rows before the live period stop split (its train and test periods are labelled):
    preprocess quarantines them instead, counted and kept with their reason."""
    unlabelled = transactions[TX_FRAUD].isna().to_numpy()
    before = int(np.sum(unlabelled & (day < c.test_end)))
    if not before:
        return []
    live = int(np.sum(unlabelled)) - before
    also = f"; the {live:,} unlabelled live rows too" if live else ""
    return [
        Derived(
            "preprocess.missing.tx_fraud",
            "drop",
            f"{before:,} rows before the live period have no label: preprocess quarantines them "
            f"(data/quarantine/preprocess.parquet, reason missing_tx_fraud{also}), as split needs labelled "
            "training and test periods",
        )
    ]


def derive_settings(
    transactions: pd.DataFrame, fixed: Mapping[str, Any] | None = None
) -> tuple[list[Derived], list[str]]:
    """Split lengths (live, delay, test, training), threshold days, folds, CP@k budget, validation
    band and gate floors for a labelled table in the contract, from its own daily counts (dense and
    sparse weeks as they are, never an average); and the problems no setting can fix (no dated row,
    too few frauds). ``fixed``: settings the user chose (``data add --set``), kept as given, the others
    chosen around them."""
    fixed = dict(fixed or {})
    dated = transactions[TX_DATETIME].notna().to_numpy()
    if not dated.any():
        return [], [
            f"the table holds no transaction with a {TX_DATETIME} ({len(transactions):,} rows): nothing to split"
        ]
    if not dated.all():
        transactions = transactions[dated]
    times = transactions[TX_DATETIME]
    day = ((times - times.min().normalize()) // pd.Timedelta(days=1)).to_numpy()
    fraud = fraud_flags(transactions)
    daily = np.bincount(day[fraud], minlength=int(day.max()) + 1)
    choice = choose_split(daily, fixed)
    if isinstance(choice, str):
        return [], [choice]
    out = [
        *_split_settings(choice),
        _threshold_days(choice),
        _folds(choice),
        _card_budget(transactions, day, choice),
        *_bands(transactions, fraud),
        *_label_policy(transactions, day, choice),
    ]
    out = [Derived(d.key, fixed[d.key], f"given (--set); {d.reason}") if d.key in fixed else d for d in out]
    known = {d.key for d in out}
    return out + [Derived(key, value, "given (--set)") for key, value in fixed.items() if key not in known], []


def _significant(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")
