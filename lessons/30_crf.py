"""Conditional random fields: a linear chain along a row of pixels, then DeepLab's dense CRF."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import seg
from app import figures, image_input, resources, serving, share, widgets
from seg.crf import DEEPLAB_V1_LARGEFOV, SEARCH_RANGES, experiments

ITERATIONS = 10
MAX_STEPS = 200
HELD_OUT = 16
#: Slider ranges when no search grid is chosen: (low, high, step) per parameter.
WIDE = {"w1": (0.0, 10.0, 0.5), "theta_alpha": (5.0, 200.0, 1.0), "theta_beta": (1.0, 30.0, 0.5),
        "w2": (0.0, 10.0, 0.5), "theta_gamma": (1.0, 10.0, 0.5)}
RELEASED = "DeepLab-LargeFOV's released values"
PRESETS = [RELEASED, *SEARCH_RANGES]
PARAM_LABELS = {"w1": "w₁ (appearance weight)", "theta_alpha": "θα (appearance: space, px)",
                "theta_beta": "θβ (appearance: colour, 0–255)", "w2": "w₂ (smoothness weight)",
                "theta_gamma": "θγ (smoothness: space, px)"}

chosen = image_input.current()
device = resources.device()

st.title("Conditional random fields")
st.markdown(
    """
**Goal:** see how a conditional random field makes the labels of neighbouring pixels agree:
first exactly, on one row of pixels (a linear chain, where the normaliser Z(x), the best
labelling and the gradient of the likelihood are all computable), then approximately, on every
pair of pixels of the picture (the fully-connected CRF that DeepLab v1 puts after its network).

A segmentation network decides every pixel **on its own**: it outputs one distribution per
pixel, and taking the most likely class everywhere can give a speckled map. A CRF is a model
of the whole labelling y given the picture x. Like logistic regression it is *discriminative*:
it models p(y | x) and never p(x). Its score adds up features f of the picture and of pairs of
neighbouring labels, weighted by λ, and the exponential of the score is divided by **Z(x)**,
the sum over *all* labellings, so that the probabilities add up to one:
""")
st.latex(r"p(y \mid x) = \frac{\exp\big(\sum_i \lambda \cdot f(x, y_{i-1}, y_i)\big)}{Z(x)},"
         r"\qquad Z(x) = \sum_{y'} \exp\Big(\sum_i \lambda \cdot f(x, y'_{i-1}, y'_i)\Big)")

name = widgets.model_picker("Network whose probabilities both CRFs start from", key="crf_model",
                            default="deeplab_v1_largefov")
image = experiments.working_image(chosen.array)
image_key = f"{chosen.key}-{image.shape[0]}x{image.shape[1]}"
prediction = resources.predict(name, device, image_key, image)
widgets.provenance(prediction, device)
classes = prediction.classes
palette = widgets.palette(classes)
street_model = classes == list(seg.synthetic.CLASSES)
truth = chosen.scene.labels if chosen.is_synthetic and street_model else None
if chosen.is_synthetic and not street_model:
    st.caption("This network knows the 21 PASCAL VOC classes, not the street classes of the "
               "scene, so its answers cannot be scored against the scene's labels.")

# ---------------------------------------------------------------------------------------------
st.header("1. One row of pixels: the linear-chain CRF")
st.markdown(
    r"""
Take one row of the picture, T pixels from left to right, and give every pixel a **noisy
score** $x_i(k)$ for each label $k$: the log-probability of the label plus Gaussian noise
(the noise plays the role of a network that is often unsure). To keep the sums small enough
to check by hand, the row has at most 4 labels: its 3 most frequent classes, and *other*.

The chain's features are the score of the label chosen at each pixel and one **transition
weight** $A_{jk}$ each time label $j$ is followed by label $k$:
""")
st.latex(r"\lambda \cdot f(x, y_{i-1}, y_i) = x_i(y_i) + A_{y_{i-1} y_i}")
st.markdown(
    r"""
A large diagonal of $A$ says "stay in the same class": a single pixel whose noisy score
disagrees with its neighbours then costs more than it gains. Z(x) sums $K^T$ labellings
($4^{256}$, about $10^{154}$, for a row of 256 pixels) but the chain lets the **forward
algorithm** do it in $T K^2$ steps, and **Viterbi** finds the best labelling the same way with
max instead of sum:
""")
st.latex(r"\log\alpha_i(k) = x_i(k) + \log\sum_j \alpha_{i-1}(j)\, e^{A_{jk}}, \qquad "
         r"\log Z(x) = \log\sum_k \alpha_{T}(k), \qquad "
         r"\delta_i(k) = x_i(k) + \max_j \big(\delta_{i-1}(j) + A_{jk}\big)")

height = image.shape[0]
c1, c2, c3 = st.columns(3)
row_index = share.widget(c1.slider,
                         "Row of pixels", 0, height - 1, round(0.55 * height), key="crf_row",
                         help="The row is marked on the picture below.")
noise = share.widget(c2.slider, "Noise on the scores (standard deviation)", 0.0, 4.0, 1.0, 0.25,
                     key="crf_noise")
sources = {"model": f"the network's probabilities ({resources.title(name)})",
           "truth": "the true labels: a made-up network, right with probability 0.6"}
if truth is None:
    scores_from = "model"
else:
    scores_from = share.widget(c3.radio,
                               "Clean scores from", list(sources), format_func=sources.get,
                               index=1 if prediction.source == "untrained" else 0,
                               key="crf_scores_from",
                               help="An untrained network's probabilities say nothing about the "
                                    "scene; the true labels give a clean signal to add noise to.")


@st.cache_data(max_entries=64, show_spinner=False)
def chain_row(image_key, name, classes, _image, _probs, _truth, row_index, noise, scores_from):
    """The row with its noisy scores, cached by picture, network and settings."""
    return experiments.noisy_row(_image, _probs, row_index, truth=_truth, classes=classes,
                                 noise=noise, seed=row_index, scores_from=scores_from)


row = chain_row(image_key, name, tuple(classes), image, prediction.probs, truth, row_index, noise,
                scores_from)
labels = row.labels
k = row.num_labels
colours = row.colours(palette)
c3.markdown("Labels of this row: " + ", ".join(f"**{n}**" for n in labels) + ". "
            + ("The labels to learn are the scene's **true** labels." if row.target_is_truth
               else "This picture has no true labels: the network's own clean answer "
                    "(before the noise) stands in for them."))

t1, t2 = st.columns([1, 2])
stay = share.widget(t1.slider,
                    "Weight of “stay in the same class” (the diagonal of A)",
                    -2.0, 6.0, 2.0, 0.5,
                    key="crf_stay")
t1.caption("The matrix on the right starts as this weight on its diagonal and 0 elsewhere; "
           "edit any cell (row = label at pixel i−1, column = label at pixel i). Moving the "
           "slider resets it.")
edited = t2.data_editor(
    pd.DataFrame(stay * np.eye(k), index=labels, columns=labels),
    key=f"crf_transitions_{stay}_{'_'.join(labels)}", width="stretch",
    column_config={n: st.column_config.NumberColumn(n, format="%.2f", step=0.25)
                   for n in labels})
transitions = torch.tensor(edited.fillna(0.0).to_numpy(dtype=np.float64))  # (K, K) A

seg1, seg2 = st.columns(2)
length = share.widget(seg2.slider,
                      "Pixels in the short segment (brute force)", 2, 8, 6,
                      key="crf_segment_length")
start = share.widget(seg1.slider, "Short segment starts at pixel", 0, row.length - length,
                     min(row.length - length, row.length // 2), key="crf_segment_start")


@st.cache_data(max_entries=64, show_spinner="Enumerating every labelling of the segment…")
def decoded(row_key, _row, transitions_key, segment):
    """Forward algorithm, brute force and Viterbi for one row and transition matrix."""
    return experiments.decode_row(experiments.chain_crf(torch.tensor(transitions_key)), _row,
                                  segment=segment)


row_key = (image_key, name, row_index, noise, scores_from)
transitions_key = tuple(map(tuple, transitions.tolist()))
summary = decoded(row_key, row, transitions_key, (start, length))


def strips(bands: list[tuple[str, np.ndarray]], title: str) -> go.Figure:
    """Rows of T colours (name, (T,) label indices or (T, 3) colours), the segment boxed."""
    band, gap = 14, 5
    canvas = np.full((len(bands) * (band + gap) - gap, row.length, 3), 255, np.uint8)
    hover = np.full(canvas.shape[:2], "", dtype=object)
    for i, (_, values) in enumerate(bands):
        top = i * (band + gap)
        is_labels = values.ndim == 1
        canvas[top:top + band] = colours[values] if is_labels else values
        hover[top:top + band] = [labels[v] for v in values] if is_labels else "colour"
    # The colours travel as a PNG: as a list of numbers they cost plotly more than the rest
    # of the chart (see figures.image).
    fig = go.Figure(go.Image(source=figures.png_data_uri(canvas), customdata=hover,
                             hovertemplate="pixel %{x}: %{customdata}<extra></extra>"))
    fig.add_shape(type="rect", x0=start - 0.5, x1=start + length - 0.5, y0=-2,
                  y1=canvas.shape[0] + 1, line=dict(color="black", width=2))
    fig.update_layout(title=title, height=70 + 26 * len(bands), margin=dict(l=0, r=0, t=30, b=0))
    fig.update_xaxes(title="pixel of the row", showgrid=False)
    # Stretch the pixels sideways so the strips fill the column (scaleanchor off).
    fig.update_yaxes(tickvals=[i * (band + gap) + band / 2 for i in range(len(bands))],
                     ticktext=[n for n, _ in bands], showgrid=False, scaleanchor=False)
    return fig


def legend_line() -> str:
    """Colour swatches of the row's labels, as HTML."""
    return "".join(
        f"<span style='margin-right:1em;white-space:nowrap'><span style='display:inline-block;"
        f"width:.9em;height:.9em;background:{seg.viz.to_hex(colours[i])};vertical-align:middle;"
        f"border:1px solid #0003;margin-right:.3em'></span>{labels[i]}</span>" for i in range(k))


marked = figures.image(image, f"Row {row_index} of {chosen.name}", height=260)
marked.add_hline(y=row_index, line=dict(color="red", width=2))
p1, p2 = st.columns([1, 3])
p1.plotly_chart(marked, key="crf_row_picture")
bands = [("pixels", row.pixels)]
if row.target_is_truth:
    bands.append(("true labels", row.target.numpy()))
bands += [("argmax, each pixel alone", summary.argmax.numpy()),
          ("Viterbi, the chain", summary.viterbi.numpy())]
p2.plotly_chart(strips(bands, "The row, its noisy per-pixel decisions and the chain's labelling "
                              "(box: the short segment)"), key="crf_strips")
p2.markdown(legend_line(), unsafe_allow_html=True)

m1, m2, m3, m4 = st.columns(4)
decimal = summary.log_z / np.log(10)  # log10 Z: Z = 10^frac · 10^int
superscript = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
m1.metric("log Z(x) of the whole row", f"{summary.log_z:.4f}",
          help=f"Forward algorithm over the T = {row.length} pixels. Natural logarithm: Z itself "
               "can be far beyond what a float holds.")
m2.metric("Z(x)", f"{10 ** (decimal % 1):.3f} × 10{str(int(decimal // 1)).translate(superscript)}",
          help=f"The sum of exp(score) over all {k}^{row.length} labellings of the row.")
target_word = "true labels" if row.target_is_truth else "clean answer"
m3.metric(f"Argmax agrees with the {target_word}", f"{summary.argmax_accuracy:.1%}")
m4.metric(f"Viterbi agrees with the {target_word}", f"{summary.viterbi_accuracy:.1%}",
          delta=f"{(summary.viterbi_accuracy - summary.argmax_accuracy) * 100:+.1f} points")

st.markdown(f"**Check on the short segment** (pixels {start}–{start + length - 1}): the forward "
            f"algorithm against adding up all {k}^{length} = {summary.labellings:,} labellings "
            "one by one.")
b1, b2, b3 = st.columns(3)
b1.metric(f"log Z, forward algorithm ({length}·{k}² = {length * k * k} steps)",
          f"{summary.segment_log_z:.10f}")
b2.metric(f"log Z, brute force ({summary.labellings:,} labellings)",
          f"{summary.segment_log_z_brute_force:.10f}")
b3.metric("Difference", f"{abs(summary.segment_log_z - summary.segment_log_z_brute_force):.1e}",
          help="Rounding only: both sum the same terms, in another order.")
widgets.show_code(seg.crf.LinearChainCRF.log_partition, seg.crf.LinearChainCRF.viterbi,
                  seg.crf.LinearChainCRF.brute_force_log_partition)

st.subheader("Learning λ from the labels")
st.markdown(
    r"""
Instead of choosing $A$ by hand, learn it, together with how much to trust each score
(a weight matrix $W$, so that the pixel term becomes $W_{y_i} \cdot x_i$; it starts as the
identity) and a score $\pi$ for the first label. The log-likelihood of the labels is concave
in λ and its gradient is the **empirical** feature counts (how often each transition occurs
in the labels) minus the **expected** counts under the model (from the forward and backward
algorithms):
""")
st.latex(r"\frac{\partial \log p(y \mid x)}{\partial \lambda} = \sum_i f(x, y_{i-1}, y_i)"
         r" \;-\; \mathbb{E}_{y' \sim p(y' \mid x)}\Big[\sum_i f(x, y'_{i-1}, y'_i)\Big],"
         r"\qquad \lambda \leftarrow \lambda + \eta\, \frac{\partial \log p(y \mid x)}{\partial \lambda}")
st.caption("The step η is halved whenever a step would go downhill (backtracking), so the "
           "curve climbs at every step; it starts at 1/T.")


def ten_more() -> None:
    st.session_state["crf_steps"] = min(MAX_STEPS, st.session_state.get("crf_steps", 0) + 10)


st.session_state.setdefault("crf_steps", 0)
g1, g2 = st.columns([1, 3])
g1.button("10 gradient steps", key="crf_ten_steps", on_click=ten_more, type="primary")
steps = share.widget(g2.slider,
                     "Gradient steps taken (from the matrix above)", 0, MAX_STEPS, step=10,
                     key="crf_steps")


@st.cache_data(max_entries=128, show_spinner="Taking gradient steps…")
def fitted(row_key, _row, transitions_key, steps):
    """λ after `steps` steps; builds on the cached fit 10 steps shorter (one click = 10 steps)."""
    if steps == 0:
        return experiments.fit_chain(_row, torch.tensor(transitions_key), steps=0)
    return experiments.fit_chain(_row, None, steps=10,
                                 resume=fitted(row_key, _row, transitions_key, steps - 10))


fit = fitted(row_key, row, transitions_key, steps)
l1, l2 = st.columns(2)
curve = fit.log_likelihoods
climb = figures.curves({"log p(y | x)": (list(range(len(curve))), curve)},
                       "Log-likelihood of the labels while learning", xlabel="gradient step",
                       ylabel="log p(y | x)")
l1.plotly_chart(climb.update_traces(mode="lines+markers"), key="crf_ll_curve")
l2.plotly_chart(strips(bands[:-1] + [("Viterbi, the chain", summary.viterbi.numpy()),
                                     (f"Viterbi after {fit.steps} steps", fit.viterbi.numpy())],
                       "The chain's labelling before and after learning"), key="crf_strips_fit")
n1, n2, n3 = st.columns(3)
n1.metric("log p(y | x) now", f"{curve[-1]:.2f}", delta=f"{curve[-1] - curve[0]:+.2f} since step 0")
n2.metric(f"Viterbi agrees with the {target_word}", f"{fit.viterbi_accuracy:.1%}",
          delta=f"{(fit.viterbi_accuracy - summary.viterbi_accuracy) * 100:+.1f} points "
                "since step 0")
n3.metric("Time for these steps", f"{fit.seconds:.2f} s",
          help="Each step runs the forward and backward algorithms once, and the forward "
               "algorithm again for every trial step size.")


def matrix(values: torch.Tensor, title: str, *, signed: bool = False) -> go.Figure:
    """A K × K matrix of the row's labels with its numbers written in."""
    array = values.numpy()
    top = float(np.abs(array).max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=array, x=labels, y=labels, text=np.round(array, 1), texttemplate="%{text}",
        colorscale="RdBu" if signed else "Blues", zmin=-top if signed else 0, zmax=top,
        showscale=False, hovertemplate="from %{y} to %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=260, margin=dict(l=0, r=0, t=30, b=0))
    fig.update_yaxes(autorange="reversed", title="label at i−1")
    fig.update_xaxes(title="label at i")
    return fig


st.markdown(f"The transition part of the gradient after {fit.steps} steps: it tends to 0 as "
            "the expected counts approach the counted ones.")
h1, h2, h3, h4 = st.columns(4)
h1.plotly_chart(matrix(fit.transitions, "Transition weights A now", signed=True),
                key="crf_learned_a")
h2.plotly_chart(matrix(fit.empirical, "Counted in the labels"), key="crf_empirical")
h3.plotly_chart(matrix(fit.expected, "Expected under p(y′ | x)"), key="crf_expected")
h4.plotly_chart(matrix(fit.gradient, "Gradient = counted − expected", signed=True),
                key="crf_gradient")
widgets.show_code(experiments.fit_chain, seg.crf.LinearChainCRF.gradient)

# ---------------------------------------------------------------------------------------------
st.header("2. Every pixel with every pixel: the fully-connected CRF")
st.markdown(
    r"""
On a picture a chain is not enough: a pixel has neighbours above and below, and a car's pixels
belong together even when they are far apart. Krähenbühl & Koltun's CRF connects **every pair**
of pixels and writes the labelling's energy (lower is better) as the network's opinion of each
pixel plus a penalty for every pair of pixels that take different labels, weighted by how
alike the two pixels are:
""")
st.latex(r"E(y) = \sum_i -\log P(y_i) + \sum_{i<j} [y_i \neq y_j]\, k(f_i, f_j)")
st.latex(r"k(f_i, f_j) = w_1 \exp\Big(-\frac{\lVert p_i - p_j\rVert^2}{2\theta_\alpha^2}"
         r" - \frac{\lVert I_i - I_j\rVert^2}{2\theta_\beta^2}\Big)"
         r" + w_2 \exp\Big(-\frac{\lVert p_i - p_j\rVert^2}{2\theta_\gamma^2}\Big)")
st.markdown(
    r"""
$p$ is a pixel's position and $I$ its colour. The **appearance** kernel ($w_1$) says that
nearby pixels of similar colour tend to share a label: $\theta_\alpha$ is how far "nearby"
reaches, $\theta_\beta$ how similar "similar colour" is. The **smoothness** kernel ($w_2$,
$\theta_\gamma$) removes isolated pixels. Exact inference over $8^{65536}$ labellings is out of
reach, so **mean-field** inference keeps one distribution $Q_i$ per pixel and repeats, for all
pixels at once, "a pixel likes the labels that similar pixels have":
""")
st.latex(r"Q_i(l) \propto \exp\Big(\log P_i(l) + \sum_{m} w_m \sum_{j} k_m(f_i, f_j)\, Q_j(l)\Big)")
st.markdown(
    "The sum over every j is a Gaussian blur of Q in the 5-D space of position and colour, done "
    "on a permutohedral lattice in time linear in the pixels. DeepLab v1 runs 10 iterations and "
    "chose w₁, θα, θβ by cross-validation over grids; w₂ = θγ = 3 were fixed.")


def apply_preset() -> None:
    preset = st.session_state["crf_preset"]
    for param, value in DEEPLAB_V1_LARGEFOV.items():
        grid = SEARCH_RANGES.get(preset, {}).get(param)
        if grid is not None:  # the grid point nearest the released value
            value = min(max(value, grid.low), grid.high)
            value = grid.low + round((value - grid.low) / grid.step) * grid.step
        st.session_state[f"crf_{param}"] = float(value)


@st.cache_resource(max_entries=4, show_spinner=False)
def smoothness(image_key, theta_gamma, device, shape) -> seg.crf.Kernel:
    """The smoothness kernel's lattice for this picture size and θγ, shared by every run."""
    with serving.heavy():
        return seg.crf.smoothness_kernel(*shape, theta_gamma, device)


@st.cache_resource(max_entries=8, show_spinner=False)
def appearance(image_key, theta_alpha, theta_beta, device, _image) -> seg.crf.Kernel:
    """The appearance kernel's lattice for this picture, θα and θβ, shared by every run."""
    with serving.heavy():
        return seg.crf.appearance_kernel(_image, theta_alpha, theta_beta, device)


@st.cache_data(max_entries=24, show_spinner="Running 10 mean-field iterations…")
def dense_run(image_key, name, device, params_key, _image, _probs, _truth):
    """All iterations of the CRF for one picture, network and parameter setting. The kernels'
    lattices are kept apart, so that moving a weight (w₁, w₂) does not rebuild them, and moving
    one width rebuilds only its kernel."""
    params = dict(params_key)
    # Outside the slot below: a cached kernel may be waiting for another student's build.
    kernels = dict(
        smoothness=smoothness(image_key, params["theta_gamma"], device, _image.shape[:2]),
        appearance=appearance(image_key, params["theta_alpha"], params["theta_beta"], device,
                              _image))
    probs = _probs.to(device)  # the CRF runs where the network ran
    with serving.heavy():
        return experiments.crf_on_prediction(_image, probs, iterations=ITERATIONS, truth=_truth,
                                             **kernels, **params)


@st.cache_data(max_entries=16, show_spinner=False)
def held_out(name, device, source, params_key):
    """The with/without-CRF table on the held-out scenes for one parameter setting."""
    bar = st.progress(0.0, text="Segmenting and refining held-out scenes…")
    table = experiments.crf_miou_table(
        resources.segmenter(name, device), experiments.held_out_scenes(HELD_OUT),
        iterations=ITERATIONS, progress=lambda done, total: bar.progress(
            done / total, text=f"Scene {done} of {total}"), **dict(params_key))
    bar.empty()
    return table


def changed_picture(run, t: int) -> np.ndarray:
    """The picture faded, with the pixels whose label changed painted in their new class."""
    faded = seg.viz.blend(image, np.full_like(image, 255), 0.6)
    return np.where(run.changed(t)[:, :, None], seg.viz.colorize(run.labels[t], palette), faded)


@st.fragment
def scrubber(run) -> None:
    """The iteration slider and what it picks: moving it reruns only this."""
    t = share.widget(st.slider,
                     "Mean-field iteration", 0, ITERATIONS, ITERATIONS, key="crf_iteration",
                     help="0 is the network's own answer; each step is one update of every Q_i.")
    changed = run.changed(t)
    # Plain pictures: this fragment reruns at every step of the slider, and three plotly
    # figures took longer to redraw in the browser than the rerun itself.
    a, b, c = st.columns(3)
    a.image(seg.viz.overlay(image, run.labels[t], palette, 0.75), width="stretch",
            caption="The network's labels" if t == 0 else
            f"Labels after {t} iteration{'s' * (t > 1)}")
    b.image(changed_picture(run, t), width="stretch",
            caption=f"{int(changed.sum()):,} pixels changed since iteration 0")
    c.image(figures.heat_picture(run.confidence[t]), width="stretch",
            caption=f"Confidence max Q(l) at iteration {t}")
    widgets.legend(run.labels[t], classes, palette)
    m = st.columns(4)
    m[0].metric("Pixels changed", f"{changed.mean():.2%}", help="Share of the picture whose "
                "label at this iteration differs from the network's.")
    m[1].metric("Free energy F(Q) per pixel", f"{run.free_energy[t]:.4f}",
                delta=f"{run.free_energy[t] - run.free_energy[0]:+.4f} since 0",
                delta_color="inverse")
    m[2].metric("KL(Q_t ‖ Q_t−1) per pixel", "–" if t == 0 else f"{run.kl[t]:.2e}",
                help="How much this iteration still changed the distributions.")
    if run.miou is not None:
        m[3].metric("mIoU on this scene", f"{run.miou[t]:.1%}",
                    delta=f"{(run.miou[t] - run.miou[0]) * 100:+.2f} points since 0")
    else:
        m[3].metric("mIoU on this scene", "–", help="Only synthetic scenes have true labels.")
    # Drawn as small SVG pictures, cheap enough to redraw at every step with the iteration
    # ringed (three plotly figures here cost 60 ms of every response).
    curves = [("Free energy F(Q) per pixel", run.free_energy, False),
              ("KL(Q_t ‖ Q_t−1) per pixel", run.kl, True)]
    if run.miou is not None:
        curves.append(("mIoU on this scene", run.miou, False))
    for column, (title, values, log_y) in zip(st.columns(len(curves)), curves):
        column.image(figures.curve_svg(values, title, log_y=log_y, mark=t), width="stretch")


@st.fragment
def dense_crf() -> None:
    """Parameters, the ten iterations, the iteration slider and the held-out scores: moving a
    parameter reruns this, not the chain above."""
    # At a move of a parameter, run the CRF before drawing anything: meanwhile the browser has
    # nothing to redraw, which leaves the CPU to the CRF. The first run sets the values first.
    known = {param: st.session_state.get(f"crf_{param}") for param in DEEPLAB_V1_LARGEFOV}
    if None not in known.values():
        dense_run(image_key, name, device, tuple(known.items()), image, prediction.probs, truth)
    if "crf_w1" not in st.session_state:
        st.session_state["crf_preset"] = RELEASED
        apply_preset()
    preset = share.widget(st.radio, "Parameters", PRESETS, key="crf_preset",
                          on_change=apply_preset, horizontal=True,
                          help="The released values of DeepLab-CRF-LargeFOV, or the sliders "
                               "restricted to the grids the DeepLab papers searched (on 100 VOC "
                               "val images).")
    ranges = {**WIDE, **{p: tuple(g) for p, g in SEARCH_RANGES.get(preset, {}).items()}}
    params = {}
    for column, param in zip(st.columns(5), DEEPLAB_V1_LARGEFOV):
        low, high, step = ranges[param]
        params[param] = share.widget(column.slider, PARAM_LABELS[param], float(low),
                                     float(high), step=float(step), key=f"crf_{param}")
    if preset != RELEASED:
        st.caption("Grid of " + preset + ": " + ", ".join(
            f"{PARAM_LABELS[p].split(' ')[0]} ∈ [{g.low:g}:{g.step:g}:{g.high:g}]"
            for p, g in SEARCH_RANGES[preset].items())
            + " (low:step:high); w₂ and θγ stay free.")

    run = dense_run(image_key, name, device, tuple(params.items()), image, prediction.probs,
                    truth)
    st.caption(f"The 10 iterations took {run.seconds:.2f} s on {device} for "
               f"{image.shape[1]}×{image.shape[0]} pixels and {len(classes)} classes; every "
               "iteration is kept, so the slider below only picks one.")
    scrubber(run)
    st.caption("F(Q) = E_Q[E] − H(Q), the energy expected under Q minus Q's entropy: mean field "
               "looks for the Q that makes it smallest, which is the Q closest to the CRF's "
               "distribution in KL divergence. It falls quickly and then stays: a few iterations "
               "do almost all the work.")

    st.subheader(f"Before and after on {HELD_OUT} held-out synthetic scenes")
    if not street_model:
        st.info("The held-out scenes have street labels; pick one of SegLab's networks to score "
                "it.")
    elif st.toggle(f"Measure mIoU with and without the CRF on {HELD_OUT} scenes the network "
                   "never saw, with the parameters above", key="crf_held_out"):
        table = held_out(name, device, prediction.source, tuple(params.items()))
        r1, r2, r3 = st.columns(3)
        r1.metric("mIoU without CRF", f"{table.miou_without:.2%}")
        r2.metric("mIoU with CRF", f"{table.miou_with:.2%}",
                  delta=f"{table.gain * 100:+.2f} points")
        r3.metric("Time", f"{table.seconds_network:.1f} s network, {table.seconds_crf:.1f} s CRF")
        st.dataframe(pd.DataFrame(table.rows), hide_index=True, key="crf_held_out_rows",
                     column_config={c: st.column_config.NumberColumn(format="percent") for c in
                                    ("mIoU without CRF", "mIoU with CRF", "pixels changed")})


dense_crf()
widgets.show_code(experiments.crf_on_prediction, seg.crf.DenseCRF._update,
                  seg.crf.DenseCRF.free_energy)
