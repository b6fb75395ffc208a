"""The minimums every data-dependent setting must meet, and the one check of them.

`fraudpipe data add` chooses its settings so that they meet these minimums (`derived`), and
`check_data` (and `fraudpipe check`) checks whatever settings params.yaml holds against the same
minimums with this same code, so that the two cannot disagree: a split data add would refuse
fails check_data, and one it derives passes it. Below a minimum nothing can be learnt or measured;
above it a period is usable, however uncertain (evaluate puts intervals on the test metrics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.data.split import Periods, SplitConfig, periods
from fraudpipe.data.validate import ValidationConfig

#: Fewer frauds in a training period: nothing a model can learn from.
MIN_TRAIN_FRAUDS = 20
#: Fewer frauds in a test period: nothing its metrics can measure (AP takes one of a few values).
MIN_TEST_FRAUDS = 10
#: Fewer frauds in the held-out training days: a threshold chosen on them is one of a few scores.
MIN_THRESHOLD_FRAUDS = 5


def fraud_flags(transactions: pd.DataFrame) -> np.ndarray:
    """Labelled frauds (an unlabelled row is not a known fraud)."""
    return transactions[TX_FRAUD].fillna(0).to_numpy() == 1


def typical_daily_cards(cards: pd.Series, times: pd.Series) -> int | None:
    """The median number of distinct cards a day (None without rows): the CP@k budget's ceiling."""
    if cards.empty:
        return None
    return int(cards.groupby(times.dt.floor("D").to_numpy()).nunique().median())


def _between(times: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    return ((times >= start) & (times < end)).to_numpy()


def _fold_problems(times: pd.Series, fraud: np.ndarray, split: SplitConfig, bounds: Periods, what: str) -> list[str]:
    """A training and a test period that hold rows and the minimum frauds, inside the data."""
    first, last = times.min(), times.max()
    move = (
        "move split.train_start or lower split.train_days"
        if split.train_start is not None
        else "lower split.train_days or split.n_folds"
    )
    if bounds.train_start < first.normalize():
        return [f"{what}: training would start {bounds.train_start.date()}, before the data ({first.date()}); {move}"]
    problems = []
    for period, start, end, minimum, purpose, key in (
        (
            "training",
            bounds.train_start,
            bounds.delay_start,
            MIN_TRAIN_FRAUDS,
            "a model to learn from",
            "split.train_days",
        ),
        ("test", bounds.test_start, bounds.live_start, MIN_TEST_FRAUDS, "its metrics to measure", "split.test_days"),
    ):
        rows = _between(times, start, end)
        if not rows.any():
            problems.append(
                f"{what}: the {period} period {start.date()}..{end.date()} holds no transactions "
                f"(data {first.date()}..{last.date()}); {move}"
            )
        elif (frauds := int(fraud[rows].sum())) < minimum:
            problems.append(
                f"{what}: the {period} period {start.date()}..{end.date()} holds {frauds} fraud(s), fewer than "
                f"the {minimum} needed for {purpose}; raise {key}"
            )
    return problems


def threshold_problems(times: pd.Series, fraud: np.ndarray, bounds: Periods, days: int) -> list[str]:
    """The held-out training days that choose the threshold hold enough frauds, and the days
    before them enough to fit the provisional model on (nothing to check when ``days`` is 0)."""
    if not days:
        return []
    held_start = bounds.delay_start - pd.Timedelta(days=days)
    held = int(fraud[_between(times, held_start, bounds.delay_start)].sum())
    fitting = int(fraud[_between(times, bounds.train_start, held_start)].sum())
    problems = []
    if held < MIN_THRESHOLD_FRAUDS:
        problems.append(
            f"model.threshold_validation_days: the last {days} training day(s) hold {held} fraud(s), fewer than "
            f"the {MIN_THRESHOLD_FRAUDS} to choose a threshold on; raise it or set it to 0 (chosen in-sample)"
        )
    if fitting < MIN_TRAIN_FRAUDS:
        problems.append(
            f"model.threshold_validation_days: the training days before the last {days} hold {fitting} fraud(s), "
            f"fewer than the {MIN_TRAIN_FRAUDS} to fit on; lower it or set it to 0 (chosen in-sample)"
        )
    return problems


def card_budget_problem(k: int, typical: int | None) -> str | None:
    """A CP@k budget above a typical test day's cards (every card checked, whatever the model)."""
    if typical is not None and k > typical:
        return f"evaluate.card_precision_k: {k} is more than a typical test day's {typical} cards; lower it"
    return None


def settings_problems(
    transactions: pd.DataFrame,
    split: SplitConfig,
    threshold_validation_days: int,
    card_precision_k: int,
    validation: ValidationConfig,
) -> list[str]:
    """Every data-dependent setting that cannot work on these transactions, each with the key to
    change: periods outside the data or below their minimum frauds (the split and every backtest
    fold), threshold days (`model.threshold_validation_days`) below theirs, a CP@k budget
    (`evaluate.card_precision_k`) above the daily cards, a fraud rate or size the validation would
    refuse. Of the model and evaluate groups only these two keys are taken, so that check_data
    declares only them in dvc.yaml: a model parameter change does not rerun it."""
    require_columns(transactions, [TX_DATETIME, CUSTOMER_ID, TX_FRAUD], "the transactions")
    times = transactions[TX_DATETIME]
    fraud = fraud_flags(transactions)
    last = times.max()
    problems: list[str] = []
    for fold in range(split.n_folds):
        bounds = periods(split, last, shift_days=fold * split.test_days)
        what = "the split" if fold == 0 else f"backtest fold {fold} (split.n_folds)"
        if fold == 0:
            problems += threshold_problems(times, fraud, bounds, threshold_validation_days)
            test = _between(times, bounds.test_start, bounds.live_start)
            typical = typical_daily_cards(transactions.loc[test, CUSTOMER_ID], times[test])
            if problem := card_budget_problem(card_precision_k, typical):
                problems.append(problem)
        problems += _fold_problems(times, fraud, split, bounds, what)
    return problems + validation_problems(fraud, validation)


def validation_problems(fraud: Sequence[bool] | np.ndarray, validation: ValidationConfig) -> list[str]:
    """The fraud-rate band and the batch size the validation of ingest would refuse."""
    fraud = np.asarray(fraud)
    problems = []
    rate = float(fraud.mean()) if len(fraud) else 0.0
    if not validation.min_fraud_rate <= rate <= validation.max_fraud_rate:
        problems.append(
            f"validation.min_fraud_rate/validation.max_fraud_rate: the data's fraud rate {rate:.4%} is outside "
            f"[{validation.min_fraud_rate}, {validation.max_fraud_rate}]"
        )
    if len(fraud) < validation.min_rows:
        problems.append(f"validation.min_rows: {validation.min_rows} is more than the data's {len(fraud)} rows")
    return problems
