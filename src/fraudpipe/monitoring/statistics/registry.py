"""The registry of drift statistics: name -> function, the samples it compares, its drift rule.

Each family module registers its functions on import (``statistics/__init__`` imports them all),
as Evidently's ``stattests`` do, so that the checks, the report and the tests find a statistic by
the name stored in features.json rather than by a chain of ifs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

#: Feature kinds. A statistic compares NUMERIC samples (as distributions of numbers) or CATEGORICAL
#: ones (as shares per category); a BINARY feature is compared as categories.
BINARY, CATEGORICAL, NUMERIC = "binary", "categorical", "numeric"

F = TypeVar("F", bound=Callable[..., float])


@dataclass(frozen=True)
class Statistic:
    """One registered statistic. ``function(reference, current)`` gives its value (PSI over numbers
    also takes ``bins``); ``p_value``: drifted when below the threshold, else (a distance) when at
    or above it. ``meaning`` says in one line what a value tells someone who does not know the
    statistic: the report prints it next to the title."""

    name: str
    title: str
    meaning: str
    kind: str
    p_value: bool
    function: Callable[..., float]

    def drifted(self, value: float, threshold: float) -> bool:
        """Whether ``value`` crosses ``threshold`` by this statistic's rule; NaN never drifts."""
        if not np.isfinite(value):
            return False
        return value < threshold if self.p_value else value >= threshold


STATISTICS: dict[str, Statistic] = {}


def register(name: str, title: str, meaning: str, kind: str, *, p_value: bool) -> Callable[[F], F]:
    """Register the decorated function under ``name`` (once: a second registration is a bug)."""
    if kind not in (NUMERIC, CATEGORICAL):
        raise ValueError(f"statistic {name!r}: kind must be {NUMERIC!r} or {CATEGORICAL!r}, got {kind!r}")

    def add(function: F) -> F:
        if name in STATISTICS:
            raise ValueError(f"statistic {name!r} is registered twice")
        STATISTICS[name] = Statistic(name, title, meaning, kind, p_value, function)
        return function

    return add


def is_drifted(name: str, value: float, threshold: float) -> bool:
    """The drift rule of the statistic registered as ``name``."""
    return STATISTICS[name].drifted(value, threshold)
