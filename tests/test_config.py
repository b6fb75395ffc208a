"""conf/ and params.yaml can never drift apart, and every group stays sweepable."""

from pathlib import Path

import pytest
import yaml

from fraudpipe.config import compose

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


def test_fraudpipe_params_command_rewrites_params_from_conf(tmp_path):
    from typer.testing import CliRunner

    from fraudpipe.cli import app

    out = tmp_path / "params.yaml"
    result = CliRunner().invoke(app, ["params", "--config-dir", str(CONF), "--output", str(out), "seed=7"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(out.read_text())
    assert written["seed"] == 7
    assert written == compose(CONF, ["seed=7"])


def test_key_errors_name_each_key_path_of_a_cross_field_check():
    from pydantic import model_validator

    from fraudpipe.config import Config, key_errors
    from fraudpipe.errors import ConfigError

    class Pair(Config):
        low: int
        high: int

        @model_validator(mode="after")
        def _ordered(self):
            if self.low > self.high:
                raise key_errors("Pair", [(("high",), f"must be >= low ({self.low})", self.high)])
            return self

    assert Pair.parse({"low": 1, "high": 2}, "pair").high == 2
    with pytest.raises(ConfigError, match=r"^pair\.high: must be >= low \(3\), got 2$"):
        Pair.parse({"low": 3, "high": 2}, "pair")
