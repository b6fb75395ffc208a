"""The monitoring history: one point per monitored window and model, so that a trend shows across runs
(a DVC plot of drift share, score PSI, alert rate and live average precision, as Evidently's
dashboards draw one).

A point is keyed by what was monitored, the current window's period and the model version, never by
when: a rerun with nothing changed replaces its own point with the same values and leaves the file
byte-identical, while a new window or a new model adds a point. The stage keeps the file between runs
(`persist: true` in dvc.yaml) and rewrites it through ``add_point``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fraudpipe.errors import DataError
from fraudpipe.monitoring.monitor import MonitorResult

#: A point's fields: its position, its key (window, model), then the figures the plot draws.
HISTORY_FIELDS = ("run", "window", "model", "drift_share", "prediction_psi", "alert_rate", "live_average_precision")
KEY = ("window", "model")


def history_point(result: MonitorResult) -> dict[str, Any]:
    """This run's point (``run`` is set by ``add_point``)."""
    m = result.metrics
    return {
        "run": 0,
        "window": result.periods.get("current", ""),
        "model": result.model_version,
        "drift_share": m["drift_share"],
        "prediction_psi": m["prediction_psi"],
        "alert_rate": m["current_alert_rate"],
        "live_average_precision": m["live_average_precision"],
    }


def add_point(history: Sequence[Mapping[str, Any]], point: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history with ``point`` in place of the one with its key, or after the last; runs numbered from 1."""
    key = tuple(point[k] for k in KEY)
    points = [dict(p) for p in history]
    same = [i for i, p in enumerate(points) if tuple(p.get(k) for k in KEY) == key]
    if same:
        points[same[0]] = dict(point)
    else:
        points.append(dict(point))
    return [{**p, "run": i} for i, p in enumerate(points, start=1)]


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The points written so far; none when the file does not exist yet (the first run, a fresh clone)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        points = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc}); delete it to start the monitoring history afresh") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) and all(k in p for k in KEY) for p in points):
        raise DataError(
            f"{path}: expected a JSON list of points with {', '.join(KEY)}; delete it to start the history afresh"
        )
    return points
