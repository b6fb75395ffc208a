"""Atomic, deterministic writes of stage outputs.

A stage killed half-way must never leave a half-written output that DVC would then hash and
cache, and the same input must give byte-identical files, so every stage writes through here.
An output that cannot be written (a read-only directory, a full disk, a directory where the file
goes) is an ``OutputError`` naming it, which a stage prints in one line; an error of the code
inside ``atomic_path`` / ``atomic_dir`` stays what it is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraudpipe.errors import DataError, OutputError

#: What to check, by the system's error, when an output cannot be written.
_HINTS = {
    errno.EACCES: "check the permissions of {parent}",
    errno.EPERM: "check the permissions of {parent}",
    errno.EROFS: "{parent} is on a read-only file system",
    errno.ENOSPC: "free some space on the disk of {parent}",
    errno.EDQUOT: "the disk quota of {parent} is used up",
    errno.EISDIR: "a directory stands where the file goes: move it away",
    errno.EEXIST: "a file stands where a directory of its path goes: move it away",
    errno.ENOTDIR: "a file stands where a directory of its path goes: move it away",
}


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """An OSError while writing ``target`` becomes an OutputError that names it."""
    try:
        yield
    except OSError as exc:
        hint = _HINTS.get(exc.errno or 0, "check that {parent} is a writable directory").format(parent=target.parent)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}; {hint}") from exc


def _temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (the rename onto it is atomic on one file system),
    after removing what a killed earlier write of ``target`` left behind (.gitignore hides both)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _temporary_name(target)
        # os.open applies the process umask to 0o666, so outputs get ordinary permissions (mkstemp
        # would make them 0600) without reading or changing the umask.
        os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp_path
        with _writing(target):
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory; swap it in for ``path`` only on success."""
    target = Path(path)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_name(target)
        tmp.mkdir(mode=0o777)  # the umask applies, as for any directory (mkdtemp would make 0700)
    try:
        yield tmp
        with _writing(target):
            _swap_in(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old.tmp")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` without its index, with fixed settings so reruns are byte-identical."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    with _writing(Path(path)), atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, write_statistics=True)


def read_parquet(
    path: str | os.PathLike[str], columns: list[str] | None = None, filters: list[tuple[str, str, Any]] | None = None
) -> pd.DataFrame:
    """``filters`` (pyarrow's, e.g. ``[("tx_datetime", ">=", start)]``) skip the row groups their
    statistics rule out and drop the other rows before pandas sees them: a stage that needs a few
    weeks of a long history never holds the rest in memory. A column either names that the file
    lacks is a DataError naming it (pyarrow's own error would be a traceback)."""
    if columns is not None or filters is not None:
        names = pq.read_schema(path).names
        absent = [c for c in dict.fromkeys([*(columns or ()), *(f[0] for f in filters or ())]) if c not in names]
        if absent:
            shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
            raise DataError(f"{path} lacks column(s) {absent}; it has {shown}")
    return pd.read_parquet(path, columns=columns, filters=filters)


def read_parquet_if_exists(path: str | os.PathLike[str]) -> pd.DataFrame | None:
    """Optional inputs (e.g. location tables only the simulator provides): None when absent."""
    return pd.read_parquet(path) if Path(path).exists() else None


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity (DVC rejects them): map them to None."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write strict JSON (no NaN/Infinity), stable key order, trailing newline."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    with _writing(Path(path)), atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    with _writing(Path(path)), atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
