"""Stage `parity`: replay the test period's first transactions through the online scorer the service
uses; online against offline features and scores (parity.json). The replay's latency is printed,
not written: wall-clock figures belong to benchmarks/scoring.py, out of git and `dvc metrics diff`."""

from fraudpipe.contract import TRANSACTION_ID, TX_DATETIME
from fraudpipe.data.split import SplitConfig, periods
from fraudpipe.evaluation.parity import latency_summary, parity_figures, replayed_span, split_replay
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.features.online import OnlineState, history_since
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model import load_bundle
from fraudpipe.paths import BUNDLE_DIR, CUSTOMERS, FEATURES, INTERIM, PARITY, TERMINALS
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run
from fraudpipe.scoring.online import OnlineScorer, replay


def main() -> None:
    rows = load("evaluate.latency_rows", EvaluateConfig)  # dvc.yaml declares this key of evaluate only
    features = load("features", FeatureConfig)
    bundle = load_bundle(BUNDLE_DIR, nthread=1)  # one thread per worker, as the service loads it
    scorer = OnlineScorer(bundle, features)

    # Only the rows the state keeps are read (its retention before the test period, then the test
    # period on), and only the replayed rows' offline features.
    times = read_parquet(INTERIM, columns=[TX_DATETIME])[TX_DATETIME]
    test_start = periods(load("split", SplitConfig), times.max()).test_start
    since = history_since(features, times, test_start)
    del times
    transactions = read_parquet(INTERIM, filters=None if since is None else [(TX_DATETIME, ">=", since)])
    history, replayed_rows = split_replay(transactions, test_start, rows)
    state = OnlineState.from_history(
        history,
        features,
        read_parquet_if_exists(CUSTOMERS),
        read_parquet_if_exists(TERMINALS),
    )
    del transactions, history
    replayed = replay(scorer, state, replayed_rows)
    offline = read_parquet(FEATURES, columns=[TRANSACTION_ID, *bundle.features], filters=replayed_span(replayed_rows))
    parity = parity_figures(replayed, offline, bundle)
    latency = latency_summary(replayed.latency_ms, scorer.fast_path)

    write_json(parity, PARITY)
    print(
        f"parity: {parity['rows_compared']:,} test transactions replayed through the online scorer: max |online - "
        f"offline| feature {parity['max_abs_feature_diff']:.3g}, score {parity['max_abs_score_diff']:.3g}; "
        f"latency p50 {latency['score_latency_p50_ms']:.3f} ms, p99 {latency['score_latency_p99_ms']:.3f} ms "
        f"({scorer.fast_path.describe()})"
    )


if __name__ == "__main__":
    run(main, "parity")
