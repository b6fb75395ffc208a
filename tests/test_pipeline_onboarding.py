"""fraudpipe.pipeline.onboarding: a user's file profiled, mapped, and the settings that depend on it derived
from its own daily counts; `fraudpipe data add` as a user types it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.config import compose, parse
from fraudpipe.pipeline.derived import (
    LIVE_DAYS,
    SPLIT_KEYS,
    TARGET_TEST_FRAUDS,
    TARGET_TRAIN_FRAUDS,
    derive_settings,
    label_problem,
)
from fraudpipe.pipeline.onboarding import (
    file_suffix,
    profile_columns,
    propose_mapping,
    source_config,
    unmapped_refusal,
)
from fraudpipe.pipeline.params import Params
from fraudpipe.pipeline.rules import MIN_TEST_FRAUDS, MIN_TRAIN_FRAUDS, settings_problems
from helpers.kaggle import contract_frame, kaggle_frame, small_kaggle_frame

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def kaggle() -> pd.DataFrame:
    return kaggle_frame()


def test_profiles_tell_ids_numbers_dates_and_labels_apart(kaggle):
    text = kaggle.astype(str)  # as a CSV is read: every cell text
    kinds = {p.name: p.kind for p in profile_columns(text)}
    assert kinds["trans_num"] == "text" and kinds["merchant"] == "text" and kinds["cc_num"] == "integer"
    assert kinds["amt"] == "number" and kinds["trans_date_trans_time"] == "datetime" and kinds["is_fraud"] == "label"


def test_a_label_with_missing_values_and_a_few_bad_dates_are_still_proposed(kaggle):
    """A CSV's 0/1 column with missing values is written 0.0/1.0; a couple of broken dates leave a
    datetime column a datetime (ingest quarantines those rows, the note says so)."""
    text = kaggle.head(1000).astype(str)
    text["is_fraud"] = text["is_fraud"].astype(float).astype(str)
    text.loc[[3, 7], "is_fraud"] = ""
    text.loc[[5, 9], "trans_date_trans_time"] = "31/02/2019 25:00"
    profiles = {p.name: p for p in profile_columns(text)}
    assert profiles["is_fraud"].kind == "label" and profiles["is_fraud"].missing == 2
    dates = profiles["trans_date_trans_time"]
    assert dates.kind == "datetime" and "2 value(s) are no datetime (e.g. '31/02/2019 25:00')" in dates.note
    mapping = propose_mapping(list(profiles.values()))
    assert mapping["tx_fraud"] == "is_fraud" and mapping["tx_datetime"] == "trans_date_trans_time"
    floats = profile_columns(pd.DataFrame({"Class": [0.0, 1.0, np.nan, 0.0]}))
    assert floats[0].kind == "label"
    text.loc[:19, "trans_date_trans_time"] = "yesterday"  # 2 % bad: more than ingest would take, so text
    assert {p.name: p.kind for p in profile_columns(text)}["trans_date_trans_time"] == "text"


def test_a_file_of_anonymised_components_is_told_why_it_cannot_be_added():
    rng = np.random.default_rng(0)
    ulb = pd.DataFrame({"Time": np.arange(50.0), **{f"V{i}": rng.normal(size=50) for i in range(1, 29)}})
    ulb["Amount"], ulb["Class"] = rng.uniform(1, 100, 50).round(2), ["0"] * 49 + ["1"]
    profiles = profile_columns(ulb.astype(str))
    mapping = propose_mapping(profiles)
    assert mapping == {"tx_amount": "Amount", "tx_fraud": "Class"}
    reason = unmapped_refusal(profiles, ["transaction_id", "tx_datetime", "customer_id", "terminal_id"])
    assert reason and "28 anonymised components (V1..V28" in reason and "no card, merchant or date column" in reason
    assert unmapped_refusal(profiles, ["tx_datetime"]) is None  # a --map can give a date-time column
    assert unmapped_refusal(profile_columns(kaggle_frame().head(50).astype(str)), ["customer_id"]) is None


def test_unlabelled_rows_before_the_live_period_are_quarantined_by_preprocess(kaggle):
    table = contract_frame(kaggle).astype({"tx_fraud": "Float64"})
    table.loc[[10, 20, 30], "tx_fraud"] = np.nan  # early in the file: training days
    derived = {d.key: d for d in derive_settings(table)[0]}
    policy = derived["preprocess.missing.tx_fraud"]
    assert policy.value == "drop" and policy.reason.startswith("3 rows before the live period have no label")
    assert "preprocess.missing.tx_fraud" not in {d.key for d in derive_settings(contract_frame(kaggle))[0]}


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


def _periods(table: pd.DataFrame, derived: dict) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Day index, fraud flags and the masks of the derived periods, counted back from the end."""
    day, fraud = _days(table), table["tx_fraud"].to_numpy() == 1
    test_end = day.max() + 1 - derived["split.live_days"]
    test_start = test_end - derived["split.test_days"]
    train_end = test_start - derived["split.delay_days"]
    train_start = train_end - derived["split.train_days"]
    masks = {
        "train": (day >= train_start) & (day < train_end),
        "test": (day >= test_start) & (day < test_end),
        "live": day >= test_end,
    }
    return day, fraud, masks


def _settings_problems(table: pd.DataFrame, derived: dict) -> list[str]:
    """check_data's check of the settings data add derived, composed as data add writes them."""
    p = parse(Params, compose(CONF, ["split=relative"] + [f"{k}={v}" for k, v in derived.items()]), "")
    return settings_problems(
        table, p.split, p.model.threshold_validation_days, p.evaluate.card_precision_k, p.validation
    )


def test_derived_periods_hold_the_target_frauds_counted_on_the_data_itself(kaggle):
    table = contract_frame(kaggle)
    derived = {d.key: d.value for d in derive_settings(table)[0]}
    day, fraud, masks = _periods(table, derived)
    assert derived["split.live_days"] == LIVE_DAYS and masks["live"].any()
    assert fraud[masks["test"]].sum() >= TARGET_TEST_FRAUDS
    assert fraud[masks["train"]].sum() >= TARGET_TRAIN_FRAUDS
    # the shortest such periods: one day less would not hold them
    test_start = day[masks["test"]].min()
    assert fraud[masks["test"] & (day > test_start)].sum() < TARGET_TEST_FRAUDS or derived["split.test_days"] == 7
    rate = fraud.mean()
    assert derived["validation.min_fraud_rate"] < rate < derived["validation.max_fraud_rate"]
    daily_cards = table[masks["test"]].groupby(day[masks["test"]])["customer_id"].nunique()
    assert 1 <= derived["evaluate.card_precision_k"] <= daily_cards.median() / 10
    assert _settings_problems(table, derived) == []


def test_a_small_file_is_split_to_use_the_frauds_it_has():
    """25,102 rows over 15 months with 123 frauds: most for training, enough for a test period,
    the label delay between them, a live week after; check_data passes what data add derived."""
    table = contract_frame(small_kaggle_frame())
    derived_list, problems = derive_settings(table)
    assert problems == []
    derived = {d.key: d.value for d in derived_list}
    day, fraud, masks = _periods(table, derived)
    train, test = int(fraud[masks["train"]].sum()), int(fraud[masks["test"]].sum())
    assert derived["split.delay_days"] == 7 and derived["split.live_days"] == LIVE_DAYS
    assert MIN_TEST_FRAUDS <= test <= TARGET_TEST_FRAUDS and train >= MIN_TRAIN_FRAUDS
    assert train > 2 * test and masks["train"][day == 0].all()  # training takes every day before the delay
    assert derived["split.n_folds"] == 1
    reasons = {d.key: d.reason for d in derived_list}
    assert "uncertain" in reasons["split.test_days"] and "_ci_low" in reasons["split.test_days"]
    assert _settings_problems(table, derived) == []


def test_check_data_refuses_the_periods_data_add_would_refuse():
    """The issue's disagreement: a training period of 5 frauds passed check_data."""
    table = contract_frame(small_kaggle_frame())
    derived = {d.key: d.value for d in derive_settings(table)[0]}
    day, fraud, _ = _periods(table, derived)
    end = day.max() + 1 - derived["split.live_days"] - derived["split.test_days"] - derived["split.delay_days"]
    days = next(n for n in range(1, end) if fraud[(day >= end - n) & (day < end)].sum() >= 5)
    short = derived | {"split.train_days": days, "model.threshold_validation_days": 0}
    text = " | ".join(_settings_problems(table, short))
    assert f"holds 5 fraud(s), fewer than the {MIN_TRAIN_FRAUDS} needed for a model to learn from" in text
    assert "raise split.train_days" in text


def test_too_few_frauds_is_refused_naming_the_keys_that_override_the_choice():
    table = contract_frame(small_kaggle_frame())
    fraud_rows = np.flatnonzero(table["tx_fraud"].to_numpy() == 1)
    table.loc[fraud_rows[::5].tolist() + fraud_rows[1::5].tolist() + fraud_rows[2::5].tolist(), "tx_fraud"] = 0
    table.loc[fraud_rows[3::5].tolist(), "tx_fraud"] = 0  # 24 frauds left over 15 months
    derived, problems = derive_settings(table)
    assert derived == [] and len(problems) == 1
    assert "holds 24 frauds over 456 days" in problems[0] and "nothing can be learnt or measured" in problems[0]
    assert all(f"{key}" in problems[0] for key in SPLIT_KEYS) and "--set" in problems[0]


def test_settings_given_are_kept_and_the_others_chosen_around_them():
    table = contract_frame(small_kaggle_frame())
    derived_list, problems = derive_settings(table, {"split.delay_days": 2, "split.live_days": 0})
    derived = {d.key: d.value for d in derived_list}
    reasons = {d.key: d.reason for d in derived_list}
    assert problems == [] and derived["split.delay_days"] == 2 and derived["split.live_days"] == 0
    assert reasons["split.delay_days"].startswith("given (--set)")
    assert not reasons["split.test_days"].startswith("given")
    assert _settings_problems(table, derived) == []


def test_irregular_density_lengthens_the_period_where_frauds_are_sparse(kaggle):
    table = contract_frame(kaggle)
    base = {d.key: d.value for d in derive_settings(table)[0]}
    day = _days(table)
    sparse_end = table[
        ~((day >= day.max() - 30) & (table["tx_fraud"].to_numpy() == 1) & (np.arange(len(table)) % 2 == 0))
    ]
    thinner = {d.key: d.value for d in derive_settings(sparse_end.reset_index(drop=True))[0]}
    assert thinner["split.test_days"] > base["split.test_days"]


def test_no_fraud_at_all_is_a_problem_not_a_setting(kaggle):
    table = contract_frame(kaggle).assign(tx_fraud=np.int8(0))
    derived, problems = derive_settings(table)
    assert derived == [] and problems and "a test period needs at least" in problems[0]


@pytest.mark.parametrize(
    ("name", "suffix", "kind"),
    [
        ("fraudTrain.csv.gz", (".csv", ".gz"), "csv"),
        ("sample.CSV.ZST", (".csv", ".zst"), "csv"),
        ("a.b.csv.bz2", (".csv", ".bz2"), "csv"),
        ("t.csv.zip", (".csv", ".zip"), "csv"),
        ("t.txt.xz", (".txt", ".xz"), "csv"),
        ("t.parquet", (".parquet", ""), "parquet"),
    ],
)
def test_compressed_csv_files_are_known_sources(name, suffix, kind):
    assert file_suffix(Path(name)) == suffix
    assert source_config(Path(name), {}, None)["source"] == kind


def test_other_endings_are_refused_naming_the_known_ones():
    from fraudpipe.errors import ConfigError

    with pytest.raises(ConfigError, match=r"a file ending in '\.gz' is not a known source; .*'\.csv\.gz'"):
        source_config(Path("data.parquet.gz"), {}, None)


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
