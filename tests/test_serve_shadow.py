"""`fraudpipe serve --shadow`: the challenger scores every request on the champion's feature row; its
score goes to the log (journal, snapshot, Redis), never into the answer; logs written before the
shadow columns still read (NaN / None)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from fraudpipe.errors import BundleError
from fraudpipe.model import load_bundle
from fraudpipe.serve.responses import score_out
from fraudpipe.serve.service import Service
from fraudpipe.serve.startup import preflight
from fraudpipe.servicelog import Answer, read_service_log
from helpers.serve import challenger, config, fewer_features, foreign_features, tx, world


def _scores(service: Service, rows) -> list:
    return [service.score(tx(row))[0] for row in rows.itertuples()]


def test_the_challenger_scores_every_request_into_the_log_not_the_answer(tmp_path):
    w = world()
    rows = w.test.head(300)
    alone = Service.open(config(tmp_path / "alone", model=challenger()))  # the challenger as a champion
    expected = [s.score for s in _scores(alone, rows)]
    alone.close()
    service = Service.open(config(tmp_path / "s", shadow=challenger()))
    plain = Service.open(config(tmp_path / "plain"))
    scored, reference = _scores(service, rows), _scores(plain, rows)
    plain.close()
    version, threshold = load_bundle(challenger()).version, load_bundle(challenger()).threshold
    assert [s.score for s in scored] == [s.score for s in reference]  # the answers are the champion's alone
    assert [s.shadow_score for s in scored] == expected  # the same feature row, scored by the challenger
    assert {s.shadow_model for s in scored} == {version} and version != service.version
    assert [s.shadow_alert for s in scored] == [p >= threshold for p in expected]
    answer = score_out(tx(rows.iloc[0]), scored[0], service)
    assert not any("shadow" in key for key in answer) and answer["model_version"] == service.version

    half = service.snapshot()  # the first 150 from the snapshot's scored.parquet, the rest from the journal
    assert half["transactions"] > 0
    for row in w.test.iloc[300:320].itertuples():
        service.score(tx(row))
    log = read_service_log(tmp_path / "s" / "journal")
    assert len(log.scored) == 320 and (log.scored["shadow_model"] == version).all()
    assert np.allclose(log.scored["shadow_score"].to_numpy()[:300], expected, rtol=0, atol=0)
    assert log.scored["shadow_alert"].dtype == "boolean" and log.scored["shadow_alert"].notna().all()
    service.close()
    again = Service.open(config(tmp_path / "s", shadow=challenger()))  # a restart: snapshot + journal replayed
    first = again.store.get_scored(str(rows["transaction_id"].iat[0]))
    assert first.shadow_score == expected[0] and first.shadow_model == version
    again.close()


def test_a_challenger_on_a_subset_of_the_features_takes_its_columns(tmp_path):
    w = world()
    bundle = load_bundle(fewer_features(), nthread=1)
    assert len(bundle.features) == len(load_bundle(w.bundle_dir).features) - 1
    service = Service.open(config(tmp_path, shadow=fewer_features()))
    assert service.live.shadow.columns is not None and service.live.champion.columns is None
    rows = w.test.head(100)
    scored = _scores(service, rows)
    service.close()
    names = list(load_bundle(w.bundle_dir).features)
    for row, s in zip(rows.itertuples(), scored, strict=True):
        offline = w.offline_row(row.transaction_id)[[names.index(f) for f in bundle.features]]
        assert s.shadow_score == pytest.approx(bundle.predict_row(offline), abs=1e-6)


def test_a_challenger_needing_features_the_state_lacks_is_refused_at_start(tmp_path):
    foreign = foreign_features(tmp_path / "foreign")
    with pytest.raises(BundleError, match=r"its features \['customer_id_nb_tx_90day_window'\] are not computed"):
        preflight(config(tmp_path, shadow=foreign))
    with pytest.raises(BundleError, match=r"customer_id_nb_tx_90day_window"):
        Service.open(config(tmp_path, shadow=foreign))


def test_logs_written_before_the_shadow_columns_still_read(tmp_path):
    w = world()
    service = Service.open(config(tmp_path))
    for row in w.test.head(5).itertuples():
        service.score(tx(row))
    service.close()
    path = tmp_path / "journal" / "journal.sqlite3"  # make it an older journal: the shadow columns gone
    db = sqlite3.connect(path)
    for column in ("shadow_score", "shadow_model", "shadow_alert"):
        db.execute(f"ALTER TABLE events DROP COLUMN {column}")
    db.commit()
    db.close()
    log = read_service_log(tmp_path / "journal")
    assert len(log.scored) == 5 and log.scored["shadow_score"].isna().all()
    assert log.scored["shadow_model"].isna().all() and log.scored["shadow_alert"].isna().all()
    again = Service.open(config(tmp_path, shadow=challenger()))  # opening it adds the columns back
    again.score(tx(w.test.iloc[5]))
    again.close()
    log = read_service_log(tmp_path / "journal")
    assert log.scored["shadow_model"].isna().sum() == 5 and log.scored["shadow_model"].iat[5] is not None
    old = json.dumps(["c", "t", "2018-01-01T00:00:00.000000", 1.0, [None] * 4, 0.5, False, 0.7, "xgboost-x"])
    assert Answer.from_json(old).shadow_score is None  # a Redis answer of before


def test_the_shadow_goes_through_the_redis_log(redis_server, tmp_path):
    w = world()
    service = Service.open(config(tmp_path, shadow=challenger(), store=redis_server.unix_url, redis_prefix="sh"))
    scored = _scores(service, w.test.head(20))
    retry, again = service.score(tx(w.test.iloc[0]))
    service.close()
    assert again and retry.shadow_score == scored[0].shadow_score  # the answer record holds it
    log = read_service_log(redis_server.unix_url, "sh")
    assert log.scored["shadow_score"].tolist() == [s.shadow_score for s in scored]
    assert set(log.scored["shadow_model"]) == {load_bundle(challenger()).version}
