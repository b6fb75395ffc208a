"""The report's HTML pieces: escaping, numbers and flags in words, tables, figures."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

import numpy as np


def figure(alt: str, svg: str) -> str:
    """An inline SVG chart as a figure, ``alt`` saying what it shows to a screen reader."""
    return f'<figure role="img" aria-label="{esc(alt)}">{svg}</figure>'


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if not isinstance(value, (float, np.floating)):
        return str(value)
    return f"{float(value):.{digits}g}" if abs(float(value)) < 1e-3 and value != 0 else f"{float(value):.{digits}f}"


def table(
    table_id: str, header: Sequence[str], rows: Iterable[tuple[Sequence[str], str]], text_columns: int = 1
) -> str:
    """A table whose first ``text_columns`` columns are left-aligned text; rows as (cells, css class)."""
    head = "".join(
        f'<th class="text">{esc(h)}</th>' if i < text_columns else f"<th>{esc(h)}</th>" for i, h in enumerate(header)
    )
    body = []
    for cells, css in rows:
        tds = "".join(
            f'<td class="text">{c}</td>' if i < text_columns else f"<td>{c}</td>" for i, c in enumerate(cells)
        )
        body.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def yes_no(value: object) -> str:
    """A 0/1 flag as a word; undefined as ``n/a``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return "yes" if value else "no"


def percent(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}%}" if value is not None and math.isfinite(value) else "n/a"
