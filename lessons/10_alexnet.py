"""AlexNet: ReLU, dropout and the 227×227 network — three of its choices, measured live."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
import torch
import torchvision

import seg
from app import figures, image_input, resources, share, widgets
from seg import live
from seg.models import pretrained

chosen = image_input.current()

st.title("AlexNet: ReLU, dropout and the 227×227 network")
st.markdown(
    """
**Learning goal:** see why AlexNet (Krizhevsky, Sutskever & Hinton, 2012) used **ReLU** units
instead of tanh, what **dropout**, **L1** and **L2** do to a network that has too little data,
and how a 227×227 picture shrinks to 1000 class scores layer by layer.

AlexNet won ImageNet 2012 by a wide margin and started the deep-learning years of computer
vision. Every segmentation network in SegLab begins as such a classifier, so its choices are
still inside them.
"""
)

# --- 1. Activations --------------------------------------------------------------------------
st.header("1 · ReLU, tanh and sigmoid")
st.markdown(
    """
A unit adds up its weighted inputs to a number $x$ and passes it through an activation $f$.
Backpropagation multiplies the gradient by $f'(x)$ at every layer it goes through. Where
$f'(x)$ is close to zero the unit is **saturated**: whatever its weights, almost no gradient
reaches them, and the layers below learn slowly. tanh and sigmoid saturate on **both** sides;
ReLU never saturates for positive inputs (slope exactly 1) and is simply off for negative ones.
"""
)
st.latex(r"\mathrm{ReLU}(x)=\max(0,x),\ \ \mathrm{ReLU}'(x)=[x>0]\qquad"
         r"\tanh'(x)=1-\tanh^2 x\qquad"
         r"\sigma(x)=\frac{1}{1+e^{-x}},\ \ \sigma'(x)=\sigma(x)(1-\sigma(x))")

X = np.linspace(-6, 6, 601)
NAMES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}
columns = st.columns(3)
for column, name in zip(columns, NAMES):
    f, slope = live.activation_curves(name, X)
    fig = go.Figure([go.Scatter(x=X, y=f, name=f"{NAMES[name]}(x)", mode="lines"),
                     go.Scatter(x=X, y=slope, name="derivative", mode="lines",
                                line=dict(dash="dash"))])
    for start, end in live.saturating(name, X):
        fig.add_vrect(x0=start, x1=end, fillcolor="#e45756", opacity=0.12, line_width=0)
    fig.update_layout(title=f"{NAMES[name]}: slope < 10% of its maximum in red", height=280,
                      margin=dict(l=0, r=0, t=30, b=0), legend=dict(orientation="h", y=-0.15),
                      xaxis_title="x", yaxis_range=[-1.1, 1.6])
    column.plotly_chart(fig, key=f"alexnet_activation_{name}")
st.caption("The dashed lines are the derivatives, computed by autograd through the same "
           "`nn.ReLU`, `nn.Tanh` and `nn.Sigmoid` the networks below use. The sigmoid's "
           "slope is at most 0.25: stacked, such layers shrink the gradient fourfold each.")

# --- 2. The race -----------------------------------------------------------------------------
st.header("2 · The race: ReLU against tanh")
st.markdown(
    """
AlexNet's Figure 1: a four-layer network on CIFAR-10 reached **25 % training error six times
sooner** with ReLUs than the same network with tanh units. Here the same experiment runs
on this computer: SegLab's small AlexNet (five convolutions, three fully-connected layers, no
batch norm — it came three years later) learns to name the class at the centre of 32×32
patches cut from synthetic street scenes (8 classes: guessing gives 87.5 % error). Both runs
start from the same random draws, see the same batches in the same order with the same
learning rate (SGD with momentum 0.9, as AlexNet); **only the activation differs**. The
training error is that of each mini-batch before its update, averaged over 20 steps, as papers
plot it.
"""
)
c1, c2, c3 = st.columns(3)
race_steps = share.widget(c1.select_slider, "Training steps", [200, 300, 400, 600], value=400,
                          key="alexnet_race_steps")
race_lr = share.widget(c2.select_slider, "Learning rate", [0.01, 0.02, 0.03, 0.05], value=0.03,
                       key="alexnet_race_lr",
                       help="The same for both. Try 0.01: at small steps tanh rarely "
                            "saturates and the gap closes.")
race_seed = share.widget(c3.number_input, "Seed", 0, 999, 0, key="alexnet_race_seed")


def progress_bar(text: str):
    """A progress bar and the callback that moves it (called inside the cached trainers, so
    that a cache hit replays nothing but an emptied bar)."""
    bar = st.progress(0.0, text=text)
    return bar, lambda fraction, label: bar.progress(min(1.0, fraction), text=f"{text} {label}")


@st.cache_data(max_entries=16, show_spinner=False)
def run_race(steps: int, lr: float, seed: int) -> live.Race:
    """The ReLU vs tanh race, trained once per setting (2048 patches, batch 64)."""
    bar, report = progress_bar("Training both networks…")
    result = live.race(("relu", "tanh"), steps=steps, lr=lr, seed=seed, callback=report)
    bar.empty()
    return result


result = run_race(race_steps, race_lr, race_seed)


@st.fragment
def race_view(result: live.Race) -> None:
    """Curves and steps-to-target; moving the target only redraws this part."""
    target = share.widget(st.slider, "Target training error", 0.20, 0.80, 0.50, 0.05,
                          key="alexnet_race_target",
                          help="AlexNet's Figure 1 used 25 % on CIFAR-10.")
    reached = result.steps_to(target)
    speedup = result.speedup(target)
    m1, m2, m3, m4 = st.columns(4)
    for column, name in ((m1, "relu"), (m2, "tanh")):
        column.metric(f"Steps to {target:.0%} error, {NAMES[name]}",
                      reached[name] if reached[name] is not None
                      else f"> {len(result.error[name])}")
    if speedup is None:
        m3.metric("ReLU's speed-up measured here", "—",
                  help="ReLU did not reach this error: lower the target or train longer.")
    else:
        bound = "≥ " if reached["tanh"] is None else ""
        m3.metric("ReLU's speed-up measured here", f"{bound}{speedup:.1f}×")
    m4.metric("AlexNet's (CIFAR-10, 25 % error)", "≈ 6×")
    steps = np.arange(1, len(result.error["relu"]) + 1)
    left, right = st.columns(2)
    error_fig = figures.curves({f"{NAMES[n]}": (steps, result.smoothed_error(n))
                                for n in result.names},
                               "Training error (mini-batch, 20-step average)", ylabel="error")
    error_fig.add_hline(y=target, line_dash="dot", annotation_text=f"target {target:.0%}")
    for name in result.names:
        if reached[name] is not None:
            error_fig.add_vline(x=reached[name], line_dash="dot", line_color="#888")
    left.plotly_chart(error_fig, key="alexnet_race_error")
    right.plotly_chart(figures.curves({f"{NAMES[n]}": (steps, live.moving_average(
        result.loss[n], result.window)) for n in result.names},
        "Training loss (cross-entropy, 20-step average)", ylabel="loss"),
        key="alexnet_race_loss")


race_view(result)
st.caption(
    f"Trained on this computer's CPU: ReLU in {result.seconds['relu']:.1f} s, tanh in "
    f"{result.seconds['tanh']:.1f} s ({result.settings['train_size']} training patches, batch "
    f"{result.settings['batch_size']}). After the last step, error on all training patches: "
    f"ReLU {result.train_error['relu']:.0%}, tanh {result.train_error['tanh']:.0%}; on patches "
    f"of unseen scenes: ReLU {result.val_error['relu']:.0%}, tanh "
    f"{result.val_error['tanh']:.0%}.")
st.markdown(
    """
Why a smaller factor than AlexNet's? The paper picked the best learning rate for each network
and trained for many epochs; this network is initialised with the scale that suits its
activation (Kaiming's gain 5/3 for tanh), a trick from 2015 that keeps tanh units out of
saturation at the start. The larger the learning rate, the sooner the weights grow and tanh
units saturate: at 0.05 the tanh network hardly learns while the ReLU one still does.
"""
)

# --- 3. Regularisation -----------------------------------------------------------------------
st.header("3 · Too little data: dropout, L1 and L2")
st.markdown(
    """
AlexNet's 60 million parameters could memorise its 1.2 million training pictures. It fought
this with data augmentation and **dropout** (p = 0.5 before fc6 and fc7) and a small **weight
decay** (an L2 penalty, λ = 0.0005). To see overfitting happen in seconds, the small AlexNet
now trains on only **256 patches** and is tested on 1024 patches of scenes it never saw. Four
networks from the same start: one without regularisation and one with each regulariser, at
the strengths you choose:
"""
)
st.latex(r"\text{L1: } \mathcal{L} + \lambda_1 \sum_w |w| \qquad\qquad "
         r"\text{L2: } \mathcal{L} + \frac{\lambda_2}{2} \sum_w w^2 \qquad\qquad "
         r"\text{dropout: } h \leftarrow \frac{m \odot h}{1-p},\ m_i \sim \mathrm{Bernoulli}(1-p)")
st.markdown(
    "L1's gradient is a constant pull λ₁·sign(w) towards zero: small weights reach zero and "
    "stay there (a **sparse** net). L2's pull λ₂·w is proportional to the weight: every weight "
    "shrinks, none becomes exactly zero (**small** weights). Dropout does not touch the "
    "weights at all: it removes random units at every step so that no unit can rely on "
    "another. Training uses plain SGD so that L2 is this penalty; AdamW's `weight_decay` "
    "shrinks weights outside the gradient (decoupled), which is not the same thing.")
r1, r2, r3 = st.columns(3)
dropout = share.widget(r1.slider, "Dropout rate p", 0.1, 0.9, 0.5, 0.1, key="alexnet_dropout")
l1 = share.widget(r2.select_slider, "L1 strength λ₁", [1e-4, 3e-4, 1e-3, 2e-3, 3e-3], value=1e-3,
                  format_func=lambda v: f"{v:g}", key="alexnet_l1")
l2 = share.widget(r3.select_slider, "L2 strength λ₂", [3e-3, 1e-2, 3e-2, 1e-1], value=3e-2,
                  format_func=lambda v: f"{v:g}", key="alexnet_l2")


@st.cache_data(max_entries=32, show_spinner=False)
def run_regularised(label: str, dropout: float, l1: float, l2: float) -> live.Regularised:
    """One regularised network, trained once per setting."""
    bar, report = progress_bar(f"Training the network with {label}…")
    result = live.regularised(dropout, l1, l2, callback=report)
    bar.empty()
    return result


RUNS = {"none": (0.0, 0.0, 0.0), f"dropout {dropout:g}": (dropout, 0.0, 0.0),
        f"L1 {l1:g}": (0.0, l1, 0.0), f"L2 {l2:g}": (0.0, 0.0, l2)}
runs = {label: run_regularised(label, *setting) for label, setting in RUNS.items()}

labels = list(runs)
gap_fig = go.Figure([
    go.Bar(name="training error", x=labels, y=[r.train_error[-1] for r in runs.values()]),
    go.Bar(name="validation error (unseen scenes)", x=labels,
           y=[r.val_error[-1] for r in runs.values()])])
gap_fig.update_layout(barmode="group", title="Error after training", height=300,
                      margin=dict(l=0, r=0, t=30, b=0), yaxis=dict(title="error", range=[0, 1]),
                      legend=dict(orientation="h"))
st.plotly_chart(gap_fig, key="alexnet_gap")
# Binned here: 4 × 320 000 raw weights would make a figure of tens of megabytes.
edges = np.linspace(-0.3, 0.3, 121)
centres = (edges[:-1] + edges[1:]) / 2
hist_fig = make_subplots(rows=1, cols=len(runs), shared_yaxes=True,
                         subplot_titles=list(runs), horizontal_spacing=0.02)
for i, (label, r) in enumerate(runs.items(), start=1):
    counts, _ = np.histogram(np.clip(r.weights, edges[0], edges[-1]), edges)
    hist_fig.add_trace(go.Bar(x=centres, y=counts / len(r.weights), name=label, width=0.005,
                              marker_line_width=0, showlegend=False,
                              hovertemplate="w ≈ %{x:.3f}: %{y:.2%} of weights<extra></extra>"),
                       row=1, col=i)
# One labelled tick per decade: plotly's own minor labels ("2", "5") hide their decade.
decades = [10.0 ** e for e in range(-6, 1)]
hist_fig.update_yaxes(type="log", tickvals=decades, ticktext=[f"{d * 100:g}%" for d in decades])
hist_fig.update_yaxes(title_text="share of weights", row=1, col=1)
hist_fig.update_xaxes(title_text="weight", range=[-0.3, 0.3])
hist_fig.update_layout(title="Weights of all conv and FC layers (log scale; the ends collect "
                             "everything beyond ±0.3)", height=280,
                       margin=dict(l=0, r=0, t=60, b=0), bargap=0)
st.plotly_chart(hist_fig, key="alexnet_weights")
table = pd.DataFrame({
    "regularisation": labels,
    "training error": [r.train_error[-1] for r in runs.values()],
    "validation error": [r.val_error[-1] for r in runs.values()],
    "gap": [r.gap for r in runs.values()],
    "weights |w| < 0.001": [r.near_zero() for r in runs.values()],
    "RMS of weights": [r.rms for r in runs.values()],
    "seconds": [r.seconds for r in runs.values()],
})
st.dataframe(table, hide_index=True, key="alexnet_regularisation_table", column_config={
    c: st.column_config.NumberColumn(format="percent")
    for c in ("training error", "validation error", "gap", "weights |w| < 0.001")} | {
    "RMS of weights": st.column_config.NumberColumn(format="%.4f"),
    "seconds": st.column_config.NumberColumn(format="%.1f")})
first = runs["none"]
st.caption(
    f"Each network: {first.steps[-1]} SGD steps of 32 patches (so {first.steps[-1] * 32 // 256} "
    "passes over the 256 training patches), trained on this computer's CPU. The gap is "
    "validation error minus training error: how much the network learnt by heart.")
others = [label for label in labels if label != "none"]
st.markdown(
    f"Measured here: the gap goes from **{first.gap:.0%}** without regularisation to "
    + ", ".join(f"**{runs[label].gap:.0%}** with {label}" for label in others)
    + "; the validation error from "
    f"{first.val_error[-1]:.0%} to "
    + ", ".join(f"{runs[label].val_error[-1]:.0%}" for label in others)
    + ". A smaller gap is not always a better network: a regulariser can close it by keeping "
    "the training error up. Dropout in particular slows learning down (the AlexNet paper: it "
    "\"roughly doubles the number of iterations required to converge\"), and a few hundred "
    "steps are not enough for it to catch up. In the histogram, L1 piles the weights up at "
    "exactly zero, L2 squeezes them all towards it, and dropout leaves their spread as it was.")

# --- 4. The 227×227 network ------------------------------------------------------------------
st.header("4 · The real AlexNet, layer by layer")
st.markdown(
    """
Now the full-size network. Five convolutions and three fully-connected layers; the first
convolution has 11×11 filters with stride 4, overlapping 3×3 max-pools with stride 2 follow
conv1, conv2 and conv5. Each table below is measured, not typed in: a 1×3×H×W input goes
through the network and a hook on every layer records its output shape. Two definitions:

- **the paper's**: 96 conv1 filters, trained split over two GPUs, so conv2, conv4 and conv5
  see only the half of the maps on their own GPU (convolutions with 2 groups), plus local
  response normalisation after conv1 and conv2;
- **torchvision's** `alexnet`: the one-GPU variant from Krizhevsky's 2014 "One weird trick"
  paper: **64** conv1 filters, 192 in conv2, no groups, no normalisation, and padding 2 in
  conv1.

The paper says its input is 224×224, but with an 11×11 filter at stride 4 and no padding only
227 works out: (227 − 11) / 4 + 1 = 55. Switch to 224 to see both networks disagree.
"""
)
size = share.widget(st.radio, "Input size", [227, 224], horizontal=True, key="alexnet_input_size",
                    format_func=lambda s: f"{s}×{s}")


@st.cache_data(max_entries=4, show_spinner=False)
def tables(size: int) -> dict[str, tuple[list[live.LayerRow], str | None]]:
    """Both AlexNets layer by layer (built on the meta device: shapes, no memory), each with
    the sentence explaining why the input does not fit, if it does not."""
    with torch.device("meta"):
        torchvision_alexnet = torchvision.models.alexnet(weights=None)
    result = {}
    for key, net in (("paper", live.paper_alexnet()), ("torchvision", torchvision_alexnet)):
        try:
            result[key] = (live.layer_table(net, (size, size)), None)
        except live.ShapeMismatch as mismatch:
            result[key] = (mismatch.rows, str(mismatch))
    return result


def frame(rows: list[live.LayerRow]) -> pd.DataFrame:
    """A layer table as a data frame, with a total row."""
    data = pd.DataFrame({"layer": [r.name for r in rows], "what": [r.hyper for r in rows],
                         "output": [r.shape_text for r in rows],
                         "parameters": [r.params for r in rows]})
    total = pd.DataFrame({"layer": ["total"], "what": [""], "output": [""],
                          "parameters": [sum(r.params for r in rows)]})
    return pd.concat([data, total], ignore_index=True)


measured = tables(size)
left, right = st.columns(2)
for column, title, key in ((left, "The paper (2012), two GPUs", "paper"),
                           (right, "torchvision's `alexnet`, one GPU", "torchvision")):
    rows, mismatch = measured[key]
    column.subheader(title)
    column.metric(f"conv1 output for {size}×{size}", rows[0].shape_text,
                  help="height × width × channels")
    if mismatch:
        column.warning(mismatch, icon="⚠️")
    column.dataframe(frame(rows), hide_index=True, key=f"alexnet_table_{key}",
                     height=35 * (len(rows) + 2) + 3, column_config={
                         "layer": st.column_config.TextColumn(width=60),
                         "output": st.column_config.TextColumn("output (H×W×C)", width=100),
                         "parameters": st.column_config.NumberColumn(format="localized",
                                                                     width=95)})
paper_rows = tables(227)["paper"][0]
fc = sum(r.params for r in paper_rows if r.kind == "fully connected")
total = sum(r.params for r in paper_rows)
st.markdown(
    f"The paper's network has **{total / 1e6:.1f} million** parameters, "
    f"**{fc / total:.0%}** of them in the three fully-connected layers; the convolutions do "
    "most of the computation with a few per cent of the weights. That is why turning the "
    "fully-connected layers into convolutions (the FCN lesson) changes what a network can "
    "look at without changing what it has learnt.")

# --- 5. With ImageNet weights ----------------------------------------------------------------
st.header("5 · What the trained AlexNet sees")


@st.cache_resource(max_entries=2, show_spinner="Loading AlexNet's ImageNet weights…")
def imagenet_classifier(name: str, device: str):
    """torchvision's pretrained classifier, loaded once for all students."""
    return seg.models.load_classifier(name, device=device)


if not pretrained.is_cached("alexnet"):
    st.info(
        "torchvision's ImageNet weights for AlexNet are **not on this computer** "
        f"(looked for `{pretrained.cache_path('alexnet')}`), so its first-layer filters and "
        "its top-5 classes for your picture cannot be shown. With internet, download them "
        "(233 MB) with the sidebar's *Pretrained weights* panel or with "
        "`python -m seg weights download alexnet`, then reload this page.", icon="ℹ️")
else:
    classifier = imagenet_classifier("alexnet", resources.device())
    st.markdown(
        "AlexNet's Figure 3 showed its 96 conv1 filters: oriented edges and colour blobs, "
        "learnt from ImageNet without anybody asking for them. Here are torchvision's 64, and "
        f"the five classes it finds most likely in **{chosen.name}** (ImageNet's 1000 classes; "
        "a synthetic street has no ImageNet label, but cars and street signs are among them).")
    filters = live.first_layer_filters(classifier.module)  # (64, 11, 11, 3)
    grid = live.mosaic(np.repeat(np.repeat(filters, 3, axis=1), 3, axis=2), columns=8, gap=3)
    left, right = st.columns(2)
    left.plotly_chart(figures.image(grid, "conv1's 64 filters (11×11×3 each)"),
                      key="alexnet_filters")
    top5 = classifier.predict(chosen.array, top=5)
    right.plotly_chart(figures.bars([n for n, _ in top5], [p for _, p in top5],
                                    f"Top-5 for {chosen.name}"), key="alexnet_top5")
    top1 = pretrained.published_metrics("alexnet")["ImageNet-1K"]["acc@1"]
    right.caption(f"torchvision's AlexNet with pretrained ImageNet weights ({top1:.1f} % top-1 "
                  f"on ImageNet's validation set, as published), on {resources.device()}.")

widgets.show_code(live.race, live.regularised, live.layer_table, live.paper_alexnet)
