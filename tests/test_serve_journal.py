"""The durable log: real SQLite files, a real killed writer, and the reader monitoring uses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.errors import DataError
from fraudpipe.serve.journal import Journal
from fraudpipe.serve.stores.base import Scored, Transaction, epoch_second
from fraudpipe.serve.stores.memory import InProcessStore
from fraudpipe.servicelog import read_service_log
from helpers.serve import world


def scored(
    tid: str,
    when: str = "2018-05-01T10:00:00.250000",
    customer: str = "7",
    terminal: str = "card-12",
    amount: float = 12.5,
    coordinates=(None, None, None, None),
    score: float = 0.25,
) -> Scored:
    dt = datetime.fromisoformat(when)
    return Scored(
        Transaction(tid, customer, terminal, dt, epoch_second(dt), amount, coordinates),
        score,
        score >= 0.5,
        0.5,
        "xgboost-0123456789ab",
    )


def test_entries_come_back_in_order_as_they_went_in(tmp_path):
    journal = Journal(tmp_path)
    a = scored("1", coordinates=(1.5, -2.0, None, None))
    b = scored("007", when="2018-05-01T09:00:00", score=0.75)
    seqs = [journal.append_transaction(a), journal.append_label("1", 1), journal.append_transaction(b)]
    assert seqs == sorted(seqs) and journal.last_seq() == seqs[-1] and journal.count() == 3
    entries = list(journal.entries(after=0))
    assert [e.seq for e in entries] == seqs
    assert entries[0].scored == a and entries[2].scored == b  # microseconds, coordinates, ids as text: all kept
    assert entries[0].scored.transaction.t == epoch_second(datetime(2018, 5, 1, 10))
    assert (entries[1].scored, entries[1].transaction_id, entries[1].tx_fraud) == (None, "1", 1)
    assert [e.seq for e in journal.entries(after=seqs[0])] == seqs[1:]


def test_truncation_never_reuses_a_seq(tmp_path):
    journal = Journal(tmp_path)
    first = [journal.append_transaction(scored(str(i))) for i in range(5)]
    journal.truncate(first[-1])  # everything a snapshot holds
    assert list(journal.entries(after=first[-1])) == [] and journal.last_seq() == first[-1]
    again = journal.append_transaction(scored("later"))
    assert again > first[-1]
    journal.close()
    reopened = Journal(tmp_path)
    assert reopened.append_label("later", 0) > again and [e.seq for e in reopened.entries(after=first[-1])] == [
        again,
        again + 1,
    ]


def test_what_was_appended_survives_a_killed_writer(tmp_path):
    script = (
        "import os, signal, sys\n"
        "sys.path[:0] = " + repr(sys.path) + "\n"
        "from pathlib import Path\n"
        "from test_serve_journal import scored\n"
        "from fraudpipe.serve.journal import Journal\n"
        f"j = Journal(Path({str(tmp_path)!r}))\n"
        "for i in range(200):\n"
        "    j.append_transaction(scored(f't{i}'))\n"
        "print('appended', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )
    assert proc.returncode == -9 and "appended" in proc.stdout, proc.stderr
    assert [e.scored.transaction.transaction_id for e in Journal(tmp_path).entries(after=0)] == [
        f"t{i}" for i in range(200)
    ]


def test_a_file_that_is_not_a_journal_is_refused_in_one_line(tmp_path):
    (tmp_path / "journal.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match=r"journal.sqlite3: not a journal this service can open .*move it away"):
        Journal(tmp_path)
    other = tmp_path / "other"
    Journal(other)
    with sqlite3.connect(other / "journal.sqlite3") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    with pytest.raises(DataError, match="journal format 99, this code writes 1"):
        Journal(other)


def test_read_service_log_gives_the_snapshot_then_the_log(tmp_path):
    w = world()
    store = InProcessStore.load(w.state_dir, late_days=1)
    journal = Journal(tmp_path)
    rows = w.test.head(6)
    records = []
    given = {
        1: (1.5, -2.0, 3.0, 4.0),
        4: (5.0, 6.0, None, None),
    }  # coordinates a request carried: one kept by the snapshot, one logged
    for i, row in enumerate(rows.itertuples()):
        when = pd.Timestamp(row.tx_datetime).to_pydatetime()
        record = scored(
            str(row.transaction_id),
            when.isoformat(),
            str(row.customer_id),
            str(row.terminal_id),
            float(row.tx_amount),
            coordinates=given.get(i, (None, None, None, None)),
        )
        records.append(record)
    for record in records[:3]:  # before the snapshot, one labelled
        journal.append_transaction(record)
        store.add_transaction(record)
    journal.append_label(records[0].transaction.transaction_id, 1)
    store.add_label(records[0].transaction.transaction_id, 1)
    seq = journal.last_seq()
    target = journal.snapshot_dir(seq)
    store.save(target)
    journal.mark_snapshot(target, seq)
    journal.truncate(seq)
    for record in records[3:]:  # after it
        journal.append_transaction(record)
    journal.append_label(records[4].transaction.transaction_id, 0)

    log = read_service_log(tmp_path)
    assert list(log.scored.columns) == [
        "transaction_id",
        "customer_id",
        "terminal_id",
        "tx_datetime",
        "tx_amount",
        "customer_x",
        "customer_y",
        "terminal_x",
        "terminal_y",
        "score",
        "alert",
        "threshold",
        "model_version",
        "shadow_score",
        "shadow_model",
        "shadow_alert",
    ]
    assert log.scored["shadow_score"].isna().all() and log.scored["shadow_model"].isna().all()  # no challenger
    coordinates = log.scored[["customer_x", "customer_y", "terminal_x", "terminal_y"]].to_numpy()
    assert coordinates[1].tolist() == [1.5, -2.0, 3.0, 4.0] and coordinates[4, :2].tolist() == [5.0, 6.0]
    assert np.isnan(coordinates[4, 2:]).all() and np.isnan(coordinates[[0, 2, 3, 5]]).all()
    assert log.scored["transaction_id"].tolist() == rows["transaction_id"].tolist()  # snapshot first, then the log
    assert (
        str(log.scored["transaction_id"].dtype) == "int64" and str(log.scored["tx_datetime"].dtype) == "datetime64[us]"
    )
    assert log.scored["tx_datetime"].tolist() == rows["tx_datetime"].tolist()
    assert log.scored["score"].tolist() == [0.25] * 6 and log.scored["model_version"].unique().tolist() == [
        "xgboost-0123456789ab"
    ]
    assert log.labels["transaction_id"].tolist() == rows["transaction_id"].iloc[[0, 4]].tolist()
    assert log.labels["tx_fraud"].tolist() == [1, 0]
    assert pd.isna(log.labels["received_at"].iat[0]) and not pd.isna(log.labels["received_at"].iat[1])
    newest = log.scored["tx_datetime"]  # the service's clock when each label came: the newest time seen
    assert log.labels["known_at"].tolist() == [newest.iloc[:3].max(), newest.max()]


def test_read_service_log_without_a_journal_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match=r"journal.sqlite3 does not exist: no service journal"):
        read_service_log(tmp_path)
