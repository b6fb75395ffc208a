"""fraudpipe.io: outputs appear whole or not at all, with ordinary permissions, byte-identical on rerun."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudpipe.errors import OutputError
from fraudpipe.io import atomic_dir, atomic_path, read_parquet_if_exists, write_json, write_parquet, write_text


def fail_inside(context: AbstractContextManager[Path], write: Callable[[Path], object]) -> None:
    """Write part of an output inside ``context``, then die as a killed writer would."""
    with context as tmp:
        write(tmp)
        raise RuntimeError("killed")


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        fail_inside(atomic_path(target), lambda tmp: tmp.write_text("half"))
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_swaps_the_whole_directory_or_nothing(tmp_path):
    target = tmp_path / "bundle"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError, match="killed"):
        fail_inside(atomic_dir(target), lambda tmp: (tmp / "b").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_leftovers_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    (tmp_path / ".metrics.json.0123456789abcdef.tmp").write_text("{")  # a kill -9 mid-write
    (tmp_path / ".bundle.fedcba9876543210.tmp").mkdir()
    (tmp_path / ".other.json.0123456789abcdef.tmp").write_text("not ours")
    write_json({"a": 1}, tmp_path / "metrics.json")
    with atomic_dir(tmp_path / "bundle") as tmp:
        (tmp / "x").write_text("x")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".other.json.0123456789abcdef.tmp", "bundle", "metrics.json"]


def test_leftover_names_are_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["git", "check-ignore", "-q", "reports/.metrics.json.0123456789abcdef.tmp"], cwd=root)
    assert proc.returncode == 0


def _umask_script(body: str) -> str:
    return (
        "import os, sys\n"
        "calls = []\n"
        "real = os.umask\n"
        "os.umask = lambda m: calls.append(m) or real(m)\n"
        "real(0o027)\n"
        "import fraudpipe.io as io\n" + body + "\nprint(calls)\n"
    )


def test_outputs_get_the_umask_permissions_and_the_umask_is_never_touched(tmp_path):
    body = (
        f"io.write_text('x', {str(tmp_path / 'f.txt')!r})\n"
        f"with io.atomic_dir({str(tmp_path / 'd')!r}) as d: (d / 'x').write_text('x')\n"
    )
    proc = subprocess.run([sys.executable, "-c", _umask_script(body)], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", "fraudpipe.io called os.umask"
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


def test_write_parquet_is_byte_identical_on_rerun(tmp_path):
    df = pd.DataFrame({"a": np.arange(1000), "b": np.linspace(0, 1, 1000), "c": pd.Series(["x"] * 1000, dtype="str")})
    write_parquet(df, tmp_path / "1.parquet")
    write_parquet(df, tmp_path / "2.parquet")
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "1.parquet"), df)


def test_write_json_is_strict_json_with_non_finite_numbers_as_null(tmp_path):
    write_json(
        {"nan": float("nan"), "inf": np.float64("inf"), "n": np.int64(3), "xs": [1.5, float("-inf")]},
        tmp_path / "m.json",
    )
    text = (tmp_path / "m.json").read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == {"nan": None, "inf": None, "n": 3, "xs": [1.5, None]}


def test_write_text_and_optional_reads(tmp_path):
    write_text("hello\n", tmp_path / "sub" / "t.txt")
    assert (tmp_path / "sub" / "t.txt").read_text() == "hello\n"
    assert read_parquet_if_exists(tmp_path / "absent.parquet") is None
    assert os.listdir(tmp_path / "sub") == ["t.txt"]


def test_read_parquet_reads_only_the_rows_a_filter_keeps_and_names_a_missing_column(tmp_path):
    import pandas as pd
    import pytest

    from fraudpipe.errors import DataError
    from fraudpipe.io import read_parquet, write_parquet

    table = pd.DataFrame({"t": pd.date_range("2018-04-01", periods=10, freq="D"), "v": range(10)})
    write_parquet(table, tmp_path / "t.parquet")
    since = read_parquet(tmp_path / "t.parquet", filters=[("t", ">=", pd.Timestamp("2018-04-08"))])
    pd.testing.assert_frame_equal(since, table.iloc[7:].reset_index(drop=True))
    assert read_parquet(tmp_path / "t.parquet", columns=["v"]).columns.tolist() == ["v"]
    for kwargs in ({"columns": ["v", "tx_fraud"]}, {"filters": [("tx_fraud", "==", 1)]}):
        with pytest.raises(DataError, match=r"t.parquet lacks column\(s\) \['tx_fraud'\]; it has t, v"):
            read_parquet(tmp_path / "t.parquet", **kwargs)


# --- an output that cannot be written is one error naming it (stage.run prints it in one line) -----

ROOT_BYPASSES_PERMISSIONS = os.geteuid() == 0


def _writers(target: Path) -> dict[str, Callable[[], object]]:
    frame = pd.DataFrame({"a": [1]})
    return {
        "write_json": lambda: write_json({"a": 1}, target),
        "write_text": lambda: write_text("x", target),
        "write_parquet": lambda: write_parquet(frame, target),
        "atomic_dir": lambda: atomic_dir(target).__enter__(),
    }


@pytest.mark.skipif(ROOT_BYPASSES_PERMISSIONS, reason="root writes into a 0o500 directory all the same")
def test_a_read_only_output_directory_is_an_output_error_naming_the_path(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    out.chmod(0o500)
    try:
        for write in _writers(out / "metrics.json").values():
            with pytest.raises(OutputError) as err:
                write()
            assert (
                str(err.value)
                == f"cannot write {out / 'metrics.json'}: Permission denied; check the permissions of {out}"
            )
    finally:
        out.chmod(0o700)


def test_a_directory_where_an_output_file_goes_is_an_output_error(tmp_path):
    (tmp_path / "metrics.json").mkdir()
    writers = _writers(tmp_path / "metrics.json")
    for name in ("write_json", "write_text", "write_parquet"):
        with pytest.raises(OutputError) as err:
            writers[name]()
        assert str(err.value) == (
            f"cannot write {tmp_path / 'metrics.json'}: Is a directory; "
            "a directory stands where the file goes: move it away"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # nothing left behind


def test_a_file_where_an_output_directory_goes_is_an_output_error(tmp_path):
    (tmp_path / "reports").write_text("not a directory")
    for write in _writers(tmp_path / "reports" / "metrics.json").values():
        with pytest.raises(OutputError) as err:
            write()
        assert str(err.value).startswith(f"cannot write {tmp_path / 'reports' / 'metrics.json'}: File exists; a file")


def test_an_error_of_the_code_inside_an_atomic_write_is_not_an_output_error(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        (tmp_path / "missing" / "input.csv").read_text()  # reading an input is not writing the output
