"""The vectorised window machinery of the offline features: rows grouped by key, windows by bisection.

Speed: one stable sort per key, then ``searchsorted`` on a (key, time) composite array gives
every window's first row, and cumulative sums give counts and sums, so nothing loops over rows.
Sorted queries let each binary search run within a chunk of rows. Distinct keys over a window
come from one sort of the (key, other key) pairs, shared by every window. Feature columns are
written into one float64 block, so the table is made without a copy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """``argsort(keys, kind="stable")``, by 16-bit radix passes when the key range allows (7x faster)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    offset = keys - keys.min()
    top = int(offset.max())
    if top >= 2**32:
        return np.argsort(keys, kind="stable")
    order = np.argsort(offset.astype(np.uint16), kind="stable")  # the low 16 bits; numpy radix-sorts 16-bit ints
    if top >= 2**16:
        order = order[np.argsort((offset[order] >> 16).astype(np.uint16), kind="stable")]
    return order


class Columns:
    """Feature columns written straight into one float64 block, so making the frame copies nothing."""

    def __init__(self, names: list[str], n: int) -> None:
        self.names = names
        self.values = np.empty((len(names), n), dtype=np.float64)
        self._row = {name: i for i, name in enumerate(names)}
        self._written: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        """The column to fill (each is filled once)."""
        self._written.add(name)
        return self.values[self._row[name]]

    def __setitem__(self, name: str, column: np.ndarray) -> None:
        self[name][:] = column

    def frame(self) -> pd.DataFrame:
        assert self._written == set(self.names), set(self.names) - self._written
        return pd.DataFrame(self.values.T, columns=self.names, copy=False)


_SEARCH_CHUNK = 4096


def _searchsorted_in_place(haystack: np.ndarray, needles: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """``np.searchsorted(haystack, needles, side=side)`` for sorted int64 needles, written over them.

    The answers are sorted too, so a chunk's lie between those of its first needle and of the
    next chunk's first: each binary search spans about a chunk instead of every row (1.4x faster).
    A chunk is read before it is overwritten, so the answers need no memory of their own.
    """
    n = len(needles)
    firsts = np.arange(0, n, _SEARCH_CHUNK)
    bounds = [*np.searchsorted(haystack, needles[firsts], side=side).tolist(), len(haystack)]
    for k, a in enumerate(firsts.tolist()):
        lo, b = bounds[k], a + _SEARCH_CHUNK
        np.add(np.searchsorted(haystack[lo : bounds[k + 1]], needles[a:b], side=side), lo, out=needles[a:b])
    return needles


class ByKey:
    """Rows grouped by key (stable: table order within a key) with a (key, time) composite.

    Work happens in grouped order; ``to_table`` maps a result back to table order.
    """

    def __init__(self, keys: np.ndarray, seconds: np.ndarray, max_lag: int) -> None:
        n = len(keys)
        self.order = _stable_order(keys)
        self.inverse = np.empty(n, dtype=np.int64)
        self.inverse[self.order] = np.arange(n)
        sorted_keys = keys[self.order]
        self.first = np.ones(n, dtype=bool)
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=self.first[1:])
        del sorted_keys
        self.codes = np.cumsum(self.first) - 1
        self.n_keys = int(self.codes[-1]) + 1 if n else 0
        t0 = int(seconds.min()) if n else 0
        span = (int(seconds.max()) - t0 if n else 0) + max_lag + 1  # blocks never overlap
        self.comp = self.codes * span
        self.comp += seconds[self.order]
        self.comp -= t0

    def after(self, lag: int, out: np.ndarray | None = None) -> np.ndarray:
        """Per row, the first row of its key with time > t - lag (the start of (t - lag, ...])."""
        return _searchsorted_in_place(self.comp, np.subtract(self.comp, lag, out=out), "right")

    def gaps(self) -> np.ndarray:
        """Per row after the first, seconds since the previous row (meaningless across keys)."""
        return np.diff(self.comp)  # same key: the composites differ by the times

    def to_table(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``values`` (grouped order, float64) into ``out`` in table order: a gather, faster than a scatter."""
        return np.take(values, self.inverse, out=out, mode="clip")


def prefix_sums(values: np.ndarray) -> np.ndarray:
    """Cumulative sums after a leading 0: the sum over rows [a, b) is ``out[b] - out[a]``."""
    out = np.zeros(len(values) + 1, dtype=values.dtype)
    np.cumsum(values, out=out[1:])
    return out


class Repeats:
    """Each row's previous row with the same pair of keys, for distinct counts over windows.

    Built once for all windows: a stable (radix) sort of ``other``'s grouped order by ``by``'s key
    lists the rows by (by key, other key, time), where a pair's rows are adjacent.
    """

    def __init__(self, by: ByKey, other: ByKey) -> None:
        position = by.inverse[other.order]  # rows in ``other``'s grouped order, as positions in ``by``'s
        codes = by.codes[position]
        order = _stable_order(codes)
        pair = (codes * other.n_keys + other.codes)[order]
        position = position[order]
        same = pair[1:] == pair[:-1]
        #: (earlier, later): positions in ``by``'s grouped order of consecutive rows of one pair
        self.earlier, self.later = position[:-1][same], position[1:][same]
        n = len(position)
        #: per row, the rows up to it that are the first of their pair
        self.firsts_to = np.arange(1, n + 1) - np.cumsum(np.bincount(self.later, minlength=n))

    def distinct(self, start: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Distinct other keys over each row's window [start, row] (grouped order, sorted ``start``).

        Distinct = rows in the window - repeats in it, a repeat being a row whose previous row of
        the pair (earlier) is in the window too. Row p leaves the windows of rows >= leaves[p] (the
        count of windows starting at or before p), so the repeat (p, j) is in row i's window for
        j <= i < leaves[p]: all repeats up to i, less those gone by i (max(j, leaves[p]) <= i).
        """
        n = len(start)
        leaves = np.cumsum(np.bincount(start, minlength=n))
        gone = leaves[self.earlier]
        np.maximum(gone, self.later, out=gone)
        gone_to = np.cumsum(np.bincount(gone, minlength=n + 1)[:n], out=leaves)
        gone_to -= start
        return np.add(self.firsts_to, gone_to, out=out)
