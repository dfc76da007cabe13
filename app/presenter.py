"""Presenter mode: the same lesson, readable from the back of a lecture hall.

The instructor talks, so the page does not need to: in presenter mode the lesson's paragraphs
are folded away and what remains (headings, formulas, the controls and the figures they move,
tables, captions saying which model ran) is written larger, so each control sits right above
the figure it changes. Collapsing the sidebar («) then gives the figures the whole width. The
switch is in the sidebar and in the link (`?present=true`), so a class can be sent straight to
the projector view.
"""

from __future__ import annotations

import streamlit as st

from app import share

KEY = "present"
#: How much larger text, formulas and controls are drawn (the root font size, in percent).
SCALE = 130

# Paragraphs go (headings, formulas and SegLab's legends stay); Streamlit sizes its text and
# widgets in rem, so a larger root font enlarges them all. The figures keep their layout: a
# CSS zoom would enlarge them too, but plotly then measures the zoomed width and is cut off.
_CSS = f"""
<style>
[data-testid="stMain"] [data-testid="stMarkdown"]:not(:has(.katex-display, .seglab-keep)) {{
  display: none;
}}
html {{ font-size: {SCALE}%; }}
</style>
"""


def toggle() -> bool:
    """The sidebar switch; when on, restyles the page for a projector. Returns whether on."""
    on = share.widget(st.sidebar.toggle, "Presenter mode", key=KEY,
                      help="Large text and controls, no paragraphs: for a projector. "
                           "The address bar keeps it, so the link opens in this mode.")
    if on:
        st.html(_CSS)
    return on
