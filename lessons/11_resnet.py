"""ResNet: identity shortcuts — gradients at initialisation and the degradation problem, live."""

import numpy as np
import streamlit as st
import torch

import seg
from app import figures, image_input, resources, share, widgets
from seg import live
from seg.models import pretrained

chosen = image_input.current()
COLOURS = {"plain": "#e45756", "residual": "#4c78a8"}

st.title("ResNet: identity shortcuts")
st.markdown(
    """
**Learning goal:** understand what problem He, Zhang, Ren & Sun (2016) solved with residual
connections — and what problem they did *not* need to solve — by measuring gradients and
training plain and residual networks side by side on this computer.

A residual block does not ask its layers for the output $y$ itself, only for the *change*
$F(x)$ to add to its input:
"""
)
st.latex(r"y = F(x) + x \qquad\Longrightarrow\qquad "
         r"\frac{\partial y}{\partial x} = \frac{\partial F}{\partial x} + I")
st.markdown(
    """
If the best thing a block can do is nothing, it only has to drive its weights towards zero,
which is easy; a plain block would have to learn the identity map through convolutions and
ReLUs, which is hard. And the gradient always has a direct path, the $+I$, back to every
earlier layer. SegLab's networks here are He et al.'s CIFAR design: 3×3 conv → batch norm →
ReLU layers in three stages, two layers per block; the residual one adds the shortcuts and
nothing else.
"""
)

# --- 1. Gradients at initialisation -----------------------------------------------------------
st.header("1 · The gradient at every layer, at initialisation")
st.markdown(
    """
A common story says plain deep networks fail because their gradients *vanish* on the way
down. Measure it: build a fresh network (the same as in the race below: width 8, 16×16
patches), push one real batch of 64 street patches forward and the loss backward (batch norm
in training mode, as in the first step of training), and read
$\\lVert \\partial \\mathcal{L} / \\partial W_l \\rVert$ for every convolution $l$.
"""
)
g1, g2 = st.columns(2)
depth = share.widget(g1.slider, "Depth (3×3 convolutions)", 4, 50, 32, key="resnet_grad_depth")
grad_seed = share.widget(g2.number_input, "Seed", 0, 999, 0, key="resnet_grad_seed")


@st.cache_data(max_entries=64, show_spinner="Measuring the gradients…")
def norms(depth: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer gradient norms of the plain and the residual network."""
    return (live.gradient_norms(depth, residual=False, seed=seed),
            live.gradient_norms(depth, residual=True, seed=seed))


plain, residual = norms(depth, grad_seed)
layers = np.arange(1, depth + 1)
fig = figures.curves({"plain": (layers, plain), "residual": (layers, residual)},
                     f"Gradient norm of each layer, {depth} layers, at initialisation",
                     xlabel="layer (1 = next to the image)", ylabel="‖∂L/∂W‖", log_y=True)
fig.update_traces(mode="lines+markers")
for trace in fig.data:
    trace.line.color = COLOURS[trace.name]
# Plotly labels minor log ticks "2" and "5" without their decade; name every tick in full.
low, high = min(plain.min(), residual.min()), max(plain.max(), residual.max())
decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
ticks = [m * 10.0 ** e for e in decades for m in (1, 2, 5) if low / 2 <= m * 10.0 ** e <= high * 2]
fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
st.plotly_chart(fig, key="resnet_grad_norms")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Layer 1, plain", f"{plain[0]:.3g}")
m2.metric("Layer 1, residual", f"{residual[0]:.3g}")
m3.metric("Largest ÷ smallest, plain", f"{plain.max() / plain.min():.0f}×")
m4.metric("Largest ÷ smallest, residual", f"{residual.max() / residual.min():.0f}×")
relation = "larger than" if plain[0] > residual[0] else "smaller than"
st.markdown(
    f"""
**Nothing vanishes.** Every convolution here is followed by batch normalisation, which
rescales its activations, and with it the plain network's first layer gets a gradient of
{plain[0]:.3g}, {relation} the residual network's {residual[0]:.3g}; its smallest layer
gradient is {plain.min():.3g}. What depth does to the plain network is make its layers
**uneven**: from the last layer to the first its gradient norms spread over
{plain.max() / plain.min():.0f}×, against {residual.max() / residual.min():.0f}× with
shortcuts (slide the depth: at 8 layers both are even, at 50 the plain one is not).

He et al. said as much: their plain networks had batch norm, they checked that the
gradients had healthy norms, and still the deeper plain network trained *worse*. They called
it the **degradation problem** — an optimisation difficulty, not vanishing gradients and not
overfitting — and the next experiment shows it.
"""
)

# --- 2. The race -------------------------------------------------------------------------------
st.header("2 · Deeper plain networks train worse; residual ones do not")
st.markdown(
    """
A deeper network can do everything a shallower one can: copy its layers and make the extra
ones the identity. So its **training** loss should never be higher. He et al. (their Figure 1)
found a 56-layer plain network with a higher *training* error than a 20-layer one: not
overfitting (that would be a low training error and a high test error) but a network that the
optimiser cannot bring to a solution it provably has. With shortcuts the deeper network
trained better than the shallower one.

Four networks train now, plain and residual, shallow and deep, on the same 2048 street
patches (16×16 pixels, to keep a 32-layer network within seconds), from the same seed, with
the same recipe: batch norm, batches of 32, 300 steps of Adam with the learning rate warmed
up and then annealed (He et al. used SGD for 64 000 steps; Adam gets far in a few hundred).
"""
)
DEPTH_PAIRS = {"8 vs 20 layers": (8, 20), "8 vs 32 layers": (8, 32)}
r1, r2 = st.columns(2)
pair = share.widget(r1.radio,
                    "Depths", list(DEPTH_PAIRS), index=0, horizontal=True, key="resnet_race_depths")
race_seed = share.widget(r2.number_input, "Seed", 0, 999, 0, key="resnet_race_seed")
shallow, deep = DEPTH_PAIRS[pair]


@st.cache_data(max_entries=16, show_spinner=False)
def run_depth_race(depths: tuple[int, int], seed: int) -> live.DepthRace:
    """Plain and residual networks of both depths, trained once per setting, with a progress
    bar (made inside, so that a cache hit replays nothing but an emptied bar)."""
    bar = st.progress(0.0, text="Training four networks…")
    result = live.depth_race(depths, seed=seed, callback=lambda fraction, text: bar.progress(
        min(1.0, fraction), text=f"Training four networks… {text}"))
    bar.empty()
    return result


race = run_depth_race((shallow, deep), race_seed)

steps = np.arange(1, race.settings["steps"] + 1)
series = {f"{kind} {d}": (steps, race.smoothed(kind, d))
          for kind in ("plain", "residual") for d in (shallow, deep)}
fig = figures.curves(series, f"Training loss ({race.window}-step average)", ylabel="loss",
                     height=360)
for trace in fig.data:
    kind, d = trace.name.split()
    trace.line.color = COLOURS[kind]
    trace.line.dash = "solid" if int(d) == deep else "dot"
st.plotly_chart(fig, key="resnet_race_loss")
st.caption("Red: plain, blue: residual; dotted: shallow, solid: deep. A deep residual network "
           "often starts with the highest loss (at initialisation its many branches add up to "
           "large outputs) and then overtakes; the deep plain one stays behind.")

final = race.train_loss
cols = st.columns(4)
runs = [(kind, d) for kind in ("plain", "residual") for d in (shallow, deep)]
for column, (kind, d) in zip(cols, runs):
    column.metric(f"{kind.capitalize()}-{d}: training loss", f"{final[kind, d]:.3f}",
                  delta=(f"{final[kind, d] - final[kind, shallow]:+.3f} vs {shallow} layers"
                         if d == deep else None), delta_color="inverse",
                  help="Cross-entropy on all 2048 training patches after training "
                       f"(training error {race.train_error[kind, d]:.0%}).")
plain_worse = final["plain", deep] > final["plain", shallow]
residual_worse = final["residual", deep] > final["residual", shallow]
verdict = ("That is the degradation problem, and the shortcuts remove it."
           if plain_worse and not residual_worse else
           "With this seed the pattern is not the textbook one: small networks trained for a "
           "few hundred steps are noisy. Try another seed.")
st.markdown(
    f"""
Measured after training, on all training patches: going from {shallow} to {deep} layers, the
plain network's training loss went **{'up' if plain_worse else 'down'}**
({final['plain', shallow]:.3f} → {final['plain', deep]:.3f}) and the residual network's went
**{'up' if residual_worse else 'down'}** ({final['residual', shallow]:.3f} →
{final['residual', deep]:.3f}). {verdict} The deeper plain network is not overfitting: it
does worse on the very patches it was trained on.
"""
)
st.caption(f"Trained on this computer's CPU in {sum(race.seconds.values()):.0f} s: " + ", ".join(
    f"{k}-{d} {sec:.1f} s" for (k, d), sec in race.seconds.items()) + ".")

# --- 3. A real ResNet --------------------------------------------------------------------------
st.header("3 · Inside a real ResNet")
if not pretrained.is_cached("resnet18"):
    st.info(
        "torchvision's ImageNet weights for ResNet-18 are **not on this computer** (looked "
        f"for `{pretrained.cache_path('resnet18')}`), so its feature maps of your picture "
        "cannot be shown. With internet, download them (45 MB) with the sidebar's *Pretrained "
        "weights* panel or with `python -m seg weights download resnet18`, then reload this "
        "page.", icon="ℹ️")
else:
    @st.cache_resource(max_entries=2, show_spinner="Loading ResNet-18's ImageNet weights…")
    def resnet18(device: str) -> torch.nn.Module:
        """torchvision's pretrained ResNet-18, loaded once for all students."""
        return pretrained.build("resnet18", device=device)[0]

    @st.cache_data(max_entries=16, show_spinner="Running ResNet-18…")
    def maps(image_key: str, device: str, _array: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of ResNet-18's four stages for the chosen picture (224 px short side)."""
        from PIL import Image

        image = Image.fromarray(_array)
        scale = 224 / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
        x = seg.models.segmenter.to_tensor(image).to(device)  # (1, 3, H, W)
        return live.feature_maps(resnet18(device), x, ["layer1", "layer2", "layer3", "layer4"])

    st.markdown(
        f"ResNet-18 (ImageNet weights) looks at **{chosen.name}**. Each of its four stages is "
        "a pair of residual blocks; here are the first 8 channels of each stage's output. "
        "Early stages respond to edges and colours at fine resolution, later ones to parts "
        "and objects at 1/32 of it.")
    outputs = maps(chosen.key, resources.device(), chosen.array)
    for name, fmap in outputs.items():
        st.caption(f"{name}: {fmap.shape[0]} channels of {fmap.shape[1]}×{fmap.shape[2]}")
        pictures = np.stack([seg.viz.heat(c, lo=None, hi=None) for c in fmap[:8]])
        st.image(live.mosaic(pictures, columns=8, gap=2), width="stretch")

widgets.show_code(live.gradient_norms, live.depth_race)
