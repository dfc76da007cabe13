"""Upsampling: SegNet's unpooling vs transposed convolution, in numbers and on a real feature map."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import seg
from app import figures, image_input, resources, share, widgets
from seg import upsampling
from seg.models import CheckpointError
from seg.models.segnet import SegNet

chosen = image_input.current()
device = resources.device()

st.title("Upsampling: SegNet's unpooling vs transposed convolution")
st.markdown(
    "**Goal:** see, number by number, the three ways a decoder enlarges a map (unpooling with "
    "the pooling positions, transposed convolution, interpolation then convolution), where "
    "the transposed convolution's checkerboard comes from, and what SegNet's way saves.")
st.markdown(
    r"""
* **Max pooling with indices.** A $2\times2$ max pool keeps the largest of every four values
  and, if asked, *where* it was: a flat index $\text{row}\cdot W + \text{col}$ into the input.
* **Unpooling** (SegNet) writes each pooled value back at its index and **zeros everywhere
  else**: the map is twice as large but sparse, one value per $2\times2$ window. The decoder's
  next convolutions fill it in. Edges stay where the encoder saw them.
* **Transposed convolution** (FCN, U-Net) is learned: every input value stamps a copy of the
  $k\times k$ kernel, scaled by the value, into the output; stamps are $s$ pixels apart
  (the stride) and **add up where they overlap**. Its output side is
""")
st.latex(r"H_\text{out} = (H_\text{in} - 1)\,s - 2p + k + p_\text{out}")
st.markdown(
    r"""
* **Interpolation** (bilinear) is fixed: every output pixel is a distance-weighted mean of its
  $2\times2$ nearest inputs. **Resize-convolution** follows an interpolation by an ordinary
  convolution, so it can still learn, with every output pixel getting the same $k\times k$ taps.
""")

st.subheader("A worked example: 4×4 → 2×2 → 4×4")
example = upsampling.numeric_example()


#: Light colour ramps, so that the black numbers stay readable in every cell.
RAMPS = {"blue": [[0, "#ffffff"], [1, "#74a9cf"]], "orange": [[0, "#fff5eb"], [1, "#fd8d3c"]],
         "grey": [[0, "#ffffff"], [1, "#bdbdbd"]]}


def grid(values: np.ndarray, title: str, *, digits: int = 0, text=None, window: int = 0,
         ramp: str = "blue", height: int = 260, zmax=None) -> go.Figure:
    """A small map with its numbers written in the cells (zeros as a plain 0); `window` draws
    the pooling windows."""
    if text is None:
        text = np.vectorize(lambda v: "0" if v == 0 else f"{v:.{digits}f}")(values)
    fig = figures.heatmap(values, title, text=text, colorscale=RAMPS[ramp], height=height,
                          zmin=0, zmax=zmax)
    fig.update_traces(showscale=False, textfont=dict(size=15, color="black"))
    h, w = values.shape
    for edge in range(window, max(h, w), window) if window else ():
        if edge < w:
            fig.add_vline(x=edge - 0.5, line=dict(color="black", width=3))
        if edge < h:
            fig.add_hline(y=edge - 0.5, line=dict(color="black", width=3))
    return fig


indices = example["indices"]
a, b, c = st.columns(3)
a.plotly_chart(grid(example["input"], "Input 4×4 (2×2 windows)", window=2, zmax=7),
               key="upsampling_ex_input")
b.plotly_chart(grid(example["pooled"], "Max pooling → output 2×2", zmax=7),
               key="upsampling_ex_pooled")
c.plotly_chart(grid(indices, "…and its indices (row, col)", ramp="grey", zmax=15,
                    text=np.vectorize(lambda i: f"{i} = ({i // 4}, {i % 4})")(indices)),
               key="upsampling_ex_indices")
st.caption("Each index is row · 4 + col in the 4×4 input: 4 is row 1, column 0, where the "
           "top-left window had its maximum.")
st.markdown("From the **same 2×2 input** (the pooled map above), three **4×4 outputs**:")
a, b, c, d = st.columns(4)
a.plotly_chart(grid(example["unpooled"], "Unpooling → 4×4", window=2, zmax=7),
               key="upsampling_ex_unpooled")
b.plotly_chart(grid(example["transposed"], "Transposed conv → 4×4", zmax=22, ramp="orange"),
               key="upsampling_ex_transposed")
c.plotly_chart(grid(example["overlaps"], "Stamps added per cell", ramp="orange", zmax=4),
               key="upsampling_ex_overlaps")
d.plotly_chart(grid(example["bilinear"], "Bilinear → 4×4", digits=2, zmax=7),
               key="upsampling_ex_bilinear")
st.caption(
    "Transposed convolution with kernel 3, stride 2, padding 1 and output padding 1 "
    "(H_out = (2 − 1)·2 − 2 + 3 + 1 = 4). Its kernel here is all ones, so each output cell is "
    "the sum of the inputs whose stamp covers it: the cell covered by all four stamps gets "
    "4 + 5 + 6 + 7 = 22. The uneven counts (1, 2 or 4) are the checkerboard in miniature.")
widgets.show_code(upsampling.max_pool_with_indices, upsampling.unpool,
                  upsampling.transposed_conv)

st.subheader("On a real feature map")
st.markdown(
    "The same operations on a channel of a real encoder, run on the chosen picture: the map "
    "a max pool of the network reduces (before pooling), its pooled version with indices, "
    "and the sparse map SegNet's unpooling makes of it.")
left, middle, right = st.columns(3)
encoder = share.widget(left.radio, "Encoder", ["segnet", "fcn8s"], format_func=resources.title,
                       key="upsampling_encoder", horizontal=True)
stage = share.widget(middle.slider,
                     "Encoder stage (the pool it feeds)", 1, 4, 3, key="upsampling_stage",
                     help="Stage 1 is full resolution, each next one half as large.")


@st.cache_data(max_entries=16, show_spinner="Running the encoder…")
def features(name: str, device: str, image_key: str, _array: np.ndarray,
             stage: int) -> np.ndarray:
    """All channels (C, H, W) of encoder stage `stage` before its pool, as numpy."""
    return upsampling.encoder_features(resources.segmenter(name, device), _array, stage).numpy()


try:
    maps = features(encoder, device, chosen.key, chosen.array, stage)  # (C, H, W)
except CheckpointError as error:
    st.error(f"{resources.title(encoder)} cannot run here: {error}", icon="🚫")
    st.stop()
busiest = int(maps.reshape(len(maps), -1).std(1).argmax())
channel = share.widget(right.number_input,
                       f"Channel (0–{len(maps) - 1})", 0, len(maps) - 1, busiest,
                       key=f"upsampling_channel_{encoder}_{stage}",
                       help="Starts at the channel whose values vary most on this picture.")
segmenter = resources.segmenter(encoder, device)
source = resources.SOURCE_TEXT[segmenter.source]
(st.warning if segmenter.source == "untrained" else st.caption)(
    f"Feature maps of **{resources.title(encoder)}** with {source}.")

feature = torch.from_numpy(maps[channel])  # (H, W)
pooled, indices = upsampling.max_pool_with_indices(feature[None, None])  # (1, 1, H/2, W/2)
unpooled = upsampling.unpool(pooled, indices, feature.shape)[0, 0]  # (H, W)
H, W = feature.shape
top = float(feature.max()) or 1.0
a, b, c = st.columns(3)
a.plotly_chart(figures.heatmap(feature.numpy(), f"Input: stage-{stage} channel {channel}, "
                                                f"{W}×{H}", zmin=0, zmax=top),
               key="upsampling_feature")
b.plotly_chart(figures.heatmap(pooled[0, 0].numpy(), f"Output of max pooling: {W // 2}×{H // 2}",
                               zmin=0, zmax=top), key="upsampling_pooled")
c.plotly_chart(figures.heatmap(unpooled.numpy(), f"Output of unpooling: {W}×{H}, sparse",
                               zmin=0, zmax=top), key="upsampling_unpooled")
written = int(pooled.numel())
nonzero = int((unpooled != 0).sum())
reference = torch.nn.MaxUnpool2d(2)(pooled, indices, output_size=feature.shape)[0, 0]
a, b, c = st.columns(3)
a.metric("Positions written by unpooling", f"{written:,} of {H * W:,}",
         help="One per 2×2 window: a quarter of the output.")
b.metric("Non-zero after unpooling", f"{nonzero / (H * W):.1%}",
         help="At most 25 %; less where a whole window was zero (after a ReLU).")
c.metric("Difference from torch.nn.MaxUnpool2d", f"{float((unpooled - reference).abs().max()):g}")

st.markdown("**Zoomed in** (8×8 pixels from the middle of the map): the maxima of the input "
            "come back at their places in the output, every other cell is 0.")
y0, x0 = (H // 2 - 4) // 2 * 2, (W // 2 - 4) // 2 * 2  # a window boundary
crop = np.s_[y0:y0 + 8, x0:x0 + 8]
a, b, c = st.columns(3)
a.plotly_chart(grid(feature.numpy()[crop], f"Input, rows {y0}–{y0 + 7}, cols {x0}–{x0 + 7}",
                    digits=1, window=2, zmax=top, height=320), key="upsampling_zoom_in")
b.plotly_chart(grid(pooled[0, 0].numpy()[y0 // 2:y0 // 2 + 4, x0 // 2:x0 // 2 + 4],
                    "Max pooling → output (4×4 of it)", digits=1, zmax=top, height=320),
               key="upsampling_zoom_pooled")
c.plotly_chart(grid(unpooled.numpy()[crop], "Unpooling → output (8×8 of it)", digits=1,
                    window=2, zmax=top, height=320), key="upsampling_zoom_out")

st.subheader("Transposed convolution and its checkerboard")
st.markdown(
    r"""
Choose the kernel size $k$ and the stride $s$ of a transposed convolution. The numbers count
how many stamps cover each output pixel. When $s$ divides $k$ every pixel away from the border
gets the same count; otherwise counts alternate between $\lfloor k/s\rfloor^2$ and
$\lceil k/s\rceil^2$, a **checkerboard** the network must cancel exactly with its learned
weights, and often does not (Odena, Dumoulin & Olah, 2016). Interpolation followed by a
convolution gives every pixel the same $k\times k$ taps.
""")


@st.fragment
def transposed() -> None:
    """Kernel and stride sliders, the overlap counts and the three upsamplings (reruns alone)."""
    left, right = st.columns(2)
    k = share.widget(left.slider, "Kernel size k", 1, 7, 3, key="upsampling_kernel")
    s = share.widget(right.slider,
                     "Stride s (the upsampling factor)", 1, 4, 2, key="upsampling_stride")
    counts = upsampling.overlap_counts((6, 6), k, s)  # (5s + k, 5s + k)
    inner = counts[k:-k, k:-k] if counts.shape[0] > 2 * k else counts
    n = counts.shape[0]
    a, b, c = st.columns(3)
    a.metric("Stamps per interior pixel", f"{inner.min()} to {inner.max()}")
    uneven = inner.min() != inner.max()
    b.metric("Checkerboard", "yes" if uneven else "no",
             help=f"k mod s = {k} mod {s} = {k % s}: "
                  + ("uneven overlaps." if uneven else "every pixel gets the same overlap."))
    c.metric("Output side for a 6-pixel input", f"(6 − 1)·{s} + {k} = {n}")
    st.plotly_chart(grid(counts, f"Transposed conv k={k}, s={s}. Input: 6×6 map of ones → "
                                 f"output: {n}×{n}, each cell = stamps covering it",
                         ramp="orange", zmax=max(1, int(counts.max())),
                         height=140 + 22 * n),
                    key="upsampling_counts")

    small = pooled[0, 0].numpy()  # (h, w): the pooled real map from above
    uniform = np.full((k, k), s * s / (k * k))  # equal weights, scaled to keep the mean level
    outputs = {
        f"Transposed conv k={k}, s={s}, equal weights":
            upsampling.transposed_upsample(small, uniform, s),
        f"Bilinear ×{s}": upsampling.bilinear(small, s),
        f"Resize ×{s}, then {k}×{k} conv, equal weights":
            upsampling.resize_convolve(small, s, np.full((k, k), 1 / (k * k))),
    }
    st.markdown(f"The pooled map from above (**input {small.shape[1]}×{small.shape[0]}**) "
                f"upsampled ×{s} three ways (**outputs {small.shape[1] * s}×"
                f"{small.shape[0] * s}**). With equal weights, the transposed convolution "
                "shows its overlap pattern on the picture.")
    for column, (title, out), key in zip(st.columns(3), outputs.items(),
                                         ("transposed", "bilinear", "resize")):
        column.plotly_chart(figures.heatmap(out, title, zmin=0, zmax=top, height=300),
                            key=f"upsampling_out_{key}")


transposed()
widgets.show_code(upsampling.overlap_counts, upsampling.transposed_upsample,
                  upsampling.resize_convolve)

st.subheader("SegNet vs FCN-8s")
st.markdown(
    "Two decoders on the same kind of VGG encoder. **SegNet** keeps only the positions of the "
    "maxima and unpools with them, five times; **FCN-8s** keeps the pooled maps of pool3 and "
    "pool4 and adds their class scores to its learned 2× upsamplings.")
truth = chosen.scene.labels if chosen.is_synthetic else None
rows = []
columns = st.columns(2)
for column, name in zip(columns, ("segnet", "fcn8s")):
    with column:
        try:
            prediction = resources.predict(name, device, chosen.key, chosen.array)
        except CheckpointError as error:
            st.error(f"{resources.title(name)} cannot run here: {error}", icon="🚫")
            continue
        palette = widgets.palette(prediction.classes)
        st.image(seg.viz.overlay(chosen.array, prediction.labels.numpy(), palette),
                 caption=resources.title(name), width=400)
        widgets.provenance(prediction, device)
        net = resources.segmenter(name, device)
        rows.append({
            "model": resources.title(name),
            "mIoU on this scene": (seg.metrics.miou(prediction.labels, truth,
                                                    len(prediction.classes))
                                   if truth is not None else None),
            "held-out mIoU (model card)": net.card.get("evaluation", {}).get("miou"),
            "parameters": f"{net.num_parameters:,}",
        })
if rows:
    widgets.legend(prediction.labels.numpy(), prediction.classes, palette)
    st.dataframe(rows, hide_index=True, key="upsampling_models", column_config={
        key: st.column_config.NumberColumn(format="percent")
        for key in ("mIoU on this scene", "held-out mIoU (model card)")})
    st.caption("The held-out mIoU is the model card's, measured on 256 synthetic scenes the "
               "network never saw (empty until SegLab's checkpoint is trained)."
               + ("" if truth is not None else " This picture has no true labels: choose a "
                  "synthetic scene in the sidebar to measure the mIoU on it too."))

x, _ = resources.segmenter("segnet", device).preprocess(chosen.array)  # (1, 3, h, w)
size = tuple(-(-n // 32) * 32 for n in x.shape[-2:])  # padded to the networks' divisor
memory = resources.segmenter("segnet", device).module.decoder_memory(size)
skips = upsampling.fcn_skip_memory(resources.segmenter("fcn8s", device).module, size)
kept = {
    "SegNet: max-pooling indices, as PyTorch stores them (int64)": memory["indices_bytes"],
    "SegNet: the same indices at 2 bits per window (the paper)": memory["indices_2bit_bytes"],
    "FCN-8s: pool3 and pool4 feature maps (float32)": sum(r["bytes"] for r in skips),
    "SegNet's 5 encoder maps, if it kept them like U-Net (float32)": memory["feature_bytes"],
}
st.markdown(f"**What each decoder keeps from its encoder** for one {size[1]}×{size[0]} input "
            "(the picture as the networks see it, padded to a multiple of 32):")
names = list(kept)
kilobytes = [v / 1024 for v in kept.values()]
st.plotly_chart(figures.bars(names, kilobytes, "Memory kept for the decoder (KiB)",
                             height=230, xrange=(0, max(kilobytes) * 1.2), xlabel="KiB"),
                key="upsampling_memory")
st.dataframe(
    [{"stage": s["stage"], "indices (C×h×w)": "×".join(map(str, s["indices_shape"])),
      "int64 indices": f"{s['indices_bytes'] / 1024:.1f} KiB",
      "2-bit indices": f"{s['indices_2bit_bytes'] / 1024:.1f} KiB",
      "feature map (C×H×W)": "×".join(map(str, s["feature_shape"])),
      "float32 feature map": f"{s['feature_bytes'] / 1024:.1f} KiB"} for s in memory["stages"]],
    hide_index=True, key="upsampling_memory_stages")
st.caption(
    "SegNet needs 2 bits per 2×2 window to say which corner held the maximum, 64 times less "
    "than the four float32 values of that window: "
    f"{memory['indices_2bit_bytes'] / 1024:.0f} KiB for all five stages against "
    f"{memory['feature_bytes'] / 1024:.0f} KiB for their feature maps. PyTorch stores every "
    f"index as an int64 (8 bytes, {memory['indices_bytes'] / 1024:.0f} KiB), so the saving is "
    "only real with a compact encoding. FCN-8s keeps only two pooled maps "
    f"({sum(r['bytes'] for r in skips) / 1024:.0f} KiB), but its decoder has to learn where "
    "the edges are.")
widgets.show_code(SegNet.forward, SegNet.decoder_memory)
