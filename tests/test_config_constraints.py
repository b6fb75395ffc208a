"""Bad values generated from the config models' own constraints, as scikit-learn's common tests
generate invalid parameters from each estimator's `_parameter_constraints`: for every constrained
key of the composed default params.yaml, a value just outside its constraint (a bound crossed, an
option that does not exist, a string for a number or a flag) is refused by the one parser
`check_config` uses, in one line that names the full key path. No case is listed by hand, so a key
added with a constraint is covered the day it is added."""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
from pydantic import BaseModel, PlainValidator

from fraudpipe.config import compose, parse
from fraudpipe.data.sources import CONFIGS
from fraudpipe.errors import ConfigError
from fraudpipe.pipeline.params import Params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = compose(ROOT / "conf")


def _members(annotation: Any) -> list[Any]:
    """The types a value may have: the members of a union (``X | None``), each without ``Annotated``."""
    out = []
    for member in get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,):
        metadata: list[Any] = []
        while get_origin(member) is Annotated:
            member, *more = get_args(member)
            metadata += more
        out.append((member, metadata))
    return out


def _bad_values(annotation: Any, metadata: list[Any]) -> Iterator[tuple[Any, str]]:
    """(a value outside the constraint, what the message says) for one key's type."""
    if any(isinstance(item, PlainValidator) for item in metadata):  # a rule of its own, in its own words
        yield "no-such-value", "must be"
        return
    for member, inner in _members(annotation):
        constraints = [c for item in [*metadata, *inner] for c in getattr(item, "metadata", [item])]
        for c in constraints:
            if isinstance(c, at.Ge) and member in (int, float):
                yield member(c.ge) - 1, f"must be >= {c.ge}"
            elif isinstance(c, at.Gt) and member in (int, float):
                yield member(c.gt), f"must be > {c.gt}"
            elif isinstance(c, at.Le) and member in (int, float):
                yield member(c.le) + 1, f"must be <= {c.le}"
            elif isinstance(c, at.Lt) and member in (int, float):
                yield member(c.lt), f"must be < {c.lt}"
        if get_origin(member) is Literal:
            yield "no-such-option", "must be one of"
        elif member is bool:
            yield "yes", "must be true or false"
        elif member is int:
            yield "7", "must be a whole number"


def _model_of(group: str, value: Any) -> type[BaseModel]:
    return CONFIGS[value["source"]] if group == "data" else Params.model_fields[group].annotation


def _cases() -> Iterator[Any]:
    def walk(model: type[BaseModel], value: dict, path: str) -> Iterator[Any]:
        for name, field in model.model_fields.items():
            key = field.alias or name
            if key not in value:
                continue
            here = f"{path}.{key}"
            nested = [m for m, _ in _members(field.annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
            if nested and isinstance(value[key], dict):
                yield from walk(nested[0], value[key], here)
                continue
            seen = set()
            for bad, says in _bad_values(field.annotation, list(field.metadata)):
                if (repr(bad), says) not in seen:
                    seen.add((repr(bad), says))
                    yield pytest.param(here, bad, says, id=f"{here}={bad!r}")

    for group in Params.model_fields:
        if isinstance(PARAMS.get(group), dict):
            yield from walk(_model_of(group, PARAMS[group]), PARAMS[group], group)


CASES = list(_cases())


def test_the_generator_finds_the_constraints_there_are():
    keys = {case.values[0] for case in CASES}
    assert len(CASES) >= 60 and {"model.max_depth", "split.train_days", "evaluate.card_precision_k"} <= keys


@pytest.mark.parametrize(("key", "bad", "says"), CASES)
def test_a_value_outside_a_key_s_constraint_is_one_line_naming_the_key(key, bad, says):
    params = copy.deepcopy(PARAMS)
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[last] = bad
    with pytest.raises(ConfigError) as err:
        parse(Params, params, "")
    message = str(err.value)
    assert "\n" not in message
    assert f"{key}: {says}" in message, message
    assert repr(bad) in message or str(bad) in message, message
