"""The service without HTTP: what `fraudpipe serve` checks before it starts, and how it restarts."""

from __future__ import annotations

import shutil

import pytest

from fraudpipe.contract import TX_DATETIME, TX_FRAUD
from fraudpipe.errors import BundleError, DataError
from fraudpipe.evaluation.parity import latency_summary
from fraudpipe.features.online import OnlineState
from fraudpipe.model import load_bundle
from fraudpipe.scoring.online import OnlineScorer, replay
from fraudpipe.serve.service import Refused, Service
from fraudpipe.serve.startup import describe, preflight
from helpers.serve import config, tx, world


def test_preflight_names_what_does_not_fit(tmp_path):
    w = world()
    preflight(config(tmp_path))  # the good case passes
    with pytest.raises(DataError, match=r"state.json does not exist: --state must be an online state snapshot"):
        preflight(config(tmp_path, state=tmp_path / "nowhere"))
    other = w.config.model_copy(update={"customer_windows": (1, 7)})
    OnlineState.from_history(w.tx[w.tx[TX_DATETIME] < w.cut], other).save(tmp_path / "other-state")
    with pytest.raises(
        BundleError, match=r"its features \[.*\] are not computed by this service's online state .*other-state"
    ):
        preflight(config(tmp_path, state=tmp_path / "other-state"))
    shutil.copytree(w.bundle_dir, tmp_path / "no-sums")
    (tmp_path / "no-sums" / "SHA256SUMS").unlink()
    with pytest.raises(BundleError, match=r"SHA256SUMS is missing"):
        preflight(config(tmp_path, model=tmp_path / "no-sums"))


def test_a_journal_replays_only_on_the_state_it_was_written_on(tmp_path):
    w = world()
    service = Service.open(config(tmp_path))
    service.score(tx(w.test.iloc[0]))
    service.close()
    with pytest.raises(
        DataError,
        match=r"journal.sqlite3 was written on top of .*start with the same --state, or with another --journal-dir",
    ):
        Service.open(config(tmp_path, state=w.late_state_dir))
    again = Service.open(config(tmp_path))  # the same state: replayed
    assert again.started.replayed == 1 and again.store.get_scored(str(w.test["transaction_id"].iat[0])) is not None
    again.close()


def test_a_transaction_of_the_starting_history_is_not_scored_again(tmp_path):
    w = world()
    service = Service.open(config(tmp_path))
    old = w.tx[w.tx[TX_DATETIME] < w.cut].iloc[-1]
    with pytest.raises(Refused) as info:
        service.score(tx(old))
    assert info.value.status == 409 and "is in the history the service started from" in info.value.message
    with pytest.raises(Refused) as info:
        service.score(tx(w.test.iloc[0], tx_amount=2e5))
    assert info.value.status == 422 and info.value.field == "tx_amount" and "--max-amount" in info.value.message
    service.close()


def test_an_id_with_stray_whitespace_is_the_same_card_as_in_training(tmp_path):
    w = world()
    row = w.test.iloc[0]
    plain = Service.open(config(tmp_path / "a"))
    padded = Service.open(config(tmp_path / "b"))
    expected = plain.score(tx(row))[0].score
    got = padded.score(tx(row, customer_id=f" {row.customer_id} ", terminal_id=f"{row.terminal_id}\t"))[0].score
    plain.close()
    padded.close()
    assert got == expected  # the card's and terminal's histories were found, not started afresh


def test_the_service_answers_what_the_parity_replay_scores_and_times(tmp_path):
    """The latency and parity figures are measured on the code that serves: the service scores
    with the feature row and row scorer that `OnlineScorer` (which `replay` times) uses, and answers
    exactly the replay's scores for the same transactions in the same order (labels withheld: the
    service has none either)."""
    w = world()
    service = Service.open(config(tmp_path))
    rows = w.test.head(400)
    answers = [service.score(tx(row))[0].score for row in rows.itertuples()]
    assert service.fast_path.on and service.live.champion.columns is None  # the state's row as it is
    assert "fast path on (xgboost " in describe(service, service.config)
    service.close()

    state = OnlineState.load(w.state_dir, late_days=1)  # what the service started from (--late-days 1)
    scorer = OnlineScorer(load_bundle(w.bundle_dir, nthread=1), w.config)
    replayed = replay(scorer, state, rows.drop(columns=TX_FRAUD))
    assert replayed.scores.tolist() == answers
    assert len(set(answers)) > 50  # distinct transactions, not one constant
    figures = latency_summary(replayed.latency_ms, scorer.fast_path)
    assert figures["score_latency_rows"] == 400 and figures["score_fast_path"] == 1
    assert 0 < figures["score_latency_p50_ms"] <= figures["score_latency_p99_ms"]
