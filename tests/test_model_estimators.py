"""The estimator registry and its specs: parameters, predictions equal to the libraries', the tree
arrays' checks, and no code outside estimators/ that branches on an estimator's name."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fraudpipe.errors import BundleError
from fraudpipe.model.estimators import NAMES, SPECS, Estimator, spec
from fraudpipe.model.estimators.trees import TREE_DTYPE, Trees, check_trees
from fraudpipe.model.estimators.xgboost import curve_rounds, parse_evaluation
from fraudpipe.model.fit import estimator_params, fit_model
from helpers.model import FEATURES, ROOT, feature_table, model_config, small_config


@pytest.fixture(scope="module")
def data():
    table = feature_table()
    return table[FEATURES].to_numpy(), table["tx_fraud"].to_numpy()


def test_registry_holds_one_spec_per_name_with_its_own_file():
    assert tuple(SPECS) == NAMES
    for name, s in SPECS.items():
        assert isinstance(s, Estimator) and s.name == name and spec(name) is s
        assert set(s.needs) <= set(model_config().to_dict()), name  # needs name real config keys
    formats = {s.format: s.file for s in SPECS.values()}
    assert formats == {"xgboost-ubjson": "model.ubj", "logistic-json": "linear.json", "trees-npy": "trees.npy"}
    assert [n for n, s in SPECS.items() if s.logs_curves] == ["xgboost"]  # boosting rounds: its own curves


def test_no_code_outside_the_registry_branches_on_an_estimator_name():
    """Adding an estimator is a module in estimators/ and a conf/model/ file, nothing else."""
    names = "|".join(NAMES)
    pattern = re.compile(rf"""estimator\s*(==|!=|\bin\b)|(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=|:)""")
    src = ROOT / "src" / "fraudpipe"
    offenders = [
        f"{path.relative_to(src)}:{i}: {line.strip()}"
        for path in src.rglob("*.py")
        if "estimators" not in path.relative_to(src).parts
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "__version__" not in line  # the xgboost *package*'s version
    ]
    assert offenders == []
    for stage in (ROOT / "stages").glob("*.py"):
        assert not pattern.search(stage.read_text()), stage.name


def test_parameters_carry_the_config_and_class_weight(data):
    _, y = data
    balanced = (len(y) - y.sum()) / y.sum()
    assert estimator_params(model_config(scale_pos_weight="balanced"), y)["scale_pos_weight"] == pytest.approx(balanced)
    xgb = estimator_params(model_config(), y)
    assert (xgb["eta"], xgb["max_depth"], xgb["num_boost_round"]) == (0.05, 5, 100)
    assert (xgb["tree_method"], xgb["max_bin"]) == ("hist", 4096)
    assert "max_bin" not in estimator_params(model_config("xgboost_handbook"), y)  # exact trees: no bins
    assert "base_score" not in estimator_params(model_config(base_score=None), y)  # null = XGBoost's default
    assert estimator_params(model_config("logistic_regression", scale_pos_weight=5.0), y)["class_weight"] == {
        0: 1.0,
        1: 5.0,
    }
    forest = estimator_params(model_config("random_forest"), y)
    assert forest["class_weight"] is None and forest["max_features"] == "sqrt" and forest["n_estimators"] == 100
    assert estimator_params(model_config("decision_tree"), y)["max_depth"] == 2


@pytest.mark.parametrize("name", ["random_forest", "decision_tree", "logistic_regression"])
def test_saved_form_predicts_what_scikit_learn_predicts(name, data):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    cls = {
        "random_forest": RandomForestClassifier,
        "decision_tree": DecisionTreeClassifier,
        "logistic_regression": LogisticRegression,
    }[name]
    X, y = data
    config = small_config(name, **({"max_depth": 8} if name == "decision_tree" else {}))
    fitted = fit_model(X, y, config, FEATURES)
    Xs = (X - fitted.mean) / fitted.scale
    reference = cls(**estimator_params(config, y)).fit(Xs, y).predict_proba(Xs)[:, 1]
    np.testing.assert_allclose(fitted.predict(X), reference, rtol=0, atol=1e-12)


def test_xgboost_inplace_predict_equals_a_dmatrix_prediction(data):
    import xgboost as xgb

    X, y = data
    fitted = fit_model(X, y, small_config("xgboost"), FEATURES)
    dm = xgb.DMatrix((X - fitted.mean) / fitted.scale, feature_names=FEATURES)
    np.testing.assert_allclose(fitted.predict(X), fitted.predictor.model.predict(dm), rtol=0, atol=1e-7)


def test_importance_finds_the_signal_for_every_estimator(data):
    X, y = data
    for name in NAMES:
        fitted = fit_model(X, y, small_config(name), FEATURES)
        assert fitted.importance.shape == (3,) and fitted.importance.sum() == pytest.approx(1.0), name
        assert np.argmin(fitted.importance) == FEATURES.index("noise"), name


def _stump_nodes(feature: int = 0) -> np.ndarray:
    """One split on `feature` at 0.5: left leaf P=0.1, right leaf P=0.9."""
    nodes = np.zeros(3, dtype=TREE_DTYPE)
    nodes[0] = (1, 2, feature, 0.5, 0.3)
    nodes[1] = (-1, -1, -1, 0.0, 0.1)
    nodes[2] = (-1, -1, -1, 0.0, 0.9)
    return nodes


def test_tree_walk_by_hand():
    X = np.array([[0.2, 9.0], [0.5, 9.0], [0.7, -9.0]])
    np.testing.assert_array_equal(Trees(_stump_nodes(), [0]).predict(X), [0.1, 0.1, 0.9])  # <= goes left
    second = _stump_nodes(feature=1)
    second[0]["left"], second[0]["right"] = 4, 5  # offsets of the second tree in one array
    forest = Trees(np.concatenate([_stump_nodes(), second]), [0, 3])
    np.testing.assert_allclose(forest.predict(X), [(0.1 + 0.9) / 2, (0.1 + 0.9) / 2, (0.9 + 0.1) / 2])
    np.testing.assert_allclose(forest.predict(np.array([[0.2, 0.2]])), [0.1])


def test_tree_arrays_that_could_loop_or_misread_are_refused():
    check_trees(_stump_nodes(), [0], 2, "t")
    loop = _stump_nodes()
    loop[0]["left"] = 0  # a node that is its own child: the walk would never end
    with pytest.raises(BundleError, match="children are not later nodes"):
        check_trees(loop, [0], 2, "t")
    with pytest.raises(BundleError, match=r"splits on a feature outside 0\.\.0"):
        check_trees(_stump_nodes(feature=1), [0], 1, "t")
    with pytest.raises(BundleError, match="a root is outside"):
        check_trees(_stump_nodes(), [3], 2, "t")
    with pytest.raises(BundleError, match="tree_roots must be"):
        check_trees(_stump_nodes(), "0", 2, "t")
    bad_leaf = _stump_nodes()
    bad_leaf[2]["p_fraud"] = 1.5
    with pytest.raises(BundleError, match="leaf probability"):
        check_trees(bad_leaf, [0], 2, "t")


def test_the_training_curves_are_evaluated_at_about_twenty_rounds_with_the_first_and_the_last():
    assert curve_rounds(100) == [0, *range(4, 100, 5)]
    assert curve_rounds(45) == [0, *range(1, 45, 2), 44]
    assert curve_rounds(7) == list(range(7)) and curve_rounds(1) == [0] and curve_rounds(0) == []


def test_an_evaluation_line_is_read_as_xgboost_reads_its_own():
    line = "[7]\ttrain-logloss:0.6454450795007955\ttrain-aucpr:0.5\tvalidation-map@3-:0.25"
    assert parse_evaluation(line) == {
        "train": {"logloss": 0.6454450795007955, "aucpr": 0.5},
        "validation": {"map@3-": 0.25},
    }


def test_the_curves_logged_are_xgboosts_own_record_of_those_rounds(data, tmp_path):
    """The sparse curves equal XGBoost's every-round evaluation log at the rounds they keep."""
    import xgboost as xgb
    from dvclive import Live

    X, y = data
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "aucpr"], "max_depth": 3, "seed": 0}
    every: dict = {}
    train = xgb.DMatrix(X, label=y, feature_names=list(FEATURES))
    xgb.train(params, train, 30, evals=[(train, "train")], evals_result=every)
    with Live(dir=str(tmp_path / "live"), dvcyaml=False, save_dvc_exp=False) as live:
        spec("xgboost").fit(X, y, params | {"num_boost_round": 30}, FEATURES, live=live)
    rows = (tmp_path / "live/plots/metrics/train/aucpr.tsv").read_text().splitlines()[1:]
    logged = {int(step): float(value) for step, value in (row.split("\t") for row in rows)}
    assert logged == {r: every["train"]["aucpr"][r] for r in curve_rounds(30)}
