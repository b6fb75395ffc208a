"""The model registry: GTO's tags name versions and stages of dvc.yaml's `fraud-model` artifact, DVC
fetches a version's bundle, and `fraudpipe serve --model fraud-model#prod` serves it and says which.

Real git, gto and dvc in a clone of the session's tiny pipeline; the DVC remote is a local directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fraudpipe.errors import BundleError, ConfigError
from fraudpipe.model import load_bundle
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
