"""Dilated (atrous) convolution: a wider view from the same nine weights, live on a real network."""

import contextlib

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from torch import nn

import seg
from app import compare, figures, image_input, resources, serving, share, widgets
from seg.models import CheckpointError, pretrained
from seg.models.deeplab_v1 import DeepLabV1

chosen = image_input.current()
device = resources.device()

st.title("Dilated (atrous) convolution")
st.markdown(
    "**Goal:** see how a dilated convolution widens what a unit sees without adding weights "
    "or shrinking the map, change the dilation of a real network while it runs, and meet the "
    "price of large rates: holes in what is seen (gridding).")
st.markdown(
    r"""
A $3\times3$ convolution reads the 9 pixels around its centre. A **dilated** convolution with
**rate** $r$ (also *atrous*, from the *algorithme à trous*, "with holes") reads 9 pixels
$r$ apart: the same 9 weights cover a $(2r+1)\times(2r+1)$ square. Rate 1 is the ordinary
convolution.
""")
st.latex(r"y(i, j) = \sum_{a=-1}^{1}\sum_{b=-1}^{1} w_{a,b}\; x(i + r\,a,\; j + r\,b)")
st.markdown(
    "DeepLab uses it to stop shrinking the picture: it removes the stride of the last pools "
    "and dilates the layers after them, so they see as far as before on a map that stays "
    "8 times (not 32 times) smaller than the image.")


@st.fragment
def kernel_picture() -> None:
    """The 9 taps of a 3×3 kernel at rate r inside the square they span (reruns alone)."""
    r = share.widget(st.slider, "Rate r", 1, 8, 2, key="dilated_rate_kernel")
    side = 2 * r + 1
    cells = np.zeros((side, side))
    text = np.full((side, side), "", dtype=object)
    for n, (a, b) in enumerate([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)], start=1):
        cells[r + r * a, r + r * b] = 1
        text[r + r * a, r + r * b] = f"w{n}"
    fig = figures.heatmap(cells, f"3×3 kernel at rate {r}: 9 weights over {side}×{side} pixels",
                          colorscale=[[0, "#f4f4f4"], [1, "#1f77b4"]], zmin=0, zmax=1,
                          text=text, height=min(420, 120 + 30 * side))
    fig.update_traces(showscale=False, xgap=1, ygap=1, textfont=dict(color="white", size=14),
                      hovertemplate="x %{x}, y %{y}<extra></extra>")
    left, right = st.columns([3, 2])
    left.plotly_chart(fig, key="dilated_kernel")
    right.metric("Pixels covered", f"{side}×{side} = {side * side}")
    right.metric("Weights", "9")
    right.metric("Pixels skipped inside the square", f"{side * side - 9}",
                 help="The holes: pixels inside the kernel's extent it does not read.")


kernel_picture()

st.subheader("Stacking dilated layers")
st.markdown(
    r"""
Each layer adds $2r$ to the receptive field (the image extent one unit depends on):
$\text{RF}_l = \text{RF}_{l-1} + 2\,r_l$, starting from one pixel. Doubling the rate at every
layer (1, 2, 4, …) makes the field grow *exponentially* with depth, while the weights grow
only linearly (Yu & Koltun, 2016). The table is computed by `seg.receptive_field.theoretical`
on a stack of real `nn.Conv2d` layers.
""")
rates_text = st.text_input("Dilation rates, first layer first", "1, 2, 4", key="dilated_rates",
                           help="Whole numbers from 1 to 16, separated by commas (at most 8).")


def parse_rates(text: str) -> list[int] | None:
    """The rates typed by the student, or None after saying what is wrong."""
    try:
        rates = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        st.error(f"“{text}” is not a list of whole numbers: type for example 1, 2, 4.",
                 icon="🚫")
        return None
    if not 1 <= len(rates) <= 8 or not all(1 <= r <= 16 for r in rates):
        st.error("Give between 1 and 8 rates, each from 1 to 16 (for example 1, 2, 4).",
                 icon="🚫")
        return None
    return rates


def dilated_stack(rates: list[int]) -> nn.Sequential:
    """3×3 convolutions at the given rates, every weight 1: gradients then count paths."""
    layers = [nn.Conv2d(3 if i == 0 else 1, 1, 3, dilation=r, padding=r, bias=False)
              for i, r in enumerate(rates)]
    for layer in layers:
        nn.init.ones_(layer.weight)
    return nn.Sequential(*layers)


@st.cache_data(max_entries=32, show_spinner=False)
def sampling_pattern(rates: tuple[int, ...]) -> tuple[list[int], np.ndarray]:
    """(theoretical field after each layer, which input pixels reach the centre output)."""
    stack = dilated_stack(list(rates))
    extent = 2 * sum(rates) + 1
    size = extent + 6  # a margin of 3 pixels shows where the field ends
    fields = [layer.size[0] for layer in seg.receptive_field.theoretical(stack, (size, size))]
    pattern = seg.receptive_field.empirical(stack, torch.ones(3, size, size), size // 2,
                                            size // 2)
    return fields, pattern


def pattern_figure(pattern: np.ndarray, title: str) -> go.Figure:
    """Input pixels the centre unit reads: colour = number of paths, white = never read."""
    shown = np.where(pattern > 0, pattern, np.nan)
    fig = figures.heatmap(shown, title, zmin=0, zmax=1, colorscale="Viridis", height=360,
                          colorbar="paths")
    fig.update_traces(xgap=0.5, ygap=0.5, hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>")
    fig.update_layout(plot_bgcolor="white")
    return fig


rates = parse_rates(rates_text)
if rates is not None:
    fields, pattern = sampling_pattern(tuple(rates))
    left, right = st.columns([2, 3])
    left.dataframe([{"layer": i, "rate": r, "receptive field": f"{f}×{f}"}
                    for i, (r, f) in enumerate(zip(rates, fields), start=1)],
                   hide_index=True, key="dilated_fields")
    left.markdown(f"After {len(rates)} layers and {9 * len(rates)} weights, one unit sees "
                  f"**{fields[-1]}×{fields[-1]}** pixels.")
    seen = pattern > 0
    right.plotly_chart(pattern_figure(pattern, f"Pixels the centre unit reads through rates "
                                               f"{', '.join(map(str, rates))}"),
                       key="dilated_stack_pattern")
    right.caption(f"{int(seen.sum())} of the {fields[-1] ** 2} pixels of its field are read; "
                  "the colour is the number of paths from a pixel to the unit (normalised), "
                  "white pixels are never read.")

st.subheader("The price of large rates: gridding")
st.markdown(
    r"""
Two layers with the **same** rate $r$ read only pixels whose offsets are multiples of $r$:
inside their $(4r+1)^2$ field, just 25 pixels. A thin pole between two sampled pixels is
invisible to that unit, and neighbouring units read disjoint sets of pixels, which shows as a
grid in the output (Wang et al., 2018, "Understanding convolution for semantic segmentation").
Rates without a common factor, such as 1, 2, 5, fill the holes.
""")


@st.fragment
def gridding() -> None:
    """Two stacked layers at rate r: the holes in what they read (reruns alone)."""
    r = share.widget(st.slider, "Rate r of both layers", 1, 8, 4, key="dilated_rate_grid")
    _, pattern = sampling_pattern((r, r))
    side = 4 * r + 1
    read = int((pattern > 0).sum())
    left, right = st.columns([3, 2])
    left.plotly_chart(pattern_figure(pattern, f"Two 3×3 layers at rate {r}: field {side}×{side}"),
                      key="dilated_grid_pattern")
    right.metric("Pixels read inside the field", f"{read} of {side * side}")
    right.markdown(f"That is **{read / side ** 2:.0%}** of the field. Every pixel read is a "
                   f"multiple of {r} away from the centre in both directions; the rest are "
                   "holes.")


gridding()
widgets.show_code(seg.receptive_field.theoretical, seg.receptive_field.empirical)

st.subheader("Change the dilation of a real network")
#: torchvision's ResNet-50 as DeepLabV3 runs it: per output stride and stage, the stride of the
#: first block, the dilation of the first block and the dilation of the others. A stage whose
#: stride is removed dilates its later layers instead (torchvision's replace_stride_with_dilation).
RESNET_LAYOUT = {8: {"layer3": (1, 1, 2), "layer4": (1, 2, 4)},
                 16: {"layer3": (2, 1, 1), "layer4": (1, 1, 2)},
                 32: {"layer3": (2, 1, 1), "layer4": (2, 1, 1)}}
TORCHVISION = pretrained.is_cached("deeplabv3_resnet50")
NAME = "deeplabv3_resnet50" if TORCHVISION else "deeplab_v1_largefov"
if TORCHVISION:
    st.info("Running **torchvision's DeepLabV3 ResNet-50** with its pretrained weights. The "
            "slider sets the rates of its ASPP head (three parallel 3×3 convolutions at rates "
            "r, 2r, 3r; torchvision's are 12, 24, 36), the output stride sets how many of "
            "ResNet's last strides are replaced by dilation.", icon="ℹ️")
    rate_label, default_rate, max_rate = "ASPP base rate r (rates r, 2r, 3r)", 12, 24
else:
    st.info("torchvision's DeepLabV3 weights are not on this computer, so this runs **SegLab's "
            "DeepLab v1 LargeFOV**: its fc6 is one 3×3 convolution at rate 12 on the stride-8 "
            "map. The slider sets that rate; the output stride puts strides back into pool4 "
            "and pool5 and shrinks the dilations to match (same weights throughout).",
            icon="ℹ️")
    rate_label, default_rate, max_rate = "fc6 rate r (at output stride 8)", 12, 32


def configure(module: nn.Module, rate: int, output_stride: int) -> None:
    """Set the dilation rate and output stride of `module` (a private copy) in place."""
    if not TORCHVISION:
        module.set_output_stride(output_stride)
        module.set_fc6_dilation(rate)
        return
    for stage, (stride, first, rest) in RESNET_LAYOUT[output_stride].items():
        for i, block in enumerate(getattr(module.backbone, stage)):
            d = first if i == 0 else rest
            block.conv2.dilation = block.conv2.padding = (d, d)
            if i == 0:
                block.conv2.stride = block.downsample[0].stride = (stride, stride)
    for branch, r in zip(module.classifier[0].convs[1:4], (rate, 2 * rate, 3 * rate)):
        branch[0].dilation = branch[0].padding = (r, r)


#: The live network reads the picture shrunk to this long side at most (labels come back at
#: full size): every move of the rate runs a forward and a backward pass, which must answer
#: within a second on a laptop's CPU; rates act on the score map, not on the photo's pixels.
WORKING_SIDE = 384


@st.cache_resource(max_entries=12, show_spinner="Preparing the network at this rate…")
def dilated(rate: int, output_stride: int, device: str) -> seg.models.Segmenter:
    """A private copy of the shared segmenter with this rate and output stride, working on
    pictures of at most `WORKING_SIDE` pixels a side."""
    copied = seg.models.sharing_weights(resources.segmenter(NAME, device))
    configure(copied.module, rate, output_stride)
    copied.max_side = WORKING_SIDE
    return copied


@st.cache_data(max_entries=64, show_spinner="Segmenting at this rate…")
def dilated_prediction(rate: int, output_stride: int, device: str, image_key: str,
                       _array: np.ndarray) -> seg.models.Prediction:
    """The prediction of the copy at (rate, output stride), cached per picture."""
    segmenter = dilated(rate, output_stride, device)  # outside the slot: a cache may wait
    with serving.heavy():
        return segmenter.predict(_array)


def layout(module: nn.Module) -> list[dict]:
    """Strides and dilations of the layers the controls change, read from the module itself."""
    if not TORCHVISION:
        return [{"layer": "pool4", "stride": module.encoder[3].pool.stride, "dilation": "—"},
                {"layer": "pool5", "stride": module.encoder[4].pool.stride, "dilation": "—"},
                {"layer": "conv5 (3 layers)", "stride": 1,
                 "dilation": ", ".join(str(c.conv.dilation[0]) for c in module.encoder[4].convs)},
                {"layer": "fc6", "stride": 1, "dilation": str(module.fc.fc6.dilation[0])}]
    rows = [{"layer": f"{stage} ({len(blocks)} blocks)", "stride": blocks[0].conv2.stride[0],
             "dilation": ", ".join(str(b.conv2.dilation[0]) for b in blocks)}
            for stage, blocks in ((s, getattr(module.backbone, s)) for s in ("layer3", "layer4"))]
    rates = [str(branch[0].dilation[0]) for branch in module.classifier[0].convs[1:4]]
    return rows + [{"layer": "ASPP (3 branches)", "stride": 1, "dilation": ", ".join(rates)}]


def fc6_taps_inside(side: tuple[int, int], rate: int) -> float:
    """Mean share of a 3×3 rate-r kernel's taps that land inside a map of `side` (not padding)."""
    shares = []
    for n in side:
        positions = np.arange(n)[:, None] + rate * np.array([-1, 0, 1])[None]  # (n, 3)
        shares.append(((positions >= 0) & (positions < n)).mean())
    return float(shares[0] * shares[1])


@st.cache_data(max_entries=64, show_spinner="Segmenting and back-propagating…")
def live(rate: int, output_stride: int, device: str, image_key: str, _array: np.ndarray,
         y: int, x: int) -> tuple[seg.models.Prediction, np.ndarray, int]:
    """The copy's prediction at (rate, output stride), |∂ score of the predicted class at
    (y, x) / ∂ image| at the picture's size, and the theoretical receptive field of the scores
    (pixels): one forward pass gives both the labels and the gradient."""
    segmenter = dilated(rate, output_stride, device)  # outside the slot: a cache may wait
    with serving.heavy():
        prediction, grad = seg.receptive_field.explain_pixel(segmenter, _array, y, x)
    height = _array.shape[0]
    working = segmenter.working_size(*_array.shape[:2])[0]
    return prediction, grad, int(field_side(rate, output_stride, device) * height / working)


@st.cache_data(max_entries=64, show_spinner=False)
def field_side(rate: int, output_stride: int, device: str) -> int:
    """Side of the theoretical receptive field of the copy's scores (input pixels).

    The field depends on the layers' kernels, strides and dilations, not on the picture's
    size, so it is traced on a 32×32 input: a forward pass that costs a few milliseconds. The
    trace hooks its own copy's layers, never those another student's forward pass may be
    running through.
    """
    module = seg.models.sharing_weights(dilated(rate, output_stride, device).module)
    return seg.receptive_field.theoretical(module, (32, 32))[-1].size[0]


def half_mass_radius(grad: np.ndarray, y: int, x: int) -> float:
    """Distance from (y, x) within which half of the gradient's total lies."""
    rows, cols = np.indices(grad.shape)
    distance = np.hypot(rows - y, cols - x).ravel()
    order = np.argsort(distance)
    mass = np.cumsum(grad.ravel()[order])
    return float(distance[order][np.searchsorted(mass, mass[-1] / 2)])


@st.fragment
def live_network() -> None:
    """The live network and the gradient of one pixel: moving a control reruns only this."""
    # At a move of the controls, run the network before drawing anything: meanwhile the browser
    # has nothing to redraw, which leaves the CPU to the network (0.34 -> 0.29 s a step with
    # the browser on the same 2 cores). The first run, before the controls exist, skips this.
    settings = (st.session_state.get("dilated_live_rate"),
                st.session_state.get("dilated_live_stride"))
    if None not in settings:
        px, py = compare.probe(chosen.array.shape[:2], key="dilated_probe")
        with contextlib.suppress(CheckpointError, pretrained.WeightsUnavailable):  # shown below
            live(*settings, device, chosen.key, chosen.array, py, px)
    badge = st.container()  # the weights' provenance, above the controls
    left, right = st.columns(2)
    rate = share.widget(left.slider, rate_label, 1, max_rate, default_rate, key="dilated_live_rate")
    output_stride = share.widget(right.select_slider,
                                 "Output stride", [8, 16, 32], 8, key="dilated_live_stride",
                                 help="How much smaller than the image the score map is.")
    px, py = compare.probe(chosen.array.shape[:2], key="dilated_probe")
    try:
        prediction, grad, field = live(rate, output_stride, device, chosen.key, chosen.array,
                                       py, px)
        reference = (prediction if (rate, output_stride) == (default_rate, 8) else
                     dilated_prediction(default_rate, 8, device, chosen.key, chosen.array))
    except (CheckpointError, pretrained.WeightsUnavailable) as error:
        badge.error(f"{resources.title(NAME)} cannot run here: {error}", icon="🚫")
        return
    with badge:
        widgets.provenance(reference, device)
    palette = widgets.palette(prediction.classes)
    labels, before = prediction.labels.numpy(), reference.labels.numpy()
    changed = labels != before  # (H, W)
    fc6_rate = rate if TORCHVISION else max(1, rate * 8 // output_stride)
    seen = dilated(rate, output_stride, device).working_size(*chosen.array.shape[:2])  # (h, w)
    score_side = tuple(-(-n // output_stride) for n in seen)

    # Plain pictures: this fragment reruns at every step of the rate, and plotly figures took
    # longer to send and draw than the network took to run.
    pictures = {"Picture": chosen.array,
                f"As trained: rate {default_rate}, stride 8": seg.viz.colorize(before, palette),
                f"Now: rate {rate}, stride {output_stride}": seg.viz.colorize(labels, palette),
                "Changed class (red)": compare.highlight(chosen.array, changed)}
    for column, (caption, picture) in zip(st.columns(4), pictures.items()):
        column.image(picture, caption=caption, width="stretch")
    widgets.legend(labels, prediction.classes, palette)
    a, b, c, d = st.columns(4)
    a.metric("Pixels that changed class", f"{changed.mean():.1%}")
    if chosen.is_synthetic and prediction.classes == list(seg.synthetic.CLASSES):
        truth = chosen.scene.labels
        now = seg.metrics.miou(labels, truth, len(prediction.classes))
        was = seg.metrics.miou(before, truth, len(prediction.classes))
        b.metric("mIoU at this setting", f"{now:.1%}",
                 f"{now - was:+.1%} vs as trained" if round(now - was, 3) else None)
    else:
        b.metric("mIoU", "—", help="Needs true labels: choose a synthetic scene in the sidebar.")
    c.metric("Score map", f"{score_side[1]}×{score_side[0]}",
             help=f"The picture as the network sees it is {seen[1]}×{seen[0]}; "
                  f"the scores are {output_stride} times smaller.")
    if TORCHVISION:
        d.metric("ASPP rates", f"{rate}, {2 * rate}, {3 * rate}")
    else:
        d.metric(f"fc6's taps on the map (rate {fc6_rate})",
                 f"{fc6_taps_inside(score_side, fc6_rate):.0%}",
                 help="Share of fc6's 9 taps that land inside the score-resolution map rather "
                      "than on its zero padding, averaged over positions. Past the map's size, "
                      "a 3×3 dilated kernel degenerates into a 1×1 one (Chen et al., 2017).")
    shrunk = (f" on the picture shrunk to {seen[1]}×{seen[0]} (the live "
              f"network works at {WORKING_SIDE} px at most)"
              if max(chosen.array.shape[:2]) > WORKING_SIDE else "")
    st.caption(f"{prediction.seconds * 1000:.0f} ms for this prediction and the gradient "
               f"below{shrunk}; every setting is kept, so moving back to one already seen is "
               "instant.")
    left, right = st.columns([2, 3])
    left.table(layout(dilated(rate, output_stride, device).module))
    right.markdown(
        "**What the controls changed** inside the network (read from its layers): a stride of 1 "
        "where the network was built with 2, and larger dilations after it so that those layers "
        "still see as far in the image. The weights are the same at every setting; only the "
        "spacing of their taps changes.")

    st.subheader("What one pixel's class depends on")
    st.markdown(
        "Click a pixel (or type its column and row). The map is $|\\partial\\, s_c(y, x) / "
        "\\partial\\, \\text{image}|$, the gradient of the score of the pixel's class $c$, "
        "computed by back-propagation through the network at the setting above: bright pixels "
        "are those that change this score the most. Try a large rate: the dilated layer's 9 "
        "taps pull in pixels far away.")

    picture = seg.viz.overlay(chosen.array, labels, palette, alpha=0.35)
    left, right = st.columns(2)
    with left:
        compare.pixel_picker(picture, key="dilated_probe")
    name = prediction.classes[int(labels[py, px])]
    right.image(figures.heat_picture(grad), width="stretch",
                caption=f"|∂ {name} score at ({px}, {py}) / ∂ image|, relative to its largest "
                        "value")
    a, b = right.columns(2)
    a.metric("Half of the gradient within", f"{half_mass_radius(grad, py, px):.0f} px",
             help="Radius around the pixel that holds half of the total |gradient|: the effective "
                  "field, which is far smaller than the theoretical one (Luo et al., 2016).")
    b.metric("Theoretical field", f"{field} px",
             help="Side of the square of input pixels the score can depend on at all "
                  "(seg.receptive_field.theoretical), padding included.")


live_network()
if TORCHVISION:
    widgets.show_code(seg.receptive_field.empirical)
else:
    widgets.show_code(DeepLabV1.set_fc6_dilation, DeepLabV1.set_output_stride,
                      seg.receptive_field.empirical)
