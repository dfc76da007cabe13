"""Presenter mode: the same lesson, readable from the back of a lecture hall.

The instructor talks, so the page does not need to: in presenter mode the lesson's paragraphs
are folded away and what remains (headings, formulas, the controls and the figures they move,
tables, captions saying which model ran) is drawn larger, so each control sits right above the
figure it changes. The switch is in the sidebar and in the link (`?present=true`), so a class
can be sent straight to the projector view.
"""

from __future__ import annotations

import streamlit as st

from app import share

KEY = "present"
#: How much larger the lesson is drawn (CSS zoom of the main column).
ZOOM = 1.3

# Paragraphs go (headings, formulas and SegLab's legends stay); the main column is zoomed so
# that figures, their fonts and the widgets grow together and still fit the width.
_CSS = f"""
<style>
[data-testid="stMain"] [data-testid="stMarkdown"]:not(:has(.katex-display, .seglab-keep)) {{
  display: none;
}}
[data-testid="stMainBlockContainer"] {{ zoom: {ZOOM}; padding-top: 1.5rem; }}
</style>
"""


def toggle() -> bool:
    """The sidebar switch; when on, restyles the page for a projector. Returns whether on."""
    on = share.widget(st.sidebar.toggle, "Presenter mode", key=KEY,
                      help="Large figures and controls, no paragraphs: for a projector. "
                           "The address bar keeps it, so the link opens in this mode.")
    if on:
        st.html(_CSS)
    return on
