"""fraudpipe.config: conf/ and params.yaml never drift apart, every group stays sweepable, and a
config mistake is one line naming the key path and the value."""

from pathlib import Path

import pytest
import yaml
from pydantic import Field, ValidationError

from fraudpipe.config import Config, compose
from fraudpipe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# The data group's options describe different kinds of source with different keys; nobody
# sweeps over sources, so only the other groups must keep one shape.
GROUPS_WITH_OWN_SHAPES = {"data"}


def test_committed_params_equal_the_composition_of_conf():
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert compose(CONF) == committed, "params.yaml is stale: run `fraudpipe params` after editing conf/"


def test_composition_applies_overrides_like_dvc_exp_run():
    composed = compose(CONF, ["data=csv", "data.path=data/external/other.csv"])
    assert composed["data"]["source"] == "csv"
    assert composed["data"]["path"] == "data/external/other.csv"


def _keys(mapping, prefix=""):
    out = set()
    for key, value in mapping.items():
        out.add(prefix + key)
        if isinstance(value, dict) and key not in {"columns", "params", "options", "query_params", "headers"}:
            out |= _keys(value, prefix + key + ".")
    return out


@pytest.mark.parametrize(
    "group", sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in GROUPS_WITH_OWN_SHAPES)
)
def test_every_option_of_a_group_has_the_same_keys(group):
    """A Hydra sweep over a group whose options differ in keys queues one run and then fails."""
    options = {p.stem: yaml.safe_load(p.read_text()) or {} for p in (CONF / group).glob("*.yaml")}
    shapes = {name: _keys(cfg) for name, cfg in options.items()}
    reference_name, reference = next(iter(sorted(shapes.items())))
    for name, keys in shapes.items():
        assert keys == reference, f"conf/{group}/{name}.yaml keys differ from {reference_name}.yaml: {keys ^ reference}"


class _Gate(Config):
    enforce: bool
    minimums: dict[str, float]


class _Demo(Config):
    max_depth: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    windows: list[int]
    gate: _Gate


GOOD = {
    "max_depth": 3,
    "learning_rate": 0.1,
    "windows": [1, 7],
    "gate": {"enforce": True, "minimums": {"roc_auc": 0.7}},
}


def test_a_config_model_parses_what_conf_gives_and_keeps_it():
    config = _Demo.parse(GOOD, "model")
    assert config.max_depth == 3 and config.gate.minimums == {"roc_auc": 0.7}
    assert config.to_dict() == GOOD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_depth": 0}, "model.max_depth: must be >= 1, got 0"),
        ({"learning_rate": 0}, "model.learning_rate: must be > 0, got 0"),
        ({"max_depth": "3"}, "model.max_depth: must be a whole number, got '3'"),
        ({"max_depth": True}, "model.max_depth: must be a whole number, got True"),
        ({"windows": [1, "x"]}, "model.windows[1]: must be a whole number, got 'x'"),
        (
            {"max_dept": 3},
            "model.max_dept: unknown key "
            "(did you mean 'max_depth'? known keys: gate, learning_rate, max_depth, windows)",
        ),
        (
            {"gate": {"enforce": True, "minimums": {}, "enforced": False}},
            "model.gate.enforced: unknown key (did you mean 'enforce'?",
        ),
    ],
)
def test_a_mistake_names_the_full_key_path_the_rule_and_the_value(change, message):
    with pytest.raises(ConfigError) as info:
        _Demo.parse(GOOD | change, "model")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_mistake_is_reported_at_once_and_a_missing_key_is_named():
    bad = {k: v for k, v in GOOD.items() if k != "windows"} | {"max_depth": 0, "learning_rate": -1}
    with pytest.raises(ConfigError) as info:
        _Demo.parse(bad, "model")
    text = str(info.value)
    assert "model.max_depth: must be >= 1" in text and "model.learning_rate: must be > 0" in text
    assert "model.windows: missing key" in text


def test_a_config_is_immutable():
    config = _Demo.parse(GOOD, "model")
    with pytest.raises(ValidationError):
        config.max_depth = 5  # type: ignore[misc]


def test_rule_errors_name_each_key_path_of_a_check_across_fields():
    from pydantic import model_validator

    from fraudpipe.config import rule_error, rule_errors

    class Pair(Config):
        low: int
        high: int

        @model_validator(mode="after")
        def _ordered(self):
            if self.low > self.high:
                raise rule_errors(
                    [("high", f"must be >= low ({self.low})", self.high), ("low", "must be <= high", self.low)]
                )
            return self

    class Outer(Config):
        pair: Pair
        name: str

        @model_validator(mode="after")
        def _named(self):
            if self.name == "x":
                raise rule_error("must not be 'x'", self.name, key="name")
            return self

    assert Pair.parse({"low": 1, "high": 2}, "pair").high == 2
    with pytest.raises(
        ConfigError, match=r"^pair\.high: must be >= low \(3\), got 2; pair\.low: must be <= high, got 3$"
    ):
        Pair.parse({"low": 3, "high": 2}, "pair")
    with pytest.raises(ConfigError, match=r"^g\.pair\.high: must be >= low \(3\), got 2; g\.pair\.low"):
        Outer.parse({"pair": {"low": 3, "high": 2}, "name": "y"}, "g")
    with pytest.raises(ConfigError, match=r"^g\.name: must not be 'x', got 'x'$"):
        Outer.parse({"pair": {"low": 1, "high": 2}, "name": "x"}, "g")
