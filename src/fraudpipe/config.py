"""Configuration: composing conf/ into params.yaml, and parsing each group into its typed model.

Every config group has one pydantic model, in the module that owns the concern, built on
`Config`: unknown keys are refused by name, values are checked strictly (a string is never read
as a number), and a mistake becomes one `ConfigError` line naming the full key path and the
value, e.g. ``model.max_depth: must be >= 1, got 0``. conf/ holds the defaults; the models hold
only types and constraints, so each default is written once.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import tempfile
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from fraudpipe.errors import ConfigError


class Config(BaseModel):
    """Base of every config group's model: extra keys forbidden, strict types, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def parse(cls, data: Any, path: str) -> Self:
        """Validate ``data`` (the group as read from params.yaml) found under the key ``path``."""
        return parse(cls, data, path)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


#: Values that are not models (a key's own type, a tagged union of models) are checked as strictly.
_STRICT = ConfigDict(strict=True)


def parse(kind: Any, data: Any, path: str) -> Any:
    """Validate ``data``, found under the key ``path``, as ``kind``: a `Config` model, a tagged
    union of them, or a key's annotated type; a mistake is one `ConfigError` naming its key path."""
    base = _unwrap(kind)[0]
    try:
        if isinstance(base, type) and issubclass(base, BaseModel):  # a model has its own (strict) config
            return base.model_validate(data)
        return TypeAdapter(kind, config=_STRICT).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(kind, exc, path)) from None


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be one of {expected}",
    "missing": "missing key",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must be at least {min_length} character(s) long",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
    "tuple_type": "must be a list",
}

#: Error type of `rule_error`: rules between fields, each reported at the key it names.
_RULE = "fraudpipe_rule"


def rule_error(rule: str, value: Any, key: str = "") -> PydanticCustomError:
    """Raise from a validator: ``<model path>[.key]: <rule>, got <value>``.

    A model validator checks rules between fields; pydantic would report them at the model's own
    path with the whole mapping as the value. ``key`` (dotted, relative to the model) and
    ``value`` name the field at fault instead; a field validator passes ``value`` to show it
    redacted.
    """
    return rule_errors([(key, rule, value)])


def rule_errors(problems: Iterable[tuple[str, str, Any]]) -> PydanticCustomError:
    """Several broken rules at once, as ``(key, rule, value)``: each is reported at its own key."""
    problems = list(problems)
    summary = "; ".join(f"{key}: {rule}" for key, rule, _ in problems)
    return PydanticCustomError(_RULE, "{summary}", {"summary": summary, "problems": problems})


def _iso_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.date) else value


#: A date or datetime written as text; YAML reads a bare ``2018-07-25`` as a date, taken as its ISO text.
IsoText = Annotated[str, BeforeValidator(_iso_text)]


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


#: A list in YAML, a tuple in the model (immutable like the rest of it; strict mode refuses a list
#: for a tuple): ``Annotated[tuple[int, ...], AS_TUPLE]``.
AS_TUPLE = BeforeValidator(_as_tuple)


def describe_errors(kind: Any, exc: ValidationError, path: str) -> str:
    """All of a validation's failures in one line, each as ``<key path>: <rule>, got <value>``.

    ``kind`` is the type that was validated: its fields name the known keys of an unknown one, and
    its tagged unions tell which parts of an error's location are tags (pydantic puts the tag, e.g.
    ``csv``, between ``data`` and ``path``; params.yaml has no such key)."""
    parts = []
    for error in exc.errors(include_url=False):
        keys, _, discriminator = _walk(kind, error["loc"])
        loc = [str(p) for p in keys if not isinstance(p, int)]
        indices = "".join(f"[{p}]" for p in keys if isinstance(p, int))
        key = ".".join([path, *loc]) + indices if path else ".".join(loc) + indices
        error_type = error["type"]
        if error_type == _RULE:
            for inner, rule, value in error["ctx"]["problems"]:
                parts.append(f"{key}.{inner if inner else ''}".rstrip(".") + f": {rule}, got {value!r}")
            continue
        if error_type in ("union_tag_not_found", "union_tag_invalid"):
            tag_key = f"{key}.{discriminator}".lstrip(".")
            if error_type == "union_tag_not_found":
                parts.append(f"{tag_key}: missing key")
            else:
                tag = error["input"][discriminator]
                parts.append(f"{tag_key}: must be one of {error['ctx']['expected_tags']}, got {tag!r}")
            continue
        if error_type == "extra_forbidden":
            known = sorted(_keys_of(_walk(kind, error["loc"][:-1])[1]))
            close = difflib.get_close_matches(loc[-1], known, n=1) if loc else []
            hint = f"did you mean {close[0]!r}? " if close else ""
            parts.append(f"{key}: unknown key ({hint}known keys: {', '.join(known)})")
            continue
        if error_type in _MESSAGES:
            ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (error.get("ctx") or {}).items()}
            message = _MESSAGES[error_type].format(**ctx)
        else:
            message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if error_type == "missing":
            parts.append(f"{key}: {message}")
        else:
            parts.append(f"{key}: {message}, got {error['input']!r}")
    return "; ".join(parts)


def _unwrap(annotation: Any, field: FieldInfo | None = None) -> tuple[Any, str | None]:
    """A type without its ``Annotated`` metadata, and the discriminator when it is a tagged union."""
    discriminator = field.discriminator if field is not None else None
    while get_origin(annotation) is Annotated:
        annotation, *metadata = get_args(annotation)
        for item in metadata:
            if isinstance(item, FieldInfo) and item.discriminator is not None:
                discriminator = item.discriminator
    return annotation, discriminator if isinstance(discriminator, str) else None


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types a value of ``annotation`` may be: the members of a union (``X | None`` too), or itself."""
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _tag(model: type[BaseModel], discriminator: str) -> Any:
    """The value of ``discriminator`` that picks ``model`` in a tagged union (its one `Literal`)."""
    return get_args(_keys(model)[discriminator].annotation)[0]


def _child(annotation: Any, part: str | int) -> tuple[Any, str | None]:
    """The type at key or index ``part`` of a value of ``annotation`` (None when it is not known)."""
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = _keys(member).get(str(part))
            if field is not None:
                return _unwrap(field.annotation, field)
        elif get_origin(member) in (dict, Mapping):
            return _unwrap(get_args(member)[1])
        elif get_origin(member) in (list, tuple, Sequence) and isinstance(part, int):
            return _unwrap(get_args(member)[0])
    return None, None


def _walk(kind: Any, loc: Sequence[str | int]) -> tuple[list[str | int], Any, str | None]:
    """An error location as params.yaml's keys (a tagged union's tag dropped), the type found at
    it, and its discriminator when that type is a tagged union."""
    annotation, discriminator = _unwrap(kind)
    keys: list[str | int] = []
    for part in loc:
        if discriminator is not None:  # ``part`` is the tag: it picks the union's member
            annotation = next((m for m in _models(annotation) if _tag(m, discriminator) == part), None)
            discriminator = None
            continue
        keys.append(part)
        annotation, discriminator = _child(annotation, part)
    return keys, annotation, discriminator


def key_type(kind: Any, dotted: str) -> Any:
    """The annotated type of the key ``dotted`` (``evaluate.gate``) inside ``kind``, its own
    constraints included; KeyError when ``kind`` has no such key (a key inside a tagged union is
    not known before its tag is read)."""
    annotation: Any = kind
    for part in dotted.split("."):
        field = next((_keys(m)[part] for m in _models(_unwrap(annotation)[0]) if part in _keys(m)), None)
        if field is None or _unwrap(annotation)[1] is not None:
            raise KeyError(f"{dotted}: not a key of {getattr(kind, '__name__', kind)}")
        annotation = Annotated[field.annotation, field]
    return annotation


def _keys_of(annotation: Any) -> list[str]:
    """The keys a value of ``annotation`` accepts, when it is a model."""
    models = _models(annotation)
    return sorted(_keys(models[0])) if models else []


def _keys(model: Any) -> dict[str, Any]:
    """A model's fields by the key that params.yaml uses (the alias, where there is one)."""
    return {field.alias or name: field for name, field in getattr(model, "model_fields", {}).items()}


def compose(config_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The mapping `dvc exp run -S <overrides>` would write to params.yaml."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        write_params(config_dir, out, overrides)
        return yaml.safe_load(out.read_text())


def write_params(config_dir: str | Path, output: str | Path, overrides: Sequence[str] = ()) -> None:
    """Write params.yaml exactly as `dvc exp run` composes it (DVC's own Hydra call)."""
    from dvc.utils.hydra import compose_and_dump
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        compose_and_dump(Path(output), str(Path(config_dir).resolve()), None, "config", "", list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{config_dir}/ does not compose: {' '.join(str(exc).split())}") from None


class _Missing:
    """The value of a key a mapping does not have (`differences`)."""

    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


def differences(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in have, value in want)`` of every leaf the two mappings disagree on, a
    key only one of them has included (its missing side `MISSING`), sorted by key."""
    flat_have, flat_want = _flat(have), _flat(want)
    keys = sorted(set(flat_have) | set(flat_want))
    return [
        (key, flat_have.get(key, MISSING), flat_want.get(key, MISSING))
        for key in keys
        if flat_have.get(key, MISSING) != flat_want.get(key, MISSING)
    ]


# --------------------------------------------------------------------------------------------
# Writing conf/: the one place that edits conf/config.yaml (comments kept)

CONFIG_FILE = "config.yaml"


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf (a list or a scalar); an empty mapping is a leaf too."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def set_key(node: Any, dotted: str, value: Any) -> None:
    """Set the dotted key of a nested mapping, making the mappings on the way."""
    *path, last = dotted.split(".")
    for key in path:
        if key not in node or not isinstance(node[key], Mapping):
            node[key] = {}
        node = node[key]
    node[last] = value


def update_composition(config_dir: str | Path, choices: Mapping[str, str], overrides: Mapping[str, Any]) -> None:
    """Set group options in conf/config.yaml's defaults list and keys that override them (written
    after ``_self_``, so they win over the groups; `-S` overrides still win over them)."""
    from ruamel.yaml import YAML

    path = Path(config_dir) / CONFIG_FILE
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    yaml_rt.indent(mapping=2, sequence=4, offset=2)
    doc = yaml_rt.load(path.read_text(encoding="utf-8"))
    defaults = doc["defaults"]
    for group_name, option in choices.items():
        for i, entry in enumerate(defaults):
            if isinstance(entry, Mapping) and group_name in entry:
                defaults[i][group_name] = option
                break
        else:
            raise ConfigError(f"conf/{CONFIG_FILE} has no default for group {group_name!r}")
    for dotted, value in overrides.items():
        set_key(doc, dotted, value)
    with path.open("w", encoding="utf-8") as out:
        yaml_rt.dump(doc, out)


def _group_options(config_dir: Path, name: str) -> list[str]:
    folder = config_dir / name
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _option_cost(wanted: Any, item: tuple[str | None, Any]) -> tuple[int, bool]:
    """The keys a group option leaves to override to reach ``wanted``; the current one (None) wins a tie."""
    option, base = item
    if not isinstance(wanted, Mapping) or not isinstance(base, Mapping):
        return (0 if base == wanted else 1, option is not None)
    flat_base = _flat(base)
    return (sum(flat_base.get(k, object()) != v for k, v in _flat(wanted).items()), option is not None)


def adopt(params: Mapping[str, Any], config_dir: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Make conf/ compose to ``params`` (an applied experiment's params.yaml): per group, the option
    that leaves the fewest keys to override (the current one on a tie), then those keys as
    overrides in conf/config.yaml. Returns what it set; raises ConfigError if the result still
    differs (a key conf/ cannot express)."""
    config_dir = Path(config_dir)
    current = compose(config_dir)
    choices: dict[str, str] = {}
    overrides: dict[str, Any] = {}
    for name, wanted in params.items():
        if name in current and current[name] == wanted:
            continue
        candidates: dict[str | None, Any] = {None: current.get(name)}
        if isinstance(wanted, Mapping):
            for option in _group_options(config_dir, name):
                candidates[option] = compose(config_dir, [f"{name}={option}"])[name]
        chosen, base = min(candidates.items(), key=functools.partial(_option_cost, wanted))
        if chosen is not None:
            choices[name] = chosen
        if isinstance(wanted, Mapping) and isinstance(base, Mapping):
            flat_base = _flat(base)
            overrides |= {f"{name}.{k}": v for k, v in _flat(wanted).items() if flat_base.get(k, object()) != v}
        elif base != wanted:
            overrides[name] = wanted
    if choices or overrides:
        update_composition(config_dir, choices, overrides)
    composed = compose(config_dir)
    if left := [key for key, _, _ in differences(composed, params)]:
        raise ConfigError(f"conf/ cannot express these keys of params.yaml: {left}; edit conf/ by hand for them")
    return choices, overrides
