"""`fraudpipe`: the commands beside the DVC stages, run as a user runs them."""

from __future__ import annotations

import sqlite3
from itertools import pairwise
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from fraudpipe.cli import app
from fraudpipe.config import compose

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_params_rewrites_params_from_conf_with_overrides(tmp_path):
    out = tmp_path / "params.yaml"
    result = CliRunner().invoke(app, ["params", "--config-dir", str(CONF), "--output", str(out), "seed=7"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(out.read_text())
    assert written["seed"] == 7
    assert written == compose(CONF, ["seed=7"])


def _sql_params(tmp_path: Path) -> Path:
    db = tmp_path / "warehouse.db"
    rows = pd.DataFrame(
        {
            "transaction_id": [2, 1],
            "tx_datetime": ["2018-04-01 00:00:02", "2018-04-01 00:00:01"],
            "customer_id": [1, 1],
            "terminal_id": [5, 6],
            "tx_amount": [1.5, 2.5],
            "tx_fraud": [0, 1],
        }
    )
    with sqlite3.connect(db) as con:
        rows.to_sql("transactions", con, index=False)
    data = compose(CONF, ["data=sql"])["data"] | {"url": f"sqlite:///{db}", "snapshot": str(tmp_path / "snap.parquet")}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": data}))
    return params


def test_snapshot_copies_the_database_and_reports_whether_it_changed(tmp_path):
    params = _sql_params(tmp_path)
    first = CliRunner().invoke(app, ["snapshot", "--params", str(params), "--no-track"])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"snapshot {tmp_path / 'snap.parquet'}: 2 rows (changed)"
    assert pd.read_parquet(tmp_path / "snap.parquet")["transaction_id"].tolist() == [1, 2]
    second = CliRunner().invoke(app, ["snapshot", "--params", str(params), "--no-track"])
    assert second.output.strip().endswith("2 rows (unchanged)")


def test_snapshot_of_an_unreachable_source_fails_in_one_line(tmp_path):
    params = _sql_params(tmp_path)
    data = yaml.safe_load(params.read_text())
    data["data"]["url"] = f"sqlite:///{tmp_path / 'absent.db'}"
    params.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["snapshot", "--params", str(params), "--no-track"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("snapshot failed: sql source") and "does not exist" in result.output


def test_snapshot_without_a_data_group_says_how_to_compose_params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"model": {}}))
    result = CliRunner().invoke(app, ["snapshot", "--params", str(params), "--no-track"])
    assert result.exit_code == 1
    assert "no group 'data'" in result.output and "fraudpipe params" in result.output


def _conf_copy(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(CONF, tmp_path / "conf")
    return tmp_path / "conf"


def test_adopt_makes_conf_compose_to_an_applied_experiment(tmp_path):
    conf = _conf_copy(tmp_path)
    applied = compose(conf, ["model=random_forest", "model.max_depth=4", "split.n_folds=2", "seed=3"])
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(applied))
    result = CliRunner().invoke(app, ["adopt", "--params", str(params), "--config-dir", str(conf)])
    assert result.exit_code == 0, result.output
    assert compose(conf) == applied
    assert "defaults model: random_forest" in result.output and "model.max_depth: 4" in result.output
    text = (conf / "config.yaml").read_text()
    assert text.startswith("# The composition root.")  # comments survive
    again = CliRunner().invoke(app, ["adopt", "--params", str(params), "--config-dir", str(conf)])
    assert "nothing to adopt" in again.output


def test_adopt_refuses_what_conf_cannot_express(tmp_path):
    conf = _conf_copy(tmp_path)
    applied = compose(conf)
    del applied["model"]["max_depth"]  # a key no option of conf/model/ lacks
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(applied))
    result = CliRunner().invoke(app, ["adopt", "--params", str(params), "--config-dir", str(conf)])
    assert result.exit_code == 1
    assert "model.max_depth" in result.output


def test_check_lists_every_setting_that_will_not_work_at_once(tmp_path):
    from helpers.kaggle import kaggle_frame

    frame = kaggle_frame()
    table = pd.DataFrame(
        {
            "transaction_id": frame["trans_num"],
            "tx_datetime": pd.to_datetime(frame["trans_date_trans_time"]),
            "customer_id": frame["cc_num"],
            "terminal_id": frame["merchant"],
            "tx_amount": frame["amt"],
            "tx_fraud": frame["is_fraud"].astype("int8"),
        }
    )
    table.to_parquet(tmp_path / "tx.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(compose(CONF, ["split.train_start=2018-12-01", "evaluate.card_precision_k=5000"])))
    result = CliRunner().invoke(app, ["check", "--params", str(params), "--transactions", str(tmp_path / "tx.parquet")])
    assert result.exit_code == 1
    assert "before the data (2019-01-01); move split.train_start" in result.output
    assert "backtest fold 3 (split.n_folds)" in result.output
    params.write_text(
        yaml.safe_dump(compose(CONF, ["split=relative", "split.n_folds=1", "evaluate.card_precision_k=5000"]))
    )
    result = CliRunner().invoke(app, ["check", "--params", str(params), "--transactions", str(tmp_path / "tx.parquet")])
    assert (
        result.exit_code == 1 and "evaluate.card_precision_k: 5000 is more than a typical test day's" in result.output
    )


def test_check_says_when_params_yaml_is_not_what_conf_composes_to(tmp_path):
    """An edit of conf/ that `fraudpipe params` has not recomposed is a problem, never 'no problem'."""
    conf = _conf_copy(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(compose(conf), sort_keys=False))
    assert CliRunner().invoke(app, ["check", "--params", str(params)]).exit_code == 0
    xgboost = conf / "model" / "xgboost.yaml"
    depth = yaml.safe_load(xgboost.read_text())["max_depth"]
    xgboost.write_text(xgboost.read_text().replace(f"max_depth: {depth}\n", f"max_depth: {depth + 1}\n"))
    result = CliRunner().invoke(app, ["check", "--params", str(params)])  # conf/ beside params.yaml
    assert result.exit_code == 1
    assert f"model.max_depth: {depth} in params.yaml, {depth + 1} from {conf}/" in result.output
    assert "run `fraudpipe params`" in result.output and "no problem" not in result.output
    assert CliRunner().invoke(app, ["params", "--config-dir", str(conf), "--output", str(params)]).exit_code == 0
    assert CliRunner().invoke(app, ["check", "--params", str(params)]).exit_code == 0


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"fraudpipe {version('fraudpipe')}\n"


def test_help_wraps_whole_paragraphs_and_shows_no_type_for_flags():
    """Click's layout: a docstring's own line breaks are not kept, so no line ends mid-sentence
    short of the width; a flag (--track/--no-track) takes no value and shows none."""
    result = CliRunner().invoke(app, ["data", "add", "--help"], terminal_width=80)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "<bool>" not in result.output and "╭" not in result.output
    assert max(map(len, lines)) <= 80
    intro = lines[lines.index("") + 1 : lines.index("", lines.index("") + 1)]  # the first paragraph
    assert all(len(line) + len(after.split()[0]) + 1 > 80 for line, after in pairwise(intro)), intro
    assert any(line.strip().startswith("--track / --no-track") for line in lines)


def test_data_add_outside_a_dvc_repository_writes_nothing(tmp_path, monkeypatch):
    import shutil

    from helpers.kaggle import write_kaggle_csv

    shutil.copytree(CONF, tmp_path / "conf")
    before = (tmp_path / "conf/config.yaml").read_text()
    csv = write_kaggle_csv(tmp_path / "k.csv")
    monkeypatch.chdir(tmp_path)
    maps = [
        "transaction_id=trans_num",
        "tx_datetime=trans_date_trans_time",
        "customer_id=cc_num",
        "terminal_id=merchant",
        "tx_amount=amt",
        "tx_fraud=is_fraud",
    ]
    args = ["data", "add", str(csv), "--name", "k"] + [a for m in maps for a in ("--map", m)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "not the root of a DVC repository" in result.output
    assert (tmp_path / "conf/config.yaml").read_text() == before
    assert not (tmp_path / "data").exists() and not (tmp_path / "conf/data/k.yaml").exists()
    missing = CliRunner().invoke(app, ["data", "add", str(csv), "--name", "k", "--map", "tx_amount=amt", "--no-track"])
    assert missing.exit_code == 1 and "--map transaction_id=<column>" in missing.output


KAGGLE_MAPS = [
    "transaction_id=trans_num",
    "tx_datetime=trans_date_trans_time",
    "customer_id=cc_num",
    "terminal_id=merchant",
    "tx_amount=amt",
    "tx_fraud=is_fraud",
]


def _data_add(path: Path, name: str, *extra: str) -> object:
    args = ["data", "add", str(path), "--name", name, "--no-track"] + [a for m in KAGGLE_MAPS for a in ("--map", m)]
    return CliRunner().invoke(app, [*args, *extra])


def test_data_add_takes_a_compressed_small_file_and_the_users_own_settings(tmp_path, monkeypatch):
    import shutil

    import numpy as np

    from helpers.kaggle import small_kaggle_frame, write_kaggle_csv

    shutil.copytree(CONF, tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    frame = small_kaggle_frame()
    before = (tmp_path / "conf/config.yaml").read_text()
    few = frame.assign(is_fraud=np.where(np.cumsum(frame["is_fraud"]) > 24, 0, frame["is_fraud"]))  # 24 frauds
    result = _data_add(write_kaggle_csv(tmp_path / "few.csv.bz2", few), "few")
    assert result.exit_code == 1, result.output
    assert "the file holds 24 frauds over 456 days" in result.output and "--set" in result.output
    assert "split.delay_days" in result.output and "split.train_days" in result.output
    assert (tmp_path / "conf/config.yaml").read_text() == before and not (tmp_path / "data").exists()

    result = _data_add(write_kaggle_csv(tmp_path / "small.csv.gz", frame), "small", "--set", "split.delay_days=2")
    assert result.exit_code == 0, result.output
    assert "split.delay_days = 2: given (--set)" in result.output and "split.live_days = 7" in result.output
    assert (tmp_path / "data/external/small.csv.gz").read_bytes() == (tmp_path / "small.csv.gz").read_bytes()
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["split"]["delay_days"] == 2 and params["data"]["path"] == "data/external/small.csv.gz"
    wrong = _data_add(tmp_path / "small.csv.gz", "small", "--set", "evaluate.card_precision_k=5000")
    assert wrong.exit_code == 1 and "would fail check_data: evaluate.card_precision_k: 5000" in wrong.output


def test_data_add_never_overwrites_a_data_option_it_did_not_write(tmp_path, monkeypatch):
    import shutil

    from helpers.kaggle import write_kaggle_csv

    shutil.copytree(CONF, tmp_path / "conf")
    csv = write_kaggle_csv(tmp_path / "k.csv")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf/data/mine.yaml").write_text("source: csv\npath: data/external/mine.csv\n")  # the user's own
    for name in ("simulated", "csv", "sql", "mine"):
        before = (tmp_path / "conf/data" / f"{name}.yaml").read_text()
        result = _data_add(csv, name)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"data add failed: --name {name!r}: conf/data/{name}.yaml is a data option `data add` did not write; "
            "choose another name"
        ]
        assert (tmp_path / "conf/data" / f"{name}.yaml").read_text() == before
    assert not (tmp_path / "data").exists()
    assert _data_add(csv, "kaggle").exit_code == 0  # a new name, then the same again: its own option, replaced
    assert _data_add(csv, "kaggle").exit_code == 0


def test_data_add_names_the_real_cause_of_unusable_labels(tmp_path, monkeypatch):
    import shutil

    from helpers.kaggle import kaggle_frame, write_kaggle_csv

    shutil.copytree(CONF, tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    frame = kaggle_frame()
    before = (tmp_path / "conf/config.yaml").read_text()
    unlabelled = write_kaggle_csv(tmp_path / "unlabelled.csv", frame.assign(is_fraud=""))
    result = _data_add(unlabelled, "u")
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "data add failed: data.columns.tx_fraud: column 'is_fraud' holds no labels (every value is missing): "
        "data add needs labelled transactions, 1 for a fraud and 0 for a genuine one"
    ], result.output
    yes_no = write_kaggle_csv(
        tmp_path / "yes_no.csv", frame.assign(is_fraud=frame["is_fraud"].map({0: "no", 1: "yes"}))
    )
    result = _data_add(yes_no, "yn")
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "data add failed: data.columns.tx_fraud: column 'is_fraud' holds 'no', 'yes', not 0/1 labels: write 1 "
        "for a fraud and 0 for a genuine transaction in the file (e.g. with pandas: "
        "df['is_fraud'] = df['is_fraud'].map({'no': 0, 'yes': 1})), then add it again"
    ], result.output
    assert "train_days" not in result.output and "0 frauds" not in result.output
    assert (tmp_path / "conf/config.yaml").read_text() == before and not (tmp_path / "data").exists()
