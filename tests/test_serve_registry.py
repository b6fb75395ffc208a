"""The model registry: GTO's tags name versions and stages of dvc.yaml's `fraud-model` artifact, DVC
fetches a version's bundle, and `fraudpipe serve --model fraud-model#prod` serves it and says which.

Real git, gto and dvc in a clone of the session's tiny pipeline; the DVC remote is a local directory.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from fraudpipe.errors import BundleError, ConfigError
from fraudpipe.model import load_bundle
from fraudpipe.model.bundle import write_checksums
from fraudpipe.serve.registry import fetch, model_from, parse_reference, resolve
from helpers.repo import clone_repo, env, sh
from helpers.serve import Server

pytestmark = pytest.mark.integration

ARTIFACT = "fraud-model"


@pytest.fixture(scope="module")
def registry(tiny_pipeline, tmp_path_factory) -> Path:
    """A clone of the tiny pipeline whose bundle is pushed to a local DVC remote (committed in
    .dvc/config), registered as v0.1.0 and assigned to prod."""
    root = tmp_path_factory.mktemp("registry")
    repo = clone_repo(tiny_pipeline.repo, root / "repo")
    sh(repo, "dvc", "remote", "add", "-f", "-d", "storage", str(root / "remote"))
    sh(repo, "dvc", "push", "-q", "models/bundle")
    sh(repo, "git", "commit", "-q", "-am", "the DVC remote")
    sh(repo, "gto", "register", ARTIFACT, "--version", "v0.1.0")
    sh(repo, "gto", "assign", ARTIFACT, "--version", "v0.1.0", "--stage", "prod")
    return repo


def _head(repo: Path) -> str:
    return sh(repo, "git", "rev-parse", "HEAD").stdout.strip()


def test_dvc_yaml_declares_the_artifact_dvc_and_gto_read(registry):
    shown = sh(registry, sys.executable, "-c", "import dvc.api; print(dvc.api.artifacts_show('fraud-model'))")
    assert "'path': 'models/bundle'" in shown.stdout
    assert sh(registry, "git", "tag", "--list").stdout.split() == ["fraud-model#prod#1", "fraud-model@v0.1.0"]


def test_a_reference_is_gtos_shortcut_and_anything_else_a_path():
    assert parse_reference("fraud-model#prod").stage == "prod"
    assert parse_reference("fraud-model@v1.2.0").version == "v1.2.0"
    latest = parse_reference("fraud-model@latest")
    assert latest.artifact == ARTIFACT and latest.stage is None and latest.version is None
    assert parse_reference("models/bundle") is None
    assert parse_reference("./fraud-model#prod") is None  # a path, however it is named


@pytest.mark.parametrize("ref", ["fraud-model#prod", "fraud-model@v0.1.0", "fraud-model@latest"])
def test_a_stage_a_version_and_the_latest_resolve_to_the_registered_commit(registry, ref):
    release = resolve(parse_reference(ref), str(registry))
    assert (release.artifact, release.version, release.commit) == (ARTIFACT, "v0.1.0", _head(registry))
    assert release.label == "fraud-model@v0.1.0" and release.reference == ref


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        ("fraud-modle#prod", "no registered artifact 'fraud-modle'"),
        ("fraud-model#prdo", "unknown stage 'prdo'; the registry's stages (.gto): staging, prod"),
        ("fraud-model#staging", "no version of fraud-model is in stage 'staging'"),
        ("fraud-model@v9.9.9", "no version v9.9.9 of fraud-model (registered: v0.1.0)"),
    ],
)
def test_a_reference_to_nothing_is_one_line_naming_it(registry, ref, named):
    with pytest.raises(ConfigError) as caught:
        resolve(parse_reference(ref), str(registry))
    message = str(caught.value)
    assert named in message and f"--model {ref}" in message and "\n" not in message


def test_gto_refuses_a_stage_the_registry_does_not_list(registry):
    refused = sh(registry, "gto", "assign", ARTIFACT, "--version", "v0.1.0", "--stage", "prdo", check=False)
    assert refused.returncode != 0 and "staging" in refused.stderr + refused.stdout


def test_a_fresh_clone_fetches_the_bundle_from_the_remote_and_verifies_it(registry, tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(registry), str(clone))
    assert not (clone / ".dvc" / "cache").exists()  # nothing but git: the bundle can only come from the remote
    bundle, release = model_from("fraud-model#prod", str(clone), tmp_path / "models")
    assert release is not None and release.version == "v0.1.0"
    assert bundle == tmp_path / "models" / ARTIFACT / release.commit
    assert load_bundle(bundle).version == load_bundle(registry / "models" / "bundle").version
    (bundle / "model.ubj").write_bytes(b"damaged")  # a damaged cached copy is fetched again, not served
    assert load_bundle(fetch(release, str(clone), tmp_path / "models")).version == load_bundle(bundle).version


def test_dvc_artifacts_get_fetches_a_stage_as_a_user_types_it(registry, tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(registry), str(clone))
    sh(tmp_path, "dvc", "artifacts", "get", str(clone), ARTIFACT, "--stage", "prod", "-o", "prod")
    sh(tmp_path, "dvc", "artifacts", "get", str(clone), ARTIFACT, "--rev", "v0.1.0", "-o", "v010")
    expected = load_bundle(registry / "models" / "bundle").version
    assert load_bundle(tmp_path / "prod").version == load_bundle(tmp_path / "v010").version == expected


def test_without_the_bundle_in_a_cache_or_remote_the_fetch_is_one_line_saying_so(tiny_pipeline, tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(tiny_pipeline.repo), str(clone))  # its remote was never pushed to
    sh(clone, "gto", "register", ARTIFACT, "--version", "v0.1.0")
    release = resolve(parse_reference("fraud-model@v0.1.0"), str(clone))
    with pytest.raises(BundleError) as caught:
        fetch(release, str(clone), tmp_path / "models")
    message = str(caught.value)
    assert message.startswith("fraud-model@v0.1.0 (commit ") and "dvc push" in message and "\n" not in message


def test_promote_and_roll_back_move_the_stage(registry, tmp_path):
    work = clone_repo(registry, tmp_path / "work")
    sh(work, "git", "fetch", "-q", "--tags")
    (work / "NOTES.md").write_text("a second commit: the next version\n")
    sh(work, "git", "add", "NOTES.md")
    sh(work, "git", "commit", "-q", "-m", "next")
    sh(work, "gto", "register", ARTIFACT, "--bump-minor")
    sh(work, "gto", "assign", ARTIFACT, "--version", "v0.2.0", "--stage", "prod")
    assert resolve(parse_reference("fraud-model#prod"), str(work)).version == "v0.2.0"
    time.sleep(1.1)  # tags record whole seconds: the roll-back's must be the later one
    sh(work, "gto", "assign", ARTIFACT, "--version", "v0.1.0", "--stage", "prod", "--force")  # the roll-back
    assert "v0.1.0" in sh(work, "gto", "show", "fraud-model#prod").stdout
    back = resolve(parse_reference("fraud-model#prod"), str(work))
    assert (back.version, back.commit) == ("v0.1.0", _head(registry))


def _next_transaction(repo: Path) -> dict:
    """A transaction a minute after the newest the state holds, by a card and terminal it knows."""
    last = pd.read_parquet(repo / "data" / "split" / "live.parquet").sort_values("tx_datetime").iloc[-1]
    return {
        "transaction_id": "registry-1",
        "customer_id": int(last.customer_id),
        "terminal_id": int(last.terminal_id),
        "tx_datetime": (last.tx_datetime + pd.Timedelta(minutes=1)).isoformat(),
        "tx_amount": 12.5,
    }


def test_serve_starts_from_the_prod_stage_and_says_which_version(registry, tmp_path):
    bundle_version = load_bundle(registry / "models" / "bundle").version
    server = Server(
        registry,
        "fraud-model#prod",
        registry / "data" / "features" / "online_state",
        tmp_path / "journal",
        args=("--model-cache", str(tmp_path / "models")),
    )
    with server:
        ready = server.client.get("/readyz").json()
        assert ready["model_version"] == bundle_version
        assert ready["model_registry_version"] == "fraud-model@v0.1.0"
        assert (ready["model_reference"], ready["model_commit"]) == ("fraud-model#prod", _head(registry))
        metrics = server.client.get("/metrics").text
        info = f'fraudpipe_model_info{{model_version="{bundle_version}",registry_version="fraud-model@v0.1.0"}} 1.0'
        assert info in metrics
        answer = server.score(_next_transaction(registry))
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_registry_version"] == "fraud-model@v0.1.0"
        assert answer.json()["model_version"] == bundle_version
    out = server.stdout.read_text()
    assert "fraud-model#prod in . is fraud-model@v0.1.0" in out
    assert f"model {bundle_version} = fraud-model@v0.1.0 (fraud-model#prod, commit " in out


def test_serve_from_an_unknown_version_exits_with_one_line(registry, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fraudpipe.cli", "serve", "--model", "fraud-model@v3.0.0"],
        cwd=registry,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr
        == "serve failed: --model fraud-model@v3.0.0: no version v3.0.0 of fraud-model (registered: v0.1.0)\n"
    )


def _register_new_bundle(repo: Path) -> str:
    """A new bundle (another threshold: another version) committed as the train stage's output,
    registered as the next minor version and assigned to prod, as a retrain's promotion does; its version."""
    bundle = repo / "models" / "bundle"
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["threshold"] = round(meta["threshold"] * 0.9, 6)
    for name in ("bundle.json", "SHA256SUMS"):  # new files, never an edit of what the DVC cache may link
        (bundle / name).unlink()
    (bundle / "bundle.json").write_text(json.dumps(meta))
    write_checksums(bundle)
    sh(repo, "dvc", "commit", "-f", "-q", "train")
    sh(repo, "git", "commit", "-q", "-am", "retrained")
    sh(repo, "gto", "register", ARTIFACT, "--bump-minor")
    sh(repo, "gto", "assign", ARTIFACT, "--version", "v0.2.0", "--stage", "prod")
    return load_bundle(bundle).version


@pytest.mark.slow  # a real service, two clients, a registration and a SIGHUP (~18 s)
def test_sighup_follows_the_prod_stage_to_a_new_version_without_a_failed_request(registry, tmp_path):
    """`serve --model fraud-model#prod`, `gto assign` prod to a new version, SIGHUP: the reference is
    resolved anew and the new version answers, /metrics names it, and no request failed meanwhile."""
    work = clone_repo(registry, tmp_path / "work")
    sh(work, "git", "fetch", "-q", "--tags")
    old = load_bundle(work / "models" / "bundle").version
    last = pd.read_parquet(work / "data" / "split" / "live.parquet").sort_values("tx_datetime").iloc[-1000:]
    start = last["tx_datetime"].max()
    cursor = itertools.count()
    answers: list[tuple[float, int, str, str | None]] = []
    stop = threading.Event()
    server = Server(
        work,
        "fraud-model#prod",
        work / "data/features/online_state",
        tmp_path / "journal",
        args=("--model-cache", str(tmp_path / "models")),
    )

    def client() -> None:
        with httpx.Client(base_url=server.url(""), timeout=30) as http:
            while not stop.is_set() and (i := next(cursor)) < 20 * len(last):
                row = last.iloc[i % len(last)]
                sent = time.monotonic()
                answer = http.post(
                    "/v1/score",
                    json={
                        "transaction_id": f"hup-{i}",
                        "customer_id": int(row.customer_id),
                        "terminal_id": int(row.terminal_id),
                        "tx_datetime": (start + pd.Timedelta(seconds=i)).isoformat(),
                        "tx_amount": float(row.tx_amount),
                    },
                )
                ok = answer.status_code == 200
                got = answer.json() if ok else {}
                answers.append(
                    (sent, answer.status_code, got.get("model_version", answer.text), got.get("model_registry_version"))
                )

    with server:
        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        new = _register_new_bundle(work)  # while the service answers
        commit = _head(work)
        assert new != old
        server.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 60
        while server.client.get("/readyz").json()["model_version"] != new and time.monotonic() < end:
            time.sleep(0.05)
        swapped = time.monotonic()
        ready = server.client.get("/readyz").json()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        metrics = server.client.get("/metrics").text
        (work / "NOTES.md").write_text("a version of the same bundle\n")  # registered anew, the bundle unchanged
        sh(work, "git", "add", "NOTES.md")
        sh(work, "git", "commit", "-q", "-m", "same bundle")
        sh(work, "gto", "register", ARTIFACT, "--bump-minor")
        sh(work, "gto", "assign", ARTIFACT, "--version", "v0.3.0", "--stage", "prod")
        server.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 60
        while server.client.get("/readyz").json()["model_registry_version"] != "fraud-model@v0.3.0":
            assert time.monotonic() < end, server.output()
            time.sleep(0.05)
        again = server.client.post("/v1/score", json=_next_transaction(work) | {"transaction_id": "hup-same"})
        assert again.json()["model_version"] == new and again.json()["model_registry_version"] == "fraud-model@v0.3.0"
    assert (ready["model_version"], ready["model_registry_version"]) == (new, "fraud-model@v0.2.0"), server.output()
    assert ready["model_commit"] == commit and ready["model_reference"] == "fraud-model#prod"
    assert f'fraudpipe_model_info{{model_version="{new}",registry_version="fraud-model@v0.2.0"}} 1.0' in metrics
    assert f'model_version="{old}"' not in metrics.split("fraudpipe_model_info", 1)[1].split("\n#", 1)[0]
    assert len(answers) > 100 and [a for a in answers if a[1] != 200] == []  # no failed request
    assert {(v, r) for _, _, v, r in answers} == {(old, "fraud-model@v0.1.0"), (new, "fraud-model@v0.2.0")}
    assert {(v, r) for sent, _, v, r in answers if sent > swapped} == {(new, "fraud-model@v0.2.0")}
    assert "SIGHUP: swapped in " in server.stdout.read_text()

    time.sleep(1.1)  # tags record whole seconds: the roll-back's must be the later one
    sh(work, "gto", "assign", ARTIFACT, "--version", "v0.1.0", "--stage", "prod", "--force")  # a roll-back
    with server:  # restarted with the same --model fraud-model#prod: the reference is resolved anew
        back = server.client.get("/readyz").json()
        assert (back["model_version"], back["model_registry_version"]) == (old, "fraud-model@v0.1.0"), server.output()
