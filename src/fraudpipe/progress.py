"""Progress bars for the stage steps that run for minutes at 10 million transactions.

Someone watching `dvc repro` in a terminal sees how far a long step is; a log, CI, a test or a
redirected run sees nothing, because a bar is off unless its stream is a terminal (tqdm's
``disable=None``): stage output and the files DVC hashes stay free of carriage returns. tqdm,
because DVC already depends on it and a disabled bar costs next to nothing per step.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sized
from typing import IO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar(total: int | None = None, *, desc: str, unit: str = "it", stream: IO[str] | None = None) -> tqdm:
    """A bar to ``update(n)`` by hand (chunks, boosting rounds, steps), on stderr unless ``stream``
    is given; a no-op when that stream is not a terminal. Use it as a context manager."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream if stream is not None else sys.stderr,
        disable=None,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it", stream: IO[str] | None = None
) -> Iterator[T]:
    """``iterable``'s items, counted on a `bar` (``total`` defaults to its length, when it has one)."""
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    with bar(total, desc=desc, unit=unit, stream=stream) as b:
        for item in iterable:
            yield item
            b.update()
