"""A user's own transaction file: what its columns hold, and which contract column each one is.

`fraudpipe data add` shows this before anything is written, so a user sees the mapping it would
use and corrects it with ``--map`` instead of discovering it by a failed run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
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
    if pd.api.types.is_float_dtype(values):
        return "number", ""
    text = values.astype(str).str.strip()
    if text.str.fullmatch(_INTEGER.pattern).all():
        if text.isin(["0", "1"]).all():
            return "label", ""
        if id_array(text.to_numpy()).dtype != np.int64:  # the contract's rule for ids
            return "text", "digits with leading zeros or signs: kept as text ids, so '007' and '7' stay different"
        return "integer", ""
    if text.str.fullmatch(_NUMBER.pattern).all():
        return "number", ""
    if text.str.fullmatch(_DATETIME.pattern).all():
        return "datetime", ""
    if text.str.fullmatch(_DATE.pattern).all():
        return "date", "dates without a time of day"
    return "text", ""


def profile_columns(frame: pd.DataFrame, sample_rows: int = 100_000) -> list[ColumnProfile]:
    """One profile per column: its kind judged on up to ``sample_rows`` rows spread over the file,
    its distinct and missing counts over every row (a user reads them as the file's)."""
    step = max(1, len(frame) // sample_rows) if len(frame) > sample_rows else 1
    profiles = []
    for name in frame.columns:
        full = _present(frame[name])
        present = full.iloc[::step]
        kind, note = _kind(present)
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
    and whose values fit. An unnamed index column (``Unnamed: 0``, as pandas writes it) is never
    proposed. Each source column is used once."""
    mapping = dict(given or {})
    used = set(mapping.values())
    by_name = {_normalised(p.name): p for p in profiles if not p.name.lower().startswith("unnamed")}
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


# --------------------------------------------------------------------------------------------
# Settings that depend on the data

#: Fewer frauds than these make a period's metrics noise (AP on a handful of frauds swings by
#: tenths) or leave a model nothing to learn from.
MIN_TRAIN_FRAUDS = 100
MIN_TEST_FRAUDS = 30
MIN_THRESHOLD_FRAUDS = 10
MIN_PERIOD_DAYS = 7  # a whole week: weekday and weekend behaviour both present
LABEL_DELAY_DAYS = 7  # the handbook's label delay; a property of the fraud process, not the file
MAX_FOLDS = 4
MAX_CARD_BUDGET = 100  # the handbook's card precision@100


@dataclass(frozen=True)
class Derived:
    """One setting chosen from the data, with the reason a user can check."""

    key: str
    value: object
    reason: str


def _suffix_days(daily: pd.Series, end: int, minimum: int, floor: int) -> int | None:
    """The fewest whole days ending before day ``end`` (>= ``floor``) that hold ``minimum`` frauds."""
    total = 0
    for length in range(1, end + 1):
        total += int(daily.iloc[end - length])
        if length >= floor and total >= minimum:
            return length
    return None


def derive_settings(transactions: pd.DataFrame) -> tuple[list[Derived], list[str]]:
    """Split lengths, threshold days, folds, CP@k budget, validation band and gate floors for a
    labelled table in the contract, from its own daily counts (dense and sparse weeks as they
    are, never an average); and the problems no setting can fix (too few frauds)."""
    times = transactions[TX_DATETIME]
    day = ((times - times.min().normalize()) // pd.Timedelta(days=1)).to_numpy()
    n_days = int(day.max()) + 1
    fraud = transactions[TX_FRAUD].fillna(0).to_numpy() == 1
    daily_frauds = pd.Series(fraud).groupby(day).sum().reindex(range(n_days), fill_value=0)
    out: list[Derived] = []
    problems: list[str] = []
    total_frauds, rate = int(fraud.sum()), float(fraud.mean())

    test_days = _suffix_days(daily_frauds, n_days, MIN_TEST_FRAUDS, MIN_PERIOD_DAYS)
    if test_days is None:
        problems.append(
            f"the file holds {total_frauds} frauds over {n_days} days; a test period needs {MIN_TEST_FRAUDS}"
        )
        return out, problems
    test_start = n_days - test_days
    out.append(
        Derived(
            "split.test_days",
            test_days,
            f"the last {test_days} days hold {int(daily_frauds.iloc[test_start:].sum())} frauds (>= {MIN_TEST_FRAUDS})",
        )
    )
    delay = LABEL_DELAY_DAYS
    out.append(
        Derived("split.delay_days", delay, "labels arrive about a week after the transaction (the handbook's delay)")
    )
    train_end = test_start - delay
    train_days = (
        _suffix_days(daily_frauds, max(train_end, 0), MIN_TRAIN_FRAUDS, MIN_PERIOD_DAYS) if train_end > 0 else None
    )
    if train_days is None:
        problems.append(
            f"before the test and delay periods the file holds {int(daily_frauds.iloc[: max(train_end, 0)].sum())} frauds over "
            f"{max(train_end, 0)} days; training needs {MIN_TRAIN_FRAUDS}"
        )
        return out, problems
    train_start = train_end - train_days
    out.append(
        Derived(
            "split.train_days",
            train_days,
            f"days {train_start}..{train_end - 1} hold {int(daily_frauds.iloc[train_start:train_end].sum())} frauds (>= {MIN_TRAIN_FRAUDS})",
        )
    )

    v = _suffix_days(daily_frauds, train_end, MIN_THRESHOLD_FRAUDS, 1)
    if v is None or v > train_days // 3:
        out.append(
            Derived(
                "model.threshold_validation_days",
                0,
                f"fewer than {MIN_THRESHOLD_FRAUDS} frauds in the last third of training: the threshold is chosen in-sample",
            )
        )
    else:
        out.append(
            Derived(
                "model.threshold_validation_days",
                v,
                f"the last {v} training days hold {int(daily_frauds.iloc[train_end - v : train_end].sum())} frauds (>= {MIN_THRESHOLD_FRAUDS})",
            )
        )

    folds = 1
    while folds < MAX_FOLDS:
        shift = folds * test_days
        start, t_start = train_start - shift, test_start - shift
        if (
            start < 0
            or daily_frauds.iloc[start : train_end - shift].sum() < MIN_TRAIN_FRAUDS
            or daily_frauds.iloc[t_start : t_start + test_days].sum() < MIN_TEST_FRAUDS
        ):
            break
        folds += 1
    out.append(
        Derived(
            "split.n_folds",
            folds,
            f"{folds} backtest fold(s) fit in the data with enough frauds in each (at most {MAX_FOLDS})",
        )
    )

    test_rows = day >= test_start
    daily_cards = transactions.loc[test_rows, CUSTOMER_ID].groupby(day[test_rows]).nunique()
    typical = int(daily_cards.median())
    k = max(1, min(MAX_CARD_BUDGET, typical))
    out.append(
        Derived(
            "evaluate.card_precision_k",
            k,
            f"a typical test day has {typical} distinct cards (budget at most {MAX_CARD_BUDGET})",
        )
    )

    low, high = _significant(rate / 4), min(1.0, _significant(rate * 4))
    out.append(Derived("validation.min_fraud_rate", low, f"a quarter of the file's fraud rate {rate:.4%}"))
    out.append(Derived("validation.max_fraud_rate", high, f"four times the file's fraud rate {rate:.4%}"))
    out.append(
        Derived(
            "validation.min_rows",
            min(1000, len(transactions)),
            f"a batch may not be smaller than this (the file has {len(transactions):,} rows)",
        )
    )
    amount = float(transactions[TX_AMOUNT].max())
    if amount > 100_000:
        ceiling = float(10 ** len(str(int(amount))))
        out.append(Derived("validation.max_amount", ceiling, f"the file's largest amount is {amount:,.2f}"))
    first, last = times.min(), times.max()
    if first < pd.Timestamp("2000-01-01") or last > pd.Timestamp("2030-12-31T23:59:59"):
        out.append(Derived("validation.min_datetime", f"{first.year}-01-01T00:00:00", f"the file starts {first}"))
        out.append(Derived("validation.max_datetime", f"{last.year + 5}-12-31T23:59:59", f"the file ends {last}"))
    floor = _significant(max(2 * rate, 0.001))
    out.append(
        Derived(
            "evaluate.gate.minimums.average_precision",
            floor,
            f"twice the AP of a random ranking (the fraud rate {rate:.4%})",
        )
    )
    out.append(Derived("evaluate.gate.minimums.roc_auc", 0.6, "clearly better than a random ranking (0.5)"))
    return out, problems


def _significant(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")


# --------------------------------------------------------------------------------------------
# `fraudpipe data add`

REQUIRED_MAPPING = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD)
_KINDS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Added:
    """What `add_dataset` did: the tracked file, the data option it wrote, the settings it derived."""

    path: Path
    data_config: Path
    derived: list[Derived]
    problems: list[str]


def source_config(
    path: Path, mapping: Mapping[str, str], datetime_format: str | None, options: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The conf/data/ option of a file: its kind by suffix, its path, its column mapping."""
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: a file ending in {path.suffix!r} is not a known source; use one of {sorted(_KINDS)}"
        )
    return {
        "source": kind,
        "path": path.as_posix(),
        "columns": dict(mapping),
        "datetime_format": datetime_format,
        "options": dict(options or {}),
    }


def read_contract(config: Mapping[str, object]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file read and parsed exactly as `ingest` will: (raw table, rows that parse cleanly)."""
    from fraudpipe.data.conform import to_contract
    from fraudpipe.data.sources import DataConfig, make_source

    parsed = parse(DataConfig, dict(config), "data")
    raw = make_source(parsed).read()
    conformed = to_contract(raw, parsed.columns, parsed.datetime_format)
    clean = conformed.frame[(conformed.reasons == "").to_numpy()].reset_index(drop=True)
    return raw, clean


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
) -> Added:
    """Bring a user's file into the pipeline: copy it under data/external/ (``dvc add``-ed), write
    conf/data/<name>.yaml, make it and split=relative the defaults with the settings derived from
    the data as overrides in conf/config.yaml, and recompose params.yaml. Nothing is written when
    the mapping is incomplete or the data cannot fill a training and a test period."""
    import shutil
    import subprocess
    import sys

    import yaml

    from fraudpipe.config import compose, update_composition, write_params
    from fraudpipe.pipeline.params import Params
    from fraudpipe.pipeline.preflight import settings_problems

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '-' and '.' (it names conf/data/<name>.yaml)")
    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    if track and not (root / ".dvc").is_dir():
        raise ConfigError(f"{root} is not the root of a DVC repository: run data add there, or pass --no-track")
    check_mapping(mapping)
    _, clean = read_contract(source_config(file, mapping, datetime_format, options))
    derived, problems = derive_settings(clean)
    if problems:
        raise DataError("the data cannot fill a training and a test period: " + "; ".join(problems))

    dest = EXTERNAL_DIR / f"{name}{file.suffix.lower()}"
    (root / dest).parent.mkdir(parents=True, exist_ok=True)
    if file.resolve() != (root / dest).resolve():
        shutil.copyfile(file, root / dest)
    config_dir = root / CONF_DIR
    data_config = config_dir / "data" / f"{name}.yaml"
    header = f"# {file.name}, added by `fraudpipe data add` (contract column: the file's column).\n"
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
    composed = parse(Params, compose(config_dir), "")
    problems = settings_problems(clean, composed.split, composed.model, composed.evaluate, composed.validation)
    if track:
        done = subprocess.run([sys.executable, "-m", "dvc", "add", str(dest)], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise ConfigError(
                f"`dvc add {dest}` failed ({detail[-1] if detail else 'no output'}); run data add at the "
                "root of the repository, or pass --no-track"
            )
    return Added(dest, data_config.relative_to(root), derived, problems)
