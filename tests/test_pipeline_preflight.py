"""fraudpipe.pipeline.preflight and .rules: the whole configuration, then the data-dependent settings,
each checked at once so a run fails at most once, with every problem and its key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudpipe.config import compose, parse
from fraudpipe.errors import ConfigError
from fraudpipe.pipeline.derived import derive_settings
from fraudpipe.pipeline.params import GROUPS, VALUES, Params
from fraudpipe.pipeline.preflight import composition_problem, config_problems, require_no_problems
from fraudpipe.pipeline.rules import MIN_TEST_FRAUDS, settings_problems
from helpers.kaggle import contract_frame, kaggle_frame

CONF = Path(__file__).resolve().parents[1] / "conf"


def settings(table, params: dict) -> list[str]:
    """`settings_problems` with the groups check_data loads, parsed from a composed params mapping."""
    p = parse(Params, params, "")
    return settings_problems(
        table, p.split, p.model.threshold_validation_days, p.evaluate.card_precision_k, p.validation
    )


@pytest.fixture(scope="module")
def kaggle():
    return kaggle_frame()


def test_the_default_configuration_has_no_problem_and_every_group_has_a_model():
    params = compose(CONF)
    assert set(params) == set(GROUPS) | set(VALUES)
    assert config_problems(params) == []


def test_config_problems_lists_every_group_at_once():
    params = compose(CONF, ["model.max_depth=0", "split.train_days=0", "+evaluate.latency_rowz=3"])
    params["modle"] = {}
    del params["preprocess"]
    problems = config_problems(params)
    text = " | ".join(problems)
    assert len(problems) == 5, problems
    for said in (
        "model.max_depth: must be >= 1, got 0",
        "split.train_days",
        "evaluate.latency_rowz: unknown key",
        "modle: unknown group (did you mean 'model'?",
        "preprocess: missing group",
    ):
        assert said in text


def test_check_settings_lists_every_problem_at_once_with_its_key(kaggle):
    table = contract_frame(kaggle)
    params = compose(
        CONF,
        [
            "split=relative",
            "split.train_days=150",
            "split.n_folds=1",
            "evaluate.card_precision_k=100000",
            "validation.max_fraud_rate=0.001",
        ],
    )
    problems = settings(table, params)
    text = " | ".join(problems)
    assert "split.train_days" in text and "evaluate.card_precision_k" in text and "validation.max_fraud_rate" in text
    # the default single threshold day of the simulator's setup holds too few of this file's frauds
    assert "model.threshold_validation_days: the last 1 training day(s) hold 2 fraud(s), fewer than the 5" in text
    assert len(problems) == 4, problems
    good = compose(CONF, ["split=relative"] + [f"{d.key}={d.value}" for d in derive_settings(table)[0]])
    assert settings(table, good) == []


def test_a_period_without_fraud_names_the_key_that_widens_it(kaggle):
    table = contract_frame(kaggle)
    last = table["tx_datetime"].max()
    table.loc[table["tx_datetime"] > last - np.timedelta64(10, "D"), "tx_fraud"] = 0
    params = compose(
        CONF,
        [
            "split=relative",
            "split.test_days=7",
            "split.delay_days=1",
            "split.n_folds=1",
            "evaluate.card_precision_k=1",
            "validation.min_fraud_rate=0",
        ],
    )
    text = " | ".join(settings(table, params))
    assert "the test period" in text and "holds 0 fraud(s)" in text and "raise split.test_days" in text
    assert f"fewer than the {MIN_TEST_FRAUDS} needed for its metrics to measure" in text


def test_require_no_problems_raises_one_config_error_with_all_of_them():
    require_no_problems([], "x")
    with pytest.raises(ConfigError, match=r"params.yaml: every problem, each with the key to change: a: one \| b: two"):
        require_no_problems(["a: one", "b: two"], "params.yaml")


def test_a_params_yaml_conf_does_not_compose_to_is_named_key_by_key_with_the_commands():
    composed = compose(CONF)
    assert composition_problem(composed, compose(CONF), CONF) is None
    edited = compose(CONF, ["model.max_depth=3", "+model.max_dept=3", "split.n_folds=2", "seed=1"])
    problem = composition_problem(edited, composed, Path("conf"))
    assert problem.startswith("params.yaml is not what conf/ composes to (evaluate.interval.seed: 1 in params.yaml, 0 ")
    assert (
        "; model.max_dept: 3 in params.yaml, (absent) from conf/;" in problem and " more)" in problem
    )  # sorted by key (seed moves the interval's seed and random_state)
    assert "run `fraudpipe params`" in problem and "`fraudpipe adopt`" in problem and "\n" not in problem
