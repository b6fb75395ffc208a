"""The pipeline in one process on the simulator, up to monitoring: the drift scenarios that
tests/test_monitoring_scenarios.py and tests/test_monitoring_report.py check and benchmarks/monitor.py times.

Each scenario runs the library's own code with the configuration of conf/ (plus overrides):
simulate, preprocess, featurize, split, train, score the test period (the figures `evaluate`
writes) and the live period (what `infer` writes), then `drift.monitor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from fraudpipe.config import compose
from fraudpipe.data.preprocess import PreprocessConfig, preprocess
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.data.split import SplitConfig, time_split
from fraudpipe.features.definitions import FeatureConfig, build_features
from fraudpipe.metrics import EvaluateConfig, quality_metrics
from fraudpipe.model import ModelConfig, train_bundle
from fraudpipe.monitoring.config import MonitorConfig
from fraudpipe.monitoring.monitor import MonitorResult, monitor

ROOT = Path(__file__).resolve().parents[2]
DRIFT_FILE = ROOT / "conf" / "data" / "simulated_drift.yaml"

#: Simulator sizes: ``full`` is conf/data/simulated.yaml's (1.75 million transactions); ``tiny``
#: keeps the handbook's calendar split (train from 2018-07-25, a week each of train, delay and test)
#: with a month of live data and two months of history before training (so that the 60-day
#: windows are full in the reference too), about 230,000 transactions.
SIZES = {
    "full": [],
    "tiny": [
        "data.simulator.n_customers=1000",
        "data.simulator.n_terminals=4000",
        "data.simulator.n_days=118",
        "data.simulator.start_date=2018-05-20",
    ],
}


def drift_knobs() -> dict[str, object]:
    """The drift settings of conf/data/simulated_drift.yaml (``simulator.drift``)."""
    return yaml.safe_load(DRIFT_FILE.read_text())["simulator"]["drift"]


def drift_overrides(kinds: Sequence[str]) -> list[str]:
    """Hydra overrides that turn on the named knobs of simulated_drift.yaml (``amount_factor``,
    ``terminals_per_day``, ``night_fraud_share``) from the first live day; none: no drift."""
    knobs = drift_knobs()
    return [f"data.simulator.drift.{k}={knobs[k]}" for k in kinds]


def run_scenario(overrides: Sequence[str] = (), drift: Sequence[str] = (), seed: int | None = None) -> MonitorResult:
    """The monitoring result of one simulated run of the default configuration plus ``overrides``."""
    extra = list(overrides) + drift_overrides(drift) + ([f"data.simulator.seed={seed}"] if seed is not None else [])
    params = compose(ROOT / "conf", extra)
    split = SplitConfig.parse(params["split"], "split")
    simulator = params["data"]["simulator"]
    if drift:  # drift from the first live day: its index counted from the simulator's first day
        first_live = pd.Timestamp(split.train_start) + pd.Timedelta(
            days=split.train_days + split.delay_days + split.test_days
        )
        simulator["drift"]["start_day"] = int((first_live - pd.Timestamp(simulator["start_date"])).days)
    sim = simulate(SimulatorConfig.parse(simulator, "data.simulator"))
    clean = preprocess(sim.transactions, PreprocessConfig.parse(params["preprocess"], "preprocess")).clean
    table = build_features(clean, FeatureConfig.parse(params["features"], "features"), sim.customers, sim.terminals)
    parts = time_split(table, split)
    bundle = train_bundle(parts.train, ModelConfig.parse(params["model"], "model"))
    k = EvaluateConfig.parse(params["evaluate"], "evaluate").card_precision_k
    test_metrics = quality_metrics(parts.test, bundle.score(parts.test), bundle.threshold, k)
    live_scores = bundle.score(parts.live)
    return monitor(
        parts.train,
        bundle.score(parts.train),
        parts.live,
        live_scores,
        (live_scores >= bundle.threshold).astype("int8"),
        features=bundle.features,
        threshold=bundle.threshold,
        test_metrics=test_metrics,
        delay_days=split.delay_days,
        remove_known=split.remove_known_compromised,
        config=MonitorConfig.parse(params["monitor"], "monitor"),
        customers=sim.customers,
        model_version=f"{bundle.name} (trained by this benchmark run)",
    )
