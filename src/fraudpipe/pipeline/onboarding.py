"""A user's own transaction file: what its columns hold, and which contract column each one is.

`fraudpipe data add` shows this before anything is written, so a user sees the mapping it would
use and corrects it with ``--map`` instead of discovering it by a failed run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.config import parse
from fraudpipe.contract import (
    COORDINATE_COLUMNS,
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    id_array,
)
from fraudpipe.errors import ConfigError, DataError
from fraudpipe.paths import CONF_DIR, EXTERNAL_DIR, PARAMS
from fraudpipe.pipeline.derived import Derived, derive_settings, label_problem
from fraudpipe.pipeline.intake import (
    data_add_terms,
    empty_problem,
    kept_rows,
    open_validation,
    read_contract,
    stopping_label_problem,
)

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The share of a column's values that may not fit its kind (ingest quarantines them), as
#: conf/validation's default max_quarantine_share: more would stop ingest anyway.
_FEW_BAD = 0.01
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")

#: Contract column -> normalised source names that usually hold it, most specific first.
_NAMES: dict[str, tuple[str, ...]] = {
    TRANSACTION_ID: ("transactionid", "transnum", "txid", "transid", "transactionnumber", "id"),
    TX_DATETIME: (
        "txdatetime",
        "transdatetranstime",
        "transactiondatetime",
        "timestamp",
        "datetime",
        "transactiontime",
        "time",
        "date",
    ),
    CUSTOMER_ID: (
        "customerid",
        "ccnum",
        "cardid",
        "cardnumber",
        "card",
        "customer",
        "accountid",
        "account",
        "clientid",
        "userid",
    ),
    TERMINAL_ID: ("terminalid", "merchantid", "merchant", "merchantname", "terminal", "posid", "pos", "shop"),
    TX_AMOUNT: ("txamount", "amt", "amount", "transactionamount", "value"),
    TX_FRAUD: ("txfraud", "isfraud", "fraud", "fraudlabel", "label", "class", "target"),
    "customer_x": ("customerx", "customerlong", "customerlon", "long", "lon", "lng", "longitude"),
    "customer_y": ("customery", "customerlat", "lat", "latitude"),
    "terminal_x": ("terminalx", "merchlong", "merchantlong", "merchlon", "terminallong", "merchantlongitude"),
    "terminal_y": ("terminaly", "merchlat", "merchantlat", "terminallat", "merchantlatitude"),
}
#: What kind of values each contract column needs, to refuse a proposal that cannot parse.
_NEEDS: dict[str, tuple[str, ...]] = {
    TRANSACTION_ID: ("integer", "text"),
    TX_DATETIME: ("datetime",),
    CUSTOMER_ID: ("integer", "text"),
    TERMINAL_ID: ("integer", "text"),
    TX_AMOUNT: ("integer", "number"),
    TX_FRAUD: ("label",),
    **dict.fromkeys(COORDINATE_COLUMNS, ("integer", "number")),
}


@dataclass(frozen=True)
class ColumnProfile:
    """What one source column holds: its kind of values, how many are distinct, a few examples."""

    name: str
    kind: str  # integer, number, label (0/1), datetime, date, text, empty
    distinct: int
    missing: int
    examples: tuple[str, ...]
    note: str = ""


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _kind(values: pd.Series) -> tuple[str, str]:
    """The kind of a column's present values, and a note a user should read (e.g. leading zeros)."""
    if values.empty:
        return "empty", "every value is missing"
    if pd.api.types.is_bool_dtype(values):
        return "label", ""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", ""
    if pd.api.types.is_integer_dtype(values):
        return ("label", "") if values.isin([0, 1]).all() else ("integer", "")
    if pd.api.types.is_float_dtype(values):  # 0/1 with missing values is a float column
        return ("label", "") if values.isin([0.0, 1.0]).all() else ("number", "")
    text = values.astype(str).str.strip()
    if text.str.fullmatch(_INTEGER.pattern).all():
        if text.isin(["0", "1"]).all():
            return "label", ""
        if id_array(text.to_numpy()).dtype != np.int64:  # the contract's rule for ids
            return "text", "digits with leading zeros or signs: kept as text ids, so '007' and '7' stay different"
        return "integer", ""
    if text.str.fullmatch(_NUMBER.pattern).all():  # "0.0"/"1.0": a label written by a float column (missing values)
        return ("label", "") if pd.to_numeric(text).isin([0.0, 1.0]).all() else ("number", "")
    if text.str.fullmatch(_DATETIME.pattern).all():
        return "datetime", ""
    if text.str.fullmatch(_DATE.pattern).all():
        return "date", "dates without a time of day"
    for kind, pattern in (("number", _NUMBER), ("datetime", _DATETIME)):
        bad = text[~text.str.fullmatch(pattern.pattern)]
        if len(bad) <= _FEW_BAD * len(text):  # a few bad rows do not make a column text: ingest quarantines them
            return kind, f"{len(bad):,} value(s) are no {kind} (e.g. {bad.iloc[0]!r}): ingest quarantines those rows"
    return "text", ""


def profile_columns(frame: pd.DataFrame, sample_rows: int = 100_000) -> list[ColumnProfile]:
    """One profile per column: its kind judged on up to ``sample_rows`` rows spread over the file,
    its distinct and missing counts over every row (a user reads them as the file's). A name the
    file repeats is profiled once per column, with a note: no mapping can tell those apart."""
    step = max(1, len(frame) // sample_rows) if len(frame) > sample_rows else 1
    repeated = set(frame.columns[frame.columns.duplicated()])
    profiles = []
    for position, name in enumerate(frame.columns):
        full = _present(frame.iloc[:, position])
        present = full.iloc[::step]
        kind, note = _kind(present)
        if name in repeated:
            note = "more than one column has this name: rename them in the file to use one"
        examples = tuple(str(v) for v in present.drop_duplicates().head(3))
        profiles.append(
            ColumnProfile(str(name), kind, int(full.nunique()), int(len(frame) - len(full)), examples, note)
        )
    return profiles


def _present(column: pd.Series) -> pd.Series:
    """The values that are there: not missing, and for text not blank."""
    present = column.dropna()
    if not pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_datetime64_any_dtype(present):
        present = present[present.astype(str).str.strip() != ""]
    return present


def propose_mapping(profiles: Sequence[ColumnProfile], given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Contract column -> source column: the user's choices first, then names that usually hold it
    and whose values fit. An unnamed index column (``Unnamed: 0``, as pandas writes it) and a name
    the file repeats are never proposed. Each source column is used once."""
    mapping = dict(given or {})
    used = set(mapping.values())
    counts = Counter(p.name for p in profiles)
    by_name = {
        _normalised(p.name): p for p in profiles if not p.name.lower().startswith("unnamed") and counts[p.name] == 1
    }
    for target, names in _NAMES.items():
        if target in mapping:
            continue
        for name in names:
            profile = by_name.get(name)
            if profile is not None and profile.name not in used and profile.kind in _NEEDS[target]:
                mapping[target] = profile.name
                used.add(profile.name)
                break
    return mapping


#: Anonymised components (the ULB/Kaggle creditcard.csv layout: Time, V1..V28, Amount, Class).
_COMPONENTS = re.compile(r"[Vv]\d+")


def unmapped_refusal(profiles: Sequence[ColumnProfile], missing: Sequence[str]) -> str | None:
    """Why a file cannot be added when no column fits the contract columns ``missing``, or None when
    a ``--map`` may supply them: a file of anonymised components has no card, merchant or date."""
    components = [p.name for p in profiles if _COMPONENTS.fullmatch(p.name)]
    if len(components) < 5 or not {CUSTOMER_ID, TERMINAL_ID} & set(missing):
        return None
    return (
        f"the file holds {len(components)} anonymised components ({components[0]}..{components[-1]}, "
        "the ULB/Kaggle creditcard.csv layout) and no card, merchant or date column: the features are "
        "each card's and terminal's history over calendar days, and the model does not train on a file's "
        "own columns, so such a file cannot be added; a file with a card number, a merchant and a "
        "transaction date-time per row can"
    )


# --------------------------------------------------------------------------------------------
# `fraudpipe data add`

REQUIRED_MAPPING = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD)
#: In the first line of every conf/data/ option `data add` writes: the only ones it may replace.
ADDED_BY = "added by `fraudpipe data add`"
_KINDS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: The compressions pandas infers from a CSV file's last suffix (zst needs the zstandard package).
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")


@dataclass(frozen=True)
class Added:
    """What `add_dataset` did: the tracked file, the data option it wrote, the settings it derived."""

    path: Path
    data_config: Path
    derived: list[Derived]


def file_suffix(path: Path) -> tuple[str, str]:
    """The suffix that names a file's kind and its compression's: ``(".csv", ".gz")``, ``(".parquet", "")``."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSIONS and _KINDS.get(suffixes[-2]) == "csv":
        return suffixes[-2], suffixes[-1]
    return path.suffix.lower(), ""


def source_config(
    path: Path, mapping: Mapping[str, str], datetime_format: str | None, options: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The conf/data/ option of a file: its kind by suffix (a CSV file may be compressed, as pandas
    reads it: .csv.gz, .csv.zip, ...), its path, its column mapping."""
    kind = _KINDS.get(file_suffix(path)[0])
    if kind is None:
        known = [*_KINDS, *(f".csv{c}" for c in _COMPRESSIONS)]
        raise ConfigError(f"{path}: a file ending in {path.suffix!r} is not a known source; use one of {known}")
    return {
        "source": kind,
        "path": path.as_posix(),
        "columns": dict(mapping),
        "datetime_format": datetime_format,
        "options": dict(options or {}),
    }


def check_mapping(mapping: Mapping[str, str]) -> None:
    """ConfigError listing every contract column a labelled file must map and that is left out."""
    missing = [c for c in REQUIRED_MAPPING if c not in mapping]
    if missing:
        raise ConfigError("missing " + ", ".join(f"--map {c}=<column>" for c in missing))


def add_dataset(
    file: Path,
    name: str,
    mapping: Mapping[str, str],
    root: Path,
    datetime_format: str | None = None,
    options: Mapping[str, object] | None = None,
    track: bool = True,
    fixed: Mapping[str, Any] | None = None,
) -> Added:
    """Bring a user's file into the pipeline: copy it under data/external/ (``dvc add``-ed), write
    conf/data/<name>.yaml, make it and split=relative the defaults with the settings derived from
    the data (``fixed``: the user's own for some keys, the others derived around them) as
    overrides in conf/config.yaml, and recompose params.yaml. Nothing is written when ``name`` is
    a conf/data/ option that data add did not write (a built-in source, the user's own), the
    mapping is incomplete, ingest would stop on the file (its own one-line message, followed by
    the data add options that set the keys it names), the file holds no row, the labels are missing
    or not 0/1, the data cannot fill a training and a test period, or the settings fail the checks
    check_data will run. The settings are derived from the rows ingest keeps."""
    import shutil
    import subprocess
    import sys

    import yaml

    from fraudpipe.config import compose, set_key, update_composition, write_params
    from fraudpipe.pipeline.params import Params
    from fraudpipe.pipeline.rules import settings_problems

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '-' and '.' (it names conf/data/<name>.yaml)")
    config_dir = root / CONF_DIR
    data_config = config_dir / "data" / f"{name}.yaml"
    if data_config.exists() and ADDED_BY not in data_config.read_text(encoding="utf-8").partition("\n")[0]:
        raise ConfigError(
            f"--name {name!r}: conf/data/{name}.yaml is a data option `data add` did not write; choose another name"
        )
    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    if track and not (root / ".dvc").is_dir():
        raise ConfigError(f"{root} is not the root of a DVC repository: run data add there, or pass --no-track")
    check_mapping(mapping)
    fixed = dict(fixed or {})
    planned = compose(config_dir, ["split=relative"])
    with data_add_terms():
        validation = open_validation(planned["validation"], fixed)
        raw, conformed = read_contract(source_config(file, mapping, datetime_format, options))
    labels = conformed.frame[TX_FRAUD]
    if problem := empty_problem(raw, conformed.frame) or stopping_label_problem(
        labels, mapping[TX_FRAUD], validation.max_quarantine_share
    ):
        raise DataError(problem)
    with data_add_terms():
        clean = kept_rows(raw, conformed, validation)
    if problem := empty_problem(raw, clean) or label_problem(clean[TX_FRAUD], mapping[TX_FRAUD]):
        raise DataError(problem)
    derived, problems = derive_settings(clean, fixed)
    if problems:
        raise DataError("the data cannot fill a training and a test period: " + "; ".join(problems))
    for d in derived:
        set_key(planned, d.key, d.value)
    composed = parse(Params, planned, "")
    if problems := settings_problems(
        clean,
        composed.split,
        composed.model.threshold_validation_days,
        composed.evaluate.card_precision_k,
        composed.validation,
    ):
        raise DataError(
            "the settings would fail check_data: " + " | ".join(problems) + "; change them with --set KEY=VALUE"
        )

    dest = EXTERNAL_DIR / f"{name}{''.join(file_suffix(file))}"
    (root / dest).parent.mkdir(parents=True, exist_ok=True)
    if file.resolve() != (root / dest).resolve():
        shutil.copyfile(file, root / dest)
    header = f"# {file.name}, {ADDED_BY} (contract column: the file's column).\n"
    data_config.write_text(
        header + yaml.safe_dump(source_config(dest, mapping, datetime_format, options), sort_keys=False)
    )
    if all(c in mapping for c in COORDINATE_COLUMNS):
        from fraudpipe.features.definitions import CUSTOMER_TERMINAL_DISTANCE

        extras = list(compose(config_dir)["features"]["extras"])
        if CUSTOMER_TERMINAL_DISTANCE not in extras:
            reason = "the file maps customer and terminal coordinates"
            derived.append(Derived("features.extras", [*extras, CUSTOMER_TERMINAL_DISTANCE], reason))
    update_composition(config_dir, {"data": name, "split": "relative"}, {d.key: d.value for d in derived})
    write_params(config_dir, root / PARAMS)
    if track:
        done = subprocess.run([sys.executable, "-m", "dvc", "add", str(dest)], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise ConfigError(
                f"`dvc add {dest}` failed ({detail[-1] if detail else 'no output'}); run data add at the "
                "root of the repository, or pass --no-track"
            )
    return Added(dest, data_config.relative_to(root), derived)
