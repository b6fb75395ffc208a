"""The settings that depend on a labelled file, chosen from its own daily counts, and what no
setting can fix (labels missing or not 0/1, too few frauds): `fraudpipe data add` writes the first
and refuses the second, naming the cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fraudpipe.contract import CUSTOMER_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD

#: Fewer frauds than these make a period's metrics noise (AP on a handful of frauds swings by
#: tenths) or leave a model nothing to learn from.
MIN_TRAIN_FRAUDS = 100
MIN_TEST_FRAUDS = 30
MIN_THRESHOLD_FRAUDS = 10
MIN_PERIOD_DAYS = 7  # a whole week: weekday and weekend behaviour both present
LABEL_DELAY_DAYS = 7  # the handbook's label delay; a property of the fraud process, not the file
MAX_FOLDS = 4
MAX_CARD_BUDGET = 100  # the handbook's card precision@100


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


def _suffix_days(daily: pd.Series, end: int, minimum: int, floor: int) -> int | None:
    """The fewest whole days ending before day ``end`` (>= ``floor``) that hold ``minimum`` frauds."""
    total = 0
    for length in range(1, end + 1):
        total += int(daily.iloc[end - length])
        if length >= floor and total >= minimum:
            return length
    return None


def derive_settings(transactions: pd.DataFrame) -> tuple[list[Derived], list[str]]:
    """Split lengths, threshold days, folds, CP@k budget, validation band and gate floors for a
    labelled table in the contract, from its own daily counts (dense and sparse weeks as they
    are, never an average); and the problems no setting can fix (too few frauds)."""
    times = transactions[TX_DATETIME]
    day = ((times - times.min().normalize()) // pd.Timedelta(days=1)).to_numpy()
    n_days = int(day.max()) + 1
    fraud = transactions[TX_FRAUD].fillna(0).to_numpy() == 1
    daily_frauds = pd.Series(fraud).groupby(day).sum().reindex(range(n_days), fill_value=0)
    out: list[Derived] = []
    problems: list[str] = []
    total_frauds, rate = int(fraud.sum()), float(fraud.mean())

    test_days = _suffix_days(daily_frauds, n_days, MIN_TEST_FRAUDS, MIN_PERIOD_DAYS)
    if test_days is None:
        problems.append(
            f"the file holds {total_frauds} frauds over {n_days} days; a test period needs {MIN_TEST_FRAUDS}"
        )
        return out, problems
    test_start = n_days - test_days
    out.append(
        Derived(
            "split.test_days",
            test_days,
            f"the last {test_days} days hold {int(daily_frauds.iloc[test_start:].sum())} frauds (>= {MIN_TEST_FRAUDS})",
        )
    )
    delay = LABEL_DELAY_DAYS
    out.append(
        Derived("split.delay_days", delay, "labels arrive about a week after the transaction (the handbook's delay)")
    )
    train_end = test_start - delay
    train_days = (
        _suffix_days(daily_frauds, max(train_end, 0), MIN_TRAIN_FRAUDS, MIN_PERIOD_DAYS) if train_end > 0 else None
    )
    if train_days is None:
        problems.append(
            "before the test and delay periods the file holds "
            f"{int(daily_frauds.iloc[: max(train_end, 0)].sum())} frauds over "
            f"{max(train_end, 0)} days; training needs {MIN_TRAIN_FRAUDS}"
        )
        return out, problems
    train_start = train_end - train_days
    out.append(
        Derived(
            "split.train_days",
            train_days,
            f"days {train_start}..{train_end - 1} hold {int(daily_frauds.iloc[train_start:train_end].sum())} "
            f"frauds (>= {MIN_TRAIN_FRAUDS})",
        )
    )

    v = _suffix_days(daily_frauds, train_end, MIN_THRESHOLD_FRAUDS, 1)
    if v is None or v > train_days // 3:
        out.append(
            Derived(
                "model.threshold_validation_days",
                0,
                f"fewer than {MIN_THRESHOLD_FRAUDS} frauds in the last third of training: "
                "the threshold is chosen in-sample",
            )
        )
    else:
        out.append(
            Derived(
                "model.threshold_validation_days",
                v,
                f"the last {v} training days hold {int(daily_frauds.iloc[train_end - v : train_end].sum())} "
                f"frauds (>= {MIN_THRESHOLD_FRAUDS})",
            )
        )

    folds = 1
    while folds < MAX_FOLDS:
        shift = folds * test_days
        start, t_start = train_start - shift, test_start - shift
        if (
            start < 0
            or daily_frauds.iloc[start : train_end - shift].sum() < MIN_TRAIN_FRAUDS
            or daily_frauds.iloc[t_start : t_start + test_days].sum() < MIN_TEST_FRAUDS
        ):
            break
        folds += 1
    out.append(
        Derived(
            "split.n_folds",
            folds,
            f"{folds} backtest fold(s) fit in the data with enough frauds in each (at most {MAX_FOLDS})",
        )
    )

    test_rows = day >= test_start
    daily_cards = transactions.loc[test_rows, CUSTOMER_ID].groupby(day[test_rows]).nunique()
    typical = int(daily_cards.median())
    k = max(1, min(MAX_CARD_BUDGET, typical))
    out.append(
        Derived(
            "evaluate.card_precision_k",
            k,
            f"a typical test day has {typical} distinct cards (budget at most {MAX_CARD_BUDGET})",
        )
    )

    low, high = _significant(rate / 4), min(1.0, _significant(rate * 4))
    out.append(Derived("validation.min_fraud_rate", low, f"a quarter of the file's fraud rate {rate:.4%}"))
    out.append(Derived("validation.max_fraud_rate", high, f"four times the file's fraud rate {rate:.4%}"))
    out.append(
        Derived(
            "validation.min_rows",
            min(1000, len(transactions)),
            f"a batch may not be smaller than this (the file has {len(transactions):,} rows)",
        )
    )
    amount = float(transactions[TX_AMOUNT].max())
    if amount > 100_000:
        ceiling = float(10 ** len(str(int(amount))))
        out.append(Derived("validation.max_amount", ceiling, f"the file's largest amount is {amount:,.2f}"))
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
    return out, problems


def _significant(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")
