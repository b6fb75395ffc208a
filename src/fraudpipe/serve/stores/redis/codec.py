"""Answers and locations as the shared state stores them: ``P:scored``'s JSON (``servicelog.Answer``,
which monitoring reads too) and ``P:xy:*``'s "x y"."""

from __future__ import annotations

from datetime import datetime

from fraudpipe.serve.stores.base import Scored, Transaction, epoch_second, four_coordinates
from fraudpipe.servicelog import Answer


def answer_json(scored: Scored) -> str:
    tx = scored.transaction
    return Answer(
        tx.customer_id,
        tx.terminal_id,
        tx.tx_datetime.isoformat(timespec="microseconds"),
        tx.tx_amount,
        list(tx.coordinates),
        float(scored.score),
        bool(scored.alert),
        float(scored.threshold),
        scored.model_version,
        scored.shadow_score,
        scored.shadow_model,
        scored.shadow_alert,
    ).to_json()


def scored_answer(tid: str, raw: str) -> Scored:
    """The ``Scored`` that ``answer_json`` wrote for transaction ``tid``."""
    a = Answer.from_json(raw)
    when = datetime.fromisoformat(a.tx_datetime)
    tx = Transaction(
        tid, a.customer_id, a.terminal_id, when, epoch_second(when), a.tx_amount, four_coordinates(a.coordinates)
    )
    return Scored(tx, a.score, a.alert, a.threshold, a.model_version, a.shadow_score, a.shadow_model, a.shadow_alert)


def location_text(x: float | None, y: float | None) -> str:
    """A location as ``P:xy:*`` holds it ('' when not carried)."""
    return "" if x is None or y is None else f"{float(x)!r} {float(y)!r}"


def parse_location(raw: str | None) -> tuple[float, float] | None:
    return None if raw is None else location_of(raw)


def location_of(raw: str) -> tuple[float, float]:
    """A ``P:xy:*`` value as (x, y)."""
    x, y = raw.split(" ")
    return float(x), float(y)
