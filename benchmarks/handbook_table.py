"""The handbook's published tables (chapters 3 and 5) as our pipeline produces them, and ours beside them.

Issue 4, "Reproduce and beat the published table". On the data `dvc repro` built (interim
transactions, and locations when the source has them), with the library's own split, model and
metric code:

1. Chapter 3: the baseline split (split=handbook, features=handbook), each model of the published
   table, AUC ROC / average precision / card precision@100 beside the published figures. Fold 0
   is the baseline split itself; mean ± std over the prequential test folds is printed as the
   yardstick of what "a little different" means for a different random draw of the simulator.
2. Chapter 5: prequential test folds 0..n_folds-1 (params.yaml's split), mean ± std: the
   handbook's best published settings (XGBoost, 50 trees, learning rate 0.3, depth 3, as XGBoost
   1.x ran them: exact trees, base_score 0.5), the same with today's XGBoost defaults, and OUR
   default (params.yaml's features and model), with and without customer_terminal_distance.
   Also the same rows on the validation folds n_folds..2*n_folds-1 (further back in time), the
   only folds the model selection looked at, and on the handbook's own chapter-5 test folds:
   the baseline split shifted *forward* 0..n_folds-1 weeks (fold indices 0, -1, ...; the
   handbook selected on folds ending two weeks before its baseline training start), which the
   selection never saw either.
3. With the simulator's data: how far card precision@100 can go (see `cp_oracles`).
4. `--search`: the model selection that chose our default, on the validation folds only
   (see `search`); writes reports/handbook/search.json.

Writes reports/handbook/table.json and reports/handbook/README.md (no wall-clock in either: the
same data gives the same bytes); timings are printed.

    python benchmarks/handbook_table.py             # ~4 min on one core
    python benchmarks/handbook_table.py --search    # + the model selection, ~40 min on one busy core
    python benchmarks/handbook_table.py --root /tmp/clone

XGBoost runs on `--threads` threads (default 1: on a shared 2-core machine one thread is faster,
and exact/hist trees give the same model whatever the thread count). Runs that only feed AUC /
AP / CP@100 (chapter 3, the search) choose no threshold (threshold_validation_days=0: one fit
instead of two, same scores); the chapter-5 rows use the configs exactly as `dvc repro` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fraudpipe.config import compose
from fraudpipe.contract import CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD
from fraudpipe.data.split import SplitConfig, SplitParts, split_summary, time_split
from fraudpipe.evaluation.backtest import evaluate_folds
from fraudpipe.features.definitions import CUSTOMER_TERMINAL_DISTANCE, FeatureConfig, build_features
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_text
from fraudpipe.metrics import aggregate_folds, quality_metrics
from fraudpipe.model import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("roc_auc", "average_precision", "card_precision_at_k")  # k = 100, the handbook's budget
SHORT = {"roc_auc": "AUC", "average_precision": "AP", "card_precision_at_k": "CP@100"}

# The handbook's published figures (test set; AUC ROC, AP, CP@100).
PUBLISHED_SPLIT = {"rows_train": 67_240, "frauds_train": 598, "rows_test": 58_264, "frauds_test": 385}
PUBLISHED_CH3 = {
    "logistic_regression": (0.871, 0.606, 0.291),
    "decision_tree": (0.763, 0.496, 0.241),
    "random_forest": (0.867, 0.658, 0.287),
    "xgboost_handbook": (0.862, 0.639, 0.273),
    "xgboost_today": (0.838, 0.564, 0.246),  # "about": XGBoost >= 2.0 defaults on the same split
    "constant": (0.500, 0.007, 0.017),
}
PUBLISHED_CH5 = {"handbook_best": (0.872, 0.687, 0.303)}

HANDBOOK_BEST = ["model=xgboost_handbook", "model.n_estimators=50", "model.max_depth=3"]
TODAY = {"tree_method": "hist", "base_score": None}  # XGBoost >= 2.0 defaults

# --search, stage A: feature sets compared with the handbook's best model settings.
EXTRAS4 = ["amount_ratio", "amount_zscore", "nb_terminals", "seconds_since_prev_tx"]
FEATURE_VARIANTS: dict[str, dict[str, Any]] = {
    "handbook 15": {"extras": [], "terminal_windows": [1, 7, 30], "extra_windows": [7, 30]},
    "extended (4 extras, no distance)": {"extras": EXTRAS4, "terminal_windows": [1, 7, 30], "extra_windows": [7, 30]},
    "+ terminal windows 3, 14, 21": {
        "extras": EXTRAS4,
        "terminal_windows": [1, 7, 30, 3, 14, 21],
        "extra_windows": [7, 30],
    },
    "+ extra window 60": {"extras": EXTRAS4, "terminal_windows": [1, 7, 30], "extra_windows": [7, 30, 60]},
    "+ both": {"extras": EXTRAS4, "terminal_windows": [1, 7, 30, 3, 14, 21], "extra_windows": [7, 30, 60]},
    "+ both, ratio and z-score only": {
        "extras": EXTRAS4[:2],
        "terminal_windows": [1, 7, 30, 3, 14, 21],
        "extra_windows": [7, 30, 60],
    },
    "+ both, customer windows 3, 14": {
        "extras": EXTRAS4,
        "customer_windows": [1, 7, 30, 3, 14],
        "terminal_windows": [1, 7, 30, 3, 14, 21],
        "extra_windows": [7, 30, 60],
    },
}
# --search, stages B (coarse), C (finer, in the regularised corner B pointed to) and D (more and
# deeper trees): random draws of hist-tree settings, the bins drawn too. A hist fit costs about a
# ninth of an exact one, which pays for stage D; until issue 20 stages B and C fitted exact trees.
BINS = [256, 512, 1024, 2048, 4096]
COARSE = {
    "n_estimators": [50, 100, 200, 300],
    "learning_rate": [0.05, 0.1, 0.2, 0.3],
    "max_depth": [2, 3, 4, 5, 6],
    "min_child_weight": [1.0, 3.0, 10.0],
    "subsample": [0.7, 0.85, 1.0],
    "colsample_bytree": [0.5, 0.75, 1.0],
    "scale_pos_weight": [1.0, 3.0, 10.0],
    "max_bin": BINS,
}
FINE = {
    "n_estimators": [50, 100, 200],
    "learning_rate": [0.03, 0.05, 0.1],
    "max_depth": [3, 4, 5, 6],
    "min_child_weight": [10.0, 30.0, 100.0],
    "subsample": [0.7, 0.85, 1.0],
    "colsample_bytree": [0.5, 0.75, 1.0],
    "scale_pos_weight": [1.0, 3.0, 10.0],
    "max_bin": BINS,
}
DEEP = {
    "n_estimators": [100, 200, 300, 500, 800],
    "learning_rate": [0.01, 0.02, 0.03, 0.05],
    "max_depth": [5, 6, 7, 8, 10],
    "min_child_weight": [3.0, 10.0, 30.0, 100.0],
    "subsample": [0.6, 0.7, 0.85, 1.0],
    "colsample_bytree": [0.5, 0.75, 1.0],
    "scale_pos_weight": [1.0, 3.0, 10.0],
    "max_bin": BINS,
}
STAGES = (("coarse", COARSE, 0, 36), ("fine", FINE, 1, 24), ("deep", DEEP, 2, 40))  # name, space, seed, draws
HIST = {"tree_method": "hist"}
TREE_EXACT = {"tree_method": "exact", "max_bin": None}
# The default before issue 20 (stage C's winner with exact trees): the AP the new default must keep.
EXACT_DEFAULT = {
    "tree_method": "exact",
    "max_bin": None,
    "n_estimators": 50,
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_child_weight": 10.0,
    "subsample": 0.85,
    "colsample_bytree": 1.0,
    "scale_pos_weight": 3.0,
}
COMPROMISE_DAYS = 28  # the simulator's terminal compromise (the handbook's scenario 2)


# --------------------------------------------------------------------------------------------
# Evaluation


def fold_parts(table: pd.DataFrame, split: SplitConfig, folds: Sequence[int]) -> list[SplitParts]:
    """Prequential folds by index: fold k is the configured split shifted back k * test_days."""
    return [time_split(table, split, shift_days=k * split.test_days) for k in folds]


def evaluate(parts: Sequence[SplitParts], config: ModelConfig) -> dict[str, Any]:
    """Per-fold AUC / AP / CP@100 and their mean and std (ddof=1, as metrics.json reports them)."""
    per_fold = [{m: f[m] for m in METRICS} for f in evaluate_folds(parts, config, k=100)]
    return {"folds": per_fold, **aggregate_folds(per_fold)}


def fixed_scores(parts: Sequence[SplitParts], scores: Callable[[pd.DataFrame], np.ndarray]) -> dict[str, Any]:
    """Metrics of scores that need no training (a constant, an oracle), in ``evaluate``'s shape."""
    per_fold = []
    for p in parts:
        m = quality_metrics(p.test, scores(p.test), 0.5)
        per_fold.append({k: m[k] for k in METRICS})
    return {"folds": per_fold, **aggregate_folds(per_fold)}


def paired(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """Per-fold differences ours - base (same test days), mean and std."""
    out = {}
    for m in METRICS:
        d = np.array([a[m] - b[m] for a, b in zip(ours["folds"], base["folds"])])
        out[f"{m}_diff_mean"], out[f"{m}_diff_std"] = (
            float(d.mean()),
            float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
        )
    return out


def beats(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """The issue's bar, "higher by more than the fold std", in both readings: unpaired (the gap of
    the means exceeds the larger of the two rows' fold std) and paired (the mean of the fold-by-fold
    differences, same test days, exceeds their std)."""
    diff = paired(ours, base)
    out: dict[str, dict[str, bool]] = {"unpaired": {}, "paired": {}}
    for m in METRICS[1:]:
        margin = ours[f"{m}_fold_mean"] - base[f"{m}_fold_mean"]
        out["unpaired"][m] = bool(margin > max(ours[f"{m}_fold_std"], base[f"{m}_fold_std"]))
        out["paired"][m] = bool(diff[f"{m}_diff_mean"] > diff[f"{m}_diff_std"])
    return out


def model_config(params: dict[str, Any]) -> ModelConfig:
    return ModelConfig.parse(params["model"], "model")


def no_threshold(config: ModelConfig) -> ModelConfig:
    return config.replace(threshold_validation_days=0)


def hist_cuts_around(values: np.ndarray, x: float, max_bin: int = 256) -> tuple[float, float]:
    """The nearest cut points below and above x of XGBoost's hist sketch (max_bin quantile bins):
    the finest split near x a hist tree can make. Quantiles of a standardised column are the
    standardised quantiles, so raw values give the same bins."""
    import xgboost

    _, cuts = xgboost.QuantileDMatrix(np.asarray(values, dtype=np.float64)[:, None], max_bin=max_bin).get_quantile_cut()
    cuts = np.asarray(cuts)
    below, above = cuts[cuts <= x], cuts[cuts > x]
    return float(below.max()) if below.size else float("nan"), float(above.min()) if above.size else float("nan")


def outside(models: dict[str, Any], published: dict[str, tuple[float, ...]], k: float = 2.0) -> list[str]:
    """Published figures further than k fold stds from our mean over folds: where to look for a
    wrong definition rather than a different random draw."""
    out = []
    for name, row in models.items():
        for m, pub in zip(METRICS, published[name]):
            mean, std = row[f"{m}_fold_mean"], row[f"{m}_fold_std"]
            if abs(pub - mean) > k * max(std, 1e-3):
                out.append(f"{name} {SHORT[m]}: published {pub:.3f}, ours {mean:.3f} ± {std:.3f}")
    return out


# --------------------------------------------------------------------------------------------
# Card precision@100 oracles (simulated data only)


def cp_oracles(tx: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame | None:
    """Per transaction, the scores of two oracles (1 on the frauds they know, 0 elsewhere): one knows
    every fraud; the other only the frauds some feature can reveal with labels d days late.

    Revealable: an amount fraud (scenario 1) or a customer-compromise fraud (scenario 3) always
    (generous: a small amount times five is not always visible), and a terminal-compromise fraud
    (scenario 2) once a fraud of *that* compromise is labelled, i.e. a scenario-2 fraud at the
    terminal in (t - 28 days, t - d] (a compromise lasts 28 days). Before that, nothing in the data
    tells the terminal apart: amounts and customers do not change. Needs the simulator's scenario
    labels: None for any other source, or when the data is not the configured draw.
    """
    data = params["data"]
    if data.get("source") != "simulated":
        return None
    from fraudpipe.data.simulate import TX_FRAUD_SCENARIO, SimulatorConfig, simulate

    sim = simulate(SimulatorConfig.parse(data["simulator"], "data.simulator")).transactions
    if (
        len(sim) != len(tx)
        or not (sim[TRANSACTION_ID].to_numpy() == tx[TRANSACTION_ID].to_numpy()).all()
        or not (sim[TX_FRAUD].to_numpy() == tx[TX_FRAUD].to_numpy()).all()
    ):
        return None
    delay = int(params["features"]["delay_days"])
    scenario = sim[TX_FRAUD_SCENARIO].to_numpy()
    compromise = tx.assign(**{TX_FRAUD: pd.array((scenario == 2).astype(np.int8), dtype="Int8")})
    window = COMPROMISE_DAYS - delay
    known = build_features(
        compromise,
        FeatureConfig(
            set="oracle",
            customer_windows=(1,),
            terminal_windows=(window,),
            delay_days=delay,
            extras=(),
            extra_windows=(7,),
        ),
    )
    fraud = tx[TX_FRAUD].to_numpy() == 1
    revealable = fraud & ((scenario != 2) | (known[f"terminal_id_risk_{window}day_window"].to_numpy() > 0))
    return tx[[TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_FRAUD]].assign(
        all_frauds=fraud.astype(np.float64), revealable_frauds=revealable.astype(np.float64)
    )


def oracle_rows(oracles: pd.DataFrame, split: SplitConfig, folds: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Each oracle's metrics over ``folds``, in the shape of ``evaluate``'s rows."""
    parts = fold_parts(oracles, split, folds)
    return {
        f"oracle_{name}": fixed_scores(parts, lambda t, name=name: t[name].to_numpy())
        for name in ("all_frauds", "revealable_frauds")
    }


# --------------------------------------------------------------------------------------------
# Model selection (--search)


def draws(space: dict[str, list], seed: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{k: v[rng.integers(len(v))] for k, v in space.items()} for _ in range(n)]


def selection_score(cand: dict[str, Any], base: dict[str, Any]) -> float:
    """The smaller of the AP and CP@100 gains over the baseline, each in units of the baseline's
    fold std: the candidate must beat it on both metrics, so the weaker one decides."""
    return min((cand[f"{m}_fold_mean"] - base[f"{m}_fold_mean"]) / base[f"{m}_fold_std"] for m in METRICS[1:])


def search(
    handbook: dict[str, Any],
    split: SplitConfig,
    folds: Sequence[int],
    features: Callable[[FeatureConfig], pd.DataFrame],
) -> dict[str, Any]:
    """Stage A: feature sets under the handbook's best model settings, pick the highest mean AP;
    stages B-D: hist-tree settings drawn at random (fixed seeds) on those features; stage E: the
    best of them with every other bin count, and with approx and exact trees for comparison. The
    winner is the hist setting with the highest `selection_score` among those that lose no AP to
    the exact default (`EXACT_DEFAULT`), fold by fold on average: a hist fit costs about a ninth of
    an exact one, so exact trees stay only if no hist setting keeps their AP. Only the validation
    folds are used."""
    base_model = no_threshold(model_config(handbook))
    base_table = features(FeatureConfig.parse(handbook["features"], "features"))
    base = evaluate(fold_parts(base_table, split, folds), base_model)
    print(f"\nmodel selection on validation folds {list(folds)}; baseline {_fmt(base)}")
    variants = []
    for name, change in FEATURE_VARIANTS.items():
        fc = FeatureConfig.parse({**handbook["features"], "set": "extended", **change}, "features")
        t0 = time.perf_counter()
        row = evaluate(fold_parts(features(fc), split, folds), base_model)
        variants.append({"name": name, "features": fc.to_dict(), **_means(row)})
        print(f"  A {name:38s} {_fmt(row)}  {time.perf_counter() - t0:.0f} s", flush=True)
    chosen = max(variants, key=lambda v: v["average_precision_fold_mean"])
    fc = FeatureConfig.parse(chosen["features"], "features")
    parts = fold_parts(features(fc), split, folds)
    reference = evaluate(parts, base_model.replace(**EXACT_DEFAULT))
    print(f"  exact default {json.dumps(EXACT_DEFAULT)}  {_fmt(reference)}", flush=True)

    def trial(stage: str, i: int, params: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        row = evaluate(parts, base_model.replace(**params))
        ap = paired(row, reference)
        out = {
            "stage": stage,
            "draw": i,
            "params": params,
            **_means(row),
            "score": selection_score(row, base),
            "ap_vs_exact_default_mean": ap["average_precision_diff_mean"],
            "ap_vs_exact_default_std": ap["average_precision_diff_std"],
        }
        print(
            f"  {stage[0].upper()}{i:<3d} {json.dumps(params)}  {_fmt(row)}  score {out['score']:+.2f}  "
            f"AP vs exact default {ap['average_precision_diff_mean']:+.4f}  {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        return out

    drawn = [
        trial(stage, i, {**HIST, **p}) for stage, space, seed, n in STAGES for i, p in enumerate(draws(space, seed, n))
    ]
    best = max(filter(eligible, drawn), key=rank, default=None)
    around: list[dict[str, Any]] = []
    if best is not None:
        changes = [{"max_bin": b} for b in BINS if b != best["params"]["max_bin"]] + [
            {"tree_method": "approx"},
            TREE_EXACT,
        ]
        around = [trial("tree method and bins", i, {**best["params"], **c}) for i, c in enumerate(changes)]
    exact_default = {
        "stage": "exact default",
        "draw": 0,
        "params": EXACT_DEFAULT,
        **_means(reference),
        "score": selection_score(reference, base),
        "ap_vs_exact_default_mean": 0.0,
        "ap_vs_exact_default_std": 0.0,
    }
    trials = [exact_default, *drawn, *around]
    hist = [t for t in trials if t["params"]["tree_method"] == "hist"]
    winner = max(filter(eligible, hist), key=rank, default=exact_default)
    unconstrained = max(trials, key=rank)
    return {
        "validation_folds": list(folds),
        "baseline": _means(base),
        "feature_variants": variants,
        "chosen_features": chosen["features"],
        "trials": trials,
        "best_without_the_ap_bar": {k: unconstrained[k] for k in ("stage", "draw", "params", "score")},
        "stage_e_refits": None if best is None else {k: best[k] for k in ("stage", "draw")},
        "winner": {
            "features": chosen["features"],
            "model": {"base_score": base_model.base_score, **winner["params"]},
            **{k: v for k, v in winner.items() if k.endswith(("_mean", "_std")) or k in ("score", "stage", "draw")},
        },
    }


def eligible(trial: dict[str, Any]) -> bool:
    """Loses no average precision to the exact default on the validation folds (paired mean)."""
    return bool(trial["ap_vs_exact_default_mean"] >= 0.0)


def rank(trial: dict[str, Any]) -> tuple[float, float]:
    return trial["score"], trial["average_precision_fold_mean"]


# --------------------------------------------------------------------------------------------
# Output


def _means(row: dict[str, Any]) -> dict[str, float]:
    return {f"{m}_fold_{s}": row[f"{m}_fold_{s}"] for m in METRICS for s in ("mean", "std")}


def _fmt(row: dict[str, Any]) -> str:
    return "  ".join(f"{SHORT[m]} {row[f'{m}_fold_mean']:.3f}±{row[f'{m}_fold_std']:.3f}" for m in METRICS)


def _pm(row: dict[str, Any], m: str) -> str:
    return f"{row[f'{m}_fold_mean']:.3f} ± {row[f'{m}_fold_std']:.3f}"


def _fold_table(entry: dict[str, Any], published: dict[str, tuple[float, ...]] | None) -> list[str]:
    """One chapter-5 table: each configuration (and the oracles, when known) over one fold set."""
    head = "| configuration | AUC | AP | CP@100 |" + (" published AUC | AP | CP@100 |" if published else "")
    lines = [head, "|---" * (4 + (3 if published else 0)) + "|"]
    for name, row in {**entry["rows"], **entry.get("oracles", {})}.items():
        line = f"| {name} | " + " | ".join(_pm(row, m) for m in METRICS) + " |"
        if published:
            line += " " + (_cells(published[name]) if name in published else " | ".join(["–"] * 3)) + " |"
        lines.append(line)
    return lines


def _verdict(who: str, diff: dict[str, float], verdict: dict[str, dict[str, bool]]) -> str:
    yes = lambda reading: ", ".join(f"{SHORT[m]} {'yes' if v else 'NO'}" for m, v in verdict[reading].items())  # noqa: E731
    return (
        f"{who} minus handbook best, fold by fold: "
        + ", ".join(f"{SHORT[m]} {diff[f'{m}_diff_mean']:+.3f} ± {diff[f'{m}_diff_std']:.3f}" for m in METRICS)
        + f". Higher by more than the fold std: unpaired (gap of means > larger fold std) {yes('unpaired')}; "
        f"paired (mean difference > its std) {yes('paired')}."
    )


def _against_exact_default(diff: dict[str, float]) -> str:
    return (
        "Ours minus exact_default (the default before issue 20: exact trees, 50 trees, learning rate 0.05, depth 6, "
        "min_child_weight 10, subsample 0.85, frauds weighted 3), fold by fold: "
        + ", ".join(f"{SHORT[m]} {diff[f'{m}_diff_mean']:+.4f} ± {diff[f'{m}_diff_std']:.4f}" for m in METRICS)
        + "."
    )


def _cells(values: Sequence[float]) -> str:
    return " | ".join(f"{v:.3f}" for v in values)


def markdown(result: dict[str, Any], search_result: dict[str, Any] | None) -> str:
    ch3, ch5 = result["chapter3"], result["chapter5"]
    s, p = ch3["split"], PUBLISHED_SPLIT
    lines = [
        "# The handbook's tables, reproduced, and our candidate beside them",
        "",
        "Generated by `python benchmarks/handbook_table.py` (numbers in `table.json`). Data: "
        f"{result['data']['rows']:,} transactions, {result['data']['frauds']:,} frauds "
        f"({result['data']['source']} source).",
        "",
        "## Chapter 3: baseline split, handbook features",
        "",
        f"Train {s['rows_train']:,} tx / {s['frauds_train']} frauds "
        f"(published {p['rows_train']:,} / {p['frauds_train']}); "
        f"test {s['rows_test']:,} / {s['frauds_test']} after removing known compromised cards "
        f"(published {p['rows_test']:,} / {p['frauds_test']}).",
        "",
        "| model | AUC | AP | CP@100 | published AUC | AP | CP@100 | ours over the test folds: AUC | AP | CP@100 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in ch3["models"].items():
        spread = " | ".join(_pm(row, m) for m in METRICS)
        lines.append(
            f"| {name} | {_cells([row['folds'][0][m] for m in METRICS])} | {_cells(PUBLISHED_CH3[name])} | {spread} |"
        )
    below, above = ch3["hist_amount_cuts_around_220"]
    flagged = ch3["published_outside_2_std"]
    lines += [
        "",
        "xgboost_handbook: exact trees, base_score 0.5, 100 trees, learning rate 0.3, depth 6 (XGBoost 1.x defaults); "
        "xgboost_today: the same with XGBoost's current defaults (hist trees, base_score estimated from the data). "
        f"At XGBoost's default 256 bins, hist trees split tx_amount only at 256 quantiles: on the baseline training "
        f'data the cuts nearest the published fraud rule "amount > 220" are {below:.2f} and {above:.2f}, so no tree '
        "can express it (from 512 bins there is a cut just above 220; our default has 4096).",
        "",
        "Published figures more than 2 fold stds from our mean over folds: "
        + ("; ".join(flagged) if flagged else "none")
        + ". The simulator is a different random draw of the same process.",
        "",
    ]
    sets = ch5["fold_sets"]
    lines += ["## Chapter 5: prequential folds (mean ± std over folds)", ""]
    for key, entry in sets.items():
        lines += [f"### Folds {entry['folds']}: {entry['about']}", ""]
        lines += _fold_table(entry, PUBLISHED_CH5 if key == "handbook_folds" else None)
        lines += ["", _verdict("Ours", entry["ours_minus_handbook_best"], entry["beats_handbook_best"])]
        lines += ["", _against_exact_default(entry["ours_minus_exact_default"])]
        if "oracle_minus_handbook_best" in entry:
            lines += [
                "",
                _verdict(
                    "The revealable-frauds oracle",
                    entry["oracle_minus_handbook_best"],
                    entry["oracle_beats_handbook_best"],
                ),
            ]
        lines.append("")
    lines += [
        "Our configuration (params.yaml):",
        "",
        "```yaml",
        yaml.safe_dump(
            {"features": ch5["ours"]["features"], "model": ch5["ours"]["model"]},
            sort_keys=False,
            default_flow_style=None,
        ).rstrip(),
        "```",
    ]
    test = sets["test"]
    if "oracles" in test:
        o = test["oracles"]
        cp = "card_precision_at_k"
        lines += [
            "",
            "## How far card precision@100 can go",
            "",
            "Two oracles score 1 on the frauds they know and 0 elsewhere. One knows every fraud: "
            f"CP@100 {_pm(o['oracle_all_frauds'], cp)} on the test folds. "
            "The other knows only the frauds some feature can reveal "
            f"with labels {ch5['ours']['features']['delay_days']} days late: "
            "every amount fraud and customer-compromise fraud "
            "(generous: a small amount times five does not stand out), "
            "and a terminal-compromise fraud once a fraud of that "
            "same compromise is labelled. A terminal compromised within the last week looks like any other terminal: "
            "amounts and customers do not change, and its frauds are not labelled yet. That oracle reaches "
            f"{_pm(o['oracle_revealable_frauds'], cp)}; "
            f"the handbook's best settings reach {_pm(test['rows']['handbook_best'], cp)} "
            f"and ours {_pm(test['rows']['ours'], cp)}.",
            "",
            "Against the issue's bar for CP@100 read unpaired (the gap of the means larger than the fold std), "
            "the oracle's "
            "gap over the handbook's best is "
            + "; ".join(
                f"{oracle[f'{cp}_fold_mean'] - best[f'{cp}_fold_mean']:+.3f} on folds {e['folds']} "
                f"(fold std {max(oracle[f'{cp}_fold_std'], best[f'{cp}_fold_std']):.3f})"
                for e in sets.values()
                if "oracles" in e
                for oracle, best in [(e["oracles"]["oracle_revealable_frauds"], e["rows"]["handbook_best"])]
            )
            + ": where even a perfect ranking of what the data reveals does not clear it, no model can. "
            "The spread between "
            "folds is how many revealable frauds each week holds, which moves every model alike; the paired reading "
            "(same test days) takes it out.",
        ]
    if search_result:
        lines += ["", *_search_markdown(search_result)]
    return "\n".join(lines) + "\n"


def _search_markdown(found: dict[str, Any]) -> list[str]:
    w, free = found["winner"], found["best_without_the_ap_bar"]
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for t in found["trials"]:
        by_stage.setdefault(t["stage"], []).append(t)
    lines = [
        "## Model selection (`--search`, search.json)",
        "",
        f"On validation folds {found['validation_folds']} only. "
        f"Stage A compared {len(found['feature_variants'])} "
        "feature sets under the handbook's best model settings and kept the highest mean AP. Stages B, C and D drew "
        f"{sum(n for *_, n in STAGES)} hist-tree settings at random, the bins among {BINS} "
        f"(seeds {', '.join(str(s) for _, _, s, _ in STAGES)}; D: up to 800 trees of depth up to 10, which hist trees "
        "make affordable); stage E refitted the best of them with every other bin count, approx and exact trees. "
        "A setting is eligible when it loses no AP to the exact default (the default before issue 20) on these "
        "folds, paired mean of the fold-by-fold differences >= 0; the winner is the eligible hist setting with the "
        "highest min(AP gain, CP@100 gain) over the baseline, each in units of the baseline's fold std (a hist fit "
        "costs about a ninth of an exact one: exact trees stay only if no hist setting keeps their AP). "
        f"Winner (stage {w['stage']}, score {w['score']:+.2f}): `{json.dumps(w['model'])}`. "
        f"The highest score of any setting, whatever its tree method and AP: stage {free['stage']} "
        f"draw {free['draw']}, {free['score']:+.2f}.",
        "",
        "| stage | settings | best score | AP of the best | its AP minus the exact default's |",
        "|---|---|---|---|---|",
    ]
    for stage, rows in by_stage.items():
        top = max(rows, key=rank)
        lines.append(
            f"| {stage} | {len(rows)} | {top['score']:+.2f} | {_pm(top, 'average_precision')} | "
            f"{top['ap_vs_exact_default_mean']:+.4f} ± {top['ap_vs_exact_default_std']:.4f} |"
        )
    source = found["stage_e_refits"]
    around = [t for t in found["trials"] if source and (t["stage"], t["draw"]) == (source["stage"], source["draw"])]
    around += by_stage.get("tree method and bins", [])
    if around:
        lines += [
            "",
            f"Stage E: the best eligible setting of B-D (stage {source['stage']}, draw {source['draw']}) with every "
            "tree method and bin count:",
            "",
            "| tree method | max_bin | AUC | AP | CP@100 | AP minus the exact default's | score |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in sorted(around, key=lambda t: (t["params"]["tree_method"], t["params"]["max_bin"] or 0)):
            lines.append(
                f"| {t['params']['tree_method']} | {t['params']['max_bin'] or '–'} | "
                + " | ".join(_pm(t, m) for m in METRICS)
                + f" | {t['ap_vs_exact_default_mean']:+.4f} ± {t['ap_vs_exact_default_std']:.4f} | {t['score']:+.2f} |"
            )
    return lines


def print_tables(result: dict[str, Any]) -> None:
    ch3, ch5 = result["chapter3"], result["chapter5"]
    print("\nsplit (fold 0) vs published:", {k: (ch3["split"][k], v) for k, v in PUBLISHED_SPLIT.items()})
    print("published figures more than 2 fold stds from ours:", ch3["published_outside_2_std"] or "none")
    print("hist cuts of tx_amount around 220 (baseline train):", ch3["hist_amount_cuts_around_220"])
    print(f"\nchapter 3, baseline split: ours (fold 0) | published | ours mean±std over folds {ch3['folds']}")
    for name, row in ch3["models"].items():
        ours = " ".join(f"{row['folds'][0][m]:.3f}" for m in METRICS)
        print(f"  {name:20s} {ours} | {' '.join(f'{v:.3f}' for v in PUBLISHED_CH3[name])} | {_fmt(row)}")
    for key, entry in ch5["fold_sets"].items():
        print(f"\nchapter 5, {key} folds {entry['folds']}")
        for name, row in {**entry["rows"], **entry.get("oracles", {})}.items():
            print(f"  {name:28s} {_fmt(row)}")
        print(
            "  ours - handbook_best per fold:",
            {k: round(v, 4) for k, v in entry["ours_minus_handbook_best"].items()},
            entry["beats_handbook_best"],
        )
        print(
            "  ours - exact_default per fold:", {k: round(v, 4) for k, v in entry["ours_minus_exact_default"].items()}
        )
        if "oracle_minus_handbook_best" in entry:
            print(
                "  oracle - handbook_best per fold:",
                {k: round(v, 4) for k, v in entry["oracle_minus_handbook_best"].items()},
                entry["oracle_beats_handbook_best"],
            )


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout with params.yaml, conf/ and the built data/")
    ap.add_argument("--search", action="store_true", help="also rerun the model selection (validation folds)")
    ap.add_argument("--threads", type=int, default=1, help="XGBoost threads")
    args = ap.parse_args(argv)
    import xgboost

    xgboost.set_config(nthread=args.threads)
    root = args.root.resolve()
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    split = SplitConfig.parse(params["split"], "split")
    n = split.n_folds
    test_folds, val_folds, hb_folds = list(range(n)), list(range(n, 2 * n)), list(range(0, -n, -1))
    t_start = time.perf_counter()
    tx = read_parquet(root / "data/interim/transactions.parquet")
    locations = {k: read_parquet_if_exists(root / f"data/raw/{k}.parquet") for k in ("customers", "terminals")}
    cache: dict[FeatureConfig, pd.DataFrame] = {}

    def features(config: FeatureConfig) -> pd.DataFrame:
        if config not in cache:
            cache[config] = build_features(tx, config, **(locations if config.needs_locations else {}))
        return cache[config]

    def composed(*overrides: str) -> dict[str, Any]:
        return compose(root / "conf", list(overrides))

    def timed(label: str, fn: Any, *a: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*a)
        print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
        return out

    # Chapter 3
    handbook = composed("features=handbook", *HANDBOOK_BEST)
    hb_table = features(FeatureConfig.parse(handbook["features"], "features"))
    hb_parts = fold_parts(hb_table, split, test_folds)
    models: dict[str, Any] = {}
    print("chapter 3")
    for name in ("logistic_regression", "decision_tree", "random_forest", "xgboost_handbook"):
        config = no_threshold(model_config(composed("features=handbook", f"model={name}")))
        models[name] = timed(name, evaluate, hb_parts, config)
    config = model_config(composed("model=xgboost_handbook")).replace(**TODAY)
    models["xgboost_today"] = timed("xgboost_today", evaluate, hb_parts, no_threshold(config))
    models["constant"] = fixed_scores(hb_parts, lambda t: np.full(len(t), 0.5))
    chapter3 = {
        "folds": test_folds,
        "split": split_summary(hb_parts[0]),
        "models": models,
        "published_outside_2_std": outside(models, PUBLISHED_CH3),
        "hist_amount_cuts_around_220": hist_cuts_around(hb_parts[0].train[TX_AMOUNT].to_numpy(), 220.0),
    }

    # Chapter 5
    print("chapter 5")
    best = model_config(handbook)
    ours_fc, ours_model = FeatureConfig.parse(params["features"], "features"), model_config(params)
    rows_cfg: dict[str, tuple[FeatureConfig, ModelConfig]] = {
        "handbook_best": (FeatureConfig.parse(handbook["features"], "features"), best),
        "handbook_best_today_defaults": (FeatureConfig.parse(handbook["features"], "features"), best.replace(**TODAY)),
        "ours": (ours_fc, ours_model),
        "exact_default": (ours_fc, ours_model.replace(**EXACT_DEFAULT)),
    }
    if locations["customers"] is not None and locations["terminals"] is not None:
        with_distance = ours_fc.model_copy(
            update={"extras": tuple(dict.fromkeys((*ours_fc.extras, CUSTOMER_TERMINAL_DISTANCE)))}
        )
        key = "ours_without_distance" if ours_fc.needs_locations else "ours_with_distance"
        without_distance = ours_fc.model_copy(
            update={"extras": tuple(e for e in ours_fc.extras if e != CUSTOMER_TERMINAL_DISTANCE)}
        )
        rows_cfg[key] = (without_distance if ours_fc.needs_locations else with_distance, ours_model)
    oracles = timed("CP@100 oracles", cp_oracles, tx, params)
    fold_sets = {
        # name: folds, how they are used, whether the threshold is chosen (as dvc repro does)
        "test": (test_folds, "the project's test folds: the baseline split shifted back 0..n-1 weeks", True),
        "validation": (val_folds, "validation folds, further back: the only folds the model selection saw", False),
        "handbook_folds": (
            hb_folds,
            "the handbook's own chapter-5 test folds: the baseline split shifted forward; unseen by the selection too",
            False,
        ),
    }
    chapter5: dict[str, Any] = {"ours": {"features": params["features"], "model": params["model"]}, "fold_sets": {}}
    for key, (folds, about, threshold) in fold_sets.items():
        rows = {}
        for name, (fc, mc) in rows_cfg.items():
            rows[name] = timed(
                f"{name} ({key})",
                evaluate,
                fold_parts(features(fc), split, folds),
                mc if threshold else no_threshold(mc),
            )
        entry: dict[str, Any] = {"folds": folds, "about": about, "rows": rows}
        if oracles is not None:
            entry["oracles"] = oracle_rows(oracles, split, folds)
            entry["oracle_minus_handbook_best"] = paired(
                entry["oracles"]["oracle_revealable_frauds"], rows["handbook_best"]
            )
            entry["oracle_beats_handbook_best"] = beats(
                entry["oracles"]["oracle_revealable_frauds"], rows["handbook_best"]
            )
        entry["ours_minus_handbook_best"] = paired(rows["ours"], rows["handbook_best"])
        entry["beats_handbook_best"] = beats(rows["ours"], rows["handbook_best"])
        entry["ours_minus_exact_default"] = paired(rows["ours"], rows["exact_default"])
        chapter5["fold_sets"][key] = entry
    result = {
        "data": {"source": params["data"].get("source"), "rows": len(tx), "frauds": int(tx[TX_FRAUD].sum())},
        "chapter3": chapter3,
        "chapter5": chapter5,
    }
    print_tables(result)

    out = root / "reports/handbook"
    search_result = None
    if args.search:
        search_result = search(handbook, split, val_folds, features)
        write_json(search_result, out / "search.json")
        w = search_result["winner"]
        same = FeatureConfig.parse(w["features"], "features") == ours_fc and all(
            params["model"][k] == v for k, v in w["model"].items()
        )
        print(f"\nwinner: {json.dumps(w)}\nparams.yaml's default {'IS' if same else 'is NOT'} the winner")
    elif (out / "search.json").exists():
        search_result = json.loads((out / "search.json").read_text(encoding="utf-8"))
    write_json(result, out / "table.json")
    write_text(markdown(result, search_result), out / "README.md")
    print(f"\nwrote {out / 'table.json'} and {out / 'README.md'} in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
