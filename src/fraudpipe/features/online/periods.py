"""Periods: an operator's deliberate move of the state's clock, and how retention counts time across one.

The state forgets what is older than its retention window before the newest transaction seen. A
move to a new period (``OnlineState.start_period``: the stream resumes at ``start``, far after the
newest transaction) must not make it forget the history it holds at once: the transactions it
acknowledged stay retriable and labellable for the whole retention window. So retention counts
*stream time*: event time less the jumps of the moves before it. A period is ``(start, jump)``:
from ``start`` on, event time runs ``jump`` seconds ahead of the stream time before it. Each move
starts after every transaction held, so stream time grows with event time over the transactions
held, and "older than the window in stream time" is still one event-time horizon (``horizon``),
which the per-key histories, sorted by time, cut at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any

Period = tuple[int, int]  # (start, jump) in epoch seconds


def horizon(periods: Sequence[Period], now: int, kept: int) -> int:
    """The event time at or before which a transaction is older than ``kept`` seconds of stream time
    before ``now`` (without periods: ``now - kept``)."""
    shifts = list(accumulate(jump for _, jump in periods))
    target = now - (shifts[-1] if shifts else 0) - kept  # in the stream time of the first period
    cut = target
    for (start, _), shift in zip(periods, shifts):
        if start - shift <= target:  # the horizon falls in this period (or a later one)
            cut = target + shift
    return cut


def period_start(periods: Sequence[Period]) -> int | None:
    """Where the current period starts (None: no move yet): nothing before it is accepted any more."""
    return periods[-1][0] if periods else None


def parse_periods(raw: Iterable[Sequence[Any]] | None) -> list[Period]:
    """Periods as saved (JSON: a list of [start, jump] pairs; absent: none)."""
    if raw is None:
        return []
    return [(int(start), int(jump)) for start, jump in raw]
