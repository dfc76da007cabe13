"""Generative vs discriminative: class-conditional Gaussians against logistic regression."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import seg
from app import figures, image_input, share, widgets
from seg import generative

COLOURS = ("#1f77b4", "#d62728")  # class 0, class 1
SIZES = (2, 3, 5, 8, 13, 20, 35, 60, 100, 200, 400)
TEST_PER_CLASS = 2000
PIXEL_SHARES = (0.002, 0.005, 0.01, 0.02, 0.05)

chosen = image_input.current()
st.title("Generative vs discriminative")
st.markdown(
    """
**Goal:** see the two ways of building a classifier, what each can do that the other cannot,
and which one wins when. Then meet both on pixels, the step before conditional random fields.

A **generative** classifier learns how the data is *made*: how often each class occurs, P(y),
and what the inputs of each class look like, P(x | y). It classifies a new x by asking which
class would most likely have produced it — Bayes' rule:
"""
)
st.latex(r"P(y \mid x) = \frac{P(x \mid y)\,P(y)}{\sum_k P(x \mid k)\,P(k)}, \qquad "
         r"P(x \mid y = k) = \mathcal{N}(x;\ \mu_k, \Sigma_k)")
st.markdown(
    """
Fitting it is counting: the prior is each class's share, μₖ the mean of its points, Σₖ the
spread of its points (maximum likelihood, in closed form). With one Σ shared by both classes
(**LDA**) the boundary is a line; with one Σ per class (**QDA**) it is a curve.

A **discriminative** classifier skips P(x) and models only what is asked, P(y | x). Logistic
regression writes it as a sigmoid of a linear function of features φ(x) and fits w by making
the training labels as probable as possible (Newton's method; a small penalty λ keeps w finite
when the classes separate):
"""
)
st.latex(r"P(y = 1 \mid x) = \sigma\!\left(w^\top \varphi(x) + b\right), \qquad "
         r"\max_{w, b}\ \sum_n \log P(y_n \mid x_n) - \tfrac{\lambda}{2}\lVert w\rVert^2")
st.markdown(
    """
The two are closer than they look. With a shared Σ, Bayes' rule above *is* a sigmoid of a
linear function of x, with w = Σ⁻¹(μ₁ − μ₀); with one Σ per class, of a quadratic one. So each
pair below has **the same kind of boundary**; they differ only in *how* it is fitted: the
generative one from P(x, y), the discriminative one from P(y | x) alone (Ng & Jordan, 2002).
"""
)

@st.cache_data(max_entries=64, show_spinner=False)
def experiment(n, separation, shared, outliers, quadratic, seed):
    """Training data, both fits and their accuracies for one setting of the controls."""
    x, y = generative.make_data(n, separation=separation, shared_covariance=shared,
                                outliers=outliers, seed=seed)
    x_test, y_test = generative.make_data(TEST_PER_CLASS, separation=separation,
                                          shared_covariance=shared, seed=seed + 1_000_003)
    models = {
        "generative": generative.fit_gaussians(x, y, shared_covariance=not quadratic),
        "discriminative": generative.fit_logistic(x, y, degree=2 if quadratic else 1),
        "best possible": generative.true_model(separation, shared_covariance=shared),
    }
    scores = {name: (generative.accuracy(m, x, y), generative.accuracy(m, x_test, y_test))
              for name, m in models.items()}
    return x, y, models, scores


@st.cache_data(max_entries=32, show_spinner="Fitting both models 440 times…")
def curve(separation, shared, outliers, quadratic):
    """Learning curve for one setting (independent of the training-set size control)."""
    return generative.learning_curve(SIZES, separation=separation, shared_covariance=shared,
                                     outliers=outliers, quadratic=quadratic, repeats=20,
                                     test_per_class=TEST_PER_CLASS)


class Plane:
    """The part of the (x₁, x₂) plane the figures show, sampled on a grid."""

    def __init__(self, x: np.ndarray, separation: float):
        self.low = np.minimum(x.min(0), [-separation / 2 - 3.5, -3.5]) - 0.5
        self.high = np.maximum(x.max(0), [separation / 2 + 3.5, 3.5]) + 0.5
        # ~5 screen pixels a cell: plotly draws contour lines across the cells, and a finer
        # grid only makes each figure heavier to send (it was 1 MB at 140×120 in float64).
        self.gx = np.linspace(self.low[0], self.high[0], 100)
        self.gy = np.linspace(self.low[1], self.high[1], 86)
        self.points = np.stack(np.meshgrid(self.gx, self.gy), -1).reshape(-1, 2)  # (G, 2)

    def map(self, values: np.ndarray) -> np.ndarray:
        """Values at the grid points as a (rows = x₂, columns = x₁) float32 array."""
        return values.reshape(len(self.gy), len(self.gx)).astype(np.float32)

    def boundary(self, model, name: str, dash: str = "solid", colour: str = "black"):
        """The line where P(y = 1 | x) = 0.5."""
        posterior = self.map(model.predict_proba(self.points)[:, 1])
        return go.Contour(x=self.gx, y=self.gy, z=posterior, name=name, showlegend=True,
                          showscale=False, hoverinfo="skip",
                          contours=dict(start=0.5, end=0.5, size=1, coloring="lines"),
                          line=dict(color=colour, width=3 if dash == "solid" else 2, dash=dash),
                          colorscale=[[0, colour], [1, colour]])

    def ellipses(self, gaussians):
        """Contours of P(x | y = k) at 1, 2 and 3 standard deviations (Mahalanobis distance)."""
        peaks = np.diag(gaussians.log_likelihood(gaussians.means))  # log P(μₖ | k)
        sigmas = np.sqrt(np.maximum(2 * (peaks - gaussians.log_likelihood(self.points)), 0))
        return [go.Contour(x=self.gx, y=self.gy, z=self.map(sigmas[:, k]),
                           name=f"P(x | y={k}): 1, 2, 3 σ", showscale=False, showlegend=True,
                           contours=dict(start=1, end=3, size=1, coloring="lines"),
                           colorscale=[[0, COLOURS[k]], [1, COLOURS[k]]],
                           line=dict(width=1.5), hoverinfo="skip") for k in (0, 1)]

    def figure(self, traces, title: str) -> go.Figure:
        fig = go.Figure(traces)
        fig.update_layout(title=title, height=460, margin=dict(l=0, r=0, t=40, b=0),
                          legend=dict(orientation="h", y=-0.15))
        fig.update_xaxes(range=[self.low[0], self.high[0]], title="x₁")
        fig.update_yaxes(range=[self.low[1], self.high[1]], scaleanchor="x", title="x₂")
        return fig


def points(xs, ys, label, symbol="circle", size=6):
    """Labelled points as two scatter traces, coloured by class."""
    return [go.Scatter(x=xs[ys == k, 0], y=xs[ys == k, 1], mode="markers",
                       name=f"{label} class {k}", showlegend=False,
                       marker=dict(color=COLOURS[k], size=size, symbol=symbol,
                                   line=dict(width=0.5, color="white")))
            for k in (0, 1)]


@st.fragment
def two_classes():
    """The 2-D part: its controls rerun only this part of the page."""
    st.subheader("Two classes in 2-D")
    left, middle, right = st.columns(3)
    n_per_class = share.widget(left.slider,
                               "Training points per class", 2, 400, 40, key="generative_n")
    separation = share.widget(left.slider, "Separation of the class means", 0.5, 5.0, 2.0, 0.25,
                              key="generative_separation")
    covariance = share.widget(middle.radio,
                              "True covariances", ["shared", "different"], horizontal=True,
                              key="generative_covariance",
                              help="Shared: both clouds have the same shape (LDA's "
                                   "assumption). Different: class 1 is broader and tilted the "
                                   "other way.")
    outliers = share.widget(middle.slider, "Outliers in class 0", 0.0, 0.3, 0.0, 0.05,
                            key="generative_outliers",
                            help="Share of class 0's training points moved far out on class "
                                 "0's own side: correctly labelled, but far from typical.")
    family = share.widget(right.radio, "Boundaries", ["linear: LDA vs logistic regression",
                                         "quadratic: QDA vs logistic on x and x²"],
                          key="generative_family")
    data_seed = share.widget(right.number_input, "Data seed", 0, 9999, 0, key="generative_seed")
    shared, quadratic = covariance == "shared", family.startswith("quadratic")

    x, y, models, scores = experiment(n_per_class, separation, shared, outliers, quadratic,
                                      int(data_seed))
    gen, dis, truth = models["generative"], models["discriminative"], models["best possible"]
    gen_name = "QDA" if quadratic else "LDA"
    dis_name = "logistic regression" + (" on x, x²" if quadratic else "")
    plane = Plane(x, separation)
    ellipses = plane.ellipses(gen)
    best = plane.boundary(truth, "best possible boundary", dash="dash", colour="#888")
    posterior = plane.map(dis.predict_proba(plane.points)[:, 1])
    shading = go.Heatmap(x=plane.gx, y=plane.gy, z=posterior, zmin=0, zmax=1,
                         colorscale="RdBu_r", opacity=0.45,
                         colorbar=dict(title="P(y=1|x)", thickness=10),
                         hovertemplate="P(y=1|x) = %{z:.2f}<extra></extra>")
    a, b = st.columns(2)
    a.plotly_chart(plane.figure([*ellipses, best, plane.boundary(gen, f"{gen_name} boundary"),
                                 *points(x, y, "train")],
                                f"Generative: {gen_name}, Gaussians P(x|y) and Bayes' rule"),
                   key="generative_plane_gen")
    b.plotly_chart(plane.figure([shading, best, plane.boundary(dis, f"{dis_name} boundary"),
                                 *points(x, y, "train")],
                                f"Discriminative: {dis_name}, P(y|x) directly"),
                   key="generative_plane_dis")

    for column, (name, label) in zip(st.columns(3), [("generative", gen_name),
                                                     ("discriminative", dis_name),
                                                     ("best possible",
                                                      "best possible (true model)")]):
        column.metric(f"Test accuracy: {label}", f"{scores[name][1]:.1%}",
                      help=f"On {2 * TEST_PER_CLASS} fresh points without outliers; training "
                           f"accuracy {scores[name][0]:.1%}.")
    rows = []
    for name, label, model in (("generative", gen_name, gen), ("discriminative", dis_name, dis)):
        row = {"model": label, "train accuracy": scores[name][0],
               "test accuracy": scores[name][1]}
        if not quadratic:
            w, bias = model.linear_boundary()
            row.update({"w₁": w[0], "w₂": w[1], "b": bias})
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="generative_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("train accuracy", "test accuracy", "w₁", "w₂", "b")})
    if quadratic:
        st.caption("Both boundaries are quadratic curves: QDA's from two Gaussians, logistic "
                   "regression's from weights on x₁, x₂, x₁², x₁x₂, x₂².")
    else:
        st.caption("Each boundary is the line w₁x₁ + w₂x₂ + b = 0, where the log-odds "
                   "log P(y=1|x)/P(y=0|x) = w·x + b are zero. LDA's w is Σ⁻¹(μ₁ − μ₀); "
                   "logistic regression's is whatever makes the training labels most probable.")
    if outliers > 0:
        st.markdown(
            "The outliers (far left) are on the right side of both boundaries. Logistic "
            "regression barely notices them: they are already classified with near certainty, "
            "so they add almost nothing to its gradient. The Gaussians must *explain* them: "
            "class 0's mean moves towards them and its ellipse swells, and the boundary moves "
            "with them.")

    st.subheader("How many points does each need?")
    lc = curve(separation, shared, outliers, quadratic)
    fig = figures.curves({gen_name: (lc.sizes.tolist(), lc.generative.tolist()),
                          dis_name: (lc.sizes.tolist(), lc.discriminative.tolist()),
                          "best possible": ([SIZES[0], SIZES[-1]], [lc.bayes, lc.bayes])},
                         "Test accuracy, mean of 20 training sets per size",
                         xlabel="training points per class (log scale)",
                         ylabel="test accuracy", height=340)
    fig.update_traces(mode="lines+markers", selector=dict(name=gen_name))
    fig.update_traces(mode="lines+markers", selector=dict(name=dis_name))
    fig.update_traces(line=dict(dash="dash", color="#888"), selector=dict(name="best possible"))
    fig.update_xaxes(type="log", range=np.log10([SIZES[0] / 1.2, SIZES[-1] * 1.2]).tolist())
    # on a log axis, shapes take their position in decades
    fig.add_vline(x=np.log10(n_per_class), line=dict(color="#555", dash="dot", width=2),
                  annotation_text="your n")
    st.plotly_chart(fig, key="generative_curve")
    few, last = int(np.argmin(np.abs(lc.sizes - 5))), len(SIZES) - 1
    ahead = ("the generative" if lc.generative[few] > lc.discriminative[few]
             else "the discriminative")
    final_gap = lc.discriminative[last] - lc.generative[last]
    ending = (f"{dis_name} ends ahead" if final_gap > 0.002 else
              f"{gen_name} ends ahead" if final_gap < -0.002 else
              "the two end level (within 0.2%)")
    st.markdown(
        f"**What happens here:** with {lc.sizes[few]} points per class {ahead} model is ahead "
        f"({gen_name} {lc.generative[few]:.1%}, {dis_name} {lc.discriminative[few]:.1%}). "
        f"With {lc.sizes[last]} per class {ending}: {gen_name} {lc.generative[last]:.1%}, "
        f"{dis_name} {lc.discriminative[last]:.1%}; the best possible is {lc.bayes:.1%}.")
    st.markdown(
        """
Ng & Jordan (2002) showed that a generative classifier reaches its best accuracy with fewer
examples (its few parameters are averages, which settle fast), while a discriminative one
usually ends with the lower error, because it never pays for a wrong assumption about P(x).
Try it: with **shared** covariances and no outliers the Gaussian assumption is exactly right,
so LDA is ahead with few points and both end at the best possible. Add **outliers** and LDA's
assumption is wrong: logistic regression ends clearly ahead. With **different** covariances,
the linear pair are both wrong, by about the same amount; the quadratic pair are right again.
"""
    )

    st.subheader("What only the generative model can do: draw new data")
    c1, c2 = st.columns([1, 2])
    count = share.widget(c1.slider, "Points to draw", 10, 500, 200, key="generative_draws")
    seed = share.widget(c1.number_input, "Sampling seed", 0, 9999, 0, key="generative_draw_seed")
    drawn_x, drawn_y = gen.sample(count, seed=int(seed))
    c1.markdown(
        f"Each point: a class from P(y) = ({gen.priors[0]:.2f}, {gen.priors[1]:.2f}), then "
        f"x from that class's Gaussian. Logistic regression has no P(x): asked for a new x, it "
        f"has nothing to say.")
    c2.plotly_chart(plane.figure([*ellipses, *points(x, y, "train", size=5),
                                  *points(drawn_x, drawn_y, "drawn", symbol="x", size=7)],
                                 f"{count} points drawn from the fitted {gen_name} (×), "
                                 f"training points (●)"),
                    key="generative_samples")


two_classes()


@st.cache_data(max_entries=32, show_spinner="Fitting both pixel classifiers…")
def on_pixels(image_key, _scene, fraction, position, seed):
    """Both pixel classifiers for one scene and setting (cached by the scene's key)."""
    return generative.compare_on_pixels(_scene.image, _scene.labels, len(seg.synthetic.CLASSES),
                                        fraction=fraction, position=position, seed=seed)


@st.fragment
def pixels():
    """The pixel part: its controls rerun only this part of the page."""
    st.subheader("The same two ideas on pixels")
    st.markdown(
        """
Now every pixel is a point x (its colour, and if you like its position) and there are eight
classes. An annotator labels a few random pixels; each model learns from them and labels the
rest of the picture. The generative one is a **colour model per class** (a Gaussian over RGB
for sky, road, …, as GrabCut's colour models), the discriminative one a **logistic regression
on colour** with quadratic features, so both again have the same kind of boundary.
"""
    )
    if chosen.is_synthetic:
        scene = chosen.scene
    else:
        scene = image_input.synthetic(image_input.DEFAULT_SEED)
        st.info(f"{chosen.name} has no labels to learn from, so this part uses synthetic "
                f"scene #{image_input.DEFAULT_SEED}. Pick a synthetic scene in the sidebar to "
                f"try others.")
    p1, p2, p3 = st.columns(3)
    labelled = share.widget(p1.select_slider, "Labelled pixels", PIXEL_SHARES, value=0.01,
                            key="generative_share",
                            format_func=lambda s: f"{s:.1%} ({round(s * scene.labels.size)} px)")
    position = share.widget(p2.toggle, "Also give the models each pixel's position",
                            key="generative_position",
                            help="Adds (row, column) to the colour: sky is on top, road at the "
                                 "bottom.")
    pixel_seed = share.widget(p3.number_input, "Which pixels are labelled (seed)", 0, 999, 0,
                              key="generative_pixel_seed")
    result = on_pixels(f"scene-{scene.seed}-{scene.image.shape}", scene, labelled, position,
                       int(pixel_seed))
    palette, classes = seg.synthetic.PALETTE, list(seg.synthetic.CLASSES)
    marked = scene.image.copy()
    marked[result.labelled] = (255, 255, 255)
    pictures = [(marked, "Labelled pixels (white)"),
                (seg.viz.colorize(scene.labels, palette), "True labels")]
    for name, label in (("generative", "Colour Gaussians"),
                        ("discriminative", "Logistic regression")):
        pictures.append((seg.viz.colorize(getattr(result, name), palette), label))
    for column, (array, title) in zip(st.columns(4), pictures):
        column.image(array, caption=title, width="stretch")
    widgets.legend(scene.labels, classes, palette)
    m = st.columns(4)
    for i, (name, label) in enumerate((("generative", "colour Gaussians"),
                                       ("discriminative", "logistic regression"))):
        m[2 * i].metric(f"Pixel accuracy: {label}",
                        f"{result.scores[name]['pixel_accuracy']:.1%}")
        m[2 * i + 1].metric(f"mIoU: {label}", f"{result.scores[name]['miou']:.1%}")
    st.caption("Scored on the pixels nobody labelled. mIoU weighs every class equally, so it "
               "shows who finds the poles and people; pixel accuracy is dominated by road, sky "
               "and buildings. Try more or fewer labelled pixels, with and without position.")

    gaussians = result.gaussians
    swatch = np.ones((len(classes), 24, 3))
    for k, label in enumerate(gaussians.classes):
        colours, _ = gaussians.sample(24, seed=k, label=label)
        swatch[label] = np.clip(colours[:, :3], 0, 1)
    fig = figures.image((swatch * 255).astype(np.uint8), "Colours drawn from each class's "
                        "Gaussian (white rows: classes no labelled pixel showed)", height=220,
                        hover=np.array([[classes[r]] * 24 for r in range(len(classes))]),
                        hover_label="class")
    fig.update_yaxes(visible=True, showticklabels=True, tickvals=list(range(len(classes))),
                     ticktext=classes, showgrid=False, zeroline=False)
    st.plotly_chart(fig, key="generative_swatches")


pixels()

st.markdown(
    """
**Towards CRFs.** Both label maps are speckled: each pixel is classified on its own, and a
pixel does not know its neighbours' labels. A conditional random field adds exactly that. It
is a **discriminative** model of all labels at once given the image,
"""
)
st.latex(r"P(\mathbf{y} \mid \mathbf{x}) = \frac{1}{Z(\mathbf{x})}\exp\Big(-\sum_i "
         r"\psi_u(y_i \mid \mathbf{x}) - \sum_{i<j} \psi_p(y_i, y_j \mid \mathbf{x})\Big)")
st.markdown(
    """
whose unary terms ψᵤ = −log P(yᵢ | x) come from a per-pixel classifier such as the logistic
regression above (or a CNN's softmax), and whose pairwise terms ψₚ make nearby pixels of similar
colour agree. Like logistic regression it never models P(x), the picture itself: modelling
images is hard, and a segmenter does not need it. The generative counterpart, a Markov random
field over labels with a colour model per class, is what came before.
"""
)

widgets.show_code(generative.fit_gaussians, generative.GaussianClassifier.predict_proba,
                  generative.fit_logistic, generative.learning_curve,
                  generative.compare_on_pixels)
