"""The sidebar every page shares: which device runs the models, and which weights are here.

Setting (environment variable of `streamlit run`, read on every run):

* ``SEGLAB_ALLOW_DOWNLOADS``: whether a student may fetch torchvision's weights from the
  sidebar (up to 1.3 GB onto the server). Unset, empty, ``1``, ``true``, ``yes`` or ``on``: a
  Download button (a student alone at home). Anything else, e.g. ``0``: no button, the panel
  shows the `python -m seg weights download` commands with their sizes instead, for whoever
  runs the server. The command line works either way.
"""

from __future__ import annotations

import os

import streamlit as st

import seg
from app import presenter, resources, serving


def device_badge() -> None:
    """The device badge (GPU name, or CPU and its threads) with a "force CPU" switch."""
    st.sidebar.subheader("Device")
    has_accelerator = seg.devices.default_device().type != "cpu"
    st.sidebar.toggle("Force CPU", key="force_cpu", disabled=not has_accelerator,
                      help="Run every model on the CPU even when a GPU is present (to compare "
                           "speeds)." if has_accelerator else "No GPU on this server.")
    info = seg.devices.describe(resources.device())
    icon = "🟢" if info.kind != "cpu" else "⚪"
    st.sidebar.markdown(f"{icon} **{info.label}**")
    if info.kind == "cpu" and serving.THREADS_PER_REQUEST:
        st.sidebar.caption(f"Torch threads: {serving.THREADS_PER_REQUEST} per student while "
                           f"others compute too, {serving.THREADS_ALONE} for a computation that "
                           "runs alone.")


ALLOW_DOWNLOADS = "SEGLAB_ALLOW_DOWNLOADS"


def downloads_allowed() -> bool:
    """Whether this server lets a student's page download weights (SEGLAB_ALLOW_DOWNLOADS)."""
    return os.environ.get(ALLOW_DOWNLOADS, "").strip().lower() in {"", "1", "true", "yes", "on"}


def weights_panel() -> None:
    """Which pretrained torchvision weights are cached, and how to fetch the others: a button
    where the server allows it, the command line otherwise."""
    from seg.models import pretrained

    cached = resources.cached_torchvision()
    missing = [n for n in pretrained.names() if n not in cached]
    label = f"Pretrained weights: {len(cached)} of {len(pretrained.names())} here"
    with st.sidebar.expander(label, expanded=False):
        if not missing:
            st.success("All torchvision weights are cached.")
            return
        megabytes = {row.name: row.download_mb for row in pretrained.status()}
        if not downloads_allowed():
            st.caption("Without them, the lessons run SegLab's own models trained on synthetic "
                       "street scenes. This server does not download weights from a page "
                       f"(`{ALLOW_DOWNLOADS}`); whoever runs it can fetch them (checked "
                       "against their published hash) with:")
            width = max(len(n) for n in missing)
            total = sum(megabytes[n] for n in missing)
            st.code("\n".join(
                [f"python -m seg weights download {'':<{width}}  # all {len(missing)}, "
                 f"{total:,.0f} MB"]
                + [f"python -m seg weights download {n:<{width}}  # {megabytes[n]:,.0f} MB"
                   for n in missing]), language="bash")
            return
        st.caption("Without them, the lessons run SegLab's own models trained on synthetic "
                   "street scenes. With internet, fetch torchvision's (checked against their "
                   "published hash):")
        name = st.selectbox("Weights", missing, key="weights_choice",
                            format_func=lambda n: f"{n} ({megabytes[n]:,.0f} MB)")
        if st.button("Download", key="weights_download"):
            bar = st.progress(0.0, text=f"Downloading {name}…")

            def progress(done: int, total: int) -> None:
                if total:
                    bar.progress(min(1.0, done / total),
                                 text=f"{name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")

            try:
                pretrained.download(name, progress=progress)
            except pretrained.WeightsUnavailable as error:
                bar.empty()
                st.error(str(error))
            else:
                # Only the set of cached names is read again (by every session, at its next
                # run: its pickers gain the new network, their choices stay); models, results
                # and other sessions' pages are left as they are.
                resources.cached_torchvision.clear()
                st.success(f"{name} is ready.")
                st.rerun()


def draw() -> None:
    """All of the shared sidebar below the image picker."""
    presenter.toggle()
    device_badge()
    weights_panel()
