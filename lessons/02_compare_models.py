"""Compare models: two to four segmenters on the same picture, side by side and in numbers."""

import pandas as pd
import streamlit as st

import seg
from app import compare, image_input, resources, share, widgets

chosen = image_input.current()

st.title("Compare models")
st.markdown(
    "**Goal:** run several networks on the same picture and judge them the way papers do: by "
    "what they get right, how sure they are, how big and how fast they are.")
st.markdown(
    r"""
A paper reports a model's **mIoU** on a benchmark: for every class, the overlap of predicted
and true pixels divided by their union (the IoU), then the mean over the classes. That number
is an average over thousands of images; on *your* picture a model can do much better or much
worse. Below, each model's published score sits next to what it does here.

Models only agree or disagree about a pixel when they answer with the **same list of
classes**: SegLab's models know 8 street classes, torchvision's pretrained ones the 21 PASCAL
VOC classes. Their label numbers mean different things, so they are never compared pixel by
pixel.
"""
)

available = resources.available_segmenters()
preferred = [n for n in ("fcn32s", "fcn8s", "segnet", "deeplab_v1_largefov") if n in available]
names = share.widget(st.multiselect, "Models to compare (2 to 4)", available, default=preferred,
                     max_selections=4, format_func=resources.title, key="compare_models")
if len(names) < 2:
    st.info("Pick at least two models to compare.")
    st.stop()
predictions = {n: p for n in names if (p := compare.predict(n, chosen)) is not None}
if len(predictions) < 2:
    st.info("Fewer than two of these models can run here: pick others.")
    st.stop()
names = list(predictions)
labels = {n: p.labels.numpy() for n, p in predictions.items()}  # each (H, W)
palettes = {n: widgets.palette(p.classes) for n, p in predictions.items()}
overlays = {n: seg.viz.overlay(chosen.array, labels[n], palettes[n], alpha=0.6) for n in names}

st.subheader("Side by side")
for column, name in zip(st.columns(len(names)), names):
    with column:
        st.image(overlays[name], caption=resources.title(name), width="stretch")
        widgets.provenance(predictions[name])
        widgets.legend(labels[name], predictions[name].classes, palettes[name])
        st.download_button(
            "Download the mask (PNG)", compare.mask_png(labels[name], palettes[name]),
            file_name=f"{compare.file_stem(chosen.name)}_{name}.png", mime="image/png",
            key=f"compare_download_{name}", on_click="ignore",
            help="Pixel values are class indices (0, 1, 2 …), shown in the class colours.")


@st.fragment
def blend_and_disagree() -> None:
    """Blend between two of the models and map where they disagree (reruns alone)."""
    a_column, b_column = st.columns(2)
    a = share.widget(a_column.selectbox, "Model A", names, index=0, format_func=resources.title,
                     key="compare_blend_a")
    b = share.widget(b_column.selectbox, "Model B", names, index=1, format_func=resources.title,
                     key="compare_blend_b")
    t = share.widget(st.slider, "From A to B", 0.0, 1.0, 0.5, 0.05, key="compare_blend_t",
                     help="Slide to fade from model A's answer to model B's.")
    left, right = st.columns(2)
    left.image(seg.viz.blend(overlays[a], overlays[b], t),
               caption=f"{100 - round(100 * t)}% {resources.title(a)}, "
                       f"{round(100 * t)}% {resources.title(b)}", width="stretch")
    with right:
        if predictions[a].classes != predictions[b].classes:
            st.info(f"{resources.title(a)} answers with "
                    f"{compare.class_set_name(predictions[a].classes)} and {resources.title(b)} "
                    f"with {compare.class_set_name(predictions[b].classes)}: the same label "
                    "number means different things, so there is no pixel-by-pixel comparison. "
                    "Pick two models with the same classes.")
            return
        differ = labels[a] != labels[b]  # (H, W)
        st.image(compare.highlight(chosen.array, differ),
                 caption="Red: pixels where A and B give different classes", width="stretch")
        st.metric("Pixels where they disagree", f"{differ.mean():.1%}",
                  help="Disagreement needs no ground truth: where two good models disagree, "
                       "at least one of them is wrong.")


st.subheader("Blend two models, see where they disagree")
blend_and_disagree()

st.subheader("In numbers")
class_sets = list({tuple(p.classes): list(p.classes) for p in predictions.values()}.values())
height, width = chosen.array.shape[:2]
uploaded = compare.ground_truth_upload((width, height), class_sets, key="compare_mask")
if uploaded is not None:
    truth, truth_classes = uploaded
    st.success(f"Scoring against your mask, labelled with "
               f"{compare.class_set_name(truth_classes)}.")
elif chosen.is_synthetic:
    truth, truth_classes = chosen.scene.labels, list(seg.synthetic.CLASSES)
    st.caption("Scored against the scene's exact labels.")
else:
    truth, truth_classes = None, None
    st.caption("Upload this picture's ground-truth mask to see each model's mIoU and pixel "
               "accuracy on it.")


def published(name: str) -> str:
    """The score published with the model's weights, and what it was measured on."""
    card = resources.segmenter(name, resources.device()).card
    if card.get("published"):
        dataset, values = next(iter(card["published"].items()))
        return (f"mIoU {values['miou']:.1f}%, pixel acc. {values['pixel_acc']:.1f}% "
                f"on {dataset} (torchvision)")
    if card.get("evaluation"):
        e = card["evaluation"]
        return (f"mIoU {100 * e['miou']:.1f}%, pixel acc. {100 * e['pixel_accuracy']:.1f}% "
                f"on {e['num_scenes']} unseen synthetic scenes (SegLab's model card)")
    return "— (random weights)"


def here(score) -> str:
    """A score of this picture in percent, or a dash where there is nothing to score against."""
    return "—" if score is None else f"{100 * score:.1f}"


rows = []
for name, prediction in predictions.items():
    scored = truth is not None and prediction.classes == truth_classes
    rows.append({
        "model": resources.title(name),
        "mIoU here (%)": here(seg.metrics.miou(labels[name], truth, len(truth_classes))
                              if scored else None),
        "pixel acc. here (%)": here(seg.metrics.pixel_accuracy(labels[name], truth,
                                                               len(truth_classes))
                                    if scored else None),
        "published": published(name),
        "latency (ms)": 1000 * prediction.seconds,
        "parameters (M)": resources.segmenter(name, resources.device()).num_parameters / 1e6,
        "weights": prediction.source,
    })
st.dataframe(pd.DataFrame(rows), hide_index=True, key="compare_table", column_config={
    "latency (ms)": st.column_config.NumberColumn(format="%.0f"),
    "parameters (M)": st.column_config.NumberColumn(format="%.2f")})
st.caption(
    f"Latency: one forward pass on {seg.devices.describe(resources.device()).label}, measured "
    "the first time each model saw this picture; predictions are cached, so revisiting shows "
    "that first time again. A model's very first run also pays for warming up.")
if truth is not None and any(p.classes != truth_classes for p in predictions.values()):
    st.caption(f"A dash “here”: those models answer with other classes than "
               f"{compare.class_set_name(truth_classes)}, so they cannot be scored on it.")

widgets.show_code(seg.metrics.miou, seg.metrics.confusion_matrix, seg.io.load_mask)
