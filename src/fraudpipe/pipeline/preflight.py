"""The whole configuration checked before the long stages run, so that one failed run lists every
problem with the key to change, instead of each stage finding its own one run at a time.

Two checks, two stages: the configuration alone (params.yaml what conf/ composes to, every group
parsed by its model) before ingest, and the data-dependent settings (periods, folds, threshold
days, CP@k budget, fraud-rate band) against the preprocessed transactions before split.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from fraudpipe.config import differences
from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD, require_columns
from fraudpipe.data.split import SplitConfig, periods
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.errors import ConfigError
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model.config import ModelConfig
from fraudpipe.model.engines import model_problems
from fraudpipe.pipeline.params import GROUPS, VALUES, Params, load_all

#: Set by DVC for the stages `dvc exp run` runs, after it composed conf/ and the -S overrides into
#: params.yaml; unset in a plain `dvc repro`, which reads params.yaml as it is.
EXPERIMENT_ENV = "DVC_EXP_NAME"
#: Differing keys a stale params.yaml's message shows (the count says how many more).
SHOWN_DIFFERENCES = 3
#: What a failed experiment leaves behind, and how to undo it.
RESTORE = "this failed experiment's values stay in params.yaml until `fraudpipe params` recomposes it from conf/"


def in_experiment() -> bool:
    """Whether this stage runs inside `dvc exp run`, whose params.yaml is conf/ with its overrides."""
    return bool(os.environ.get(EXPERIMENT_ENV))


def composition_problem(params: Mapping[str, Any], composed: Mapping[str, Any], config_dir: Path) -> str | None:
    """Why params.yaml is not what ``config_dir`` composes to, with the commands that make them agree:
    an edit of conf/ not yet recomposed, a failed experiment's values, a hand edit. None when they agree."""
    found = differences(params, composed)
    if not found:
        return None
    shown = "; ".join(
        f"{key}: {have!r} in params.yaml, {want!r} from {config_dir}/" for key, have, want in found[:SHOWN_DIFFERENCES]
    )
    more = f"; {len(found) - SHOWN_DIFFERENCES} more" if len(found) > SHOWN_DIFFERENCES else ""
    return (
        f"params.yaml is not what {config_dir}/ composes to ({shown}{more}): run `fraudpipe params` to recompose "
        f"it from {config_dir}/ (after a failed `dvc exp run` this restores the workspace) or `fraudpipe adopt` to "
        f"write its values into {config_dir}/, then `dvc repro`"
    )


def config_problems(params: Mapping[str, Any]) -> list[str]:
    """Every group's mistakes (one entry per group, all its keys) and every unknown or missing group."""
    problems = []
    for name in params:
        if name not in Params.model_fields:
            close = difflib.get_close_matches(str(name), [*GROUPS, *VALUES], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"{name}: unknown group ({hint}known groups: {', '.join(GROUPS)})")
    parsed = {}
    for name in Params.model_fields:
        if name not in params:
            problems.append(f"{name}: missing group; run `fraudpipe params` to recompose params.yaml from conf/")
            continue
        try:
            parsed[name] = load_all(params, name)
        except ConfigError as exc:
            problems.append(str(exc))
    if "engine" in parsed and "model" in parsed:  # a rule between two groups
        problems += model_problems(parsed["engine"], parsed["model"])
    return problems


def settings_problems(
    transactions: pd.DataFrame,
    split: SplitConfig,
    model: ModelConfig,
    evaluate: EvaluateConfig,
    validation: ValidationConfig,
) -> list[str]:
    """Every data-dependent setting that cannot work on these transactions, each with the key to
    change: empty periods, periods without frauds, a threshold slice without frauds, a CP@k
    budget above the daily cards, a fraud rate or size the validation would refuse."""
    validation_days = model.threshold_validation_days
    k = evaluate.card_precision_k

    require_columns(transactions, [TX_DATETIME, CUSTOMER_ID, TX_FRAUD], "the transactions")
    problems: list[str] = []
    times = transactions[TX_DATETIME]
    fraud = transactions[TX_FRAUD].fillna(0).to_numpy() == 1
    first, last = times.min(), times.max()
    for fold in range(split.n_folds):
        bounds = periods(split, last, shift_days=fold * split.test_days)
        what = "the split" if fold == 0 else f"backtest fold {fold} (split.n_folds)"
        train = ((times >= bounds.train_start) & (times < bounds.delay_start)).to_numpy()
        test = ((times >= bounds.test_start) & (times < bounds.live_start)).to_numpy()
        if fold == 0:
            held = (
                (times >= bounds.delay_start - pd.Timedelta(days=validation_days)) & (times < bounds.delay_start)
            ).to_numpy()
            if validation_days and not fraud[held].any():
                problems.append(
                    f"model.threshold_validation_days: the last {validation_days} training day(s) hold no fraud; "
                    "raise it or set it to 0"
                )
            cards = transactions.loc[test, CUSTOMER_ID].groupby(times[test].dt.floor("D").to_numpy()).nunique()
            if len(cards) and k > int(cards.median()):
                problems.append(
                    f"evaluate.card_precision_k: {k} is more than a typical test day's {int(cards.median())} "
                    "cards; lower it"
                )
        move = (
            "move split.train_start or lower split.train_days"
            if split.train_start is not None
            else "lower split.train_days or split.n_folds"
        )
        if bounds.train_start < first.normalize():
            problems.append(
                f"{what}: training would start {bounds.train_start.date()}, before the data ({first.date()}); {move}"
            )
            continue
        for period, rows, start, end, key in (
            ("training", train, bounds.train_start, bounds.delay_start, "split.train_days"),
            ("test", test, bounds.test_start, bounds.live_start, "split.test_days"),
        ):
            if not rows.any():
                problems.append(
                    f"{what}: the {period} period {start.date()}..{end.date()} holds no transactions "
                    f"(data {first.date()}..{last.date()}); {move}"
                )
            elif not fraud[rows].any():
                problems.append(f"{what}: the {period} period {start.date()}..{end.date()} holds no fraud; raise {key}")
    rate = float(fraud.mean()) if len(fraud) else 0.0
    if not validation.min_fraud_rate <= rate <= validation.max_fraud_rate:
        problems.append(
            f"validation.min_fraud_rate/validation.max_fraud_rate: the data's fraud rate {rate:.4%} is outside "
            f"[{validation.min_fraud_rate}, {validation.max_fraud_rate}]"
        )
    if len(transactions) < validation.min_rows:
        problems.append(f"validation.min_rows: {validation.min_rows} is more than the data's {len(transactions)} rows")
    return problems


def require_no_problems(problems: list[str], what: str, then: str = "") -> None:
    """Stop with every problem in one message; `what` says what they were found in, `then` what to
    do besides fixing them."""
    if problems:
        after = f" ({then})" if then else ""
        raise ConfigError(f"{what}: every problem, each with the key to change: " + " | ".join(problems) + after)
