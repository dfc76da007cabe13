"""DeepLab v1: atrous convolution keeps the scores at stride 8, a fully-connected CRF sharpens them."""

import numpy as np
import pandas as pd
import streamlit as st

import seg
from app import figures, image_input, resources, share, widgets
from seg.crf import experiments

NAME = "deeplab_v1_largefov"
STRIDES = (8, 16, 32)
HELD_OUT = 16
#: DeepLab v1 (Chen et al., ICLR 2015), PASCAL VOC 2012 val mIoU in %, without and with the CRF.
PAPER = [("DeepLab", 59.80, 63.74), ("DeepLab-LargeFOV", 62.25, 67.64)]

chosen = image_input.current()
device = resources.device()

st.title("DeepLab v1")
st.markdown(
    """
**Goal:** follow DeepLab v1 (Chen, Papandreou, Kokkinos, Murphy & Yuille, ICLR 2015) stage by
stage on your picture, and try its two answers to the two problems a classification network
has when it is asked to segment.

1. **Reduced resolution.** VGG-16 halves the picture five times (pooling with stride 2), so its
   last scores are 32 times coarser than the picture. DeepLab removes the subsampling of the
   last two poolings and, so that the later filters still see as much of the picture, spreads
   their taps apart: **atrous** (dilated) convolution, 2 in conv5 and 12 in fc6 for the
   *LargeFOV* version. The scores come out at **output stride 8**, and a fixed **bilinear**
   interpolation (nothing learned) brings them to the picture's size.
2. **Localisation.** A classifier is trained to give the same answer wherever the object
   is; that invariance blurs the borders of the score map. DeepLab does not fight it inside
   the network: it adds a **fully-connected CRF** after it, whose appearance kernel pulls
   pixels of similar colour towards the same label, so the borders follow the picture's edges
   (the CRF page takes it apart).
""")
st.latex(r"\text{picture} \xrightarrow{\ \text{atrous VGG-16}\ } \text{scores at stride } 8"
         r" \xrightarrow{\ \text{bilinear} \times 8\ } P(y_i) \xrightarrow{\ \text{dense CRF, 10 "
         r"mean-field iterations}\ } \text{labels}")

image = experiments.working_image(chosen.array)
image_key = f"{chosen.key}-{image.shape[0]}x{image.shape[1]}"
prediction = resources.predict(NAME, device, image_key, image)
widgets.provenance(prediction, device)
truth = chosen.scene.labels if chosen.is_synthetic else None
classes = prediction.classes
palette = widgets.palette(classes)

st.subheader("The two challenges as controls")
c1, c2, c3 = st.columns(3)
output_stride = share.widget(c1.radio,
                             "Output stride (challenge 1: resolution)", STRIDES, horizontal=True,
                             key="deeplab_output_stride",
                             help="8 is DeepLab. 16 and 32 put the stride back into pool4 and pool5 "
                                  "(32 is what VGG and FCN-32s have), with the same weights.")
use_crf = share.widget(c2.toggle, "CRF (challenge 2: localisation)", value=True, key="deeplab_crf",
                       help="The fully-connected CRF after the bilinear upsampling.")
iterations = share.widget(c3.slider, "Mean-field iterations", 1, 10, 10, key="deeplab_iterations",
                          disabled=not use_crf)
c1.caption("The same trained weights run at each stride: `set_output_stride` turns the "
           "stride-1 pools back into stride-2 ones and shrinks the dilations to match, on a "
           "copy of the network (the shared one is never changed).")


@st.cache_resource(max_entries=len(STRIDES), show_spinner=False)
def at_stride(device: str, output_stride: int):
    """A private copy of SegLab's DeepLab v1 running at `output_stride` (one per setting)."""
    return experiments.with_output_stride(resources.segmenter(NAME, device), output_stride)


@st.cache_data(max_entries=32, show_spinner="Running DeepLab v1…")
def pipeline(image_key, device, source, output_stride, iterations, _image):
    """The three stages on one picture, cached by picture, stride and CRF iterations."""
    return experiments.deeplab_pipeline(at_stride(device, output_stride), _image,
                                        iterations=iterations)


def stage_miou(labels: np.ndarray) -> float | None:
    """mIoU of a label map against the scene's true labels (None without them)."""
    return None if truth is None else seg.metrics.miou(labels, truth, len(classes))


stages = pipeline(image_key, device, prediction.source, output_stride,
                  iterations if use_crf else 0, image)
height, width = image.shape[:2]
coarse = stages.scores.argmax(0).numpy()  # (h, w)
coarse_at_pixels = seg.viz.upscale_nearest(coarse, output_stride)[:height, :width]  # (H, W)
bilinear = stages.probs.argmax(0).numpy()  # (H, W)
shown = [("picture", image, f"The picture, {width}×{height}"),
         ("scores", seg.viz.colorize(coarse, palette),
          f"① fc8 scores: {coarse.shape[1]}×{coarse.shape[0]} (stride {output_stride})"),
         ("bilinear", seg.viz.colorize(bilinear, palette), f"② bilinear ×{output_stride}")]
if stages.crf_probs is not None:
    final = stages.crf_probs.argmax(0).numpy()  # (H, W)
    shown.append(("crf", seg.viz.colorize(final, palette),
                  f"③ after the CRF, {iterations} iteration{'s' * (iterations > 1)}"))
else:
    final = bilinear
    shown.append(("crf", seg.viz.overlay(image, bilinear, palette, 0.6), "③ no CRF: ② on the "
                                                                         "picture"))
for column, (key, picture, title) in zip(st.columns(4), shown):
    column.plotly_chart(figures.image(picture, title, height=260), key=f"deeplab_stage_{key}")
widgets.legend(final, classes, palette)

m = st.columns(4)
m[0].metric("Network", f"{stages.seconds_network * 1000:.0f} ms",
            help="Forward pass and bilinear upsampling, on " + device + ".")
stage_help = {"① scores": f"Each score spread over its {output_stride}×{output_stride} block "
                          "of pixels, without interpolation."}
for column, (label, labels) in zip(m[1:], [("① scores", coarse_at_pixels),
                                           ("② bilinear", bilinear),
                                           ("③ after the CRF" if stages.crf_probs is not None
                                            else "③ (no CRF)", final)]):
    value = stage_miou(labels)
    column.metric(f"mIoU, {label}", "–" if value is None else f"{value:.2%}",
                  help=stage_help.get(label) if value is not None
                  else "Only synthetic scenes have true labels.")
if stages.crf_probs is not None:
    changed = float((final != bilinear).mean())
    st.caption(f"The CRF took {stages.seconds_crf * 1000:.0f} ms and changed {changed:.2%} of "
               f"the pixels. Scores at stride {output_stride}: one score per "
               f"{output_stride}×{output_stride} block of pixels.")


@st.cache_data(max_entries=16, show_spinner="Running every output stride…")
def stride_table(image_key, device, source, _image):
    """mIoU on this scene at each output stride, without and with the CRF."""
    rows = []
    for stride in STRIDES:
        result = pipeline(image_key, device, source, stride, 10, _image)
        rows.append({"output stride": stride,
                     "score map": f"{result.scores.shape[2]}×{result.scores.shape[1]}",
                     "mIoU without CRF": stage_miou(result.probs.argmax(0).numpy()),
                     "mIoU with CRF": stage_miou(result.crf_probs.argmax(0).numpy())})
    return rows


if truth is not None:
    st.markdown("**This scene at every output stride** (same weights; CRF with 10 iterations):")
    st.dataframe(pd.DataFrame(stride_table(image_key, device, prediction.source, image)),
                 hide_index=True, key="deeplab_strides", column_config={
                     c: st.column_config.NumberColumn(format="percent")
                     for c in ("mIoU without CRF", "mIoU with CRF")})
widgets.show_code(experiments.deeplab_pipeline, seg.models.deeplab_v1.DeepLabV1.set_output_stride)

st.subheader("The paper's table, and the same experiment on SegLab's scenes")
st.markdown(
    f"DeepLab v1 reports mIoU on PASCAL VOC 2012 val (1,449 photos, 21 classes) without and "
    f"with the CRF. SegLab repeats the experiment with its own DeepLab v1 LargeFOV on "
    f"{HELD_OUT} synthetic street scenes it never saw in training (8 classes, 256×256, the "
    f"CRF with DeepLab-LargeFOV's released parameters and 10 iterations). The data, classes "
    f"and network size differ, so compare the *gain*, not the numbers.")


@st.cache_data(max_entries=4, show_spinner=False)
def held_out(device, source):
    """mIoU with and without the CRF on the held-out scenes, for SegLab's DeepLab v1."""
    bar = st.progress(0.0, text="Segmenting held-out scenes…")
    table = experiments.crf_miou_table(
        resources.segmenter(NAME, device), experiments.held_out_scenes(HELD_OUT),
        progress=lambda done, total: bar.progress(done / total,
                                                  text=f"Scene {done} of {total}"))
    bar.empty()
    return table


table = held_out(device, prediction.source)
rows = [{"method": f"{method} (paper)", "data": "VOC 2012 val, 1,449 photos",
         "mIoU without CRF (%)": without, "mIoU with CRF (%)": with_crf,
         "gain (points)": with_crf - without} for method, without, with_crf in PAPER]
rows.append({"method": f"{resources.title(NAME)}"
                       + (" — untrained" if prediction.source == "untrained" else ""),
             "data": f"{HELD_OUT} held-out synthetic scenes",
             "mIoU without CRF (%)": table.miou_without * 100,
             "mIoU with CRF (%)": table.miou_with * 100, "gain (points)": table.gain * 100})
st.dataframe(pd.DataFrame(rows), hide_index=True, key="deeplab_table", column_config={
    "mIoU without CRF (%)": st.column_config.NumberColumn(format="%.2f"),
    "mIoU with CRF (%)": st.column_config.NumberColumn(format="%.2f"),
    "gain (points)": st.column_config.NumberColumn(format="%+.2f")})
r1, r2, r3 = st.columns(3)
r1.metric("SegLab: mIoU without CRF", f"{table.miou_without:.2%}")
r2.metric("SegLab: mIoU with CRF", f"{table.miou_with:.2%}", delta=f"{table.gain * 100:+.2f} points")
r3.metric("Pixel accuracy without → with", f"{table.accuracy_without:.1%} → {table.accuracy_with:.1%}")
if prediction.source == "untrained":
    st.warning("No checkpoint of SegLab's DeepLab v1 was found, so these numbers are those of a "
               "network with random weights: a CRF cannot rescue scores that carry no "
               "information. Train it with `python -m seg train deeplab_v1_largefov`.")
st.caption(f"mIoU over the {HELD_OUT} scenes together (their confusion matrices summed), as "
           f"VOC scores a method. Network {table.seconds_network:.1f} s, CRF "
           f"{table.seconds_crf:.1f} s in all, on {device}.")
with st.expander("Each scene"):
    st.dataframe(pd.DataFrame(table.rows), hide_index=True, key="deeplab_scenes",
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in ("mIoU without CRF", "mIoU with CRF", "pixels changed")})
widgets.show_code(experiments.crf_miou_table)
