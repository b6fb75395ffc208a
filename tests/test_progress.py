"""Progress bars: silent off a terminal, counting to the total on one (a real pseudo-terminal)."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import termios

import pytest

from fraudpipe.progress import bar, progress


@pytest.fixture
def terminal():
    """A writable stream that is a terminal (the slave end of a pty) and a reader of what it got."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    stream = os.fdopen(slave, "w")

    def output() -> str:
        stream.flush()
        chunks = []
        while select.select([master], [], [], 0.2)[0]:
            chunks.append(os.read(master, 65536))
        return b"".join(chunks).decode(errors="replace")

    yield stream, output
    stream.close()
    os.close(master)


def test_off_when_the_stream_is_not_a_terminal():
    stream = io.StringIO()
    with bar(3, desc="quiet", stream=stream) as b:
        assert b.disable
        b.update(3)
    assert list(progress(range(5), desc="quiet", stream=stream)) == [0, 1, 2, 3, 4]
    assert stream.getvalue() == ""


def test_off_on_a_redirected_stderr_by_default(capsys):
    assert list(progress(["a", "b"], desc="stderr")) == ["a", "b"]
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a terminal


def test_on_a_terminal_the_count_reaches_the_total(terminal):
    stream, output = terminal
    with bar(7, desc="rounds", unit="round", stream=stream) as b:
        assert not b.disable
        for _ in range(7):
            b.update()
        assert b.n == b.total == 7
    shown = output()
    assert "rounds" in shown and "/7" in shown


def test_progress_yields_every_item_in_order_and_takes_the_total_from_the_length(terminal):
    stream, output = terminal
    items = list(range(12))
    assert list(progress(items, desc="folds", unit="fold", stream=stream)) == items
    assert "folds" in output()
    assert list(progress(iter(items), desc="no length", total=12, stream=io.StringIO())) == items
