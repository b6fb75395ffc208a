"""`monitoring.svg`: the report's hand-written charts are well-formed SVG that say what they draw
(series, points, ticks, labels), place ticks on round values and write the same bytes for the same data."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest

from fraudpipe.monitoring.svg import (
    Axis,
    Bars,
    Line,
    Rule,
    bar_chart,
    day_label,
    day_ticks,
    decade_label,
    decade_ticks,
    line_chart,
    nice_ticks,
    percent_label,
)

NS = {"svg": "http://www.w3.org/2000/svg"}


def parsed(svg: str) -> ET.Element:
    """The chart as XML: inline SVG must parse as it stands."""
    return ET.fromstring(svg)


def series(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-label"): g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "series"}


def texts(root: ET.Element, css: str | None = None) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{{{NS['svg']}}}text") if css is None or t.get("class") == css]


def tick_labels(root: ET.Element, axis: str) -> list[str]:
    """The tick labels of the x axis (centred under their ticks) or the y axis (right-aligned beside them)."""
    ticks = next(g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "ticks")
    anchor = {"x": "middle", "y": "end"}[axis]
    return ["".join(t.itertext()) for t in ticks if t.get("class") is None and t.get("text-anchor") == anchor]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (-0.03, 1.03, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.0, 0.0087, [0.0, 0.002, 0.004, 0.006, 0.008]),
        (3.0, 97.0, [20.0, 40.0, 60.0, 80.0]),
        (0.0, 14.0, [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]),
        (0.0, 24.0, [0.0, 5.0, 10.0, 15.0, 20.0]),
    ],
)
def test_ticks_sit_on_round_values_inside_the_axis(low, high, expected):
    assert nice_ticks(low, high) == expected


def test_log_ticks_are_decades_written_as_powers():
    assert decade_ticks(1e-4, 100.0) == [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]
    assert [decade_label(t) for t in decade_ticks(1e-3, 100.0)] == ["10⁻³", "10⁻²", "10⁻¹", "1", "10", "10²"]


def test_day_ticks_are_mondays_a_week_or_two_apart():
    july_24, october_1 = 17736.0, 17805.0  # 2018-07-24 .. 2018-10-01: ten weeks
    ticks = day_ticks(july_24, october_1)
    assert 3 <= len(ticks) <= 7 and all((t - 4) % 7 == 0 for t in ticks)  # 1970-01-05 was a Monday
    assert {b - a for a, b in itertools.pairwise(ticks)} == {14.0}
    assert [day_label(t) for t in ticks][:2] == ["Jul 30", "Aug 13"]
    assert day_ticks(17736.0, 17740.0) == [17736.0, 17737.0, 17738.0, 17739.0, 17740.0]  # a short window: every day
    assert percent_label(1)(0.0065) == "0.7%" and percent_label(0)(0.96) == "96%"


def test_a_line_chart_says_what_it_draws():
    days = [0.0, 1.0, 2.0, 3.0]
    svg = line_chart(
        "Alert rate & more",
        [
            Line("reference", days, [0.1, 0.2, math.nan, 0.4], "#4C72B0", markers=True),
            Line("current", days, [0.3, 0.2, 0.1, 0.0], "#DD8452"),
        ],
        Axis("day"),
        Axis("rate", low=0.0),
        [Rule(0.25, "#000", label="overall"), Rule(1.5, "#000", vertical=True)],
    )
    root = parsed(svg)
    assert root.find("svg:title", NS).text == "Alert rate & more"
    drawn = series(root)
    assert list(drawn) == ["reference", "current"]
    assert drawn["reference"].get("data-points") == "3"  # the NaN day is not drawn...
    path = drawn["reference"].find("svg:path", NS).get("d")
    assert path.count("M") == 2 and path.count("L") == 1  # ...it breaks the line
    assert len(drawn["reference"].findall(".//svg:circle", NS)) == 3
    assert not drawn["current"].findall(".//svg:circle", NS)
    assert texts(root, "x-label") == ["day"] and texts(root, "y-label") == ["rate"]
    legend = next(g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "legend")
    assert ["".join(t.itertext()) for t in legend.iter(f"{{{NS['svg']}}}text")] == ["reference", "current", "overall"]
    rules = [e for e in root.iter(f"{{{NS['svg']}}}line") if e.get("class") == "rule"]
    assert len(rules) == 2
    vertical = next(r for r in rules if r.get("x1") == r.get("x2"))
    horizontal = next(r for r in rules if r.get("y1") == r.get("y2"))
    assert float(vertical.get("y1")) < float(vertical.get("y2")) and horizontal is not vertical
    assert tick_labels(root, "x") == ["0", "1", "2", "3"]
    assert tick_labels(root, "y") == ["0.0", "0.1", "0.2", "0.3", "0.4"]


def test_a_histogram_outline_and_a_log_axis():
    edges = [0.0, 0.25, 0.5, 0.75, 1.0]
    svg = line_chart("h", [Line("s", edges, [10.0, 0.5, 0.0, 0.02], "#000", steps=True)], Axis(), Axis(log=True))
    drawn = series(parsed(svg))["s"]
    assert drawn.get("data-points") == "4"
    d = drawn.find("svg:path", NS).get("d")
    assert d.startswith("M") and d.count("V") == 5 and d.count("H") == 4  # up, across each bin, down at the end
    assert tick_labels(parsed(svg), "y") == ["10⁻²", "10⁻¹", "1", "10"]
    # the empty bin is drawn on the axis' floor, not lost below it
    floors = [float(v) for v in re.findall(r"V([\d.]+)", d)]
    assert max(floors) == floors[-1] and floors.count(max(floors)) == 2


def test_grouped_bars():
    svg = bar_chart(
        "night",
        ["0", "1"],
        [Bars("reference", [0.7, 0.3], "#4C72B0"), Bars("current", [0.6, 0.4], "#D84")],
        Axis("share"),
    )
    root = parsed(svg)
    drawn = series(root)
    assert list(drawn) == ["reference", "current"]
    heights = {k: [float(r.get("height")) for r in g.findall("svg:rect", NS)] for k, g in drawn.items()}
    assert heights["reference"][0] > heights["current"][0] > heights["current"][1] > heights["reference"][1] > 0
    assert tick_labels(root, "x") == ["0", "1"]  # the categories under their bars
    assert tick_labels(root, "y") == ["0.0", "0.2", "0.4", "0.6"]


def test_same_data_same_bytes_and_nothing_an_html_page_would_misread():
    def draw() -> str:
        return line_chart(
            "t <x>", [Line("a & b", [0.1, 0.2], [1 / 3, 2 / 3], "#000", markers=True)], Axis("x"), Axis("y")
        )

    first = draw()
    assert first == draw()
    assert "<x>" not in first and "&lt;x&gt;" in first and "a &amp; b" in first
    assert "+" not in first and not re.search(r"\de-?\d", first)  # fixed-point numbers only
