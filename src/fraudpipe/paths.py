"""Where the pipeline's files live, relative to the repository root: written once, here.

The stage scripts and the CLI's defaults name these constants; dvc.yaml, which DVC reads without
Python, spells them out, and tests/test_dvc_yaml.py checks that each stage declares exactly the
paths its script names. None holds a wall-clock figure: those differ on every run, so they would
leave git dirty after a rerun with nothing changed (benchmarks/scoring.py measures them).
"""

from __future__ import annotations

from pathlib import Path

# Configuration
PARAMS = Path("params.yaml")  # composed from conf/; read by `fraudpipe.pipeline.params` only
CONF_DIR = Path("conf")

# check_config, check_data: they hold no parameter value, so a passing check reruns nothing
CHECK_CONFIG = Path("reports/check/config.json")
CHECK_DATA = Path("reports/check/data.json")

# ingest
EXTERNAL_DIR = Path("data/external")  # file sources and SQL/API snapshots, named by the data group
RAW_DIR = Path("data/raw")
RAW_TRANSACTIONS = RAW_DIR / "transactions.parquet"
CUSTOMERS = RAW_DIR / "customers.parquet"  # customer locations, when the source has them
TERMINALS = RAW_DIR / "terminals.parquet"  # terminal locations, likewise
INGEST_QUARANTINE = Path("data/quarantine/ingest.parquet")
VALIDATION_DOCS = Path("reports/validation/docs")
VALIDATION_SUMMARY = Path("reports/validation/summary.json")

# preprocess
INTERIM = Path("data/interim/transactions.parquet")
AMOUNT_OUTLIERS = Path("data/interim/amount_outliers.parquet")
PREPROCESS_QUARANTINE = Path("data/quarantine/preprocess.parquet")
PREPROCESS_SUMMARY = Path("reports/preprocess/summary.json")

# featurize
FEATURES = Path("data/features/features.parquet")
ONLINE_STATE = Path("data/features/online_state")  # what the service starts from

# split
SPLIT_DIR = Path("data/split")
TRAIN = SPLIT_DIR / "train.parquet"
TEST = SPLIT_DIR / "test.parquet"
LIVE = SPLIT_DIR / "live.parquet"
SPLIT_SUMMARY = Path("reports/split/summary.json")

# train
BUNDLE_DIR = Path("models/bundle")
TRAIN_REPORTS = Path("reports/train")  # dvclive: metrics.json and plots/metrics/*.tsv
TRAIN_SCORES = Path(
    "data/predictions/train.parquet"
)  # the bundle's scores of its training period (monitor's reference)

# evaluate
METRICS = Path("reports/metrics.json")  # reproducible: byte-identical on rerun
GATE = Path("reports/gate.json")  # the quality gate's verdict: what infer reads
PLOTS_DIR = Path("reports/plots")
PARITY_SCORES = Path("reports/parity_scores.json")  # the online rows scored by the row and batch paths

# parity
PARITY = Path("reports/parity.json")  # reproducible: byte-identical on rerun
ONLINE_ROWS = Path("data/parity/online.parquet")  # the replayed rows' online features (evaluate scores them)

# backtest
BACKTEST = Path("reports/backtest.json")

# infer
PREDICTIONS = Path("data/predictions/live.parquet")
INFER_SUMMARY = Path("reports/infer/summary.json")

# monitor
DRIFT = Path("reports/monitoring/drift.json")
MONITOR_FEATURES = Path("reports/monitoring/features.json")
MONITOR_REPORT = Path("reports/monitoring/report.html")
MONITOR_HISTORY = Path("reports/monitoring/history.json")  # one point per window and model (persist)
CHALLENGER = Path("reports/monitoring/challenger.json")  # champion against the shadow challenger

# serve
JOURNAL_DIR = Path("serving")  # the service's durable log and snapshots (conf/monitor: log)
