"""ReNet: four recurrent sweeps over patches instead of convolution and pooling."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots
from torch import nn

import seg
from app import figures, image_input, resources, share, widgets
from seg.models.renet import ReNetLayer, bidirectional_sweep
from seg.models.segmenter import to_tensor

#: The stepper and the receptive fields work on a copy this large: the grid stays readable and
#: a gradient through 2 × 32 recurrent steps takes a fraction of a second on a CPU.
WORK_SIDE = 128
PATCHES = (4, 8, 16)
SWEEPS = {"down": "↓ top→bottom", "up": "↑ bottom→top", "right": "→ left→right",
          "left": "← right→left"}
#: How deep into FCN-8s's encoder the conv side of the receptive-field comparison goes:
#: label → (layer name in `seg.receptive_field.theoretical`, encoder stages it runs).
DEPTHS = {"conv1_1 (1 conv)": ("encoder.0.convs.0.conv", 0),
          "pool1 (2 convs)": ("encoder.0.pool", 1), "pool2 (4 convs)": ("encoder.1.pool", 2),
          "pool3 (7 convs)": ("encoder.2.pool", 3), "pool4 (10 convs)": ("encoder.3.pool", 4),
          "pool5 (13 convs)": ("encoder.4.pool", 5)}

chosen = image_input.current()
device = resources.device()
renet = resources.segmenter("renet", device)
fcn = resources.segmenter("fcn8s", device)
own_patch = renet.module.layer1.patch_size

st.title("ReNet: four RNN sweeps instead of convolution and pooling")
st.markdown(
    """
**Goal:** see how ReNet (Visin et al., 2015) replaces a convolution + pooling layer by
recurrent networks that sweep over the image, and why one such layer already sees the
**whole** image, where a convolution sees a few pixels.

A ReNet layer cuts the image into non-overlapping p × p **patches** and flattens each into one
vector of 3·p² numbers (the pooling part: the grid is p times coarser). Then:

1. a recurrent network (a GRU) reads every **column** of patches top→bottom, and another one
   bottom→top; at every patch their two states are concatenated into a **vertical feature map**;
2. two more GRUs read every **row of that map** left→right and right→left; their two states,
   concatenated, are the layer's output.
"""
)
st.latex(r"v^{\downarrow}_{i,j} = \mathrm{GRU}^{\downarrow}"
         r"\big(v^{\downarrow}_{i-1,j},\ p_{i,j}\big),\quad "
         r"v^{\uparrow}_{i,j} = \mathrm{GRU}^{\uparrow}"
         r"\big(v^{\uparrow}_{i+1,j},\ p_{i,j}\big),\quad "
         r"v_{i,j} = [v^{\downarrow}_{i,j};\ v^{\uparrow}_{i,j}]")
st.latex(r"h^{\rightarrow}_{i,j} = \mathrm{GRU}^{\rightarrow}"
         r"\big(h^{\rightarrow}_{i,j-1},\ v_{i,j}\big),\quad "
         r"h^{\leftarrow}_{i,j} = \mathrm{GRU}^{\leftarrow}"
         r"\big(h^{\leftarrow}_{i,j+1},\ v_{i,j}\big),\quad "
         r"o_{i,j} = [h^{\rightarrow}_{i,j};\ h^{\leftarrow}_{i,j}]")
st.markdown(
    f"""
$v_{{i,j}}$ has read patch (i, j)'s whole column; $o_{{i,j}}$ has read the vertical states of
its whole row, so **every patch of the image**. SegLab's ReNet segmenter stacks two such layers
(patches of {own_patch} px, then 2 × 2), a 1 × 1 convolution to class scores and a bilinear
upsampling.
"""
)
prediction = resources.predict("renet", device, chosen.key, chosen.array, extras=True)
fcn_prediction = resources.predict("fcn8s", device, chosen.key, chosen.array)
widgets.provenance(prediction, device)


@st.cache_data(max_entries=16, show_spinner=False)
def working_copy(image_key: str, _array: np.ndarray) -> np.ndarray:
    """The picture at most WORK_SIDE px, sides rounded to a multiple of 32 (every patch size
    and SegLab's ReNet, whose two layers need 2p, divide them)."""
    height, width = _array.shape[:2]
    scale = WORK_SIDE / max(height, width)
    size = [max(32, int(round(side * scale / 32)) * 32) for side in (width, height)]
    return np.array(Image.fromarray(_array).resize(size, Image.BILINEAR))


@st.cache_resource(max_entries=4, show_spinner=False)
def fresh_layer(patch: int, device: str) -> nn.Module:
    """A randomly initialised ReNet layer with another patch size (seeded: same for everyone)."""
    return seg.rng.build(ReNetLayer, 3, 32, patch, seed=0).to(device).eval()


@st.cache_data(max_entries=32, show_spinner="Running the four sweeps…")
def sweep_norms(image_key: str, _array: np.ndarray, patch: int, device: str,
                source: str) -> dict[str, np.ndarray]:
    """‖state‖ of every patch after each of the four sweeps, (rows, cols) each."""
    x = to_tensor(_array).to(device)  # (1, 3, H, W)
    with torch.inference_mode():
        if patch == own_patch:
            maps = renet.module.sweeps(x)
        else:
            vertical, horizontal = fresh_layer(patch, device)(x)  # (1, 2h, H/p, W/p) each
            maps = dict(zip(SWEEPS, (*vertical.chunk(2, 1), *horizontal.chunk(2, 1))))
    return {name: m[0].norm(dim=0).float().cpu().numpy() for name, m in maps.items()}


@st.cache_data(max_entries=64, show_spinner="Back-propagating from one output…")
def gradient(image_key: str, _array: np.ndarray, model: str, output: str, stages: int,
             unit: tuple[int, int], device: str, source: str) -> np.ndarray:
    """|∂ output / ∂ image| of one unit, normalised to its peak: of SegLab's ReNet (`output`
    "vertical", "horizontal" or "out"), or of FCN-8s's first `stages` encoder stages (0: its
    first convolution alone)."""
    image = to_tensor(_array)  # (1, 3, H, W)
    if model == "renet":
        return seg.receptive_field.empirical(renet.module, image, *unit, output_key=output)
    stages_of = list(fcn.module.encoder)
    module = stages_of[0].convs[0] if stages == 0 else nn.Sequential(*stages_of[:stages])
    return seg.receptive_field.empirical(module, image, *unit)


@st.cache_data(max_entries=8, show_spinner=False)
def fcn_fields(height: int, width: int) -> list[seg.receptive_field.LayerRF]:
    """FCN-8s's theoretical receptive field after every layer (one forward pass with hooks)."""
    return seg.receptive_field.theoretical(fcn.module, (height, width))


def progress(step: int, rows: int, cols: int) -> tuple[dict[str, np.ndarray], str, int]:
    """Per sweep, which patches hold a state after `step` steps (1-based); the sweep in
    progress and the row or column it has just read."""
    masks, start, current, line = {}, 0, "down", 0
    for name in SWEEPS:
        length = rows if name in ("down", "up") else cols
        done = int(np.clip(step - start, 0, length))  # lines this sweep has read so far
        order = np.arange(length) if name in ("down", "right") else np.arange(length)[::-1]
        read = np.zeros(length, dtype=bool)
        read[order[:done]] = True
        masks[name] = np.broadcast_to(read[:, None] if name in ("down", "up") else read[None, :],
                                      (rows, cols))
        if done > 0:
            current, line = name, int(order[done - 1])
        start += length
    return masks, current, line


def grid_figure(picture: np.ndarray, read: np.ndarray, patch: int, sweep: str, line: int,
                title: str) -> go.Figure:
    """The picture with the patch grid; patches not read yet are faded, the row or column just
    read is outlined in red."""
    height, width = picture.shape[:2]
    rows, cols = read.shape
    faded = np.kron(~read, np.ones((patch, patch), dtype=bool))[..., None]  # (H, W, 1)
    shown = np.where(faded, (picture * 0.35 + 255 * 0.65).astype(np.uint8), picture)
    fig = figures.image(shown, title, height=360)
    xs = [v for c in range(cols + 1) for v in (c * patch - 0.5, c * patch - 0.5, None)]
    ys = [v for _ in range(cols + 1) for v in (-0.5, height - 0.5, None)]
    xs += [v for _ in range(rows + 1) for v in (-0.5, width - 0.5, None)]
    ys += [v for r in range(rows + 1) for v in (r * patch - 0.5, r * patch - 0.5, None)]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                             line=dict(color="rgba(255,255,255,0.8)", width=1)))
    if sweep in ("down", "up"):
        box = dict(x0=-0.5, x1=width - 0.5, y0=line * patch - 0.5, y1=(line + 1) * patch - 0.5)
    else:
        box = dict(y0=-0.5, y1=height - 0.5, x0=line * patch - 0.5, x1=(line + 1) * patch - 0.5)
    fig.add_shape(type="rect", line=dict(color="red", width=3), **box)
    return fig


def states_figure(norms: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> go.Figure:
    """‖state‖ of the four sweeps where they exist yet (grey elsewhere), on one colour scale."""
    rows, cols = masks["down"].shape
    top = max(float(n.max()) for n in norms.values())
    fig = make_subplots(2, 2, subplot_titles=list(SWEEPS.values()), horizontal_spacing=0.06,
                        vertical_spacing=0.1)
    for i, name in enumerate(SWEEPS):
        # a grey sheet under each map marks the patches whose state is not computed yet
        fig.add_trace(go.Heatmap(z=np.zeros((rows, cols)), colorscale=[[0, "#e3e3e3"],
                                                                     [1, "#e3e3e3"]],
                                 showscale=False, hoverinfo="skip"),
                      row=i // 2 + 1, col=i % 2 + 1)
        fig.add_trace(go.Heatmap(z=np.where(masks[name], norms[name], np.nan), zmin=0, zmax=top,
                                 colorscale="Viridis", showscale=i == 0,
                                 colorbar=dict(title="‖h‖", thickness=10),
                                 hovertemplate="row %{y}, column %{x}: ‖h‖ = %{z:.2f}"
                                               "<extra></extra>"),
                      row=i // 2 + 1, col=i % 2 + 1)
    fig.update_xaxes(range=[-0.5, cols - 0.5], showticklabels=False, showgrid=False,
                     zeroline=False, constrain="domain")
    fig.update_yaxes(range=[rows - 0.5, -0.5], showticklabels=False, showgrid=False,
                     zeroline=False, constrain="domain")
    for i in range(4):
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=i // 2 + 1, col=i % 2 + 1)
    fig.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0))
    fig.update_annotations(font_size=13)
    return fig


def log_map(grad: np.ndarray, backdrop: np.ndarray, title: str, y: int, x: int,
            box=None) -> go.Figure:
    """log₁₀ of a gradient map over a pale copy of the picture (zero gradient: uncoloured),
    the output position as a white ring, a theoretical field as a red box when given."""
    with np.errstate(divide="ignore"):
        logs = np.where(grad > 0, np.maximum(np.log10(grad), -6), np.nan)
    fig = figures.image(backdrop, title, height=330)
    fig.add_trace(go.Heatmap(z=logs, zmin=-6, zmax=0, colorscale="Viridis", opacity=0.85,
                             colorbar=dict(title="log₁₀ |grad|", thickness=12),
                             hovertemplate="x %{x}, y %{y}: 10^%{z:.1f}<extra></extra>"))
    if box is not None:
        top, left, bottom, right = box
        fig.add_shape(type="rect", x0=left - 0.5, x1=right - 0.5, y0=top - 0.5,
                      y1=bottom - 0.5, line=dict(color="red", width=2))
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(symbol="circle-open", size=8, color="white")))
    return fig


work = working_copy(chosen.key, chosen.array)
height, width = work.shape[:2]


@st.fragment
def patches_and_sweeps():
    """Section 1: its sliders rerun only this part of the page."""
    st.subheader("1 · Patches and the order of the sweeps")
    st.caption(f"On a {width} × {height} copy of {chosen.name}.")
    patch = share.widget(st.select_slider, "Patch size p (pixels)", PATCHES, value=own_patch,
                         key="renet_patch",
                         help=f"SegLab's ReNet uses {own_patch} × {own_patch} patches.")
    rows, cols = height // patch, width // patch
    total = 2 * rows + 2 * cols
    st.markdown(f"{rows} × {cols} patches, each a vector of 3 · {patch}² = "
                f"**{3 * patch * patch}** numbers. The four sweeps take {rows} + {rows} + "
                f"{cols} + {cols} = {total} steps.")
    if patch != own_patch:
        st.warning(f"SegLab's ReNet uses {own_patch}-pixel patches; for {patch}-pixel patches "
                   "the states below come from a fresh ReNet layer with random weights. Look "
                   "at where states exist and how they spread, not at what they mean.")
    norms = sweep_norms(chosen.key, work, patch, device, renet.source)
    step = share.widget(st.slider, "Step", 1, total, rows // 2, key=f"renet_step_{patch}",
                        help="Each step reads one row or column of patches in every column or row "
                             "at once (the code runs them as one batch).")
    masks, sweep, line = progress(step, rows, cols)
    what, across = ("row", "column") if sweep in ("down", "up") else ("column", "row")
    st.markdown(f"**Step {step} of {total}:** sweep {list(SWEEPS).index(sweep) + 1} of 4, "
                f"{SWEEPS[sweep]}, has just read {what} {line} in every {across} at once.")
    left, right = st.columns(2)
    if sweep in ("down", "up"):
        picture, title = work, "What the vertical sweeps read: the image's patches"
    else:
        vertical = np.sqrt(norms["down"] ** 2 + norms["up"] ** 2)  # ‖[v↓; v↑]‖ per patch
        picture = seg.viz.upscale_nearest(seg.viz.heat(vertical, lo=None, hi=None), patch)
        title = "What the horizontal sweeps read: the vertical map ‖v‖"
    left.plotly_chart(grid_figure(picture, masks[sweep], patch, sweep, line, title),
                      key="renet_grid")
    right.markdown("**Hidden states so far** (grey: not computed yet)")
    right.plotly_chart(states_figure(norms, masks), key="renet_states")


@st.fragment
def hidden_states():
    """Section 2: its controls rerun only this part of the page."""
    st.subheader("2 · The hidden states of SegLab's ReNet")
    c1, c2 = st.columns([1, 2])
    which = share.widget(c1.radio, "Feature map", ["vertical", "horizontal"], key="renet_map",
                         format_func={"vertical": "after the vertical sweeps (v)",
                                      "horizontal": "after both sweeps (o, layer 1's output)"}.get)
    maps = prediction.extras[which]  # (2h, H/p, W/p)
    hidden = maps.shape[0] // 2
    channel = share.widget(c1.slider, "Channel", 0, maps.shape[0] - 1, 0, key="renet_channel")
    first, second = ("down", "up") if which == "vertical" else ("right", "left")
    direction = (first, second)[channel // hidden]
    c1.markdown(f"Channel {channel} is unit {channel % hidden} of the **{SWEEPS[direction]}** "
                f"GRU (channels 0–{hidden - 1}: {SWEEPS[first]}; {hidden}–{2 * hidden - 1}: "
                f"{SWEEPS[second]}). Each cell is one {own_patch} × {own_patch} patch of the "
                f"full picture.")
    c1.plotly_chart(figures.image(chosen.array, chosen.name, height=220),
                    key="renet_features_image")
    c2.plotly_chart(figures.heatmap(maps[channel].numpy(), f"{which} map, channel {channel} "
                                    f"({maps.shape[1]} × {maps.shape[2]} patches)",
                                    colorscale="RdBu_r", colorbar="state", height=380),
                    key="renet_features")


@st.fragment
def receptive_fields():
    """Section 3: its controls rerun only this part of the page."""
    st.subheader("3 · Receptive field: the whole image vs a few pixels")
    st.markdown(
        """
Which pixels can change one output of a layer? Differentiate that output with respect to the
input: pixels with a non-zero gradient are the ones it sees (`seg.receptive_field.empirical`).
The maps colour the gradient's size on a log scale, from its peak down to a millionth of it;
where the pale picture shows through uncoloured, the gradient is exactly zero: the unit cannot
see those pixels at all. The red box is FCN-8s's theoretical field.
"""
    )
    r1, r2, r3 = st.columns(3)
    y = share.widget(r1.slider,
                     "Row of the output position", 0, height - 1, height // 2, key="renet_y")
    x = share.widget(r1.slider,
                     "Column of the output position", 0, width - 1, width // 2, key="renet_x")
    output = share.widget(r2.radio, "ReNet output", ["vertical", "horizontal", "out"], index=1,
                          key="renet_rf_output",
                          format_func={"vertical": "after the vertical sweeps",
                                       "horizontal": "after both sweeps (one ReNet layer)",
                                       "out": "the segmenter's output (two layers)"}.get)
    depth = share.widget(r3.select_slider, "FCN-8s, up to", list(DEPTHS), key="renet_rf_depth")
    fcn_layers = fcn_fields(height, width)
    layer = next(lr for lr in fcn_layers if lr.name == DEPTHS[depth][0])
    stride, jump = (own_patch if output != "out" else 1), int(layer.jump[0])
    grads = {
        "ReNet": gradient(chosen.key, work, "renet", output, 0, (y // stride, x // stride),
                          device, renet.source),
        "FCN-8s": gradient(chosen.key, work, "fcn8s", "", DEPTHS[depth][1],
                           (y // jump, x // jump), device, fcn.source),
    }
    backdrop = (work.mean(2, keepdims=True).repeat(3, 2) * 0.5 + 127).astype(np.uint8)
    extents = {}
    for column, (name, grad) in zip((r2, r3), grads.items()):
        support = int((grad > 0).sum())
        extents[name] = seg.receptive_field.effective_extent(grad, threshold=0.0)
        title = f"ReNet, {output}" if name == "ReNet" else f"FCN-8s up to {depth.split()[0]}"
        box = layer.box(y // jump, x // jump) if name == "FCN-8s" else None
        column.plotly_chart(log_map(grad, backdrop, title, y, x, box), key=f"renet_rf_{name}")
        column.metric(f"Pixels that {name} sees", f"{support / grad.size:.1%}",
                      help=f"{support} of {grad.size} pixels have a non-zero gradient; their "
                           f"bounding box is {extents[name][0]} × {extents[name][1]}.")
    pool5 = next(lr for lr in fcn_layers if lr.name == "encoder.4.pool")
    r1.markdown(
        f"FCN-8s's theoretical field at {depth.split()[0]} is "
        f"**{layer.size[0]} × {layer.size[1]}** pixels (`seg.receptive_field.theoretical`); "
        f"the gradient's box here is {extents['FCN-8s'][0]} × {extents['FCN-8s'][1]}. "
        f"ReNet's box is {extents['ReNet'][0]} × {extents['ReNet'][1]} of the "
        f"{height} × {width} picture.")
    r1.caption("After the vertical sweeps a state sees one column of patches; after the "
               "horizontal ones, everything. FCN-8s needs its 13 convolutions and 5 poolings "
               f"to grow to {pool5.size[0]} px. Far pixels matter little, though: the gradient "
               "falls by orders of magnitude with distance (the effective field is smaller "
               "than the theoretical one).")
    widgets.provenance(fcn_prediction, device)


patches_and_sweeps()
hidden_states()
receptive_fields()

st.subheader("4 · ReNet vs FCN-8s as segmenters")
palette, classes = seg.synthetic.PALETTE, list(seg.synthetic.CLASSES)
panels = [(chosen.array, chosen.name)]
if chosen.is_synthetic:
    panels.append((seg.viz.colorize(chosen.scene.labels, palette), "True labels"))
panels += [(seg.viz.colorize(prediction.labels.numpy(), palette), "ReNet"),
           (seg.viz.colorize(fcn_prediction.labels.numpy(), palette), "FCN-8s")]
for column, (array, title) in zip(st.columns(len(panels)), panels):
    column.plotly_chart(figures.image(array, title, height=260), key=f"renet_seg_{title}")
widgets.legend(chosen.scene.labels if chosen.is_synthetic else prediction.labels, classes,
               palette)
if chosen.is_synthetic:
    k, truth = len(classes), chosen.scene.labels
    scores = st.columns(4)
    for i, (name, pred) in enumerate((("ReNet", prediction), ("FCN-8s", fcn_prediction))):
        scores[2 * i].metric(f"mIoU: {name}", f"{seg.metrics.miou(pred.labels, truth, k):.1%}")
        scores[2 * i + 1].metric(f"Pixel accuracy: {name}",
                                 f"{seg.metrics.pixel_accuracy(pred.labels, truth, k):.1%}")
    st.caption(f"ReNet: {renet.num_parameters:,} parameters; FCN-8s: {fcn.num_parameters:,}.")
else:
    st.info("mIoU needs true labels: choose a synthetic scene in the sidebar to score both.")
widgets.provenance(prediction, device)
widgets.provenance(fcn_prediction, device)

widgets.show_code(bidirectional_sweep, ReNetLayer.forward, seg.receptive_field.empirical)
