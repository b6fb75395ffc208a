"""fraudpipe.pipeline.onboarding: a user's file profiled, mapped, and the settings that depend on it derived
from its own daily counts; `fraudpipe data add` as a user types it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.pipeline.derived import MIN_TEST_FRAUDS, MIN_TRAIN_FRAUDS, derive_settings, label_problem
from fraudpipe.pipeline.onboarding import profile_columns, propose_mapping
from helpers.kaggle import contract_frame, kaggle_frame

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def kaggle() -> pd.DataFrame:
    return kaggle_frame()


def test_profiles_tell_ids_numbers_dates_and_labels_apart(kaggle):
    text = kaggle.astype(str)  # as a CSV is read: every cell text
    kinds = {p.name: p.kind for p in profile_columns(text)}
    assert kinds["trans_num"] == "text" and kinds["merchant"] == "text" and kinds["cc_num"] == "integer"
    assert kinds["amt"] == "number" and kinds["trans_date_trans_time"] == "datetime" and kinds["is_fraud"] == "label"


def test_leading_zeros_keep_a_column_text_and_say_why():
    (profile,) = profile_columns(pd.DataFrame({"card": ["007", "7", "12"]}))
    assert profile.kind == "text" and "'007' and '7' stay different" in profile.note


def test_the_proposed_mapping_of_the_kaggle_layout(kaggle):
    mapping = propose_mapping(profile_columns(kaggle.astype(str).rename(columns={"amt": "Amount"})))
    assert mapping == {
        "transaction_id": "trans_num",
        "tx_datetime": "trans_date_trans_time",
        "customer_id": "cc_num",
        "terminal_id": "merchant",
        "tx_amount": "Amount",
        "tx_fraud": "is_fraud",
        "customer_x": "long",
        "customer_y": "lat",
        "terminal_x": "merch_long",
        "terminal_y": "merch_lat",
    }


def test_the_users_choice_wins_and_a_column_is_used_once(kaggle):
    mapping = propose_mapping(profile_columns(kaggle.astype(str)), {"transaction_id": "unix_time"})
    assert mapping["transaction_id"] == "unix_time" and list(mapping.values()).count("unix_time") == 1


def _days(table: pd.DataFrame) -> np.ndarray:
    t = table["tx_datetime"]
    return ((t - t.min().normalize()) // pd.Timedelta(days=1)).to_numpy()


def test_derived_periods_hold_the_minimum_frauds_counted_on_the_data_itself(kaggle):
    table = contract_frame(kaggle)
    derived = {d.key: d.value for d in derive_settings(table)[0]}
    day, fraud = _days(table), table["tx_fraud"].to_numpy() == 1
    end = day.max() + 1
    test_start = end - derived["split.test_days"]
    train_end = test_start - derived["split.delay_days"]
    train_start = train_end - derived["split.train_days"]
    assert fraud[day >= test_start].sum() >= MIN_TEST_FRAUDS
    assert fraud[(day >= train_start) & (day < train_end)].sum() >= MIN_TRAIN_FRAUDS
    # the shortest such periods: one day less would not hold them
    assert fraud[day >= test_start + 1].sum() < MIN_TEST_FRAUDS or derived["split.test_days"] == 7
    rate = fraud.mean()
    assert derived["validation.min_fraud_rate"] < rate < derived["validation.max_fraud_rate"]
    daily_cards = table[day >= test_start].groupby(day[day >= test_start])["customer_id"].nunique()
    assert derived["evaluate.card_precision_k"] <= daily_cards.median()


def test_irregular_density_lengthens_the_period_where_frauds_are_sparse(kaggle):
    table = contract_frame(kaggle)
    base = {d.key: d.value for d in derive_settings(table)[0]}
    day = _days(table)
    sparse_end = table[
        ~((day >= day.max() - 30) & (table["tx_fraud"].to_numpy() == 1) & (np.arange(len(table)) % 2 == 0))
    ]
    thinner = {d.key: d.value for d in derive_settings(sparse_end.reset_index(drop=True))[0]}
    assert thinner["split.test_days"] > base["split.test_days"]


def test_too_few_frauds_is_a_problem_not_a_setting(kaggle):
    table = contract_frame(kaggle).assign(tx_fraud=np.int8(0))
    derived, problems = derive_settings(table)
    assert problems and "a test period needs" in problems[0]


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ([0, 1, 0], None),
        (pd.array([0, 1, pd.NA], dtype="Int8"), None),  # partly labelled: the rows without a label are unlabelled
        ([None, None], "column 'label' holds no labels (every value is missing)"),
        (["no", "yes", "no"], "column 'label' holds 'no', 'yes', not 0/1 labels"),
        (["N", "Y"], "df['label'] = df['label'].map({'N': 0, 'Y': 1})"),
        (["fraud", "genuine"], "df['label'] = df['label'].map({'fraud': 1, 'genuine': 0})"),
        ([1, 2, 1], "column 'label' holds '1', '2', not 0/1 labels"),
        (["a", "b", "c"], "map each value to 1 (fraud) or 0 (genuine)"),
    ],
)
def test_label_problems_name_the_column_and_the_fix(labels, problem):
    found = label_problem(pd.Series(labels), "label")
    assert found is None if problem is None else (found is not None and problem in found), found
