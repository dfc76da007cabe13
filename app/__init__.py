"""SegLab's shared Streamlit UI: image input, sidebar, cached resources, figures, widgets.

Imports flow one way: lessons → app → seg.
"""
