"""Plotly figure builders: pure functions of arrays, testable without a browser."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

MARGIN = dict(l=0, r=0, t=30, b=0)


def png_data_uri(array: np.ndarray) -> str:
    """An RGB image (H, W, 3) uint8 as a `data:image/png;base64,…` URI (fast, light PNG)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, "PNG",
                                                                       compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image(array: np.ndarray, title: str = "", *, height: int = 320,
          hover: np.ndarray | None = None, hover_label: str = "") -> go.Figure:
    """An RGB image (H, W, 3) with pixel coordinates on hover and no axes.

    The picture travels as a PNG (`source`), which the browser decodes natively, rather than
    as a list of pixels that plotly.js would paint one by one: several times lighter to send
    and to draw, which is what keeps a slider on a page of pictures quick. `hover` (H, W)
    adds a value to each pixel's hover text (e.g. the class name); it is sent as text, so it
    costs what the pixels no longer do: leave it out where a legend says as much.
    """
    fig = go.Figure(go.Image(source=png_data_uri(array), customdata=hover,
                             hovertemplate=("x %{x}, y %{y}" + (f"<br>{hover_label} %{{customdata}}"
                                                                if hover is not None else "")
                                            + "<extra></extra>")))
    return _frame(fig, title, height, array.shape)


def heat_picture(values: np.ndarray, lo: float = 0.0, hi: float = 1.0, *,
                 cmap: str = "viridis",
                 ticks: list[tuple[float, str]] | None = None) -> np.ndarray:
    """A scalar map (H, W) painted with `seg.viz.heat`, its colour scale drawn on the right.

    A picture for `st.image`, where a plotly heatmap would be too slow to redraw at every
    step of a slider (a 256² map is ~0.6 MB of JSON that plotly.js paints cell by cell).

    Args:
        values, lo, hi, cmap: as `seg.viz.heat` (lo gets the first colour, hi the last).
        ticks: (value, label) pairs to mark on the bar; by default hi at the top and lo at
            the bottom, written with `:g`.

    Returns:
        uint8 (H, W + bar, 3): the map, a gap, a vertical bar from `hi` (top) to `lo`, and
        the labels beside it.
    """
    import seg.viz
    from PIL import ImageDraw

    painted = seg.viz.heat(values, lo, hi, cmap)  # (H, W, 3)
    height = painted.shape[0]
    if ticks is None:
        ticks = [(hi, f"{hi:g}"), (lo, f"{lo:g}")]
    ramp = seg.viz.colormap(cmap)[np.linspace(255, 0, height).round().astype(int)]  # (H, 3)
    bar = np.full((height, 22 + 6 * max(len(label) for _, label in ticks), 3), 255, np.uint8)
    bar[:, 4:14] = ramp[:, None]
    canvas = Image.fromarray(np.concatenate([painted, bar], axis=1))
    draw = ImageDraw.Draw(canvas)
    x = painted.shape[1] + 16
    for value, label in ticks:
        y = (hi - value) / (hi - lo) * (height - 1) if hi != lo else 0.0  # the value's row
        draw.line([(x - 2, y), (x, y)], fill=(0, 0, 0))
        draw.text((x + 2, min(max(y - 5, 0), height - 11)), label, fill=(0, 0, 0))
    return np.asarray(canvas)


def depth_picture(z: np.ndarray, *, near: float, far: float, inverse: bool,
                  unit: str = "m") -> np.ndarray:
    """A depth map (H, W) as `seg.depth.to_grey`'s grey levels, a bar on the right labelled
    in distances (`unit`), for `st.image`.

    A picture rather than a plotly heatmap: a range slider redraws it at every step, and a
    256² heatmap with its depths for the hover is over a megabyte to send and paint.

    Returns:
        uint8 (H, W + bar, 3); the first W columns are the grey levels in all three channels.
    """
    from seg import depth as seg_depth

    grey = seg_depth.to_grey(z, near=near, far=far, inverse=inverse)
    ticks = [v for v in (0.5, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if near <= v <= far]
    ticks = sorted({near, far, *ticks})
    levels = seg_depth.to_grey(np.array(ticks, dtype=float), near=near, far=far, inverse=inverse)
    shown = [0]  # the near end; then each tick at least 28 grey levels from the last one shown
    for k in range(1, len(ticks)):
        if abs(int(levels[k]) - int(levels[shown[-1]])) >= 28:
            shown.append(k)
    shown[-1] = len(ticks) - 1  # the far end is always labelled
    return heat_picture(grey, 0, 255, cmap="grey",
                        ticks=[(float(levels[k]), f"{ticks[k]:.3g} {unit}") for k in shown])


def curve_svg(values, title: str, *, xlabel: str = "iteration", log_y: bool = False,
              mark: int | None = None, width: int = 360, height: int = 210) -> str:
    """A line with one marker per value, as an SVG document for `st.image`.

    For short per-step curves that follow a slider: a few hundred bytes the browser draws at
    once, where a plotly figure costs a chart's layout and redraw at every step. `mark` rings
    one step (the slider's) and draws a dashed line through it. Non-finite values (and, on a
    log scale, values ≤ 0) are left out of the line.

    Returns:
        "<svg …>…</svg>", `width` × `height` user units, scaled to its column.
    """
    import html

    ys = np.asarray(values, dtype=float)
    n = len(ys)
    keep = np.isfinite(ys) & ((ys > 0) if log_y else True)
    shown = np.log10(ys[keep]) if log_y else ys[keep]
    lo, hi = (float(shown.min()), float(shown.max())) if shown.size else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    ticks = _ticks(lo, hi, log_y)
    lo, hi = lo - 0.06 * (hi - lo), hi + 0.06 * (hi - lo)
    left, right, top, bottom = 62, 12, 28, 36
    inner_w, inner_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x / (n - 1) if n > 1 else 0.5) * inner_w

    def sy(v: float) -> float:
        return top + (hi - v) / (hi - lo) * inner_h

    def label(v: float) -> str:
        if not log_y:
            return f"{v:.4g}"
        return f"1e{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{10 ** v:.2g}"

    font = 'font-family="sans-serif" fill="#31333f"'
    text = font + ' font-size="12"'
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="16" {font} font-size="14">{html.escape(title)}</text>']
    for v in ticks:
        y = sy(v)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#e6e9ef"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {text}>'
                     f'{label(v)}</text>')
    step = max(1, -(-(n - 1) // 10))
    for x in range(0, n, step):
        parts.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 15}" text-anchor="middle" '
                     f'{text}>{x}</text>')
    parts.append(f'<text x="{left + inner_w / 2:.1f}" y="{height - 4}" text-anchor="middle" '
                 f'{text}>{html.escape(xlabel)}</text>')
    if mark is not None and 0 <= mark < n:
        parts.append(f'<line x1="{sx(mark):.1f}" x2="{sx(mark):.1f}" y1="{top}" '
                     f'y2="{top + inner_h}" stroke="#ff4b4b" stroke-dasharray="4 3"/>')
    points = [(sx(x), sy(v)) for x, v in zip(np.flatnonzero(keep), shown)]
    if len(points) > 1:
        parts.append('<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
    for x, y in points:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f77b4"/>')
    if mark is not None and 0 <= mark < n and keep[mark]:
        v = np.log10(ys[mark]) if log_y else ys[mark]
        parts.append(f'<circle cx="{sx(mark):.1f}" cy="{sy(v):.1f}" r="6" fill="none" '
                     'stroke="#ff4b4b" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(lo: float, hi: float, log: bool) -> np.ndarray:
    """Round values between lo and hi for an axis: whole decades on a log axis (lo, hi are
    exponents), else multiples of 1, 2, 2.5 or 5 × 10^k, about four of them."""
    if log and np.ceil(lo) <= np.floor(hi):
        decades = np.arange(np.ceil(lo), np.floor(hi) + 1)
        return decades[::max(1, -(-len(decades) // 5))]
    raw = (hi - lo) / 4
    power = 10.0 ** np.floor(np.log10(raw))
    step = power * min((m for m in (1, 2, 2.5, 5, 10) if m * power >= raw), default=10)
    return np.arange(np.ceil(lo / step) * step, hi + 1e-9 * step, step)


def heatmap(values: np.ndarray, title: str = "", *, zmin=None, zmax=None,
            colorscale: str = "Viridis", height: int = 320, colorbar: str = "",
            text: np.ndarray | None = None) -> go.Figure:
    """A 2-D map (H, W) with a colour bar; `text` writes numbers in the cells (small maps)."""
    fig = go.Figure(go.Heatmap(
        z=values, zmin=zmin, zmax=zmax, colorscale=colorscale,
        colorbar=dict(title=colorbar, thickness=12),
        text=text, texttemplate="%{text}" if text is not None else None,
        hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _frame(fig, title, height, values.shape)


def bars(names: list[str], values: list[float], title: str = "", *, colours=None,
         height: int = 300, xrange=(0, 1), xlabel: str = "probability") -> go.Figure:
    """Horizontal bars, largest at the top (class probabilities, per-class IoU)."""
    order = np.argsort(values)
    fig = go.Figure(go.Bar(
        x=[values[i] for i in order], y=[names[i] for i in order], orientation="h",
        marker_color=[colours[i] for i in order] if colours is not None else None,
        text=[f"{values[i]:.2f}" for i in order], textposition="auto"))
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=30, b=0),
                      xaxis=dict(range=xrange, title=xlabel))
    return fig


def curves(series: dict[str, tuple[list, list]], title: str = "", *, xlabel: str = "step",
           ylabel: str = "", height: int = 300, log_y: bool = False) -> go.Figure:
    """Line plots, one per named (x, y) series."""
    fig = go.Figure([go.Scatter(x=x, y=y, name=name, mode="lines") for name, (x, y) in
                     series.items()])
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=30, b=0),
                      xaxis_title=xlabel, yaxis_title=ylabel,
                      yaxis_type="log" if log_y else None, legend=dict(orientation="h"))
    return fig


def _frame(fig: go.Figure, title: str, height: int, shape) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=MARGIN)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, scaleanchor="x")
    return fig
