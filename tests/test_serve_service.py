"""The service without HTTP: what `fraudpipe serve` checks before it starts, and how it restarts."""

from __future__ import annotations

import shutil

import pytest

from fraudpipe.contract import TX_DATETIME
from fraudpipe.errors import BundleError, DataError
from fraudpipe.features.online import OnlineState
from fraudpipe.serve.service import Refused, Service, preflight
from helpers.serve import config, tx, world


def test_preflight_names_what_does_not_fit(tmp_path):
    w = world()
    preflight(config(tmp_path))  # the good case passes
    with pytest.raises(DataError, match=r"state.json does not exist: --state must be an online state snapshot"):
        preflight(config(tmp_path, state=tmp_path / "nowhere"))
    other = w.config.model_copy(update={"customer_windows": (1, 7)})
    OnlineState.from_history(w.tx[w.tx[TX_DATETIME] < w.cut], other).save(tmp_path / "other-state")
    with pytest.raises(BundleError, match=r"does not fit the state .*other-state: feature list differs"):
        preflight(config(tmp_path, state=tmp_path / "other-state"))
    with pytest.raises(BundleError, match=r"SHA256SUMS is missing"):
        shutil.copytree(w.bundle_dir, tmp_path / "no-sums")
        (tmp_path / "no-sums" / "SHA256SUMS").unlink()
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
