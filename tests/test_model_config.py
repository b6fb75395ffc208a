"""ModelConfig: every conf/model/ option parses, keeps one shape, and mistakes name model.<key>."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from fraudpipe.errors import ConfigError
from fraudpipe.model import ModelConfig
from fraudpipe.model.estimators import NAMES
from helpers.model import CONF, OPTIONS, composed, model_config


def test_every_option_has_exactly_the_models_keys_in_order():
    assert set(OPTIONS) >= {"xgboost", "xgboost_handbook", "logistic_regression", "random_forest", "decision_tree"}
    for name in OPTIONS:
        raw = yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text())
        assert list(raw) == list(ModelConfig.model_fields), name  # same keys, same order: sweeps work
        assert raw["name"] == name
        assert model_config(name).name == name


def test_the_model_holds_no_defaults_conf_holds_them():
    assert all(field.is_required() for field in ModelConfig.model_fields.values())
    with pytest.raises(ConfigError, match=r"model\.max_iter: missing key"):
        ModelConfig.parse({k: v for k, v in model_config().to_dict().items() if k != "max_iter"}, "model")


def test_estimator_names_are_the_registrys():
    assert set(NAMES) == {"xgboost", "logistic_regression", "random_forest", "decision_tree"}
    assert {model_config(name).estimator for name in OPTIONS} == set(NAMES)  # every spec has an option
    with pytest.raises(
        ConfigError,
        match=r"model\.estimator: must be one of 'xgboost', 'logistic_regression', 'random_forest' "
        r"or 'decision_tree', got 'svm'",
    ):
        model_config(estimator="svm")


def test_handbook_option_is_the_published_xgboost():
    handbook = model_config("xgboost_handbook")
    assert (handbook.tree_method, handbook.base_score, handbook.random_state) == ("exact", 0.5, 0)
    assert handbook.max_bin is None  # exact trees have no bins
    assert (handbook.n_estimators, handbook.learning_rate, handbook.max_depth) == (100, 0.3, 6)


def test_a_sweep_key_exists_in_every_option():
    for name in OPTIONS:
        assert ModelConfig.parse(composed(f"model={name}", "model.max_depth=3")["model"], "model").max_depth == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_depth": 0}, r"model\.max_depth: must be >= 1, got 0"),
        ({"learning_rate": 0.0}, r"model\.learning_rate: must be > 0(\.0)?, got 0\.0"),
        ({"learning_rate": "0.1"}, r"model\.learning_rate: must be a number, got '0\.1'"),
        ({"subsample": 1.5}, r"model\.subsample: must be <= 1(\.0)?, got 1\.5"),
        ({"base_score": 1.0}, r"model\.base_score: must be < 1(\.0)?, got 1\.0"),
        ({"threshold_rule": "best"}, r"model\.threshold_rule: must be one of 'max_f1' or 'top_k_per_day', got 'best'"),
        ({"threshold_k": 0}, r"model\.threshold_k: must be >= 1, got 0"),
        ({"threshold_validation_days": -1}, r"model\.threshold_validation_days: must be >= 0, got -1"),
        ({"scale_pos_weight": 0}, r"model\.scale_pos_weight: must be a positive number or 'balanced', got 0"),
        ({"scale_pos_weight": "bal"}, r"model\.scale_pos_weight: must be a positive number or 'balanced', got 'bal'"),
        ({"scale_pos_weight": True}, r"model\.scale_pos_weight: must be a positive number or 'balanced', got True"),
        ({"tree_method": "gpu"}, r"model\.tree_method: must be one of"),
        ({"max_bin": 1}, r"model\.max_bin: must be >= 2, got 1"),
        (
            {"max_features": "all"},
            r"model\.max_features: must be 'sqrt', 'log2', a whole number >= 1, "
            r"a fraction in \(0, 1\], or null, got 'all'",
        ),
        ({"standardize": "yes"}, r"model\.standardize: must be true or false, got 'yes'"),
        ({"max_dept": 3}, r"model\.max_dept: unknown key \(did you mean 'max_depth'\?"),
    ],
)
def test_bad_values_name_the_key_and_the_value(changes, message):
    with pytest.raises(ConfigError, match=message):
        model_config("xgboost", **changes)


def test_an_estimators_needs_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match=r"^model\.n_estimators: xgboost needs a value, got None$"):
        model_config("xgboost", n_estimators=None)
    with pytest.raises(
        ConfigError,
        match=r"model\.C: logistic_regression needs a value, got None; "
        r"model\.max_iter: logistic_regression needs a value",
    ):
        model_config("decision_tree", estimator="logistic_regression")
    with pytest.raises(ConfigError, match=r"model\.min_samples_leaf: random_forest needs a value"):
        model_config("random_forest", min_samples_leaf=None)
    # A key another estimator needs is ignored when null: the decision tree has no n_estimators.
    assert model_config("decision_tree").n_estimators is None


def test_accepted_values_keep_their_meaning():
    assert model_config(scale_pos_weight="balanced").scale_pos_weight == "balanced"
    # An integer override (-S model.scale_pos_weight=3) is the same config as 3.0: same bundle bytes.
    assert model_config(scale_pos_weight=3).to_dict() == model_config(scale_pos_weight=3.0).to_dict()
    assert isinstance(model_config(scale_pos_weight=3).scale_pos_weight, float)
    assert model_config("random_forest", max_features=0.5).max_features == 0.5
    assert model_config("random_forest", max_features=2).max_features == 2
    assert model_config("random_forest", max_features=None).max_features is None


def test_replace_validates_like_conf():
    config = model_config()
    assert config.replace(max_depth=3).max_depth == 3 and config.max_depth == 5
    with pytest.raises(ConfigError, match=r"model\.max_depth: must be >= 1"):
        config.replace(max_depth=0)
    with pytest.raises(ValidationError, match="frozen"):  # a config never changes after parsing
        config.max_depth = 3  # type: ignore[misc]
