"""fraudpipe.pipeline.params and .loader: one root model of params.yaml, one loader by dotted key;
a mistake names the full key path and the value, and a stage reads only the keys it loads."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudpipe.config import compose, parse
from fraudpipe.data.sources import CONFIGS
from fraudpipe.errors import ConfigError
from fraudpipe.gate import GateConfig
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model.config import ModelConfig
from fraudpipe.pipeline import loader
from fraudpipe.pipeline.loader import read_params, value_at
from fraudpipe.pipeline.params import GROUPS, VALUES, Params, group_model

ROOT = Path(__file__).resolve().parents[1]


def load(key: str) -> Any:
    """What a stage does: the key, with the model `Params` declares for its group."""
    return loader.load(key, group_model(key.split(".")[0]))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory with the committed params.yaml, as a stage's working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return tmp_path


def _rewrite(workdir: Path, change) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    change(params)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_the_root_model_has_a_field_for_every_group_of_conf():
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    assert set(GROUPS) == groups and set(Params.model_fields) == groups | set(VALUES)
    params = parse(Params, compose(ROOT / "conf"), "")
    assert type(params.data) is CONFIGS[params.data.source] and isinstance(params.model, ModelConfig)


def test_load_gives_the_typed_object_of_a_group_or_a_key(workdir):
    assert isinstance(load("model"), ModelConfig) and isinstance(load("evaluate"), EvaluateConfig)
    assert type(load("data")) is CONFIGS["simulated"]
    assert isinstance(load("evaluate.gate"), GateConfig) and load("evaluate.gate") == load("evaluate").gate
    assert load("evaluate.card_precision_k") == 100 and load("seed") == 0


def test_a_key_reads_only_itself_not_the_rest_of_its_group():
    """backtest declares evaluate.card_precision_k and infer evaluate.gate, not the whole group."""
    evaluate = {"card_precision_k": 7, "gate": "not read", "latency_rows": "not read"}
    assert value_at({"evaluate": evaluate}, "evaluate.card_precision_k", EvaluateConfig) == 7
    gate = {"enforce": True, "judge": "interval", "minimums": {}}
    assert (
        value_at({"evaluate": {"gate": gate, "latency_rows": "not read"}}, "evaluate.gate", EvaluateConfig).enforce
        is True
    )


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (lambda p: p["model"].update(max_depth=0), "model", "model.max_depth: must be >= 1, got 0"),
        (lambda p: p["evaluate"].update(card_precision_k="7"), "evaluate.card_precision_k", "must be a whole number"),
        (
            lambda p: p["evaluate"]["gate"].update(enforce="yes"),
            "evaluate.gate",
            "evaluate.gate.enforce: must be true or false, got 'yes'",
        ),
        (
            lambda p: p.update(data={"source": "excel"}),
            "data",
            "data.source: must be one of 'simulated', 'csv', 'parquet', 'sql', 'api', 'service_log', got 'excel'",
        ),
        (lambda p: p["data"].update(url="http://x"), "data", "data.url: unknown key (known keys: columns, simulator"),
        (lambda p: p["data"]["simulator"].update(n_days=0), "data", "data.simulator.n_days: must be >= 1, got 0"),
        (lambda p: p["evaluate"].pop("gate"), "evaluate.gate", "evaluate.gate: missing key; run `fraudpipe params`"),
        (lambda p: p.pop("split"), "split", "params.yaml has no group 'split'; run `fraudpipe params`"),
        (lambda p: p.update(evaluate=[1]), "evaluate.gate", "evaluate: must be a mapping, got [1]"),
    ],
)
def test_a_mistake_names_the_full_key_path_and_the_value(workdir, change, key, message):
    _rewrite(workdir, change)
    with pytest.raises(ConfigError) as err:
        load(key)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_tagged_union_error_inside_the_root_model_names_params_yaml_keys():
    params = compose(ROOT / "conf", ["data=csv", "+data.url=http://x", "model.max_depth=0"])
    with pytest.raises(ConfigError) as err:
        parse(Params, params, "")
    text = str(err.value)
    assert "data.url: unknown key (known keys: columns, datetime_format, options, path, source)" in text
    assert "model.max_depth: must be >= 1, got 0" in text and ".csv." not in text


def test_a_key_the_root_model_does_not_have_is_a_bug(workdir):
    with pytest.raises(KeyError, match=r"evaluate\.gates"):
        load("evaluate.gates")
    with pytest.raises(KeyError, match=r"data\.path"):  # inside the union: its keys depend on the kind
        load("data.path")


def test_without_a_params_file_the_message_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"params\.yaml not found .*fraudpipe params"):
        load("model")
    (tmp_path / "params.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="not a mapping of config groups"):
        read_params()


#: The name of each group's model in Params' annotations (read from the source, as a stage names it).
DECLARED = {
    node.target.id: ast.unparse(node.annotation)
    for node in next(
        n
        for n in ast.parse((ROOT / "src/fraudpipe/pipeline/params.py").read_text()).body
        if isinstance(n, ast.ClassDef) and n.name == "Params"
    ).body
    if isinstance(node, ast.AnnAssign)
}


def _load_calls(script: Path) -> list[tuple[str, str]]:
    """(key, model name) of every ``load("key", Model)`` call in a script."""
    tree = ast.parse(script.read_text())
    return [
        (node.args[0].value, ast.unparse(node.args[1]))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "load" and len(node.args) >= 2
    ]


@pytest.mark.parametrize("script", [*sorted((ROOT / "stages").glob("*.py")), ROOT / "src/fraudpipe/cli.py"], ids=str)
def test_every_load_passes_the_model_the_root_model_declares_for_the_group(script):
    for key, model in _load_calls(script):
        group = key.split(".")[0]
        assert model == DECLARED[group], f"{script.name}: load({key!r}, {model}), but Params declares {DECLARED[group]}"


def test_a_stage_imports_only_the_config_models_of_the_groups_it_reads():
    """The loader does not import every group's model, so a stage's dvc.yaml deps stay its own."""
    assert "fraudpipe.pipeline.params" not in ast.unparse(
        ast.parse((ROOT / "src/fraudpipe/pipeline/loader.py").read_text())
    )
    ingest = (ROOT / "stages" / "ingest.py").read_text()
    assert "pipeline.params" not in ingest and "monitoring" not in ingest
