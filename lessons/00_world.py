"""SegLab's street world: the synthetic scenes every offline model learns from."""

import streamlit as st

import seg
from app import figures, image_input, share, widgets

st.title("SegLab's street world")
st.markdown(
    """
Semantic segmentation gives **every pixel** a class. To learn it a network needs pictures whose
every pixel is labelled, which is expensive for real photos (an annotator spends about 90
minutes on one Cityscapes image). SegLab therefore draws its own streets: each seed gives a
scene with **exact labels and exact depth** for every pixel, rendered in about 10 ms.

Colours are drawn at random per scene (a grey road can sit next to a grey building under a
grey sky), so a network cannot get the class from colour alone: it has to use **shape and
context**, the same reason real networks need large receptive fields. The small models of the
lessons were trained on such scenes by SegLab's own script; the model cards in `weights/` say
how well they do on scenes they never saw.
"""
)

seed = share.widget(st.slider, "Scene seed", 0, 999, image_input.DEFAULT_SEED, key="world_seed",
                    help="Each seed is a different street; the same seed is the same street on "
                         "every machine.")
scene = image_input.synthetic(seed)
palette = seg.synthetic.PALETTE
classes = list(seg.synthetic.CLASSES)

left, middle, right = st.columns(3)
left.plotly_chart(figures.image(scene.image, "The image"), key="world_image")
middle.plotly_chart(
    figures.image(seg.viz.colorize(scene.labels, palette), "Its labels (one class per pixel)"),
    key="world_labels")
right.plotly_chart(
    figures.heatmap(scene.depth.clip(max=80), "Its depth (metres; sky clipped at 80)",
                    colorscale="Greys", colorbar="m"), key="world_depth")
widgets.legend(scene.labels, classes, palette)

st.subheader("What the classes are")
st.markdown(
    "Eight classes, as in a small Cityscapes: **sky**, **building**, **road**, **sidewalk**, "
    "**vegetation**, **pole** (poles and traffic signs: the thin class, a few pixels wide), "
    "**car** and **person** (both scaled by their distance: far ones are small).")
shares = seg.viz.legend_rows(scene.labels, classes, palette)
st.plotly_chart(figures.bars([r[0] for r in shares], [r[2] for r in shares],
                             "Share of this scene's pixels per class",
                             colours=[r[1] for r in shares], height=260,
                             xrange=(0, max(r[2] for r in shares) * 1.15),
                             xlabel="share of pixels"), key="world_shares")


def use_scene():
    st.session_state["image_source"] = "Synthetic scene"
    st.session_state["image_seed"] = st.session_state["world_seed"]


st.button("Use this scene on every page", on_click=use_scene,
          help="Every lesson works on the image chosen in the sidebar.")
widgets.show_code(seg.synthetic.scene)
