"""A throwaway copy of this repository, shrunk to tiny data, for tests that run real DVC commands.

The reproduced tiny pipeline is built once per test session (``build_tiny_pipeline``, from the
``tiny_pipeline`` fixture of conftest.py); a test that changes it works on a cheap clone of it
(``clone_repo``: `git clone --local`, the DVC cache hard-linked, `dvc checkout`).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

#: Merged into the copy's conf/ (``data`` into conf/data/simulated.yaml, the rest into
#: conf/config.yaml after `_self_` in the defaults list, so it wins): about 24,000 transactions
#: covering the handbook's train/delay/test weeks and a live week.
TINY_CONF = {
    "data": {"simulator": {"n_customers": 200, "n_terminals": 1000, "n_days": 60, "start_date": "2018-07-01"}},
    "validation": {"min_rows": 100, "max_fraud_rate": 0.25},
}


def env() -> dict[str, str]:
    """The environment for DVC/git subprocesses: this interpreter's tools first on PATH."""
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out["DVC_NO_ANALYTICS"] = "1"
    out.setdefault("GIT_AUTHOR_NAME", "fraudpipe tests")
    out.setdefault("GIT_AUTHOR_EMAIL", "tests@fraudpipe.local")
    out.setdefault("GIT_COMMITTER_NAME", "fraudpipe tests")
    out.setdefault("GIT_COMMITTER_EMAIL", "tests@fraudpipe.local")
    return out


def sh(cwd: Path, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command in `cwd`; on failure show its output in the assertion message."""
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def make_tiny_repo(dest: Path, conf: dict | None = None) -> Path:
    """Copy the tracked and untracked-but-not-ignored files into `dest`, shrink the data, commit."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("data/", "models/")):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    (dest / "data" / "external").mkdir(parents=True, exist_ok=True)
    (dest / "data" / "external" / ".gitkeep").touch()
    changes = _merge(copy.deepcopy(TINY_CONF), copy.deepcopy(conf or {}))
    # The simulator's settings go into its own option: in config.yaml they would also land in the
    # data group of every other kind of source (data=csv, ...), which refuses keys it does not have.
    simulated_path = dest / "conf" / "data" / "simulated.yaml"
    simulated = yaml.safe_load(simulated_path.read_text())
    simulated_path.write_text(yaml.safe_dump(_merge(simulated, changes.pop("data", {})), sort_keys=False))
    config_path = dest / "conf" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config_path.write_text(yaml.safe_dump(_merge(config, changes), sort_keys=False))
    sh(dest, sys.executable, "-m", "fraudpipe.cli", "params")
    sh(dest, "git", "init", "-q", "-b", "main")
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-q", "-m", "tiny copy of fraudpipe")
    return dest


def ran_stages(output: str) -> set[str]:
    """Stages `dvc repro` executed (neither skipped nor restored from the run-cache)."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


#: The configuration of the shared reproduced pipeline (``build_tiny_pipeline``), what the DVC,
#: experiment and workflow tests need at once: two months of history before the handbook's
#: training week (every window full in the reference as in the live period) and six weeks of live
#: data; one backtest fold (backtest trains once); the gate's floors are set for the full-size data,
#: so on tiny data they are reported but not enforced.
PIPELINE_CONF = {
    "data": {"simulator": {"n_customers": 200, "n_terminals": 1000, "n_days": 130, "start_date": "2018-05-20"}},
    "split": {"n_folds": 1},
    "evaluate": {"gate": {"enforce": False}},
}


def build_tiny_pipeline(dest: Path) -> str:
    """A tiny copy (``PIPELINE_CONF``) with the whole pipeline reproduced and committed; returns
    the output of its `dvc repro`."""
    make_tiny_repo(dest, PIPELINE_CONF)
    out = sh(dest, "dvc", "repro").stdout
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-q", "-m", "reproduce")
    return out


def clone_repo(source: Path, dest: Path) -> Path:
    """A working copy of ``source`` at its last commit with its DVC outputs checked out: the git
    history cloned locally, the DVC cache hard-linked (DVC never changes a cache file in place;
    what the clone adds stays its own)."""
    sh(dest.parent, "git", "clone", "-q", "--local", str(source), str(dest))
    shutil.copytree(source / ".dvc" / "cache", dest / ".dvc" / "cache", copy_function=os.link)
    sh(dest, "dvc", "checkout", "-q")
    return dest
