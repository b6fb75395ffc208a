"""The window monitor watches: `infer`'s predictions, or what the service scored, from its log."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from fraudpipe.contract import TX_DATETIME, feature_columns
from fraudpipe.errors import DataError
from fraudpipe.model import load_bundle
from fraudpipe.monitoring.window import predictions_window, reference_scores, service_log_window
from fraudpipe.serve.schema import LabelIn
from fraudpipe.serve.service import Service
from fraudpipe.servicelog import read_service_log
from helpers.serve import config, tx, world


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The first two days of the test period scored by the service (in-process, journal on), and a label
    for the first two of them: what the log holds, the answers given and the labels sent."""
    w = world()
    directory = tmp_path_factory.mktemp("served")
    rows = w.test[w.test[TX_DATETIME] < w.cut + pd.Timedelta(days=2)]
    service = Service.open(config(directory))
    answers = [service.score(tx(row))[0].score for row in rows.itertuples(index=False)]
    labels = {rows["transaction_id"].iat[0]: 1, rows["transaction_id"].iat[1]: 0}
    for tid, fraud in labels.items():
        service.label(LabelIn(transaction_id=int(tid), tx_fraud=fraud))
    service.close()
    return read_service_log(directory / "journal"), rows, np.array(answers), labels


def test_the_service_log_window_has_the_training_features_the_answers_and_the_labels_received(served):
    log, rows, answers, labels = served
    w = world()
    bundle = load_bundle(w.bundle_dir)
    window = service_log_window(log, w.tx, w.config, bundle.version)

    assert window.frame["transaction_id"].tolist() == rows["transaction_id"].tolist()  # time order
    offline = w.table.set_index("transaction_id").loc[rows["transaction_id"]]
    names = feature_columns(w.table)
    assert list(feature_columns(window.frame)) == names
    np.testing.assert_allclose(
        window.frame[names].to_numpy(np.float64), offline[names].to_numpy(np.float64), rtol=0, atol=1e-9
    )
    np.testing.assert_array_equal(window.scores, answers)  # the scores the service gave, not recomputed ones
    np.testing.assert_allclose(window.scores, w.batch_scores(rows["transaction_id"]), atol=1e-6)
    np.testing.assert_array_equal(window.alerts, (answers >= bundle.threshold).astype(np.int8))
    fraud = window.frame["tx_fraud"]
    assert fraud.iloc[:2].tolist() == [labels[t] for t in rows["transaction_id"].iloc[:2]]
    assert fraud.iloc[2:].isna().all() and len(fraud) > 50  # no label received yet: unknown, not genuine
    assert window.description.startswith(f"{len(rows):,} transactions the service scored with {bundle.version}")


def test_rows_of_another_model_version_are_left_out_and_counted(served):
    log, _rows, _, _ = served
    w = world()
    version = load_bundle(w.bundle_dir).version
    versions = np.where(np.arange(len(log.scored)) % 3 == 0, "xgboost-000000000000", version)
    mixed = dataclasses.replace(log, scored=log.scored.assign(model_version=pd.array(versions, dtype="str")))
    window = service_log_window(mixed, w.tx, w.config, version)
    kept = log.scored["transaction_id"][versions == version]
    assert sorted(window.frame["transaction_id"]) == sorted(kept)
    assert f"({int((versions != version).sum()):,} scored by other model versions left out)" in window.description
    with pytest.raises(
        DataError,
        match=r"the service log holds no transaction scored by model xgboost-ffffffffffff \(found: \['xgboost-",
    ):
        service_log_window(log, w.tx, w.config, "xgboost-ffffffffffff")


def test_text_ids_in_the_log_meet_integer_ids_in_the_history(served):
    log, rows, _, _ = served
    w = world()
    bundle = load_bundle(w.bundle_dir)
    as_text = {c: pd.array(["c" + str(v) for v in w.tx[c]], dtype="str") for c in ("customer_id",)}
    log_text = dataclasses.replace(
        log,
        scored=log.scored.assign(customer_id=pd.array(["c" + str(v) for v in log.scored["customer_id"]], dtype="str")),
    )
    window = service_log_window(log_text, w.tx.assign(**as_text), w.config, bundle.version)
    offline = w.table.set_index("transaction_id").loc[rows["transaction_id"]]
    names = feature_columns(w.table)
    np.testing.assert_allclose(
        window.frame[names].to_numpy(np.float64), offline[names].to_numpy(np.float64), rtol=0, atol=1e-9
    )


def test_predictions_must_be_infers_of_exactly_these_rows():
    live = pd.DataFrame({"transaction_id": [1, 2, 3]})
    good = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3],
            "score": [0.1, 0.9, 0.2],
            "alert": np.int8([0, 1, 0]),
            "model_version": pd.array(["m-1"] * 3, dtype="str"),
        }
    )
    window = predictions_window(live, good, "m-1")
    assert window.scores.tolist() == [0.1, 0.9, 0.2] and window.alerts.tolist() == [0, 1, 0]
    with pytest.raises(DataError, match=r"the predictions hold 2 rows, the live period 3; rerun the infer stage"):
        predictions_window(live, good.head(2), "m-1")
    with pytest.raises(DataError, match=r"not the live period's, row for row"):
        predictions_window(live, good.assign(transaction_id=[1, 3, 2]), "m-1")
    with pytest.raises(DataError, match=r"made by model version\(s\) \['m-1'\], the bundle is m-2"):
        predictions_window(live, good, "m-2")
    # the training period's scores, as `train` writes them: the same checks, naming train
    assert reference_scores(live, good, "m-1").tolist() == [0.1, 0.9, 0.2]
    with pytest.raises(DataError, match=r"2 rows, the training period 3; rerun the train stage \(dvc repro train\)"):
        reference_scores(live, good.head(2), "m-1")
    with pytest.raises(DataError, match=r"the bundle is m-2; rerun the train stage"):
        reference_scores(live, good, "m-2")
    with pytest.raises(DataError, match=r"data/predictions/train.parquet"):
        reference_scores(live, good.drop(columns="score"), "m-1")
