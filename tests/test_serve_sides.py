"""`serve.sides`: a challenger trained with another features config reads an online state of its own, fed
the same transactions and labels, so that its score is the one batch scoring with its own features gives
(the offline features of ``features.definitions`` for its config), through restarts and swaps."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from fraudpipe.features.definitions import feature_names
from fraudpipe.model import load_bundle, save_bundle, with_features_config
from fraudpipe.serve.models import Incompatible, ModelSource, load_model
from fraudpipe.serve.schema import LabelIn
from fraudpipe.serve.service import Service, transaction_of
from fraudpipe.serve.swap import ModelIn, Swapper
from fraudpipe.servicelog import read_service_log
from helpers.serve import config, own_features, tx, world


def _stream(service: Service, rows) -> list:
    """Score each row, then send its label (it counts once older than each config's delay, as offline);
    before scoring, a model reading a state of its own is held to the offline row of its config, exactly."""
    own = own_features()
    names = feature_names(own.config)
    out = []
    for row in rows.itertuples():
        body, live = tx(row), service.live
        for model in (live.champion, live.shadow):
            if model is not None and model.side is not None:
                online = live.row(model, transaction_of(body), np.zeros(0))
                np.testing.assert_array_equal(online, own.offline([row.transaction_id])[names].to_numpy()[0])
        scored, retry = service.score(body)
        assert not retry
        service.label(LabelIn(transaction_id=row.transaction_id, tx_fraud=int(row.tx_fraud)))
        out.append(scored)
    return out


def _batch(transaction_ids) -> np.ndarray:
    """The batch path: the challenger on the offline features of its own config."""
    own = own_features()
    return load_bundle(own.bundle_dir).score(own.offline(transaction_ids))


def test_the_challenger_reads_its_own_state_and_scores_as_batch_scoring_with_its_features(tmp_path):
    w, own = world(), own_features()
    rows = w.test.head(600)
    service = Service.open(config(tmp_path, shadow=own.bundle_dir))
    assert service.live.shadow.side is not None and service.live.champion.side is None
    assert set(service.live.sides) == {service.live.shadow.side}
    first = _stream(service, rows.iloc[:300])
    service.snapshot()  # then a restart: the snapshot holds the service's state only; its own is derived again
    middle = _stream(service, rows.iloc[300:400])
    service.close()
    again = Service.open(config(tmp_path, shadow=own.bundle_dir))
    last = _stream(again, rows.iloc[400:])
    again.close()
    scored = first + middle + last
    assert [s.transaction.transaction_id for s in scored] == [str(t) for t in rows["transaction_id"]]
    np.testing.assert_allclose([s.shadow_score for s in scored], _batch(rows["transaction_id"]), rtol=0, atol=1e-6)
    np.testing.assert_allclose([s.score for s in scored], w.batch_scores(rows["transaction_id"]), rtol=0, atol=1e-6)
    log = read_service_log(tmp_path / "journal")
    assert log.scored["shadow_model"].eq(load_bundle(own.bundle_dir).version).all() and len(log.scored) == 600


def test_a_swap_builds_its_state_from_the_journal_and_a_promotion_keeps_it(tmp_path):
    w, own = world(), own_features()
    rows = w.test.head(450)

    async def run() -> tuple[list, list, list, Service]:
        service = Service.open(config(tmp_path))
        swapper = Swapper(service, lambda live: None)
        before = _stream(service, rows.iloc[:150])
        answer = await swapper.request(ModelIn(shadow=str(own.bundle_dir)))
        assert answer["shadow"]["own_state"] is True
        shadowed = _stream(service, rows.iloc[150:300])
        side = service.live.sides[service.live.shadow.side]
        await swapper.request(ModelIn(promote=True))
        assert service.live.champion.side is not None and service.live.sides[service.live.champion.side] is side
        promoted = _stream(service, rows.iloc[300:])
        await swapper.request(ModelIn(model=str(w.bundle_dir)))
        assert service.live.sides == {}  # no model reads it any longer: dropped
        return before, shadowed, promoted, service

    before, shadowed, promoted, service = asyncio.run(run())
    service.close()
    assert all(s.shadow_score is None for s in before)
    ids = rows["transaction_id"]
    np.testing.assert_allclose([s.shadow_score for s in shadowed], _batch(ids.iloc[150:300]), rtol=0, atol=1e-6)
    np.testing.assert_allclose([s.score for s in promoted], _batch(ids.iloc[300:]), rtol=0, atol=1e-6)
    assert {s.model_version for s in promoted} == {load_bundle(own.bundle_dir).version}


def test_a_bundle_recording_the_states_config_reads_its_row_and_redis_refuses_another(tmp_path):
    w, own = world(), own_features()
    same = tmp_path / "same"
    save_bundle(with_features_config(load_bundle(w.bundle_dir), w.config), same)
    model = load_model(ModelSource(given=str(same), path=same), w.config)
    assert model.side is None and model.columns is None
    source = ModelSource(given=str(own.bundle_dir), path=own.bundle_dir)
    assert load_model(source, w.config).side is not None
    with pytest.raises(Incompatible, match=r"delay_days 3 against 7.*in-process store only"):
        load_model(source, w.config, sides=False)
    assert load_bundle(own.bundle_dir).features_config == own.config  # recorded by ``with_features_config``
