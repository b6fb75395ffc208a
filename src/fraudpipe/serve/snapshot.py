"""Snapshots of the in-process state, written by a process of their own while the service keeps scoring.

A snapshot is the state as of a journal seq: the latest snapshot (or ``--state``) with the journal's
entries up to that seq replayed on it, which is what a restart rebuilds and so the state the service
had at that seq. The cut is therefore one number, taken at once; the work (load, replay, write
Parquet: seconds for half a million transactions) runs in a child process (``python -m
fraudpipe.serve.snapshot``, at a lower CPU priority) that shares neither the service's event loop nor
its interpreter lock, so requests are scored meanwhile. The child needs the memory of a second copy
of the state. Once the snapshot is complete (``service.json`` written last, the directory renamed into
place), the service drops the older snapshots and truncates the journal up to that seq, in short
transactions (``Journal.truncate``).

When: on request (``POST /v1/admin/snapshot``, SIGUSR1), and on its own once the journal holds
``--snapshot-every`` entries after the latest snapshot (checked every second), which bounds the
journal's size and a restart's replay. One at a time: a request while one is written waits for it,
then takes its own cut.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudpipe.errors import DataError, PipelineError
from fraudpipe.features.online import STATE_FILE, snapshot_identity
from fraudpipe.serve.journal import Journal, mark_snapshot, read_periods, snapshot_dir
from fraudpipe.serve.replay import read_entries, replay
from fraudpipe.serve.stores.memory import InProcessStore
from fraudpipe.servicelog import latest_snapshot

CHECK_EVERY = 1.0  # seconds between two looks at the journal's length (the automatic policy)
CLOSE_WAIT = 60.0  # seconds a closing service waits for the snapshot being written before it stops it


def write_snapshot(directory: Path, state: Path, through: int, late_days: int, **info: Any) -> dict[str, Any]:
    """Write the snapshot of the journal directory's state as of entry ``through`` (in the child)."""
    start = time.perf_counter()
    target = snapshot_dir(directory, through)
    if not target.is_dir():
        found = latest_snapshot(directory)
        base, after = found if found else (state, 0)
        store = InProcessStore.load(base, late_days)
        moves = [m for m in read_periods(directory) if after <= m[0] <= through]
        replay(store, read_entries(directory, after, through), moves)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        store.save(tmp)
        written_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat()
        mark_snapshot(tmp, through, written_at=written_at, **info)
        os.replace(tmp, target)  # the commit point: a restart loads it and replays what follows `through`
    return {
        "snapshot": str(target),
        "journal_seq": through,
        "transactions": _transactions(target),
        "seconds": round(time.perf_counter() - start, 3),
    }


def _transactions(snapshot: Path) -> int:
    return int(json.loads((snapshot / STATE_FILE).read_text(encoding="utf-8"))["transactions"])


class Snapshots:
    """The snapshots of one service's journal: taken on request or by the policy, one at a time."""

    def __init__(self, journal: Journal, state: Path, late_days: int, every: int, **info: Any) -> None:
        self.journal, self.state, self.late_days, self.every, self.info = journal, state, late_days, every, info
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-snapshot")
        self._lock = threading.Lock()
        #: held while the journal is truncated, and by a swap building a state of its own (``serve.sides``)
        self.retain = threading.Lock()
        self._pending = 0  # snapshots asked for and not finished
        self._child: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._policy = None
        if every:
            self._policy = threading.Thread(target=self._watch, name="journal-snapshot-policy", daemon=True)
            self._policy.start()

    def start(self) -> Future[dict[str, Any]]:
        """Take a snapshot holding at least every entry appended before this call; its result
        (``write_snapshot``'s dict) or its error (a PipelineError naming the cause) when written."""
        with self._lock:
            self._pending += 1
        future = self._writer.submit(self._take)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            with self._lock:
                busy = self._pending > 0
            if not busy and self.due():
                self.start()

    def due(self) -> bool:
        """Whether the journal holds ``every`` entries or more after the latest snapshot."""
        found = latest_snapshot(self.journal.directory)
        return self.journal.committed_seq() - (found[1] if found else 0) >= self.every

    def _take(self) -> dict[str, Any]:
        through = self.journal.committed_seq()
        command = [
            sys.executable,
            "-m",
            "fraudpipe.serve.snapshot",
            str(self.journal.directory),
            str(self.state),
            str(through),
            str(self.late_days),
            json.dumps(self.info),
        ]
        with self._lock:
            if self._stop.is_set():
                raise DataError("snapshot not taken: the service is stopping")
            self._child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = self._child.communicate()
        code = self._child.returncode
        with self._lock:
            self._child = None
        if code != 0:
            reason = err.strip().splitlines()[-1] if err.strip() else f"exit status {code}"
            raise DataError(f"the snapshot process failed: {reason}")
        done = json.loads(out.strip().splitlines()[-1])
        target = Path(done["snapshot"])
        with self.retain:
            self.journal.drop_other_snapshots(target)
            self.journal.truncate(through)
        return done

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Stop the policy; let the snapshot being written finish (``wait`` seconds at most, then stop
        its process: the journal still holds every entry); refuse the ones not started."""
        self._stop.set()
        if self._policy is not None:
            self._policy.join(timeout=10)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            with self._lock:
                if self._pending == 0:
                    break
            time.sleep(0.05)
        with self._lock:
            if self._child is not None:
                self._child.kill()
        self._writer.shutdown(wait=True)


def check_base(journal: Journal, state: Path) -> None:
    """Without a snapshot of its own, the journal replays on top of --state: refuse another state than
    the one it was written on, whose transactions it would count twice or miss."""
    identity = f"{state.resolve()} {snapshot_identity(state)}"
    recorded = journal.get_meta("base")
    if recorded is None:
        journal.set_meta("base", identity)
    elif recorded != identity and journal.last_seq() > 0:
        raise DataError(
            f"{journal.path} was written on top of {recorded}, not {identity}: start with the same --state, or "
            f"with another --journal-dir (or move {journal.directory} away) to start afresh from this one"
        )
    else:
        journal.set_meta("base", identity)


def main(argv: list[str] | None = None) -> int:
    """The child: ``python -m fraudpipe.serve.snapshot JOURNAL_DIR STATE THROUGH LATE_DAYS INFO_JSON``;
    prints ``write_snapshot``'s dict as one JSON line, or one line on stderr and exit status 1."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("state", type=Path)
    parser.add_argument("through", type=int)
    parser.add_argument("late_days", type=int)
    parser.add_argument("info", type=json.loads)
    args = parser.parse_args(argv)
    os.nice(10)  # the service's requests first
    try:
        done = write_snapshot(args.directory, args.state, args.through, args.late_days, **args.info)
    except (PipelineError, OSError) as exc:
        print(f"snapshot failed: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    except Exception:  # a bug: keep its traceback
        traceback.print_exc()
        print("snapshot failed: an unexpected error (traceback above)", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
