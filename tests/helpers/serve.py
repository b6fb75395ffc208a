"""Shared by the serve tests: a small simulated world (features, a bundle trained on its first 30
days, the online state before the test period) and a real `fraudpipe serve` process on loopback."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from fraudpipe.config import compose
from fraudpipe.contract import TX_DATETIME, feature_columns
from fraudpipe.data.simulate import SimulatorConfig, simulate
from fraudpipe.features.definitions import FeatureConfig, build_features
from fraudpipe.features.online import OnlineState
from fraudpipe.model import ModelConfig, load_bundle, save_bundle, train_bundle, with_features_config
from fraudpipe.model.bundle import write_checksums
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.schema import TransactionIn
from helpers.net import free_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
SIMULATOR = [
    "data.simulator.n_customers=100",
    "data.simulator.n_terminals=500",
    "data.simulator.n_days=40",
    "data.simulator.radius=10",
]
#: For a request that must open a connection of its own (the kernel hands each new one to either worker
#: of `--workers 2`) and for polling a server that is starting: ``httpx.get``/``httpx.post`` build a
#: client, TLS context included, for every call (~25 ms of CPU, as much as a server's start in polls).
FRESH = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


@dataclass(frozen=True)
class World:
    tx: pd.DataFrame  # every transaction, in (tx_datetime, transaction_id) order, labelled
    table: pd.DataFrame  # the offline features of every transaction
    config: FeatureConfig
    cut: pd.Timestamp  # the test period starts here
    bundle_dir: Path
    state_dir: Path  # OnlineState.from_history(transactions before cut), saved as featurize saves it
    late_state_dir: Path  # the same kept with a day of lateness (late_days=1): late arrivals scored exactly at once

    @property
    def test(self) -> pd.DataFrame:
        return self.tx[self.tx[TX_DATETIME] >= self.cut].reset_index(drop=True)

    def batch_scores(self, transaction_ids: Any) -> np.ndarray:
        """The batch path: the bundle on the offline feature rows."""
        rows = self.table.set_index("transaction_id").loc[list(transaction_ids)].reset_index()
        return load_bundle(self.bundle_dir).score(rows)

    def offline_row(self, transaction_id: Any) -> np.ndarray:
        row = self.table.loc[self.table["transaction_id"] == transaction_id, feature_columns(self.table)]
        return row.to_numpy(np.float64)[0]


@functools.cache
def world() -> World:
    params = compose(CONF, [*SIMULATOR, "model.n_estimators=20"])
    sim = simulate(SimulatorConfig.parse(params["data"]["simulator"], "data.simulator"))
    tx = sim.transactions.drop(columns="tx_fraud_scenario")
    config = FeatureConfig.parse(params["features"], "features")
    table = build_features(tx, config)
    cut = tx[TX_DATETIME].min().normalize() + pd.Timedelta(days=30)
    root = Path(tempfile.mkdtemp(prefix="fraudpipe-serve-world-"))
    model_config = ModelConfig.parse(params["model"] | {"threshold_validation_days": 0}, "model")
    save_bundle(train_bundle(table[table[TX_DATETIME] < cut], model_config), root / "bundle")
    OnlineState.from_history(tx[tx[TX_DATETIME] < cut], config).save(root / "state")
    OnlineState.from_history(tx[tx[TX_DATETIME] < cut], config, late_days=1).save(root / "late_state")
    return World(tx, table, config, cut, root / "bundle", root / "state", root / "late_state")


def _train(name: str, overrides: list[str], drop: tuple[str, ...] = ()) -> Path:
    w = world()
    params = compose(CONF, [*SIMULATOR, *overrides])
    model_config = ModelConfig.parse(params["model"] | {"threshold_validation_days": 0}, "model")
    path = Path(tempfile.mkdtemp(prefix=f"fraudpipe-serve-{name}-")) / "bundle"
    save_bundle(train_bundle(w.table[w.table[TX_DATETIME] < w.cut].drop(columns=list(drop)), model_config), path)
    return path


@functools.cache
def challenger() -> Path:
    """A second bundle on the world's features (other settings: another version, other scores)."""
    return _train("challenger", ["model.n_estimators=8", "model.max_depth=3"])


@functools.cache
def fewer_features() -> Path:
    """A bundle trained without one of the state's features: a subset the service can still score."""
    return _train("fewer", ["model.n_estimators=8"], drop=("terminal_id_risk_30day_window",))


@dataclass(frozen=True)
class OwnFeatures:
    """A challenger trained with another features config than the world's state: other windows, another
    label delay, other extras (all within the state's retention)."""

    bundle_dir: Path
    config: FeatureConfig
    table: pd.DataFrame  # the offline features of every transaction of the world, with this config

    def offline(self, transaction_ids: Any) -> pd.DataFrame:
        return self.table.set_index("transaction_id").loc[list(transaction_ids)].reset_index()


@functools.cache
def own_features() -> OwnFeatures:
    w = world()
    config = FeatureConfig.parse(
        {
            "set": "challenger",
            "customer_windows": [1, 14, 7],
            "terminal_windows": [3, 1, 10],
            "delay_days": 3,
            "extras": ["amount_zscore", "nb_terminals", "seconds_since_prev_tx"],
            "extra_windows": [14, 2],
        },
        "features",
    )
    assert config.retention_days <= w.config.retention_days
    table = build_features(w.tx, config)
    params = compose(CONF, [*SIMULATOR, "model.n_estimators=12", "model.max_depth=4"])
    model_config = ModelConfig.parse(params["model"] | {"threshold_validation_days": 0}, "model")
    path = Path(tempfile.mkdtemp(prefix="fraudpipe-serve-own-")) / "bundle"
    bundle = train_bundle(table[table[TX_DATETIME] < w.cut], model_config)
    save_bundle(with_features_config(bundle, config), path)
    return OwnFeatures(path, config, table)


def foreign_features(directory: Path) -> Path:
    """A copy of the world's bundle whose feature list names one the state does not compute (sums rewritten)."""
    shutil.copytree(world().bundle_dir, directory)
    meta = json.loads((directory / "bundle.json").read_text())
    meta["features"][-1] = "customer_id_nb_tx_90day_window"
    (directory / "bundle.json").write_text(json.dumps(meta))
    write_checksums(directory)
    return directory


def body(row: Any, **changes: Any) -> dict[str, Any]:
    """The score request of a transaction (a row of the contract's table)."""
    out = {
        "transaction_id": int(row.transaction_id),
        "customer_id": int(row.customer_id),
        "terminal_id": int(row.terminal_id),
        "tx_datetime": pd.Timestamp(row.tx_datetime).isoformat(),
        "tx_amount": float(row.tx_amount),
    }
    return out | changes


def config(tmp_path: Path, **changes: Any) -> ServeConfig:
    """The service's configuration on the world's bundle and state, its journal under ``tmp_path``."""
    w = world()
    options = {
        "model": w.bundle_dir,
        "state": w.state_dir,
        "journal_dir": tmp_path / "journal",
        "host": "127.0.0.1",
        "port": 8000,
        "max_batch": 100,
        "max_body_bytes": 1 << 20,
        "max_amount": 1e5,
        "late_days": 1,
        "max_future_seconds": 300,
        "api_key_env": "FRAUDPIPE_TEST_UNSET_KEY",
    }
    return ServeConfig.parse(options | changes, "serve")


def tx(row: Any, **changes: Any) -> TransactionIn:
    """A transaction of the world as the service receives it."""
    return TransactionIn.model_validate(body(row, tx_datetime=row.tx_datetime.to_pydatetime()) | changes)


@dataclass
class Server:
    """`python -m fraudpipe.cli serve` on a free loopback port, its output in files."""

    workdir: Path
    bundle: Path | str  # a bundle directory, or a registry reference (fraud-model#prod)
    state: Path
    journal: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    starts: int = 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "fraudpipe.cli",
            "serve",
            "--model",
            str(self.bundle),
            "--state",
            str(self.state),
            "--journal-dir",
            str(self.journal),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]

    def start(self, wait: bool = True) -> Server:
        self.port = self.port or free_port()
        self.starts += 1
        self.stdout, self.stderr = (self.workdir / f"server-{self.port}-{self.starts}.{s}" for s in ("out", "err"))
        env = {**os.environ, "OMP_NUM_THREADS": "1", **self.env}
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err, env=env, cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if FRESH.get(self.url("/readyz"), timeout=2).status_code == 200:
                    self.client = httpx.Client(base_url=self.url(""), timeout=30)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return f"--- stdout\n{self.stdout.read_text()}\n--- stderr\n{self.stderr.read_text()}"

    def score(self, payload: dict[str, Any]) -> httpx.Response:
        return self.client.post("/v1/score", json=payload)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        if getattr(self, "client", None) is not None:
            self.client.close()
        return self.proc.returncode

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def replay(servers: list[Server], rows: pd.DataFrame, labelled: pd.DataFrame, delay_days: int) -> list[list[float]]:
    """Send each transaction of ``rows`` (in order) to every server, and before each, the labels of the
    transactions of ``labelled`` that have become older than the delay (as they would arrive)."""
    out: list[list[float]] = [[] for _ in servers]
    times = labelled[TX_DATETIME].to_numpy()
    ids, frauds = labelled["transaction_id"].tolist(), labelled["tx_fraud"].tolist()
    sent = 0
    for row in rows.itertuples(index=False):
        due = np.datetime64(row.tx_datetime) - np.timedelta64(delay_days, "D")
        while sent < len(times) and times[sent] <= due:
            for server in servers:
                answer = server.client.post(
                    "/v1/labels", json={"transaction_id": ids[sent], "tx_fraud": int(frauds[sent])}
                )
                assert answer.status_code == 200, answer.text
            sent += 1
        for k, server in enumerate(servers):
            answer = server.score(body(row))
            assert answer.status_code == 200, answer.text
            out[k].append(answer.json()["fraud_probability"])
    return out
