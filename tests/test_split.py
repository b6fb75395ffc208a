"""Time split: period boundaries, coverage, known-compromised removal, prequential folds."""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudpipe.data.split import (
    SplitConfig,
    iter_folds,
    periods,
    prequential_folds,
    read_folds,
    read_periods,
    remove_known_compromised,
    split_summary,
    time_split,
)
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.io import write_parquet

ROOT = Path(__file__).resolve().parents[1]
CONF = yaml.safe_load((ROOT / "conf/split/handbook.yaml").read_text())
HANDBOOK = SplitConfig.parse(CONF, "split")
START = pd.Timestamp("2018-07-25")
KEEP_ALL = SplitConfig.parse(CONF | {"remove_known_compromised": False, "n_folds": 1}, "split")


def table(rows: list[tuple[str | pd.Timestamp, int, int]]) -> pd.DataFrame:
    """A feature table (key columns + one feature) from (datetime, customer, fraud) rows."""
    frame = pd.DataFrame(rows, columns=["tx_datetime", "customer_id", "tx_fraud"])
    return pd.DataFrame(
        {
            "transaction_id": np.arange(len(frame), dtype="int64"),
            "tx_datetime": pd.to_datetime(frame["tx_datetime"], format="ISO8601").astype("datetime64[us]"),
            "customer_id": frame["customer_id"].astype("int64"),
            "terminal_id": np.zeros(len(frame), dtype="int64"),
            "tx_fraud": frame["tx_fraud"].astype("int8"),
            "tx_amount": np.ones(len(frame)),
        }
    )


def day(index: int, time: str = "12:00:00") -> pd.Timestamp:
    """A time on day `index` counted from the handbook's training start (day 0 = 2018-07-25)."""
    return START + pd.Timedelta(days=index) + pd.Timedelta(time)


def daily(first: int, last: int, customers: int = 3) -> pd.DataFrame:
    """One legitimate transaction per customer per day, days first..last."""
    return table([(day(d), c, 0) for d in range(first, last + 1) for c in range(customers)])


def ids(part: pd.DataFrame) -> set[int]:
    return set(part["transaction_id"])


def test_handbook_config_is_the_published_protocol():
    assert HANDBOOK.to_dict() == {
        "train_start": "2018-07-25",
        "train_days": 7,
        "delay_days": 7,
        "test_days": 7,
        "live_days": None,
        "remove_known_compromised": True,
        "n_folds": 4,
    }
    assert periods(HANDBOOK, None).train_start == START


RELATIVE = SplitConfig.parse(yaml.safe_load((ROOT / "conf/split/relative.yaml").read_text()), "split")


def test_the_relative_option_has_the_keys_of_the_calendar_one():
    assert set(RELATIVE.to_dict()) == set(HANDBOOK.to_dict()) and RELATIVE.train_start is None


@pytest.mark.parametrize("live_days", [None, 0, 3])
def test_a_relative_split_counts_back_from_the_last_day_of_the_data(live_days):
    change = {"train_days": 10, "delay_days": 7, "test_days": 5, "live_days": live_days, "n_folds": 1}
    config = SplitConfig.parse(RELATIVE.to_dict() | change, "split")
    data = daily(0, 59)  # three rows a day, days 0..59 from START
    last = data["tx_datetime"].max()
    bounds = periods(config, last)
    end = last.normalize() + pd.Timedelta(days=1) - pd.Timedelta(days=live_days or 0)
    assert bounds.live_start == end and bounds.test_start == end - pd.Timedelta(days=5)
    assert bounds.delay_start == bounds.test_start - pd.Timedelta(days=7)
    assert bounds.train_start == bounds.delay_start - pd.Timedelta(days=10)
    parts = time_split(data, config)
    assert (len(parts.train), len(parts.test), len(parts.live)) == (3 * 10, 3 * 5, 3 * (live_days or 0))
    assert parts.test["tx_datetime"].max() < bounds.live_start <= data["tx_datetime"].max() + pd.Timedelta(days=1)


def test_relative_folds_shift_back_by_the_test_period():
    config = SplitConfig.parse(
        RELATIVE.to_dict() | {"train_days": 7, "delay_days": 7, "test_days": 7, "n_folds": 3}, "split"
    )
    data = daily(0, 59)
    folds = prequential_folds(data, config)
    starts = [f.test_start for f in folds]
    assert starts[0] - starts[1] == starts[1] - starts[2] == pd.Timedelta(days=7)
    assert starts[0] == data["tx_datetime"].max().normalize() + pd.Timedelta(days=1) - pd.Timedelta(days=7)


def test_a_relative_split_on_an_empty_table_says_so():
    with pytest.raises(DataError, match="relative split"):
        periods(RELATIVE, None)


def test_period_bounds_are_midnights():
    parts = time_split(daily(-3, 40), HANDBOOK)
    assert (parts.train_start, parts.delay_start, parts.test_start, parts.live_start) == tuple(
        pd.Timestamp(d) for d in ("2018-07-25", "2018-08-01", "2018-08-08", "2018-08-15")
    )
    assert parts.live_end is None


def test_periods_are_the_boundaries_time_split_uses():
    bounds = periods(HANDBOOK, None)
    assert bounds.test_start == START + pd.Timedelta(days=7 + 7)  # train_start + train_days + delay_days
    assert (bounds.delay_start, bounds.live_start, bounds.live_end) == (
        START + pd.Timedelta(days=7),
        START + pd.Timedelta(days=21),
        None,
    )
    data = daily(-30, 40)
    for shift in (0, 7, 10):
        parts, moved = time_split(data, HANDBOOK, shift_days=shift), periods(HANDBOOK, None, shift_days=shift)
        assert (parts.train_start, parts.delay_start, parts.test_start, parts.live_start, parts.live_end) == (
            moved.train_start,
            moved.delay_start,
            moved.test_start,
            moved.live_start,
            moved.live_end,
        )
        assert moved.train_start == START - pd.Timedelta(days=shift)
    three_live_days = SplitConfig.parse(CONF | {"live_days": 3}, "split")
    assert periods(three_live_days, None).live_end == START + pd.Timedelta(days=24)


def test_a_transaction_at_midnight_belongs_to_the_later_period():
    tiny = pd.Timedelta(microseconds=1)
    rows = [
        (START - tiny, 0, 0),  # pre-train history
        (START, 0, 0),  # train
        (day(7, "00:00:00") - tiny, 0, 0),  # train
        (day(7, "00:00:00"), 0, 0),  # delay
        (day(14, "00:00:00") - tiny, 0, 0),  # delay
        (day(14, "00:00:00"), 0, 0),  # test
        (day(21, "00:00:00") - tiny, 0, 0),  # test
        (day(21, "00:00:00"), 0, 0),  # live
    ]
    parts = time_split(table(rows), KEEP_ALL)
    assert ids(parts.train) == {1, 2}
    assert ids(parts.delay) == {3, 4}
    assert ids(parts.test) == {5, 6}
    assert ids(parts.live) == {7}


def test_every_row_from_train_start_is_in_exactly_one_part_and_history_in_none():
    rng = np.random.default_rng(1)
    seconds = rng.integers(-5 * 86_400, 40 * 86_400, size=2_000)
    frame = table(
        [(START + pd.Timedelta(seconds=int(s)), int(c), 0) for s, c in zip(seconds, rng.integers(0, 50, 2_000))]
    )
    parts = time_split(frame, KEEP_ALL)
    found = [ids(getattr(parts, p)) for p in ("train", "delay", "test", "live")]
    assert sum(map(len, found)) == len(set().union(*found))  # no overlap
    history = ids(frame[frame["tx_datetime"] < START])
    assert set().union(*found) == ids(frame) - history and history
    # each part keeps the table's columns and row order
    assert list(parts.test.columns) == list(frame.columns)
    in_train = frame["transaction_id"].isin(ids(parts.train))
    assert parts.train["transaction_id"].tolist() == frame.loc[in_train, "transaction_id"].tolist()


def test_a_table_in_time_order_is_split_as_an_unordered_one():
    # In time order each period is a slice of the table; in any other order, a mask: the same rows.
    rng = np.random.default_rng(2)
    seconds = np.sort(rng.integers(-5 * 86_400, 40 * 86_400, size=2_000))
    seconds[100:110] = seconds[100]  # ties at a boundary's neighbourhood
    frame = table(
        [(START + pd.Timedelta(seconds=int(s)), int(c), 0) for s, c in zip(seconds, rng.integers(0, 50, 2_000))]
    )
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    for name in ("train", "delay", "test", "live"):
        ordered, unordered = getattr(time_split(frame, KEEP_ALL), name), getattr(time_split(shuffled, KEEP_ALL), name)
        assert not ordered.empty
        pd.testing.assert_frame_equal(ordered, unordered.sort_values("transaction_id", ignore_index=True))


def test_live_days_bounds_the_live_period():
    config = KEEP_ALL.model_copy(update={"live_days": 3})
    parts = time_split(daily(0, 40, customers=1), config)
    assert parts.live_end == pd.Timestamp("2018-08-18")
    assert len(parts.live) == 3
    assert parts.live["tx_datetime"].max() < parts.live_end


def test_known_compromised_cards_are_removed_from_the_test_set_by_the_handbooks_rule():
    """Day indices from training start; test days are 14..20 and a fraud on day F is known on
    test day T when F <= T - 8 (delay 7)."""
    rows = [
        (day(-2), 1, 1),  # card 1: fraud before training start -> ignored
        (day(3), 2, 1),  # card 2: fraud in training -> all test rows dropped
        (day(6, "23:59:59"), 3, 1),  # card 3: last training day -> known from day 14
        (day(7, "00:00:00"), 4, 1),  # card 4: first delay day -> known from day 15
        (day(10), 5, 1),  # card 5: delay day 10 -> known from day 18
        (day(14, "08:00:00"), 6, 1),  # card 6: a test-day fraud -> known from day 22 (after the test)
    ]
    # every card transacts (legitimately) on each test day, at midnight and at noon
    rows += [(day(d, t), c, 0) for d in range(14, 21) for t in ("00:00:00", "12:00:00") for c in range(1, 8)]
    frame = table(rows)
    parts = time_split(frame, HANDBOOK)
    kept_days = {c: sorted({(t - START).days for t in g}) for c, g in parts.test.groupby("customer_id")["tx_datetime"]}
    every_day = list(range(14, 21))
    assert kept_days == {1: every_day, 4: [14], 5: [14, 15, 16, 17], 6: every_day, 7: every_day}
    assert len(parts.test) == 14 + 2 + 8 + 15 + 14
    assert parts.test_rows_removed == 7 * 14 + 1 - len(parts.test)
    assert parts.test_frauds_removed == 0 and parts.test["tx_fraud"].sum() == 1
    # the removal never touches train, delay or live
    assert len(parts.train) == 2 and len(parts.delay) == 2


def test_known_cards_are_matched_by_text_ids_as_keys():
    """Text card ids are opaque keys: "007" and "7" are two cards, and the removal keeps the
    same rows as with the integer ids they replace."""
    rows = [(day(3), 2, 1), (day(3), 3, 0)] + [(day(d), c, 0) for d in range(14, 21) for c in (1, 2, 3)]
    frame = table(rows)
    names = {1: "7", 2: "007", 3: "fraud_Kirlin, Sporer and Mann"}
    text = frame.assign(
        customer_id=pd.array([names[c] for c in frame["customer_id"]], dtype="str"),
        transaction_id=pd.array([f"{hash_:040x}" for hash_ in frame["transaction_id"] * 7919], dtype="str"),
    )
    parts, text_parts = time_split(frame, HANDBOOK), time_split(text, HANDBOOK)
    assert set(text_parts.test["customer_id"]) == {"7", "fraud_Kirlin, Sporer and Mann"}  # card "007" had a fraud
    assert text_parts.test["customer_id"].dtype == "str"
    assert text_parts.test_rows_removed == parts.test_rows_removed == 7
    assert split_summary(text_parts) == split_summary(parts)


def test_removal_can_be_turned_off():
    frame = table([(day(3), 2, 1)] + [(day(d), 2, 0) for d in range(14, 21)])
    assert len(time_split(frame, KEEP_ALL).test) == 7
    assert len(time_split(frame, HANDBOOK).test) == 0


def _naive_removal(frame: pd.DataFrame, train_days: int, delay_days: int, test_days: int) -> set[int]:
    """The rule as the handbook states it, day by day: the known set grows by one day of labels."""
    known = {
        c
        for t, c, f in zip(frame.tx_datetime, frame.customer_id, frame.tx_fraud)
        if f and START <= t < day(train_days, "00:00:00")
    }
    kept = set()
    for i in range(test_days):
        test_day = train_days + delay_days + i
        newly = test_day - delay_days - 1  # the day whose labels arrive today
        if newly >= train_days:
            known |= {
                c
                for t, c, f in zip(frame.tx_datetime, frame.customer_id, frame.tx_fraud)
                if f and (t - START).days == newly and t >= START
            }
        kept |= {
            tid
            for tid, t, c in zip(frame.transaction_id, frame.tx_datetime, frame.customer_id)
            if t >= START and (t - START).days == test_day and c not in known
        }
    return kept


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-2 * 24, 15 * 24 - 1), st.integers(0, 3), st.booleans()), max_size=60),
    st.integers(1, 5),
    st.integers(0, 4),
    st.integers(1, 5),
)
def test_removal_matches_a_naive_day_by_day_implementation(events, train_days, delay_days, test_days):
    frame = table([(START + pd.Timedelta(hours=h), c, int(f)) for h, c, f in events])
    test_start = START + pd.Timedelta(days=train_days + delay_days)
    test = frame[(frame.tx_datetime >= test_start) & (frame.tx_datetime < test_start + pd.Timedelta(days=test_days))]
    kept = remove_known_compromised(frame, test, since=START, delay_days=delay_days)
    assert ids(kept) == _naive_removal(frame, train_days, delay_days, test_days)
    assert list(kept.columns) == list(frame.columns)


def test_prequential_folds_shift_back_by_the_test_length_and_tests_do_not_overlap():
    frame = daily(-30, 30)
    folds = prequential_folds(frame, HANDBOOK)
    assert len(folds) == 4
    base = time_split(frame, HANDBOOK)
    pd.testing.assert_frame_equal(folds[0].test, base.test)
    for k, fold in enumerate(folds):
        shift = pd.Timedelta(days=7 * k)
        assert fold.train_start == START - shift
        assert fold.test_start == base.test_start - shift
        assert fold.live_start - fold.test_start == pd.Timedelta(days=7)
        assert fold.train["tx_datetime"].min() >= fold.train_start
        assert fold.train["tx_datetime"].max() < fold.delay_start
        assert fold.test["tx_datetime"].min() >= fold.test_start
    for later, earlier in itertools.pairwise(folds):
        assert earlier.live_start == later.test_start  # adjacent test weeks
        assert not ids(earlier.test) & ids(later.test)


@pytest.mark.parametrize("relative", [False, True])
def test_the_rows_read_for_the_folds_give_the_folds_of_the_whole_table(relative, tmp_path):
    """`read_periods` drops the history before the earliest fold, `read_folds` the live period
    too; with the data's last time passed on, a relative split is placed as on the whole table."""
    base = RELATIVE.to_dict() | {"live_days": None} if relative else HANDBOOK.to_dict()
    config = SplitConfig.parse(base | {"train_days": 7, "delay_days": 7, "test_days": 7, "n_folds": 3}, "split")
    data = daily(-30, 70)
    data.loc[data.index % 7 == 0, "tx_fraud"] = 1
    path = tmp_path / "features.parquet"
    write_parquet(data, path)
    whole = prequential_folds(data, config)
    earliest, fold0 = whole[-1].train_start, whole[0]

    periods_table = read_periods(path, config, config.n_folds)
    assert periods_table["tx_datetime"].min() >= earliest and len(periods_table) == int(
        (data["tx_datetime"] >= earliest).sum()
    )
    folds_table, last_time = read_folds(path, config)
    assert last_time == data["tx_datetime"].max()
    assert folds_table["tx_datetime"].min() >= earliest and folds_table["tx_datetime"].max() < fold0.live_start
    assert len(folds_table) == len(periods_table) - len(fold0.live)  # a relative split without live days has none
    assert relative or len(fold0.live) > 0
    for full, read in zip(whole, iter_folds(folds_table, config, last_time), strict=True):
        assert read.test_start == full.test_start
        pd.testing.assert_frame_equal(read.train, full.train)
        pd.testing.assert_frame_equal(read.test, full.test)
        assert read.test_rows_removed == full.test_rows_removed > 0


def test_a_fold_before_the_data_is_a_clear_error():
    with pytest.raises(DataError, match=r"train period \[2018-07-04, 2018-07-11\) holds no transactions"):
        prequential_folds(daily(-14, 30), HANDBOOK)


def test_unlabelled_test_rows_are_refused():
    frame = daily(0, 30)
    frame["tx_fraud"] = frame["tx_fraud"].astype("Int8").mask(frame["tx_datetime"] >= day(14, "00:00:00"))
    with pytest.raises(DataError, match=r"test period .* rows with no tx_fraud"):
        time_split(frame, HANDBOOK)
    # unlabelled live data is expected
    frame = daily(0, 30)
    frame["tx_fraud"] = frame["tx_fraud"].astype("Int8").mask(frame["tx_datetime"] >= day(21, "00:00:00"))
    parts = time_split(frame, HANDBOOK)
    assert parts.live["tx_fraud"].isna().all() and split_summary(parts)["frauds_live"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_dayz": 7}, "split.train_dayz: unknown key (did you mean 'train_days'?"),
        ({"test_days": 0}, "split.test_days: must be >= 1, got 0"),
        ({"delay_days": -1}, "split.delay_days: must be >= 0, got -1"),
        ({"live_days": -2}, "split.live_days: must be >= 0, got -2"),
        ({"n_folds": "4"}, "split.n_folds: must be a whole number, got '4'"),
        ({"remove_known_compromised": "yes"}, "split.remove_known_compromised: must be true or false, got 'yes'"),
        (
            {"train_start": "2018-07-25 06:00"},
            "split.train_start: must be a date (midnight, no time zone), got '2018-07-25 06:00'",
        ),
        ({"train_start": "someday"}, "split.train_start: must be a date (YYYY-MM-DD), got 'someday'"),
    ],
)
def test_bad_config_names_the_full_key_and_the_value(change, message):
    with pytest.raises(ConfigError) as err:
        SplitConfig.parse(CONF | change, "split")
    assert message in str(err.value)


def test_a_yaml_date_is_taken_as_its_iso_text():
    config = SplitConfig.parse(CONF | {"train_start": datetime.date(2018, 7, 25)}, "split")
    assert config == HANDBOOK and config.train_start == "2018-07-25"


def test_summary_is_flat_and_numeric():
    frame = table([(day(3), 2, 1)] + [(day(d), c, 0) for d in range(-1, 25) for c in (1, 2)])
    summary = split_summary(time_split(frame, HANDBOOK))
    assert summary == {
        "rows_train": 15,
        "frauds_train": 1,
        "rows_delay": 14,
        "frauds_delay": 0,
        "rows_test": 7,
        "frauds_test": 0,
        "rows_live": 8,
        "frauds_live": 0,
        "test_rows_removed_known_frauds": 7,
        "test_frauds_removed_known_frauds": 0,
    }


def test_stage_writes_declared_outputs_deterministically(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": params["split"]}))
    frame = table([(day(3), 2, 1)] + [(day(d), c, 0) for d in range(-1, 25) for c in (1, 2)])
    write_parquet(frame, tmp_path / "data/features/features.parquet")
    digests = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "stages/split.py")], cwd=tmp_path, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        digests.append([(tmp_path / f"data/split/{p}.parquet").read_bytes() for p in ("train", "test", "live")])
    assert digests[0] == digests[1]
    summary = json.loads((tmp_path / "reports/split/summary.json").read_text())
    assert (summary["rows_train"], summary["rows_test"], summary["rows_live"]) == (15, 7, 8)
    assert len(pd.read_parquet(tmp_path / "data/split/test.parquet")) == 7


def test_with_label_arrival_times_training_uses_only_labels_known_by_the_test_start():
    """A table that records when labels arrived (the service's log): a training label counts only if
    it had come by the test start (day 14: training days 0-6 plus the 7-day delay); a missing label
    is unlabelled (left out and counted, never genuine); the test keeps every label that came."""
    t = daily(0, 20, customers=2)  # rows 2d, 2d+1 on day d
    t["tx_fraud"] = pd.array(t["tx_fraud"], dtype="Int8")
    t["label_known_at"] = pd.Series(pd.NaT, index=t.index, dtype="datetime64[us]")  # NaT: a batch label
    t.loc[0, "label_known_at"] = day(14, "00:00:00")  # came exactly at the cut-off: known
    t.loc[1, "label_known_at"] = day(14, "00:00:01")  # a second later: unknown as of the cut-off
    t.loc[2, "tx_fraud"] = pd.NA  # never labelled
    t.loc[[28, 29], "tx_fraud"] = pd.NA  # day 14, the test period: one card unlabelled there
    t.loc[30, "label_known_at"] = day(30)  # a test label that came late still judges the test
    parts = time_split(t, KEEP_ALL)
    assert ids(parts.train) == set(range(14)) - {1, 2}
    assert str(parts.train["tx_fraud"].dtype) == "int8" and str(parts.test["tx_fraud"].dtype) == "int8"
    assert ids(parts.test) == set(range(28, 42)) - {28, 29}
    assert (parts.train_rows_unlabelled, parts.test_rows_unlabelled) == (2, 2)
    summary = split_summary(parts)
    assert (summary["rows_train_unlabelled"], summary["rows_test_unlabelled"], summary["rows_train"]) == (2, 2, 12)
    assert "rows_train_unlabelled" not in split_summary(time_split(daily(0, 20), KEEP_ALL))  # no arrival times


def test_with_label_arrival_times_a_period_with_no_label_known_says_so():
    t = daily(0, 20)
    t["tx_fraud"] = pd.array(t["tx_fraud"], dtype="Int8")
    t["label_known_at"] = pd.Series(day(15), index=t.index, dtype="datetime64[us]")  # all after the cut-off
    with pytest.raises(
        DataError, match=r"the train period \[2018-07-25, 2018-08-01\) has 21 rows and no label arrived by"
    ):
        time_split(t, KEEP_ALL)
