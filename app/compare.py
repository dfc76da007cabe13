"""UI pieces of the pages that look at predictions: run a model safely, probe a pixel, show
where two label maps differ, read a ground-truth mask, save a mask as PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from streamlit_image_coordinates import streamlit_image_coordinates

import seg
from app import resources
from app.image_input import ChosenImage
from seg.io import ImageError
from seg.models import CheckpointError, Prediction

#: Wrong or disagreeing pixels are painted in this red over a faded grey copy of the picture.
HIGHLIGHT = (230, 25, 25)
#: Maps are shown with at most this many cells a side: a 1024-pixel photo as a full-resolution
#: heat map would send millions of numbers to the browser for no visible gain.
MAP_CELLS = 256


def predict(name: str, chosen: ChosenImage) -> Prediction | None:
    """`name`'s cached prediction for the chosen image, or None after showing why it can't run."""
    try:
        return resources.predict(name, resources.device(), chosen.key, chosen.array)
    except (CheckpointError, seg.models.WeightsUnavailable) as error:
        st.error(f"{resources.title(name)} cannot run here: {error}", icon="🚫")
        return None


def class_set_name(classes: list[str]) -> str:
    """How a page names a set of classes ("SegLab's 8 street classes", "21 PASCAL VOC classes")."""
    if list(classes) == list(seg.synthetic.CLASSES):
        return f"SegLab's {len(classes)} street classes"
    if len(classes) == 21:
        return "the 21 PASCAL VOC classes (background + 20 objects)"
    return f"{len(classes)} classes ({', '.join(classes[:3])} …)"


def highlight(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The picture faded to grey with the pixels of `mask` (H, W) painted red."""
    grey = np.asarray(image, dtype=np.float64).mean(axis=2, keepdims=True)  # (H, W, 1)
    faded = np.repeat(120 + 0.5 * grey, 3, axis=2).astype(np.uint8)  # light grey, (H, W, 3)
    return np.where(np.asarray(mask)[:, :, None], np.uint8(HIGHLIGHT), faded)


def map_figure(values: np.ndarray, title: str, *, zmax: float, colorbar: str,
               height: int = 320) -> go.Figure:
    """A scalar map (H, W) from 0 to `zmax` with a colour bar; hover gives the image's pixel.

    Large maps are subsampled to `MAP_CELLS` cells a side, keeping the hover coordinates in
    the original image's pixels.
    """
    h, w = values.shape
    step = max(1, -(-max(h, w) // MAP_CELLS))  # ceil division
    ys, xs = np.arange(0, h, step), np.arange(0, w, step)
    fig = go.Figure(go.Heatmap(
        z=np.asarray(values[::step, ::step], dtype=np.float32), x=xs, y=ys, zmin=0, zmax=zmax,
        colorscale="Viridis", colorbar=dict(title=colorbar, thickness=12),
        hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=30, b=0))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig


def _mark(picture: np.ndarray, x: int, y: int) -> np.ndarray:
    """A copy of `picture` with a crosshair on pixel (x, y): black arms around a white core."""
    marked = picture.copy()
    h, w = picture.shape[:2]
    arm = max(4, max(h, w) // 40)
    for width, colour in ((2, 0), (1, 255)):
        rows = slice(max(0, y - width + 1), y + width)
        cols = slice(max(0, x - width + 1), x + width)
        marked[rows, max(0, x - arm):x + arm + 1] = colour
        marked[max(0, y - arm):y + arm + 1, cols] = colour
    return marked


def probe(shape: tuple[int, int], *, key: str) -> tuple[int, int]:
    """The pixel (x, y) that `pixel_picker(picture, key=key)` will return for a picture of
    `shape` (H, W): a page that needs it before drawing the picture asks here first.

    A click moves the boxes; the boxes (keyboard, tests) move the crosshair. The click's time
    stamp tells a new click from the one already applied, so typing afterwards is not undone.
    A picture of another size starts with the crosshair at its centre.
    """
    h, w = shape
    kx, ky, kclick, kseen = f"{key}_x", f"{key}_y", f"{key}_click", f"{key}_click_seen"
    if st.session_state.get(f"{key}_shape") != (h, w):  # another picture: start at its centre
        st.session_state[f"{key}_shape"] = (h, w)
        st.session_state[kx], st.session_state[ky] = w // 2, h // 2
    click = st.session_state.get(kclick)
    if click and click.get("unix_time") != st.session_state.get(kseen):
        st.session_state[kseen] = click["unix_time"]
        # The picture is drawn scaled to the column: map the click back to image pixels.
        st.session_state[kx] = int(click["x"] * w / max(click["width"], 1))
        st.session_state[ky] = int(click["y"] * h / max(click["height"], 1))
    x = min(max(int(st.session_state[kx]), 0), w - 1)
    y = min(max(int(st.session_state[ky]), 0), h - 1)
    st.session_state[kx], st.session_state[ky] = x, y
    return x, y


def pixel_picker(picture: np.ndarray, *, key: str) -> tuple[int, int]:
    """Show `picture` to click on, with x and y boxes kept in sync; returns the chosen (x, y)
    (see `probe`)."""
    h, w = picture.shape[:2]
    x, y = probe((h, w), key=key)
    streamlit_image_coordinates(_mark(picture, x, y), key=f"{key}_click", width="stretch",
                                image_format="JPEG", jpeg_quality=90, cursor="crosshair")
    left, right = st.columns(2)
    left.number_input("x (column)", 0, w - 1, step=1, key=f"{key}_x",
                      help="Click the picture, or type a column number.")
    right.number_input("y (row)", 0, h - 1, step=1, key=f"{key}_y",
                       help="Click the picture, or type a row number.")
    return x, y


def ground_truth_upload(size: tuple[int, int], class_sets: list[list[str]], *,
                        key: str) -> tuple[np.ndarray, list[str]] | None:
    """An optional ground-truth mask upload, validated by `seg.io.load_mask`.

    Returns (labels (H, W), the classes they index) or None; a refused file shows its
    sentence and the page goes on without it.
    """
    file = st.file_uploader(
        "Ground-truth mask (optional): a PNG whose pixel values are class indices",
        type=["png"], key=key,
        help=f"Same width and height as the picture ({size[0]}×{size[1]}); 255 marks pixels "
             "to ignore. A mask downloaded below has the right format.")
    classes = class_sets[0]
    if len(class_sets) > 1:
        names = [class_set_name(c) for c in class_sets]
        picked = st.radio("The mask's labels are", names, key=f"{key}_classes", horizontal=True)
        classes = class_sets[names.index(picked)]
    if file is None:
        return None
    try:
        labels = seg.io.load_mask(file.getvalue(), size=size, num_classes=len(classes))
    except ImageError as error:
        st.error(f"“{file.name}”: {error}", icon="🚫")
        return None
    return labels, classes


def mask_png(labels, palette: np.ndarray) -> bytes:
    """A label map (H, W) as a palette PNG: pixel values are class indices, shown in colour.

    This is how PASCAL VOC ships its masks, so `seg.io.load_mask` reads it back unchanged.
    """
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8))  # "L"; putpalette makes it "P"
    image.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def file_stem(name: str) -> str:
    """A file-name-safe stem of a picture's name ("Synthetic scene #7" -> "synthetic_scene_7")."""
    stem = Path(name).stem.lower()
    return "".join(c if c.isalnum() else "_" for c in stem).strip("_") or "image"
