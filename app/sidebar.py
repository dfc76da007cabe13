"""The sidebar every page shares: which device runs the models, and which weights are here."""

from __future__ import annotations

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


def weights_panel() -> None:
    """Which pretrained torchvision weights are cached, and a button that fetches them."""
    from seg.models import pretrained

    cached = resources.cached_torchvision()
    missing = [n for n in pretrained.names() if n not in cached]
    label = f"Pretrained weights: {len(cached)} of {len(pretrained.names())} here"
    with st.sidebar.expander(label, expanded=False):
        if not missing:
            st.success("All torchvision weights are cached.")
            return
        st.caption("Without them, the lessons run SegLab's own models trained on synthetic "
                   "street scenes. With internet, fetch torchvision's (checked against their "
                   "published hash):")
        name = st.selectbox("Weights", missing, key="weights_choice")
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
                resources.cached_torchvision.clear()
                st.success(f"{name} is ready.")
                st.rerun()


def draw() -> None:
    """All of the shared sidebar below the image picker."""
    presenter.toggle()
    device_badge()
    weights_panel()
