"""Small UI pieces every lesson uses: model picker, provenance note, legend, "show the code"."""

from __future__ import annotations

import inspect

import numpy as np
import streamlit as st

import seg
from app import resources, share
from seg.models import Prediction


def model_picker(label: str, *, key: str, default: str = "fcn8s",
                 options: list[str] | None = None) -> str:
    """A select box of the segmenters that can run here (torchvision's only when cached), kept
    in the address bar."""
    options = options or resources.available_segmenters()
    index = options.index(default) if default in options else 0
    return share.widget(st.selectbox, label, options, index=index, format_func=resources.title,
                        key=key)


def provenance(prediction: Prediction, device: str | None = None) -> None:
    """Say which model ran, on what, and where its weights came from (always shown)."""
    text = resources.SOURCE_TEXT[prediction.source]
    where = f" on {device}" if device else ""
    note = (f"**{resources.title(prediction.model)}** ran{where} in "
            f"{prediction.seconds * 1000:.0f} ms with {text}.")
    if prediction.source == "seglab" and len(prediction.classes) == len(seg.synthetic.CLASSES):
        note += " It only knows street classes: on other photos it still answers with them."
    (st.warning if prediction.source == "untrained" else st.caption)(note)


def legend(labels, classes, palette) -> None:
    """Colour, class and share of pixels of the classes present, largest first."""
    rows = seg.viz.legend_rows(np.asarray(labels), classes, palette)
    html = "".join(
        f"<span style='display:inline-block;margin:0 .8em .3em 0;white-space:nowrap'>"
        f"<span style='display:inline-block;width:.9em;height:.9em;background:{colour};"
        f"border:1px solid #0003;vertical-align:middle;margin-right:.3em'></span>"
        f"{name} <span style='color:#888'>{fraction:.0%}</span></span>"
        for name, colour, fraction in rows)
    # seglab-keep: presenter mode folds paragraphs away, never a legend.
    st.markdown(f"<span class='seglab-keep'>{html}</span>", unsafe_allow_html=True)


def palette(classes: list[str]) -> np.ndarray:
    """The colours of a model's classes: SegLab's street palette or the VOC palette."""
    if list(classes) == list(seg.synthetic.CLASSES):
        return seg.synthetic.PALETTE
    return seg.viz.voc_palette(len(classes))


def show_code(*functions, label: str = "Show the code") -> None:
    """An expander with the source of the `seg` functions doing the work on this page."""
    with st.expander(label):
        for fn in functions:
            module = inspect.getmodule(fn).__name__
            st.caption(f"`{module}.{fn.__qualname__}`")
            st.code(inspect.getsource(fn), language="python")
