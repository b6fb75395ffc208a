"""Champion against challenger on the labelled shadow rows: the figures against independent references
(scikit-learn's average precision, a card precision@k counted by hand), the paired bootstrap, each
verdict, the rows left out and counted, the window read from a real service log, and the stage writing
reports/monitoring/challenger.json in the tiny pipeline.

`fraudpipe serve --shadow` adds ``shadow_score``, ``shadow_model`` and ``shadow_alert`` to its log's
scored table. Until the service writes them, the tests that read a real journal add them to the scored
table read from it, as the service will write them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import average_precision_score

from fraudpipe.config import compose
from fraudpipe.errors import DataError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState
from fraudpipe.metrics import day_resamples
from fraudpipe.model import load_bundle
from fraudpipe.monitoring.challenger import (
    COMPARISON_KEYS,
    KEEP,
    NO_SHADOW,
    PROMOTE,
    UNDECIDED,
    Scored,
    compare_shadow,
    decide,
    scored_at,
)
from fraudpipe.monitoring.config import ChallengerChecks, MonitorConfig
from fraudpipe.monitoring.window import Shadow, service_log_window
from fraudpipe.serve.schema import LabelIn
from fraudpipe.serve.service import Service
from fraudpipe.servicelog import SHADOW_ALERT, SHADOW_MODEL, SHADOW_SCORE, read_service_log
from helpers.repo import clone_repo, sh
from helpers.serve import config as serve_config
from helpers.serve import tx, world
from helpers.stages import run_stage_in_process

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = MonitorConfig.parse(compose(ROOT / "conf")["monitor"], "monitor").challenger


def checks(**changes: object) -> ChallengerChecks:
    """The default monitor.challenger with ``changes`` (a few resamples: the tests need no 1,000)."""
    interval = DEFAULTS.interval.model_copy(update={"resamples": 200})
    return DEFAULTS.model_copy(update={"interval": interval, "min_frauds": 5, "min_days": 3} | changes)


def traffic(n_days: int = 10, per_day: int = 300, seed: int = 0) -> pd.DataFrame:
    """Transactions of 150 cards over ``n_days`` days, 5% fraud, in time order, every label known."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    times = pd.Timestamp("2018-09-01") + pd.to_timedelta(np.sort(rng.integers(0, n_days * 86400, n)), unit="s").astype(
        "timedelta64[us]"
    )
    return pd.DataFrame(
        {
            "tx_datetime": times,
            "customer_id": rng.integers(0, 150, n),
            "tx_fraud": pd.array((rng.random(n) < 0.05).astype(np.int8), dtype="Int8"),
        }
    )


def noisy(frame: pd.DataFrame, noise: float, seed: int) -> np.ndarray:
    """Scores that rank the frauds first the less ``noise`` there is."""
    rng = np.random.default_rng(seed)
    return frame["tx_fraud"].to_numpy(np.float64) * 0.5 + rng.random(len(frame)) * noise


def at_rate(version: str, scores: np.ndarray, rate: float = 0.05) -> Scored:
    """A model alerting on the share ``rate`` of the rows, as a threshold chosen for it would."""
    return scored_at(version, scores, float(np.quantile(scores, 1 - rate)))


def logged_shadow(model: Scored, scored: np.ndarray | None = None, version: str | None = None) -> Shadow:
    """What the log holds of a challenger: its scores where it scored (``scored``), its version, its alerts."""
    scored = np.ones(len(model.scores), dtype=bool) if scored is None else scored
    return Shadow(
        np.where(scored, model.scores, np.nan),
        np.where(scored, version or model.version, "").astype(object),
        None if model.alerts is None else model.alerts & scored,
    )


def compare(frame: pd.DataFrame, champion: Scored, shadow: Shadow | None, **options: object):
    """``compare_shadow`` with every label counting (no delay, no known-compromised removal), k = 10 and the
    band of monitoring around a 5% alert rate, unless ``options`` say otherwise."""
    kwargs = {
        "k": 10,
        "delay_days": 0,
        "remove_known": False,
        "reference_alert_rate": 0.05,
        "alert_rate_change": 0.5,
        "config": checks(),
    } | options
    return compare_shadow(frame, champion, shadow, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pair():
    frame = traffic()
    return frame, at_rate("champion-1", noisy(frame, 1.0, 1)), at_rate("challenger-2", noisy(frame, 0.6, 2))


# --- the figures ---------------------------------------------------------------------------------------


def test_average_precision_and_alert_rate_match_scikit_learn_and_the_paired_interval_resamples_days(pair):
    frame, champion, challenger = pair
    config = checks(interval=DEFAULTS.interval.model_copy(update={"resamples": 40, "seed": 3}))
    m = compare(frame, champion, logged_shadow(challenger), config=config).metrics
    labels = frame["tx_fraud"].to_numpy(np.int8)
    for side, model in (("champion", champion), ("challenger", challenger)):
        assert m[f"{side}_average_precision"] == pytest.approx(average_precision_score(labels, model.scores), abs=1e-12)
        assert m[f"{side}_alert_rate"] == pytest.approx(model.alerts.mean(), abs=1e-12)
    assert m["diff_average_precision"] == pytest.approx(
        m["challenger_average_precision"] - m["champion_average_precision"]
    )

    # The reference interval: every resample of days as weights for scikit-learn, the same days for both models.
    days = frame["tx_datetime"].dt.floor("D")
    day_of_row = np.unique(days.to_numpy(), return_inverse=True)[1]
    counts = day_resamples(days.nunique(), config.interval)
    ap = {
        side: np.array([average_precision_score(labels, model.scores, sample_weight=c[day_of_row]) for c in counts])
        for side, model in (("champion", champion), ("challenger", challenger))
    }
    for key, draws in (
        ("champion_average_precision", ap["champion"]),
        ("diff_average_precision", ap["challenger"] - ap["champion"]),
    ):
        low, high = np.quantile(draws, [0.025, 0.975])
        assert (m[f"{key}_ci_low"], m[f"{key}_ci_high"]) == (
            pytest.approx(low, abs=1e-12),
            pytest.approx(high, abs=1e-12),
        )
    rates = np.array([(c[day_of_row] * challenger.alerts).sum() / c[day_of_row].sum() for c in counts])
    assert m["challenger_alert_rate_ci_low"] == pytest.approx(np.quantile(rates, 0.025), abs=1e-12)


def test_card_precision_at_k_counted_by_hand():
    """k = 2, two days. Champion, day 1: A (fraud) and B (genuine) top -> 1/2, A detected; day 2 without A:
    B (genuine) and C (fraud) -> 1/2. Challenger, day 1: C and A, both frauds -> 2/2, both detected; day 2
    without them: D (fraud) and B -> 1/2. Means 0.5 and 0.75; per day the difference is 0.5 then 0, so a
    resample of the two days gives 0, 0.25 or 0.5."""
    frame = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(["2018-09-01 10:00"] * 3 + ["2018-09-02 10:00"] * 4).astype("datetime64[us]"),
            "customer_id": ["A", "B", "C", "A", "B", "C", "D"],
            "tx_fraud": pd.array([1, 0, 1, 1, 0, 1, 1], dtype="Int8"),
        }
    )
    champion = scored_at("m-1", np.array([0.9, 0.8, 0.1, 0.95, 0.7, 0.6, 0.2]), 0.5)
    challenger = scored_at("m-2", np.array([0.8, 0.1, 0.9, 0.3, 0.1, 0.3, 0.9]), 0.5)
    config = checks(min_frauds=1, min_days=2, interval=DEFAULTS.interval.model_copy(update={"resamples": 400}))
    m = compare(frame, champion, logged_shadow(challenger), k=2, config=config).metrics
    assert (m["champion_card_precision_at_k"], m["challenger_card_precision_at_k"]) == (0.5, 0.75)
    assert m["diff_card_precision_at_k"] == 0.25
    assert (m["diff_card_precision_at_k_ci_low"], m["diff_card_precision_at_k_ci_high"]) == (0.0, 0.5)
    assert m["card_precision_k"] == 2 and m["n_days"] == 2 and m["n_labelled_frauds"] == 5


def test_the_bootstrap_is_paired_and_seeded(pair):
    frame, champion, challenger = pair
    same = compare(frame, champion, logged_shadow(dataclasses.replace(champion, version="copy-3"))).metrics
    # The same model twice: each interval has a width, their difference none (the same days drawn for both).
    assert same["champion_average_precision_ci_high"] > same["champion_average_precision_ci_low"]
    assert same["diff_average_precision_ci_low"] == same["diff_average_precision_ci_high"] == 0.0
    assert same["diff_card_precision_at_k_ci_low"] == same["diff_card_precision_at_k_ci_high"] == 0.0

    first = compare(frame, champion, logged_shadow(challenger)).metrics
    again = compare(frame, champion, logged_shadow(challenger)).metrics
    assert json.dumps(again) == json.dumps(first)  # same input, same bytes
    other_seed = checks(interval=checks().interval.model_copy(update={"seed": 7}))
    reseeded = compare(frame, champion, logged_shadow(challenger), config=other_seed).metrics
    assert reseeded["diff_average_precision"] == first["diff_average_precision"]  # the figures do not move...
    assert reseeded["diff_average_precision_ci_low"] != first["diff_average_precision_ci_low"]  # ...their intervals do
    assert list(first) == list(COMPARISON_KEYS)


# --- the verdicts --------------------------------------------------------------------------------------


def test_a_better_challenger_is_promoted_and_a_worse_one_kept(pair):
    frame, champion, challenger = pair
    better = compare(frame, champion, logged_shadow(challenger))
    assert better.verdict == PROMOTE, better.reason
    assert better.metrics["diff_average_precision_ci_low"] > 0
    for words in ("lies above the margin 0", "stays within the tolerance -0.02", "inside the band"):
        assert words in better.reason

    worse = compare(frame, challenger, logged_shadow(champion))
    assert worse.verdict == KEEP
    assert worse.reason.startswith("keep the champion: its average precision differs by -")
    assert "does not lie above the margin 0 (monitor.challenger.ap_margin)" in worse.reason
    # A margin the improvement does not clear keeps the champion too.
    margin = compare(frame, champion, logged_shadow(challenger), config=checks(ap_margin=0.5))
    assert margin.verdict == KEEP and "does not lie above the margin 0.5" in margin.reason


def test_a_challenger_alerting_outside_the_band_is_kept(pair):
    frame, champion, challenger = pair
    loud = at_rate("challenger-2", challenger.scores, rate=0.2)  # the same ranking, four times the alerts
    kept = compare(frame, champion, logged_shadow(loud))
    assert kept.verdict == KEEP
    assert "its alert rate 20.00% is outside the band 2.50% .. 7.50%" in kept.reason
    assert "average precision" not in kept.reason  # only the rule that failed is named
    wide = compare(frame, champion, logged_shadow(loud), alert_rate_change=5.0)
    assert wide.verdict == PROMOTE


def test_decide_names_each_rule_that_failed():
    figures = {
        "n_labelled_frauds": 50,
        "n_days": 7,
        "ci_level": 0.95,
        "card_precision_k": 100,
        "diff_average_precision": 0.03,
        "diff_average_precision_ci_low": 0.01,
        "diff_average_precision_ci_high": 0.05,
        "diff_card_precision_at_k": -0.01,
        "diff_card_precision_at_k_ci_low": -0.03,
        "diff_card_precision_at_k_ci_high": 0.01,
        "challenger_alert_rate": 0.006,
        "alert_rate_band_low": 0.003,
        "alert_rate_band_high": 0.009,
    }
    verdict, reason = decide(figures, checks(), alerts_known=True)
    assert verdict == KEEP
    assert reason == (
        "keep the champion: card precision@100 differs by -0.0100 (95% interval [-0.0300, +0.0100]), which "
        "reaches below the tolerance -0.02 (monitor.challenger.cp_tolerance)."
    )
    assert decide(figures, checks(cp_tolerance=0.05), alerts_known=True)[0] == PROMOTE
    assert decide(figures | {"diff_average_precision_ci_low": float("nan")}, checks(cp_tolerance=0.05), True)[0] == KEEP


def test_too_few_labelled_frauds_or_days_is_undecided(pair):
    frame, champion, challenger = pair
    few = compare(frame, champion, logged_shadow(challenger), config=checks(min_frauds=10_000))
    assert few.verdict == UNDECIDED
    n = few.metrics["n_labelled_frauds"]
    assert few.reason == (
        f"undecided: {n} labelled frauds among the shadow rows, fewer than the 10000 a verdict needs "
        "(monitor.challenger.min_frauds). Wait for more labels."
    )
    assert np.isfinite(few.metrics["diff_average_precision"])  # the figures are there, only not enough to decide
    short = compare(frame, champion, logged_shadow(challenger), config=checks(min_days=11))
    assert short.verdict == UNDECIDED and "10 labelled days, fewer than the 11" in short.reason


def test_the_challengers_alerts_come_from_the_log_or_from_its_threshold(pair):
    frame, champion, challenger = pair
    unknown = dataclasses.replace(logged_shadow(challenger), alerts=None)
    undecided = compare(frame, champion, unknown)
    assert undecided.verdict == UNDECIDED and "set monitor.challenger.threshold" in undecided.reason
    assert undecided.metrics["challenger_alert_rate"] != undecided.metrics["challenger_alert_rate"]  # NaN: null
    assert np.isfinite(undecided.metrics["champion_alert_rate"])
    threshold = float(np.quantile(challenger.scores, 0.95))
    given = compare(frame, champion, unknown, config=checks(threshold=threshold))
    assert given.verdict == PROMOTE
    assert given.metrics["challenger_alert_rate"] == pytest.approx((challenger.scores >= threshold).mean())


def test_no_shadow_is_a_verdict_with_zero_counts(pair):
    frame, champion, challenger = pair
    for shadow in (None, logged_shadow(challenger, scored=np.zeros(len(frame), dtype=bool))):
        result = compare(frame, champion, shadow)
        assert result.verdict == NO_SHADOW and "fraudpipe serve --shadow" in result.reason
        m = result.metrics
        assert m["n_window"] == len(frame)
        assert [m[k] for k in ("n_shadow", "n_labelled", "n_unlabelled", "n_labelled_frauds", "n_days")] == [0] * 5
        assert all(m[k] != m[k] for k in COMPARISON_KEYS if k.startswith(("champion_a", "challenger_a", "diff_")))
    with pytest.raises(DataError, match="must be of the window's"):
        compare(frame.iloc[:10], champion, None)


# --- the rows compared -----------------------------------------------------------------------------------


def test_unlabelled_rows_and_earlier_challengers_are_left_out_and_counted(pair):
    frame, champion, challenger = pair
    rng = np.random.default_rng(5)
    unlabelled = rng.random(len(frame)) < 0.3
    earlier = ~unlabelled & (rng.random(len(frame)) < 0.1)
    unscored = ~unlabelled & ~earlier & (rng.random(len(frame)) < 0.1)
    partial = frame.assign(tx_fraud=frame["tx_fraud"].mask(unlabelled))
    shadow = logged_shadow(challenger, scored=~unscored)
    shadow.models[earlier] = "challenger-1"  # an earlier challenger, before the newest was started
    m = compare(partial, champion, shadow).metrics
    compared = ~unlabelled & ~earlier & ~unscored
    assert m["challenger_version"] == "challenger-2"
    assert m["n_shadow"] == int((~unscored & ~earlier).sum())
    assert m["n_other_challengers"] == int(earlier.sum())
    assert m["n_labelled"] == int(compared.sum()) and m["n_unlabelled"] == int(unlabelled.sum())
    assert m["n_labelled_frauds"] == int(frame["tx_fraud"][compared].sum())
    labels = frame["tx_fraud"].to_numpy(np.int8)[compared]
    assert m["champion_average_precision"] == pytest.approx(average_precision_score(labels, champion.scores[compared]))
    assert m["challenger_alert_rate"] == pytest.approx(challenger.alerts[compared].mean())

    # Labels younger than the delay do not count yet (as drift.json's live figures): the last two days are left out.
    delayed = compare(frame, champion, logged_shadow(challenger), delay_days=2).metrics
    young = (frame["tx_datetime"] > frame["tx_datetime"].max() - pd.Timedelta(days=2)).to_numpy()
    assert delayed["n_unlabelled"] == int(young.sum()) and delayed["n_labelled"] == len(frame) - int(young.sum())


# --- a real service log ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Five days of the test period scored by the service (in-process, journal on), the labels of its first
    four days received; the log as monitoring reads it, with the shadow columns the service adds."""
    w = world()
    directory = tmp_path_factory.mktemp("served")
    rows = w.test[w.test["tx_datetime"] < w.cut + pd.Timedelta(days=5)]
    service = Service.open(serve_config(directory))
    for row in rows.itertuples(index=False):
        service.score(tx(row))
    labelled = rows[rows["tx_datetime"] < w.cut + pd.Timedelta(days=4)]
    for tid, fraud in zip(labelled["transaction_id"], labelled["tx_fraud"]):
        service.label(LabelIn(transaction_id=int(tid), tx_fraud=int(fraud)))
    service.close()
    log = read_service_log(directory / "journal")
    # The challenger: a model that knew the labels (it ranks every fraud first), in the log's (acceptance) order.
    fraud = rows.set_index("transaction_id")["tx_fraud"].reindex(log.scored["transaction_id"]).to_numpy(np.float64)
    rng = np.random.default_rng(0)
    scores = 0.6 * fraud + 0.3 * rng.random(len(fraud))
    shadowed = log.scored.assign(
        **{
            SHADOW_SCORE: scores,
            SHADOW_MODEL: pd.array(["xgboost-c0ffee000000"] * len(scores), dtype="str"),
            SHADOW_ALERT: scores >= 0.5,
        }
    )
    return dataclasses.replace(log, scored=shadowed), rows, len(labelled)


def test_the_service_log_window_carries_the_shadow_row_for_row_and_the_challenger_wins(served):
    log, rows, n_labelled = served
    w = world()
    bundle = load_bundle(w.bundle_dir)
    window = service_log_window(log, w.tx, w.config, bundle.version)
    assert window.shadow is not None
    by_id = log.scored.set_index("transaction_id")
    ids = window.frame["transaction_id"]
    np.testing.assert_array_equal(window.shadow.scores, by_id.loc[ids, SHADOW_SCORE].to_numpy())
    np.testing.assert_array_equal(window.shadow.alerts, by_id.loc[ids, SHADOW_ALERT].to_numpy())
    assert set(window.shadow.models) == {"xgboost-c0ffee000000"}

    result = compare_shadow(
        window.frame,
        Scored(bundle.version, window.scores, window.alerts.astype(bool)),
        window.shadow,
        k=10,
        delay_days=0,
        remove_known=False,
        reference_alert_rate=float(window.alerts.mean()),
        alert_rate_change=3.0,
        config=checks(min_frauds=1, min_days=3),
    )
    m = result.metrics
    assert (m["n_window"], m["n_shadow"], m["n_labelled"]) == (len(rows), len(rows), n_labelled)
    assert m["n_unlabelled"] == len(rows) - n_labelled > 0  # the fifth day: no label received yet
    assert m["champion_version"] == bundle.version and m["challenger_version"] == "xgboost-c0ffee000000"
    assert m["challenger_average_precision"] == pytest.approx(1.0) and m["champion_average_precision"] < 0.99
    assert result.verdict == PROMOTE, result.reason

    without = dataclasses.replace(log, scored=log.scored.drop(columns=[SHADOW_SCORE, SHADOW_MODEL, SHADOW_ALERT]))
    assert (
        service_log_window(without, w.tx, w.config, bundle.version).shadow is None
    )  # a log of a service without --shadow


# --- the stage -------------------------------------------------------------------------------------------


def test_the_monitor_stage_writes_the_verdict_as_a_metric_dvc_compares(tiny_pipeline, tmp_path):
    repo = clone_repo(tiny_pipeline.repo, tmp_path / "repo")
    path = repo / "reports/monitoring/challenger.json"
    committed = path.read_bytes()
    batch = json.loads(committed)
    assert batch["verdict"] == NO_SHADOW and batch["n_shadow"] == 0 and batch["n_window"] > 1000
    shown = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    assert shown[""]["data"]["reports/monitoring/challenger.json"]["data"]["verdict"] == NO_SHADOW
    proc = run_stage_in_process(repo, "monitor")
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == committed  # a rerun writes the same bytes
    assert "challenger: no challenger scored in the shadow" in proc.stdout

    # The service's log: two days of the live period served (no --shadow yet), monitor watching it.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    live = pd.read_parquet(repo / "data/split/live.parquet")
    served = live[live["tx_datetime"] < live["tx_datetime"].min().normalize() + pd.Timedelta(days=2)]
    interim = pd.read_parquet(repo / "data/interim/transactions.parquet")
    raw = [pd.read_parquet(repo / "data/raw" / f"{name}.parquet") for name in ("customers", "terminals")]
    features = FeatureConfig.parse(params["features"], "features")
    OnlineState.from_history(interim[interim["tx_datetime"] < served["tx_datetime"].min()], features, *raw).save(
        tmp_path / "state"
    )
    service = Service.open(
        serve_config(tmp_path, model=repo / "models/bundle", state=tmp_path / "state", journal_dir=repo / "serving")
    )
    for row in served.itertuples(index=False):
        service.score(tx(row))
    service.close()
    params["monitor"] |= {"current": "service_log", "window_input": params["monitor"]["log"]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_stage_in_process(repo, "monitor")
    assert proc.returncode == 0, proc.stderr
    logged = json.loads(path.read_text())
    assert logged["verdict"] == NO_SHADOW and logged["n_window"] == len(served) and logged["n_shadow"] == 0
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    assert diff["reports/monitoring/challenger.json"]["n_window"] == {
        "old": batch["n_window"],
        "new": len(served),
        "diff": len(served) - batch["n_window"],
    }
