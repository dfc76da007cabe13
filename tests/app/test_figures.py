"""app.figures: the picture and SVG builders, without a browser."""

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from app import figures

SVG = "{http://www.w3.org/2000/svg}"


def markers(svg: str) -> list[tuple[float, float, str]]:
    return [(float(c.get("cx")), float(c.get("cy")), c.get("r"))
            for c in ET.fromstring(svg).iter(f"{SVG}circle")]


def test_curve_svg_puts_one_marker_per_value_in_order_and_rings_the_mark():
    values = [3.0, 1.0, 2.0, 2.0]
    svg = figures.curve_svg(values, "F <per> pixel", mark=2, width=300, height=200)
    root = ET.fromstring(svg)  # well-formed: the title's "<" is escaped
    assert root.get("viewBox") == "0 0 300 200"
    assert next(root.iter(f"{SVG}text")).text == "F <per> pixel"
    dots = [(x, y) for x, y, r in markers(svg) if r == "3"]
    ring = [(x, y) for x, y, r in markers(svg) if r == "6"]
    xs, ys = zip(*dots)
    assert len(dots) == 4 and list(xs) == sorted(xs)
    assert ys[0] < ys[2] == ys[3] < ys[1]  # larger values higher up (smaller y)
    assert ring == [dots[2]]


def test_curve_svg_leaves_out_what_it_cannot_draw():
    svg = figures.curve_svg([math.nan, 1e-1, 1e-3, 0.0], "KL", log_y=True, mark=0)
    dots = [(x, y) for x, y, r in markers(svg) if r == "3"]
    assert len(dots) == 2  # nan, and 0 on a log axis, have no place
    assert not [m for m in markers(svg) if m[2] == "6"]  # the marked value is nan
    labels = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert {"1e-1", "1e-2", "1e-3"} <= set(labels)  # whole decades on a log axis
    # A flat or empty curve still draws.
    for values in ([2.0, 2.0, 2.0], [math.nan]):
        assert ET.fromstring(figures.curve_svg(values, "flat"))


@pytest.mark.parametrize("lo, hi", [(-1.63, -1.2), (0.61, 0.7), (0.0, 1.0), (3.0, 1800.0)])
def test_ticks_are_round_and_inside_the_range(lo, hi):
    ticks = figures._ticks(lo, hi, False)
    assert 3 <= len(ticks) <= 6
    assert ticks.min() >= lo - 1e-9 and ticks.max() <= hi + 1e-9
    step = np.diff(ticks)[0]
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
