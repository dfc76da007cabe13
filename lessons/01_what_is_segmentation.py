"""What is semantic segmentation? A classifier at every pixel: scores, softmax, argmax."""

import math

import numpy as np
import streamlit as st
import torch

import seg
from app import compare, figures, image_input, resources, share, widgets

chosen = image_input.current()

st.title("What is semantic segmentation?")
st.markdown(
    "**Goal:** see that a segmentation network is an image classifier applied at *every "
    "pixel*, and learn to read what it is sure and unsure about.")
st.markdown(
    r"""
An image classifier looks at a whole picture and answers with one class. A **semantic
segmentation** network answers for every pixel: for an image of height $H$ and width $W$ and a
list of $C$ classes it outputs $C$ numbers per pixel, a **score map** of shape $C\times H\times W$.
The scores of one pixel become probabilities with a **softmax** over the classes, and the pixel
gets the class with the largest probability (the **argmax**):
"""
)
st.latex(r"p_c(i,j) = \frac{e^{s_c(i,j)}}{\sum_{k=1}^{C} e^{s_k(i,j)}}, \qquad "
         r"\hat y(i,j) = \arg\max_c \; p_c(i,j)")
st.markdown(
    r"""
Training is classification too, once per pixel: where the true class of pixel $(i, j)$ is
$y_{ij}$, the loss is the **cross-entropy** $-\log p_{y_{ij}}(i,j)$, averaged over the pixels.
It is 0 when the network gives the true class probability 1 and grows without bound as that
probability goes to 0.
"""
)
st.latex(r"\mathcal{L} = -\frac{1}{HW} \sum_{i=1}^{H} \sum_{j=1}^{W} \log p_{y_{ij}}(i,j)")

default = ("deeplabv3_resnet50" if not chosen.is_synthetic
           and "deeplabv3_resnet50" in resources.cached_torchvision() else "fcn8s")
name = widgets.model_picker("Model", key="segmentation_model", default=default)
prediction = compare.predict(name, chosen)
if prediction is None:
    st.stop()
widgets.provenance(prediction, resources.device())

classes = prediction.classes
palette = widgets.palette(classes)
labels = prediction.labels.numpy()  # (H, W)
truth = (chosen.scene.labels if chosen.is_synthetic and classes == list(seg.synthetic.CLASSES)
         else None)

st.subheader("Every pixel gets a class")
st.markdown(
    "The colours are the argmax classes laid over the picture. **Click a pixel** (or type its "
    "column and row) to see the probabilities behind its colour.")


@st.fragment
def probe() -> None:
    """The overlay, its opacity and the class probabilities of one pixel (reruns alone)."""
    left, right = st.columns([3, 2])
    with left:
        opacity = share.widget(st.slider, "Opacity of the classes", 0.0, 1.0, 0.5, 0.05,
                               key="segmentation_opacity",
                               help="0 shows only the photo, 1 only the class colours.")
        picture = seg.viz.overlay(chosen.array, labels, palette, alpha=opacity)
        x, y = compare.pixel_picker(picture, key="segmentation_probe")
        widgets.legend(labels, classes, palette)
    with right:
        p = prediction.probs[:, y, x].tolist()  # (C,) one pixel's softmax
        best = int(np.argmax(p))
        st.markdown(f"Pixel **(x {x}, y {y})** is **{classes[best]}** with probability "
                    f"**{p[best]:.2f}**.")
        st.plotly_chart(
            figures.bars(classes, p, f"Class probabilities at (x {x}, y {y})",
                         colours=[seg.viz.to_hex(c) for c in palette[:len(classes)]],
                         height=80 + 22 * len(classes)),
            key="segmentation_bars")
        if truth is not None:
            true_class = int(truth[y, x])
            st.markdown(
                f"Its true class is **{classes[true_class]}**: this pixel's cross-entropy is "
                f"$-\\log {p[true_class]:.3f} = {-math.log(max(p[true_class], 1e-12)):.2f}$.")


probe()

st.subheader("Where is the network sure?")
st.markdown(
    r"""
The **confidence** of a pixel is its largest probability, $\max_c p_c$: from $1/C$ (all
classes equally likely) to 1 (certain). The **entropy** $-\sum_c p_c \log p_c$ measures the
spread of the whole distribution: 0 when certain, $\log C$ when every class is equally likely.
Both usually light up along object borders, where a pixel's neighbourhood holds two classes.
"""
)
confidence = seg.metrics.confidence(prediction.probs).numpy()  # (H, W)
entropy = seg.metrics.entropy(prediction.probs).numpy()  # (H, W)
left, right = st.columns(2)
left.plotly_chart(compare.map_figure(confidence, "Confidence (max probability)", zmax=1.0,
                                     colorbar="p"), key="segmentation_confidence")
left.caption(f"Mean confidence {confidence.mean():.2f}; "
             f"{(confidence < 0.5).mean():.0%} of the pixels are below 0.5.")
right.plotly_chart(compare.map_figure(entropy, "Entropy (nats)", zmax=math.log(len(classes)),
                                      colorbar="nats"), key="segmentation_entropy")
right.caption(f"Mean entropy {entropy.mean():.2f} nats; the most possible is "
              f"log {len(classes)} = {math.log(len(classes)):.2f}.")

st.subheader("Right or wrong?")
if truth is None:
    if chosen.is_synthetic:
        st.info(f"This model answers with {compare.class_set_name(classes)}, but the scene is "
                f"labelled with {compare.class_set_name(list(seg.synthetic.CLASSES))}: pick one "
                "of SegLab's models to compare them pixel by pixel.")
    else:
        st.info("The true classes are known exactly only for SegLab's synthetic scenes: pick "
                "**Synthetic scene** in the sidebar to see an error map. On *Compare models* you "
                "can upload a ground-truth mask for your own photo.")
else:
    wrong = labels != truth  # (H, W)
    accuracy = seg.metrics.pixel_accuracy(labels, truth, len(classes))
    miou = seg.metrics.miou(labels, truth, len(classes))
    true_probs = prediction.probs.gather(0, torch.from_numpy(truth)[None])[0]  # (H, W)
    loss = float(-true_probs.clamp_min(1e-12).log().mean())
    a, b, c = st.columns(3)
    a.metric("Pixel accuracy", f"{accuracy:.1%}", help="Share of pixels whose class is right.")
    b.metric("mIoU", f"{miou:.1%}",
             help="Per class: overlap ÷ union of predicted and true pixels; then the mean over "
                  "classes. A small class counts as much as a large one.")
    c.metric("Mean cross-entropy", f"{loss:.2f}", help="The training loss above, on this image.")
    a, b, c = st.columns(3)
    a.image(seg.viz.colorize(labels, palette), caption="Prediction", width="stretch")
    b.image(seg.viz.colorize(truth, palette), caption="Ground truth", width="stretch")
    c.image(compare.highlight(chosen.array, wrong),
            caption=f"Errors: the {wrong.mean():.1%} of pixels that are wrong, in red",
            width="stretch")
    st.markdown(
        "Pixel accuracy is dominated by the big classes (sky, road, building); mIoU gives each "
        "class the same weight, so a model that misses every thin pole is punished by it.")

widgets.show_code(seg.models.Segmenter.predict, seg.metrics.confidence, seg.metrics.entropy,
                  seg.metrics.pixel_accuracy)
