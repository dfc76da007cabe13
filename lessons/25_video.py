"""Video segmentation (DAVIS): segment a clip frame by frame, follow an object, score J and F,
measure the flicker and smooth it away."""

import hashlib

import numpy as np
import streamlit as st

import seg
from app import figures, resources, share, widgets
from seg import video
from seg.io import ImageError
from seg.models import Prediction

CLASSES = list(seg.synthetic.CLASSES)
SIZE = 256  # synthetic clips are rendered, and uploads shrunk, to this many pixels per side
#: Colours of the mask comparison: found (both), predicted only, missed (true only).
MATCH_COLOURS = np.array([(40, 200, 40), (255, 80, 0), (30, 120, 255)], dtype=np.uint8)

st.title("Video segmentation (DAVIS)")
st.markdown(
    """
**Learning goal.** Segment a video frame by frame, follow one object through it and score the
result the way the DAVIS benchmark does, with region similarity **J** and boundary accuracy
**F**; see why a per-frame network *flickers* and measure what a simple temporal smoothing buys.

**DAVIS** (*Densely Annotated VIdeo Segmentation*) is a set of short clips in which every frame
carries a pixel-exact mask of the main objects: DAVIS 2016 has 50 clips with one object each,
DAVIS 2017 150 clips with several objects per clip. In its best-known task, *semi-supervised*
video object segmentation, a method receives the object's mask in the **first frame** and must
produce it in every later frame. Each frame is scored with two numbers:
"""
)
st.latex(r"\mathcal{J} = \frac{|M \cap G|}{|M \cup G|}"
         r"\qquad\qquad \mathcal{F} = \frac{2\,P_c\,R_c}{P_c + R_c}")
st.markdown(
    """
**J** (region similarity) is the IoU of the predicted mask M and the true mask G. **F**
(boundary accuracy) compares their contours: the contour precision P_c is the share of the
predicted contour that lies within a few pixels of the true one, the recall R_c the share of
the true contour near the predicted one. A blob in the right place scores a good J but a poor F;
the benchmark reports the means over frames and their average, **J&F**.
"""
)

# ---------------------------------------------------------------------------------------------
st.header("1 · A synthetic clip, segmented frame by frame")
st.markdown("SegLab's clips are drives down a synthetic street: the camera moves forward, cars "
            "drive and people walk, and every frame has exact labels and object ids. Here the "
            "network sees each frame on its own, like a photo, with no memory of the last one.")
a, b, c = st.columns(3)
with a:
    model = widgets.model_picker("Segmentation network", key="video_model")
seed = share.widget(b.number_input, "Clip seed", 0, 99_999, 7, key="video_seed",
                    help="Each seed is another street; the clip's first frame is that scene.")
n_frames = share.widget(c.slider, "Frames", 4, 24, 12, key="video_frames")
device = resources.device()


@st.cache_data(max_entries=8, show_spinner="Rendering the clip…")
def synthetic_clip(seed: int, frames: int) -> seg.synthetic.Clip:
    """A synthetic clip, cached by its settings."""
    return seg.synthetic.clip(seed, frames=frames, height=SIZE, width=SIZE)


@st.cache_data(max_entries=6, show_spinner=False)
def segment(name: str, device: str, clip_key: str, _frames: np.ndarray) -> video.ClipSegmentation:
    """Every frame's prediction, with a progress bar while it runs; cached by model, device and
    clip (the frames themselves are not hashed: `clip_key` names them)."""
    bar = st.progress(0.0, text="Segmenting frame by frame…")
    result = video.segment_clip(resources.segmenter(name, device), _frames,
                                callback=lambda done, total: bar.progress(
                                    done / total, text=f"Segmented frame {done} of {total}"))
    bar.empty()
    return result


def provenance(name: str, result: video.ClipSegmentation) -> None:
    """Which network ran and where its weights come from, with its time per frame."""
    segmenter = resources.segmenter(name, device)
    widgets.provenance(Prediction(probs=result.probs[0], labels=result.labels[0],
                                  classes=segmenter.classes, source=segmenter.source,
                                  seconds=float(np.mean(result.seconds)), model=name), device)
    st.caption(f"{len(result.seconds)} frames in {sum(result.seconds):.1f} s: "
               f"{np.mean(result.seconds) * 1000:.0f} ms per frame.")


clip = synthetic_clip(int(seed), int(n_frames))
result = segment(model, device, f"synthetic-{seed}-{n_frames}", clip.frames)
provenance(model, result)
classes = resources.segmenter(model, device).classes
palette = widgets.palette(classes)
street_model = list(classes) == CLASSES

# ---------------------------------------------------------------------------------------------
st.header("2 · Following one object")
st.markdown(
    """
The network labels classes (*car*), not objects (*this car*). To follow one object we do what
the semi-supervised task allows: start from its **true mask in the first frame**, and in every
frame keep the pixels predicted as its class inside its box from the previous frame, grown by a
quarter of its size (it moves and grows as the camera approaches). A same-class neighbour that
touches the box joins the mask: that is how simple trackers drift.
"""
)
candidates = [row for row in video.object_ids(clip.objects) if (clip.objects[0] == row[0]).any()]
if not candidates:
    st.warning("No car or person is visible in this clip's first frame; try another seed.")
    st.stop()
names = {i: f"{CLASSES[video.object_class(clip.labels, clip.objects, i)]} #{i} — visible in "
            f"{visible} of {len(clip.frames)} frames, ~{area} pixels"
         for i, visible, area in candidates}
object_id = share.widget(st.selectbox, "Object to follow", list(names), format_func=names.get,
                         key="video_object")
true_class = video.object_class(clip.labels, clip.objects, object_id)
if CLASSES[true_class] not in classes:
    st.warning(f"{resources.title(model)} has no class “{CLASSES[true_class]}”; pick another "
               "network or object.")
    st.stop()
model_class = list(classes).index(CLASSES[true_class])
truth = clip.objects == object_id  # (T, H, W)


def follow(labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The followed masks for these predicted labels, and their J and F per frame."""
    masks = video.follow_object(labels, truth[0], model_class)
    j, f = video.j_and_f(masks, truth)
    return masks, j, f


masks, j, f = follow(result.labels)


def comparison(frame: np.ndarray, mask: np.ndarray, true_mask: np.ndarray) -> np.ndarray:
    """The frame with found (green), extra (orange) and missed (blue) pixels, cropped around
    the object so that a small car is visible."""
    code = np.full(mask.shape, 255)  # 255: neither, the plain frame shows
    code[mask & true_mask], code[mask & ~true_mask], code[~mask & true_mask] = 0, 1, 2
    picture = seg.viz.overlay(frame, code, MATCH_COLOURS, alpha=0.75)
    rows, cols = np.nonzero(mask | true_mask)
    if rows.size == 0:
        return picture
    half = max(24, (rows.max() - rows.min()) // 2 + 12, (cols.max() - cols.min()) // 2 + 12)
    cy, cx = (rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2
    top, left = np.clip([cy - half, cx - half], 0, None)
    return picture[top:cy + half, left:cx + half]


@st.fragment
def scrubber() -> None:
    t = share.widget(st.slider, "Frame", 0, len(clip.frames) - 1, 0, key="video_frame")
    left, middle, right = st.columns(3)
    left.plotly_chart(figures.image(clip.frames[t], f"Frame {t}"), key="video_scrub_frame")
    middle.plotly_chart(figures.image(seg.viz.overlay(clip.frames[t], result.labels[t].numpy(),
                                                      palette), "Prediction"),
                        key="video_scrub_prediction")
    right.plotly_chart(figures.image(comparison(clip.frames[t], masks[t], truth[t]),
                                     f"Object #{object_id}: J {j[t]:.2f}, F {f[t]:.2f}"),
                       key="video_scrub_mask")
    widgets.legend(result.labels[t].numpy(), classes, palette)
    swatches = "".join(
        f"<span style='display:inline-block;width:.9em;height:.9em;background:{seg.viz.to_hex(c)};"
        f"vertical-align:middle;margin:0 .3em 0 .8em'></span>{name}"
        for c, name in zip(MATCH_COLOURS, ("found", "predicted but not the object", "missed")))
    st.markdown(f"<small>Right: the followed mask against the truth, zoomed on the object."
                f"{swatches}</small>", unsafe_allow_html=True)


scrubber()

jf_figure = figures.curves({"J (region similarity)": (list(range(len(j))), j.tolist()),
                            "F (boundary accuracy)": (list(range(len(f))), f.tolist())},
                           f"J and F of object #{object_id} in every frame", xlabel="frame",
                           ylabel="score", height=280)
st.plotly_chart(jf_figure.update_yaxes(range=(0, 1.05)), key="video_jf")
cols = st.columns(3)
cols[0].metric("J mean", f"{j.mean():.3f}")
cols[1].metric("F mean", f"{f.mean():.3f}")
cols[2].metric("J&F mean", f"{(j.mean() + f.mean()) / 2:.3f}")
with st.expander("Per frame: the pixel counts behind J"):
    overlap = (masks & truth).reshape(len(masks), -1).sum(axis=1)
    st.dataframe({"frame": list(range(len(masks))),
                  "true pixels": truth.reshape(len(truth), -1).sum(axis=1).tolist(),
                  "predicted pixels": masks.reshape(len(masks), -1).sum(axis=1).tolist(),
                  "overlap": overlap.tolist(), "J": j.round(4).tolist(), "F": f.round(4).tolist()},
                 hide_index=True, key="video_table")
    st.caption("J = overlap / (true + predicted − overlap).")

# ---------------------------------------------------------------------------------------------
st.header("3 · Flicker, and a temporal smoothing that reduces it")
st.markdown(
    """
A network that sees frames one by one changes its mind from frame to frame where nothing
changed: the segmentation **flickers**. Labels also change for good reasons (the camera moves,
cars drive), so we measure flicker as the share of pixels whose label changes between
consecutive frames **minus the ground truth's own share**: what the model adds.

The simplest cure is memory: average the class probabilities over time with an exponential
moving average, and take the most likely class of the average.
"""
)
st.latex(r"\bar p_t = m\,\bar p_{t-1} + (1 - m)\,p_t,\qquad \hat y_t = \arg\max_c \bar p_t(c)")
momentum = share.widget(st.slider, "Memory m (0 = no smoothing)", 0.0, 0.9, 0.3, step=0.05,
                        key="video_momentum",
                        help="A label then changes only when new evidence outweighs the remembered "
                             "one; the price is lag: an edge that moves is reported where it was "
                             "about m / (1 − m) frames ago.")
smoothed = video.smooth_ema(result.probs, momentum).argmax(dim=1)  # (T, H, W)
truth_flicker = video.flicker(clip.labels)
runs = {"per-frame network": result.labels, f"smoothed (m = {momentum:.2f})": smoothed}
added = {name: video.flicker(labels) - truth_flicker for name, labels in runs.items()}
errors = {name: video.change_errors(labels, clip.labels) for name, labels in runs.items()}
scores = {name: follow(labels)[1:] for name, labels in runs.items()}  # (J, F) per frame
jf = {name: (jj.mean() + ff.mean()) / 2 for name, (jj, ff) in scores.items()}
before, after = runs
transitions = list(range(1, len(clip.frames)))
st.plotly_chart(figures.curves(
    {name: (transitions, (values * 100).tolist()) for name, values in added.items()},
    "Flicker added by the model: % of pixels changing label, minus the truth's own change",
    xlabel="frame (compared with the one before)", ylabel="% of pixels", height=280),
    key="video_flicker")
cols = st.columns(4)
cols[0].metric("Flicker before", f"{added[before].mean():.2%}",
               help="Mean over consecutive frame pairs of the share of pixels changing label, "
                    f"minus the truth's own share ({truth_flicker.mean():.2%}).")
cols[1].metric("Flicker after smoothing", f"{added[after].mean():.2%}",
               delta=f"{(added[after].mean() - added[before].mean()) * 100:+.2f} points",
               delta_color="inverse")
cols[2].metric("J&F after smoothing", f"{jf[after]:.3f}", delta=f"{jf[after] - jf[before]:+.3f}")
if street_model:
    miou = {name: seg.metrics.miou(labels, clip.labels, len(CLASSES))
            for name, labels in runs.items()}
    cols[3].metric("Clip mIoU after smoothing", f"{miou[after]:.3f}",
                   delta=f"{miou[after] - miou[before]:+.3f}")
else:
    miou = {name: float("nan") for name in runs}
    st.caption(f"{resources.title(model)} predicts other classes than the street's, so the "
               "clip's mIoU against SegLab's labels is not shown.")
st.markdown("The added flicker is a **net** number: label changes where the truth did not "
            "change (noise) minus true changes the prediction did not follow (lag). Smoothing "
            "trades the first for the second:")
st.table({"": list(runs),
          "flicker added": [f"{added[n].mean():.2%}" for n in runs],
          "changes where the truth did not change": [f"{errors[n][0].mean():.2%}" for n in runs],
          "true changes not followed": [f"{errors[n][1].mean():.2%}" for n in runs],
          "clip mIoU": [f"{miou[n]:.3f}" for n in runs],
          "J&F mean": [f"{jf[n]:.3f}" for n in runs]})
st.caption("Flicker below zero means the prediction changes less than the truth does: the "
           "smoothing holds labels back while the scene moves. Raise m to see the lag grow.")

# ---------------------------------------------------------------------------------------------
st.header("4 · Your own clip")
st.markdown(
    f"""
Upload a short clip as an **animated GIF, WebP or PNG** (at most {video.MAX_FRAMES} frames and
{video.MAX_SIDE} pixels per side; frames are shrunk to {SIZE} pixels for the network). Videos
(MP4, MOV, WebM) need FFmpeg to decode, which SegLab does not install: convert them first, e.g.
`ffmpeg -i clip.mp4 -t 4 -vf fps=6,scale=256:-1 clip.gif`. Without ground truth there is no J,
F or mIoU, but the flicker and its smoothing can still be measured (here the raw share of
pixels changing label, since the truth's own change is unknown).
"""
)
# Videos and still JPEGs are let through so that read_clip can say why they are refused.
upload = st.file_uploader("Your clip", key="video_upload",
                          type=["gif", "webp", "png", "apng", "mp4", "mov", "webm", "avi", "jpg",
                                "jpeg"])


@st.cache_data(max_entries=4, show_spinner="Decoding the clip…")
def read_upload(data: bytes) -> np.ndarray:
    """The uploaded clip's frames (raises ImageError with its sentence)."""
    return video.read_clip(data, fit_side=SIZE)


if upload is None:
    st.caption("No clip uploaded yet.")
else:
    data = upload.getvalue()
    try:
        frames = read_upload(data)
    except ImageError as error:
        st.error(f"“{upload.name}”: {error}", icon="🚫")
    else:
        key = hashlib.sha1(data).hexdigest()[:16]
        own = segment(model, device, f"upload-{key}", frames)
        provenance(model, own)
        own_smoothed = video.smooth_ema(own.probs, momentum).argmax(dim=1)  # (T, H, W)
        own_raw_flicker, own_smooth_flicker = video.flicker(own.labels), video.flicker(own_smoothed)
        cols = st.columns(3)
        cols[0].metric("Frames", f"{len(frames)} × {frames.shape[2]}×{frames.shape[1]}")
        cols[1].metric("Your clip's flicker", f"{own_raw_flicker.mean():.2%}",
                       help="Share of pixels changing label between consecutive frames.")
        change = (own_smooth_flicker.mean() - own_raw_flicker.mean()) * 100
        cols[2].metric(f"Your clip's flicker after smoothing (m = {momentum:.2f})",
                       f"{own_smooth_flicker.mean():.2%}", delta=f"{change:+.2f} points",
                       delta_color="inverse")

        @st.fragment
        def own_scrubber() -> None:
            t = share.widget(st.slider,
                             "Frame of your clip", 0, len(frames) - 1, 0, key="video_upload_frame")
            left, middle, right = st.columns(3)
            left.plotly_chart(figures.image(frames[t], f"Frame {t}"), key="video_own_frame")
            middle.plotly_chart(figures.image(seg.viz.overlay(frames[t], own.labels[t].numpy(),
                                                              palette), "Per-frame prediction"),
                                key="video_own_prediction")
            right.plotly_chart(figures.image(seg.viz.overlay(frames[t], own_smoothed[t].numpy(),
                                                             palette), "Smoothed prediction"),
                               key="video_own_smoothed")

        own_scrubber()
        widgets.legend(own.labels.flatten(end_dim=1).numpy(), classes, palette)  # all frames

widgets.show_code(video.segment_clip, video.follow_object, video.j_and_f, video.flicker,
                  video.smooth_ema, video.read_clip)
