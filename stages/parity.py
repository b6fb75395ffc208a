"""Stage `parity`: replay the test period's first transactions through the online features the
service computes; online against offline features (parity.json), and the online rows for `evaluate`
to score. No model: a model change does not rerun it. The replay's per-row time is printed, not
written (wall clock)."""

from fraudpipe.contract import TRANSACTION_ID, TX_DATETIME
from fraudpipe.data.split import SplitConfig, periods
from fraudpipe.evaluation.parity import feature_parity, latency_percentiles, online_rows, replayed_span, split_replay
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.features.online import OnlineState, history_since
from fraudpipe.features.online.replay import replay_features
from fraudpipe.io import read_parquet, read_parquet_if_exists, write_json, write_parquet
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.paths import CUSTOMERS, FEATURES, INTERIM, ONLINE_ROWS, PARITY, TERMINALS
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.stage import run


def main() -> None:
    rows = load("evaluate.latency_rows", EvaluateConfig)  # dvc.yaml declares this key of evaluate only
    features = load("features", FeatureConfig)
    names = feature_names(features)

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
    replayed = replay_features(features, state, replayed_rows)
    offline = read_parquet(FEATURES, columns=[TRANSACTION_ID, *names], filters=replayed_span(replayed_rows))
    parity = feature_parity(replayed.transaction_ids, replayed.features, offline, names)

    write_json(parity, PARITY)
    write_parquet(online_rows(replayed.transaction_ids, replayed.features, names), ONLINE_ROWS)
    p50, p99 = latency_percentiles(replayed.latency_ms)
    print(
        f"parity: {parity['rows_compared']:,} test transactions replayed through the online features: "
        f"max |online - offline| feature {parity['max_abs_feature_diff']:.3g}; "
        f"history lookup + features p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )


if __name__ == "__main__":
    run(main, "parity")
