"""`python stages/ingest.py` on malformed files: one clear message or a quarantine, never a bare traceback.

The library tests cover each rule; these run the stage script itself, as `dvc repro` does, so
they also prove what a user sees and that a failed run leaves no output behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fraudpipe.config import compose

ROOT = Path(__file__).resolve().parents[1]
HEADER = "transaction_id,tx_datetime,customer_id,terminal_id,tx_amount,tx_fraud\n"


def good_lines(n: int = 200) -> list[str]:
    return [f"{i},2018-04-01 {i // 60 % 24:02d}:{i % 60:02d}:00,{i % 13},{i % 17},{10 + i % 50}.25,{int(i % 20 == 0)}\n"
            for i in range(n)]


def run_stage(tmp_path: Path, content: bytes, **validation) -> subprocess.CompletedProcess:
    params = compose(ROOT / "conf", ["data=csv"])
    params["validation"] |= {"min_rows": 100, "max_fraud_rate": 0.2} | validation
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    csv = tmp_path / params["data"]["path"]
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_bytes(content)
    return subprocess.run([sys.executable, str(ROOT / "stages/ingest.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def quarantine(tmp_path: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "data/quarantine/ingest.parquet")


def summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports/validation/summary.json").read_text())


def test_truncated_last_line_is_quarantined_not_lost(tmp_path):
    lines = good_lines()
    content = (HEADER + "".join(lines) + "200,2018-04-01 23:59:00,5").encode()  # cut mid-row
    proc = run_stage(tmp_path, content)
    assert proc.returncode == 0, proc.stderr
    q = quarantine(tmp_path)
    assert q["source_row"].tolist() == [200]
    assert "terminal_id" in q["reason"].iat[0]
    s = summary(tmp_path)
    assert (s["rows_in"], s["rows_valid"], s["rows_quarantined"]) == (201, 200, 1)
    assert len(pd.read_parquet(tmp_path / "data/raw/transactions.parquet")) == 200


@pytest.mark.parametrize(
    ("case", "mutate", "reason"),
    [
        ("negative amount", lambda r: r.replace(",10.25,", ",-10.25,"), "tx_amount"),
        ("non-numeric amount", lambda r: r.replace(",10.25,", ",ten,"), "tx_amount: 'ten'"),
        ("label 2", lambda r: r[:-2] + "2\n", "tx_fraud"),
        ("null customer id", lambda r: ",".join(p if i != 2 else "" for i, p in enumerate(r.split(","))), "customer_id"),
        ("far future", lambda r: r.replace("2018-04-01", "2099-04-01"), "tx_datetime"),
    ],
)
def test_row_level_faults_are_quarantined_with_a_reason(tmp_path, case, mutate, reason):
    lines = good_lines()
    lines[0] = mutate(lines[0])
    proc = run_stage(tmp_path, (HEADER + "".join(lines)).encode())
    assert proc.returncode == 0, proc.stderr
    q = quarantine(tmp_path)
    assert q["source_row"].tolist() == [0], case
    assert reason in q["reason"].iat[0], q["reason"].iat[0]
    assert summary(tmp_path)["rows_quarantined"] == 1


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("empty file", b"", "empty"),
        ("missing column", (HEADER.replace(",tx_amount", "") + "".join(
            ",".join(p for i, p in enumerate(line.split(",")) if i != 4) for line in good_lines())).encode(), "tx_amount"),
        ("non-UTF-8 bytes", (HEADER + "".join(good_lines())).encode() + b"201,2018-04-01 23:00:00,1,1,\xff\xfe,0\n", "not valid utf-8 at byte offset 7313 (line 202)"),
        ("too few rows", (HEADER + "".join(good_lines(20))).encode(), "expect_table_row_count_to_be_between: observed 20 valid rows, allowed min=100"),
        ("fraud rate out of range", (HEADER + "".join(line[:-2] + "1\n" for line in good_lines())).encode(), "tx_fraud"),
    ],
)
def test_batch_level_faults_stop_with_one_clear_message_and_write_nothing(tmp_path, case, content, message):
    proc = run_stage(tmp_path, content)
    assert proc.returncode == 1, case
    assert proc.stderr.startswith("stage 'ingest' failed:"), proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data/raw").exists()
    assert not (tmp_path / "reports/validation/summary.json").exists()


@pytest.mark.parametrize(
    ("group", "change", "message"),
    [
        ("data", {"pth": "x.csv"}, "data.pth: unknown key (did you mean 'path'? known keys: columns, datetime_format, options, path, source)"),
        ("data", {"columns": {"tx_amout": "amount"}}, "data.columns.tx_amout: not a contract column (did you mean 'tx_amount'?"),
        ("validation", {"min_rowz": 1}, "validation.min_rowz: unknown key (did you mean 'min_rows'?"),
        ("validation", {"min_rows": -1}, "validation.min_rows: must be >= 0, got -1"),
    ],
)
def test_a_bad_config_stops_with_one_line_naming_the_key_and_writes_nothing(tmp_path, group, change, message):
    params = compose(ROOT / "conf", ["data=csv"])
    params[group] |= change
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, str(ROOT / "stages/ingest.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"stage 'ingest' failed: {message}"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data/raw").exists()
