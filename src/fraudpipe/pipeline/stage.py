"""What every stage script shares: failing in one line, and recording its cost when profiled.

A stage that fails on bad data or configuration says what is wrong in one line, not a traceback,
and exits non-zero so that `dvc repro` stops before anything downstream runs. A bug (any other
exception) keeps its traceback.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path

from fraudpipe.errors import PipelineError
from fraudpipe.startup import without_sklearn_wrappers

#: When set (to a directory), every stage that ends well writes ``<dir>/<stage>.json``: its wall
#: time since the process started and its peak memory (benchmarks/run.py sets it around `dvc repro`).
PROFILE_ENV = "FRAUDPIPE_PROFILE"


def run(main: Callable[[], None], stage: str) -> None:
    """Run a stage's main; a `PipelineError` becomes `stage '<name>' failed: <message>`, exit 1.
    No stage uses xgboost's scikit-learn wrappers: its process imports xgboost without scikit-learn."""
    without_sklearn_wrappers()
    try:
        main()
    except PipelineError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message's layout
        print(f"stage {stage!r} failed: {message}", file=sys.stderr)
        sys.exit(1)
    if directory := os.environ.get(PROFILE_ENV):
        write_profile(Path(directory), stage)


def seconds_since_start() -> float:
    """This process's age on the kernel's boot clock (/proc/self/stat's start tick against
    /proc/uptime). psutil's ``create_time`` adds the boot time, which /proc/stat gives to the whole
    second, and compares with the wall clock, which drifts from the boot clock on a VM: stage times
    came out up to a few tenths of a second long each (their sum exceeded `dvc repro`'s wall time)."""
    stat = Path("/proc/self/stat").read_text(encoding="ascii")
    started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
    return float(Path("/proc/uptime").read_text(encoding="ascii").split()[0]) - started


def write_profile(directory: Path, stage: str) -> Path:
    """Record this process's cost, measured from its start (interpreter and imports included), so
    that the real `dvc repro` is measured rather than a re-enactment of it."""
    seconds = seconds_since_start()
    # ru_maxrss is in KiB on Linux; children count for stages that start subprocesses.
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stage}.json"
    path.write_text(
        json.dumps({"stage": stage, "seconds": round(seconds, 3), "peak_rss_bytes": peak_kib * 1024}) + "\n"
    )
    return path
