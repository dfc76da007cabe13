"""From classifier to FCN: fully-connected layers become convolutions, skips bring back detail."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

import seg
from app import figures, image_input, resources, share, widgets
from seg import convolutionalize
from seg.models import CheckpointError, fcn, pretrained

chosen = image_input.current()
device = resources.device()

st.title("From classifier to FCN")
st.markdown(
    "**Goal:** see how an image classifier becomes a segmentation network: its fully-connected "
    "layers turn into convolutions *without changing a single weight*, it then answers on a "
    "coarse grid, and skip connections from shallower layers sharpen that grid.")

st.subheader("Encoders and decoders")
st.markdown(
    """
Almost every segmentation network is an **encoder** followed by a **decoder**. The encoder is
an image classifier without its last layers: convolutions and poolings that shrink the picture
(by 32 in VGG and ResNet) while the channels learn *what* is there. The decoder brings the
answer back to one class per pixel. The networks of this section differ in how they do that:

| Network | Encoder | Decoder: how the resolution comes back | What goes from encoder to decoder |
|---|---|---|---|
| **FCN** (Long et al. 2015) | VGG-16, FC layers made convolutional | learned 2× transposed convolutions, then bilinear | score maps of pool4 and pool3, *added* |
| **SegNet** (Badrinarayanan et al. 2017) | VGG-16's 13 convolutions | unpooling with the max-pooling positions, then convolutions | only the positions of the maxima |
| **U-Net** (Ronneberger et al. 2015) | 4 stages of convolutions and pools | transposed convolutions and convolutions | whole feature maps, *concatenated* |
| **DeepLab v1** (Chen et al. 2015) | VGG-16 with dilated convolutions, stride 8 | fixed bilinear interpolation (+ a CRF) | nothing: it avoids most of the shrinking |

This page is FCN's story, in three steps. The next pages take SegNet's unpooling and DeepLab's
dilated convolutions apart.
""")

st.subheader("Step 1: a fully-connected layer is a convolution")
st.markdown(
    r"""
A classifier's first fully-connected layer, **fc6**, flattens the last feature map
($C$ channels of $s\times s$) into a vector and multiplies it by a weight matrix $W$ of shape
$(\text{out}, C\cdot s\cdot s)$. Cut each row of $W$ back into a $C\times s\times s$ block and
it is an $s\times s$ convolution kernel. On an image of the classifier's own size the feature
map is exactly $s\times s$: the kernel fits once and the convolution computes exactly fc6. The
next FC layers multiply a vector, which is a $1\times 1$ convolution.
""")
st.latex(r"\text{fc6}(x)_o = \sum_{c,i,j} W_{o,\,(c,i,j)}\, x_{c,i,j} + b_o"
         r"\quad=\quad (K_o * x)(0,0) + b_o, \qquad K_{o,c,i,j} = W_{o,\,(c,i,j)}")

CLASSIFIER_TITLES = {
    "alexnet": "AlexNet (torchvision, ImageNet weights)",
    "vgg16": "VGG-16 (torchvision, ImageNet weights)",
    "alexnet_small": "SegLab's small AlexNet, trained here on street-scene patches",
}
#: Long side the picture gets for the heat map: larger than the classifier's input, small
#: enough for a CPU (VGG-16's fc6 alone costs 0.1 GFLOP per score position), and for SegLab's
#: the size of the scenes its patches were cut from, so things have the size it learnt them at.
HEAT_SIDE = {"alexnet": 448, "vgg16": 384, "alexnet_small": 128}
options = [n for n in ("alexnet", "vgg16") if pretrained.is_cached(n)] + ["alexnet_small"]
if len(options) == 1:
    st.info("torchvision's ImageNet AlexNet and VGG-16 weights are not on this computer "
            "(fetch them with `python -m seg weights download`). SegLab's small AlexNet stands "
            "in: five convolutions and three FC layers like AlexNet, trained right here to "
            "name the class at the centre of 32×32 patches of street scenes.", icon="ℹ️")
choice = share.widget(st.selectbox, "Classifier", options, format_func=CLASSIFIER_TITLES.get,
                      key="fcn_classifier")


@st.cache_resource(max_entries=2, show_spinner=False)
def patch_classifier(device: str) -> convolutionalize.PatchClassifier:
    """SegLab's small AlexNet, trained once per server, with a progress bar while it trains."""
    bar = st.progress(0.0, text="Training SegLab's small AlexNet on street patches…")

    def step(info) -> None:
        bar.progress(info.step / info.steps,
                     text=f"Training SegLab's small AlexNet: step {info.step} of {info.steps}, "
                          f"loss {info.loss:.2f}")

    trained = convolutionalize.train_patch_classifier(device=device, callback=step)
    bar.empty()
    return trained


@st.cache_resource(max_entries=3, show_spinner="Converting the FC layers…")
def converted(choice: str, device: str):
    """(classifier, fully convolutional net, converted layers, class names, note)."""
    if choice == "alexnet_small":
        trained = patch_classifier(device)
        classifier, classes = trained.module, list(seg.synthetic.CLASSES)
        note = (f"SegLab's small AlexNet, trained here for {trained.steps} steps on "
                f"{trained.patches} patches of synthetic streets in {trained.seconds:.1f} s on "
                f"{device}: it names the centre class of {trained.accuracy:.0%} of held-out "
                f"patches (8 classes; guessing would give 12%).")
    else:
        classifier, weights = pretrained.build(choice, device=device)
        classes = list(weights.meta["categories"])
        note = (f"torchvision's {choice} with its ImageNet weights "
                f"({len(classes)} classes).")
    net, layers = convolutionalize.convolutionalize(classifier)
    return classifier, net, layers, classes, note


@st.cache_data(show_spinner=False)
def imagenet_shapes() -> list[dict]:
    """FC → conv weight shapes of torchvision's AlexNet and VGG-16, built on the meta device
    (shapes without memory or weights)."""
    rows = []
    for title, builder in (("AlexNet", torchvision.models.alexnet),
                           ("VGG-16", torchvision.models.vgg16)):
        with torch.device("meta"):
            module = builder()
        for layer in convolutionalize.convolutionalize(module)[1]:
            rows.append({"network": title, "layer": layer.name,
                         "FC weight (out × in)": " × ".join(map(str, layer.linear_shape)),
                         "as a convolution (out × C × k × k)": " × ".join(map(str,
                                                                              layer.conv_shape))})
    return rows


classifier, net, layers, classes, note = converted(choice, device)
st.caption(note)
size = convolutionalize.input_size_of(classifier)
left, right = st.columns([3, 2])
with left:
    st.dataframe(
        [{"layer": layer.name, "FC weight (out × in)": " × ".join(map(str, layer.linear_shape)),
          "as a convolution (out × C × k × k)": " × ".join(map(str, layer.conv_shape)),
          "weights": f"{layer.parameters:,}"} for layer in layers],
        hide_index=True, key="fcn_shapes")
    st.caption("The same numbers before and after: the convolution's kernel is a *view* of the "
               "FC weight matrix (`weight.view(out, C, k, k)`), not a copy.")
    if choice == "alexnet_small":
        st.markdown("The same conversion on torchvision's ImageNet classifiers (shapes only: "
                    "their weights are not on this computer):")
        st.dataframe(imagenet_shapes(), hide_index=True, key="fcn_imagenet_shapes")


@st.cache_data(max_entries=4, show_spinner=False)
def equivalence(choice: str, device: str) -> float:
    """Largest difference between the FC and the convolutional version at the original size."""
    classifier, net, *_ = converted(choice, device)
    return convolutionalize.equivalence_error(classifier, net)


error = equivalence(choice, device)
right.metric(f"Largest |FC − conv| on random {size}×{size} images", f"{error:.1e}",
             help="Both versions run on the same two random images; the differences are "
                  "floating-point rounding (the sums are done in another order).")
right.markdown(f"At {size}×{size} the convolutional version outputs a **1×1** map of "
               f"{len(classes)} scores: the classifier's answer, to rounding.")

st.subheader("Step 2: on a larger image it answers everywhere")
st.markdown(
    "Nothing in a convolution fixes the input size. On a larger image the last feature map is "
    "larger, fc6's kernel slides over it, and the network gives a class score at every "
    "position: a **coarse map**. The picture is padded by reflection (FCN pads its input too) "
    "so that the positions tile it up to its edges.")


@st.cache_data(max_entries=16, show_spinner="Running the convolutional classifier…")
def coarse(choice: str, device: str, image_key: str, _array: np.ndarray):
    """The picture at the heat-map size and the coarse class map over it."""
    image = Image.fromarray(_array)
    # The long side at the heat-map size, but never so short a side that the classifier's
    # window (fc6) no longer fits: the sidebar lets pictures up to 8:1 through.
    scale = max(HEAT_SIDE[choice] / max(image.size), 64 / min(image.size))
    picture = np.asarray(image.resize((max(1, round(image.width * scale)),
                                       max(1, round(image.height * scale))), Image.BILINEAR))
    net = converted(choice, device)[1]
    return picture, convolutionalize.coarse_map(net, picture)


picture, result = coarse(choice, device, chosen.key, chosen.array)
st.caption(f"The picture is resized to {HEAT_SIDE[choice]} pixels on its long side"
           + (": the size of the scenes the patches were cut from, so that cars and poles "
              "look as large as the classifier learnt them." if choice == "alexnet_small"
              else f", {HEAT_SIDE[choice] / size:.1f} times the classifier's {size} pixels."))
h, w = result.probs.shape[1:]
height, width = picture.shape[:2]
a, b, c = st.columns(3)
a.metric("Input", f"{width}×{height} px")
b.metric("Output", f"{w}×{h} scores", help="Width × height of the map of class scores.")
c.metric("Resolution", f"1 score per {result.stride}×{result.stride} px",
         help=f"Each score looks at a window of {result.window}×{result.window} pixels (the "
              "theoretical receptive field of fc8, which includes the convolutions' padding).")

peak = result.probs.flatten(1).max(1).values  # (K,) best probability anywhere
ranked = [int(i) for i in peak.argsort(descending=True)[:8]]
shown = share.widget(st.selectbox, "Class to map", ranked, format_func=lambda i: classes[i],
                     key="fcn_heat_class",
                     help="The classes with the highest probability somewhere in the picture.")


def heat_figure(picture: np.ndarray, result: convolutionalize.CoarseMap, probs: np.ndarray,
                title: str) -> go.Figure:
    """The picture with the coarse probability map laid over it, cell by cell."""
    fig = go.Figure([
        go.Image(z=picture, hoverinfo="skip"),
        go.Heatmap(z=probs, x=result.cols - 0.5, y=result.rows - 0.5, zmin=0, zmax=1,
                   opacity=0.6, colorscale="Viridis",
                   colorbar=dict(title="p", thickness=12),
                   hovertemplate="centre x %{x:.0f}, y %{y:.0f}: p %{z:.2f}<extra></extra>"),
    ])
    fig.update_layout(title=title, height=360, margin=figures.MARGIN)
    fig.update_xaxes(visible=False, range=[-0.5, picture.shape[1] - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[picture.shape[0] - 0.5, -0.5], scaleanchor="x")
    return fig


left, right = st.columns(2)
left.plotly_chart(heat_figure(picture, result, result.probs[shown].numpy(),
                              f"p({classes[shown]}) at each of the {w}×{h} positions"),
                  key="fcn_heat")
if classes == list(seg.synthetic.CLASSES):
    palette = seg.synthetic.PALETTE
    coarse_labels = result.probs.argmax(0).numpy()  # (h, w)
    right.plotly_chart(figures.image(seg.viz.colorize(coarse_labels, palette),
                                     f"Most likely class at each position ({w}×{h})"),
                       key="fcn_coarse_labels")
    if chosen.is_synthetic:
        truth_size = chosen.scene.labels.shape[::-1]  # (W, H) for PIL
        at_pixels = np.array(Image.fromarray(result.labels_at_pixels().astype(np.uint8))
                               .resize(truth_size, Image.NEAREST))  # (H, W) at the labels' size
        coarse_miou = seg.metrics.miou(at_pixels, chosen.scene.labels, len(classes))
        right.caption(f"Each position's class spread over its {result.stride}×{result.stride} "
                      f"cell: mIoU **{coarse_miou:.1%}** against the scene's true labels. A "
                      "classifier of patches already segments, coarsely.")
else:
    right.markdown(
        f"**{classes[shown]}**: highest probability {float(peak[shown]):.2f}. An ImageNet "
        "classifier knows 1000 kinds of *objects* and no background, so its map says where "
        "each kind is most visible, one cell per 32 pixels.")
widgets.show_code(convolutionalize.convolutionalize, convolutionalize.coarse_map)

st.subheader("Step 3: skips bring back the detail (FCN-32s, -16s, -8s)")
st.markdown(
    r"""
Upsampled 32 times, the coarse scores are right about *what* and vague about *where*: that is
**FCN-32s**. Shallower layers know *where* better (they have been pooled fewer times) but less
*what*. **FCN-16s** computes scores from pool4 (stride 16) with a $1\times 1$ convolution and
adds them to the stride-32 scores upsampled 2× by a learned transposed convolution;
**FCN-8s** does it once more with pool3 (stride 8). Each column below is one stride of that
fusion; the last one is the output, interpolated to the picture.
""")
st.latex(r"S_{16} = \mathrm{up}_{2}(S_{32}) + W_4 * \text{pool4}, \qquad "
         r"S_{8} = \mathrm{up}_{2}(S_{16}) + W_3 * \text{pool3}, \qquad "
         r"\text{out} = \mathrm{bilinear}_{8}(S_8)")

FCNS = {"fcn32s": "FCN-32s", "fcn16s": "FCN-16s", "fcn8s": "FCN-8s"}
STRIDES = {"score_pool5": 32, "score_pool4": 16, "score_pool3": 8}
truth = chosen.scene.labels if chosen.is_synthetic else None


def stride_miou(scores: torch.Tensor, stride: int) -> float:
    """mIoU of a score map upsampled bilinearly to the picture (synthetic scenes)."""
    up = F.interpolate(scores[None], scale_factor=stride, mode="bilinear",
                       align_corners=False)[0]  # (K, H', W') padded size
    labels = up[:, :truth.shape[0], :truth.shape[1]].argmax(0)  # (H, W)
    return seg.metrics.miou(labels, truth, len(seg.synthetic.CLASSES))


rows = []
for name, title in FCNS.items():
    try:
        prediction = resources.predict(name, device, chosen.key, chosen.array, extras=True)
    except CheckpointError as error:
        st.error(f"{title} cannot run here: {error}", icon="🚫")
        continue
    widgets.provenance(prediction, device)
    palette = widgets.palette(prediction.classes)
    columns = st.columns(4)
    row = {"model": title}
    for column, (key, stride) in zip(columns, STRIDES.items()):
        scores = prediction.extras.get(key)  # (K, H/stride, W/stride)
        if scores is None:
            column.markdown(f"<div style='text-align:center;color:#888;padding-top:4em'>"
                            f"{title} has no stride-{stride} scores</div>",
                            unsafe_allow_html=True)
            row[f"stride {stride}"] = None
            continue
        column.plotly_chart(
            figures.image(seg.viz.colorize(scores.argmax(0).numpy(), palette),
                          f"{title}, stride {stride}: {scores.shape[2]}×{scores.shape[1]}",
                          height=220), key=f"fcn_{name}_{stride}")
        row[f"stride {stride}"] = stride_miou(scores, stride) if truth is not None else None
    labels = prediction.labels.numpy()
    columns[3].plotly_chart(figures.image(seg.viz.colorize(labels, palette),
                                          f"{title} output: {labels.shape[1]}×{labels.shape[0]}",
                                          height=220), key=f"fcn_{name}_out")
    row["output"] = (seg.metrics.miou(labels, truth, len(prediction.classes))
                     if truth is not None else None)
    evaluation = resources.segmenter(name, device).card.get("evaluation", {})
    row["held-out mIoU (model card)"] = evaluation.get("miou")
    row["parameters"] = f"{resources.segmenter(name, device).num_parameters:,}"
    rows.append(row)

if rows and truth is not None:
    # The best any network of each output stride could do on this scene (seg.metrics).
    rows.append({"model": "Perfect scores at that stride (the ceiling)", **{
        f"stride {stride}": seg.metrics.miou(
            seg.metrics.stride_ceiling(truth, stride, len(seg.synthetic.CLASSES)), truth,
            len(seg.synthetic.CLASSES)) for stride in STRIDES.values()}, "parameters": "—"})

if rows:
    widgets.legend(prediction.labels.numpy(), prediction.classes, palette)
    st.caption("In FCN-16s and -8s the stride-32 scores are only the first term of a sum, "
               "trained together with the skips: alone they are worse than FCN-32s', which were "
               "trained to stand on their own. Read each row from left to right: every skip "
               "adds detail.")
    st.markdown("**mIoU of each score map and of the output**"
                + (" on this scene" if truth is not None else "")
                + ", and on held-out scenes as measured by the model card:")
    if truth is None:
        st.caption("This picture has no true labels, so only the model cards' numbers are "
                   "shown; choose a synthetic scene in the sidebar to measure this picture too.")
    st.dataframe(rows, hide_index=True, key="fcn_miou", column_config={
        key: st.column_config.NumberColumn(format="percent")
        for key in ("stride 32", "stride 16", "stride 8", "output",
                    "held-out mIoU (model card)")})
    st.caption("The card's mIoU is measured by `python -m seg train` on 256 synthetic scenes "
               "the network never saw; empty when no checkpoint was trained yet.")
    if truth is not None:
        st.markdown(
            "The last row is the **ceiling** of each stride: the true labels averaged over "
            "every stride × stride cell, as if a network had scored each cell perfectly, then "
            "upsampled and arg-maxed like the networks' scores. A pole one pixel wide is a "
            "few per cent of a 32 × 32 cell and never wins it, whatever the training: that is "
            "why the skips matter. On the 256 held-out scenes the ceilings are 0.55 at stride "
            "32, 0.67 at 16 and 0.78 at 8 (`python -m seg ceiling`).")
widgets.show_code(fcn.FCN.forward)
