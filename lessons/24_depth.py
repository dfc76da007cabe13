"""Depth maps: a distance per pixel, drawn as grey levels, lifted into 3-D, and what it adds."""

import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import seg
from app import figures, image_input, share, widgets
from seg import depth as seg_depth
from seg.io import ImageError

chosen = image_input.current()
CLASSES = list(seg.synthetic.CLASSES)
PALETTE = seg.synthetic.PALETTE

st.title("Depth maps")
st.markdown(
    """
**Learning goal.** Read a depth map as a picture, know why most depth pictures store *inverse*
depth, turn a picture and its depth into a 3-D scene with a pinhole camera, and measure how much
depth helps to tell the classes apart.

A **depth map** stores for every pixel the distance Z, in metres along the camera's viewing
axis, of the surface the pixel sees. Depth cameras (Kinect, iPhone LiDAR), stereo pairs and
depth-estimation networks all produce one. SegLab's synthetic scenes come with exact depth:
ground and walls per pixel, cars, people and poles at the distance of their foot point, and the
sky at 1000 m by convention.
"""
)

# ---------------------------------------------------------------------------------------------
st.header("1 · A depth map as a grey-level picture")
if chosen.is_synthetic:
    scene = chosen.scene
else:
    scene = image_input.synthetic(image_input.DEFAULT_SEED)
    st.info(f"{chosen.name} has no depth map, so this section uses synthetic scene "
            f"#{image_input.DEFAULT_SEED}; section 3 pairs your picture with a depth map you "
            "upload.", icon="ℹ️")
st.markdown(
    r"""
A screen shows 256 grey levels, so the metres must be mapped to levels. The usual convention is
**near = bright, far = dark**: the things a robot may bump into stand out. Two ways to spread
the 256 levels between a *near* and a *far* distance:
"""
)
st.latex(r"\text{linear in depth: } g = 255\,\frac{Z_{far} - Z}{Z_{far} - Z_{near}}"
         r"\qquad\qquad \text{linear in inverse depth: } "
         r"g = 255\,\frac{1/Z - 1/Z_{far}}{1/Z_{near} - 1/Z_{far}}")
st.markdown(
    """
Stereo cameras measure **disparity**, the shift of a point between the two views:
*d = f · B / Z* (focal length f, baseline B). Disparity is inverse depth, and its error is about
the same everywhere, so the depth error grows as Z². Storing 1/Z spends the grey levels where the
measurement is precise: many levels for the first metres, few for the far background. Storing Z
linearly gives every level the same number of metres, and everything near shares a handful.
"""
)
CONVENTIONS = {"inverse depth 1/Z": True, "depth Z": False}  # label -> levels linear in 1/Z
convention = share.widget(st.radio, "Grey levels linear in", list(CONVENTIONS), horizontal=True,
                          key="depth_convention")
inverse = CONVENTIONS[convention]
near, far = share.widget(st.select_slider, "Near (white) and far (black) distances, metres",
                         options=[0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
                         value=(2, 200), key="depth_range")
if near == far:
    st.warning("Near and far must differ; using far = 10 × near.")
    far = near * 10


grey = figures.depth_picture(scene.depth, near=near, far=far, inverse=inverse)
left, right = st.columns([scene.image.shape[1], grey.shape[1]])  # the two at the same height
left.image(scene.image, caption=f"Synthetic scene #{scene.seed}", width="stretch")
right.image(grey, caption=f"Its depth, grey levels linear in {convention}", width="stretch")

spacing = {}  # convention -> (depth of each gap between neighbouring levels, its size), nearest first
for name, flag in CONVENTIONS.items():
    levels = seg_depth.from_grey(np.arange(256), near=near, far=far, inverse=flag)[::-1]  # (256,) m
    spacing[name] = ((levels[1:] + levels[:-1]) / 2, np.diff(levels))
st.plotly_chart(
    figures.curves({name: (at.tolist(), gap.tolist()) for name, (at, gap) in spacing.items()},
                   "Precision kept by 8 bits: metres between neighbouring grey levels",
                   xlabel="depth (m)", ylabel="metres per grey level", log_y=True, height=280)
    .update_xaxes(type="log"),  # log-log: the inverse convention's Z² is a straight line
    key="depth_precision")
probe = float(np.clip(5.0, near, far))
gap_at = {name: float(np.interp(probe, at, gap)) for name, (at, gap) in spacing.items()}
st.caption(f"At {probe:g} m one grey level is {gap_at['inverse depth 1/Z'] * 100:.1f} cm when "
           f"linear in inverse depth and {gap_at['depth Z'] * 100:.1f} cm when linear in depth. "
           f"Sky pixels (1000 m) and anything beyond {far:g} m are black.")

# ---------------------------------------------------------------------------------------------
st.header("2 · Picture + depth = a 3-D scene")
st.markdown(
    r"""
A pinhole camera with focal length *f* (in pixels) and principal point (cₓ, c_y) sends the point
(X, Y, Z) to pixel u = cₓ + f X / Z, v = c_y − f Y / Z. With the depth Z known for a pixel we can
run it backwards (**back-projection**) and put every pixel, with its colour, back in 3-D:
"""
)
st.latex(r"X = \frac{(u + \tfrac12 - c_x)\,Z}{f},\qquad Y = \frac{(c_y - v - \tfrac12)\,Z}{f},"
         r"\qquad f = \frac{W/2}{\tan(\mathrm{FOV}/2)}")
st.markdown("The focal length comes from the field of view; SegLab's street camera spans "
            "50–65° across. Drag the 3-D view to turn it: the road lies flat, walls stand up, "
            "and cars and people are flat cut-outs, because their depth is one number each.")


def cloud_figure(cloud: seg_depth.PointCloud, title: str, unit: str = "m", *,
                 step: int = 2) -> go.Figure:
    """A rotatable point cloud, each point in its pixel's colour, first seen from behind and
    above the camera (which sits at the origin); points kept one in `step` are drawn larger."""
    colours = [f"rgb({r},{g},{b})" for r, g, b in cloud.colours.tolist()]
    x, y, z = cloud.points.T
    plotted = np.stack([x, z, y], axis=1)  # plot axes: X across, Z forward, Y up
    lo = np.minimum(plotted.min(axis=0), 0)  # (3,) the box holds the camera too
    hi = np.maximum(plotted.max(axis=0), lo + 1e-6)
    aspect = (hi - lo) / (hi - lo).max()  # (3,) true proportions, as aspectmode="data"
    reach = hi[1]

    def box(point):  # a point in metres -> plotly's camera coordinates (the box's centre is 0)
        unit_box = (np.array(point) - (lo + hi) / 2) / (hi - lo) * aspect
        return dict(zip("xyz", unit_box.tolist()))

    fig = go.Figure(go.Scatter3d(
        x=x, y=z, z=y, mode="markers", marker=dict(size=max(2, step), color=colours),
        customdata=np.stack([cloud.cols, cloud.rows], axis=1),
        hovertemplate=(f"X %{{x:.1f}} {unit}, Y %{{z:.1f}} {unit}, Z %{{y:.1f}} {unit}"
                       "<br>pixel (%{customdata[0]}, %{customdata[1]})<extra></extra>")))
    axes = {name: dict(title=title_, range=[float(lo[i]), float(hi[i])])
            for i, (name, title_) in enumerate((("xaxis", f"X right ({unit})"),
                                                ("yaxis", f"Z forward ({unit})"),
                                                ("zaxis", f"Y up ({unit})")))}
    fig.update_layout(
        title=title, height=520, margin=figures.MARGIN,
        scene=dict(**axes, aspectmode="manual", aspectratio=dict(zip("xyz", aspect.tolist())),
                   camera=dict(eye=box((-0.12 * reach, -0.25 * reach, 0.15 * reach)),
                               center=box((0, 0.3 * reach, 0)), up=dict(x=0, y=0, z=1))))
    return fig


@st.fragment
def scene_cloud() -> None:
    a, b, c = st.columns(3)
    fov = share.widget(a.slider, "Field of view (degrees)", 30, 100, 55, key="depth_fov")
    every = share.widget(b.slider, "One point every … pixels", 1, 6, 3, key="depth_step",
                         help="A 256×256 picture has 65 536 pixels; every 3rd pixel of every 3rd "
                              "row keeps 7 396 points, which a browser without a graphics card "
                              "still turns smoothly (every 2nd: 16 384).")
    farthest = share.widget(c.slider, "Farthest point shown (m)", 10, 400, 120, key="depth_max",
                            help="The sky is 1000 m away by convention: it would squash the street.")
    focal = seg_depth.focal_from_fov(fov, scene.image.shape[1])
    cloud = seg_depth.point_cloud(scene.image, scene.depth, focal=focal, step=every,
                                  max_depth=farthest)
    st.plotly_chart(cloud_figure(cloud, f"Scene #{scene.seed} in 3-D (f = {focal:.0f} px)",
                                 step=every), key="depth_cloud")
    kept = scene.depth[::every, ::every]
    st.metric("Points", f"{len(cloud.points):,}", help="Pixels kept by the subsampling whose depth "
              "is at most the farthest distance shown.")
    st.caption(f"{kept.size:,} pixels after subsampling, {kept.size - len(cloud.points):,} of "
               f"them farther than {farthest} m (mostly sky) left out.")


scene_cloud()

# ---------------------------------------------------------------------------------------------
st.header("3 · Your picture and its depth")
st.markdown(
    f"""
The picture is the one chosen in the sidebar (choose **Upload** there for your own photo; now:
**{chosen.name}**, {chosen.array.shape[1]}×{chosen.array.shape[0]} pixels). Upload its depth map
here, the same width and height. SegLab reads a **16-bit PNG in millimetres** (Kinect, NYU Depth
v2), a **float TIFF** or a **.npy array in metres**, or an **8-bit grey PNG**, which can only hold
*relative* depth (0–1 of the farthest). Depth-estimation networks such as MiDaS or Depth Anything
save *inverse* relative depth (bright = near): tick the box for those.
"""
)
# JPEG is let through so that load_depth can say why it cannot hold depth.
upload = st.file_uploader("Depth map of this picture", key="depth_upload",
                          type=["png", "tif", "tiff", "npy", "jpg", "jpeg"])
stores_inverse = share.widget(st.checkbox, "This file stores inverse depth (bright = near)",
                              key="depth_upload_inverse")
if upload is None:
    st.caption("No depth map uploaded yet.")
else:
    height, width = chosen.array.shape[:2]
    try:
        user_depth = seg.io.load_depth(upload.getvalue(), size=(width, height))
    except ImageError as error:
        st.error(f"“{upload.name}”: {error}", icon="🚫")
    else:
        measured = user_depth > 0
        if stores_inverse:
            user_depth = np.where(measured, 1.0 / np.where(measured, user_depth, 1.0), 0.0)
        relative = stores_inverse or user_depth.max() <= 1.0
        unit = "rel." if relative else "m"
        if not measured.any():
            st.error(f"“{upload.name}”: every pixel of this depth map is 0 (no measurement).",
                     icon="🚫")
        else:
            lo, hi = float(user_depth[measured].min()), float(user_depth[measured].max())
            hi = hi if hi > lo else lo * 2
            st.success(f"Read {width}×{height} depths from {lo:.3g} to {hi:.3g} {unit}"
                       f"{' (relative units)' if relative else ''}; "
                       f"{(~measured).mean():.0%} of the pixels have no measurement (0).")
            grey = figures.depth_picture(user_depth, near=lo, far=hi, inverse=True, unit=unit)
            left, right = st.columns([width, grey.shape[1]])
            left.image(chosen.array, caption=chosen.name, width="stretch")
            right.image(grey, caption="Its depth (inverse-depth grey levels)", width="stretch")
            every = max(1, round(max(width, height) / 160))
            focal = seg_depth.focal_from_fov(st.session_state.get("depth_fov", 55), width)
            user_cloud = seg_depth.point_cloud(chosen.array, user_depth, focal=focal, step=every)
            st.plotly_chart(cloud_figure(user_cloud, f"{chosen.name} in 3-D "
                                         f"({len(user_cloud.points):,} points, one every "
                                         f"{every} px)", unit=unit, step=every),
                            key="depth_user_cloud")

# ---------------------------------------------------------------------------------------------
st.header("4 · What depth adds to segmentation")
st.markdown(
    """
Colour alone cannot separate a grey road from a grey wall under a grey sky, and in SegLab's
streets every colour is drawn at random. Depth can: the sky is 1000 m away, the ground's inverse
depth grows steadily down the picture, a wall's stays constant down a column, a car's or a
person's constant across it.

**The measurement.** A per-pixel classifier, one Gaussian per class in feature space (fitted by
counting, no training loop), learns from every pixel of some training scenes and is scored by
mIoU on scenes it never saw. It sees one pixel at a time, so the numbers say what each feature
tells about a pixel *on its own*. A fair question: does depth only say "the road is at the
bottom"? The *position* rows answer it: depth is also compared with the pixel's row.
"""
)
st.latex(r"\hat c(x) = \arg\max_c \; \log p(c) + \log \mathcal{N}(x;\, \mu_c, \Sigma_c)")
n_train = share.widget(st.slider, "Training scenes", 4, 32, 12, step=4, key="depth_train",
                       help="Held-out scenes: 12, never used for fitting. Scenes are 64×64 pixels.")
N_EVAL, SIZE = 12, 64


@st.cache_data(max_entries=8, show_spinner="Fitting the classifiers…")
def measure(n_train: int, n_eval: int, size: int):
    """Scores of every feature set on held-out scenes, and the seconds the whole run took."""
    start = time.perf_counter()
    scores = seg_depth.depth_gain([seg.synthetic.train_seed(50_000 + i) for i in range(n_train)],
                                  [seg.synthetic.eval_seed(i) for i in range(n_eval)], size=size)
    return scores, time.perf_counter() - start


scores, seconds = measure(n_train, N_EVAL, SIZE)
by_name = {s.name: s for s in scores}
cols = st.columns(4)
baseline = {"colour": None, "colour + position": "colour", "colour + depth": "colour",
            "colour + position + depth": "colour + position"}
for col, s in zip(cols, scores):
    ref = baseline[s.name]
    col.metric(f"mIoU · {s.name}", f"{s.miou:.3f}",
               delta=None if ref is None else f"{s.miou - by_name[ref].miou:+.3f} vs {ref}")
st.caption(f"Fitting and scoring all four took {seconds:.2f} s on this server "
           f"({n_train} training scenes, {N_EVAL} held-out scenes, {SIZE}×{SIZE} pixels).")

gain = by_name["colour + depth"].miou - by_name["colour"].miou
st.markdown(f"**Depth adds {gain:+.3f} mIoU to colour** on held-out scenes, and "
            f"{by_name['colour + position + depth'].miou - by_name['colour + position'].miou:+.3f} "
            "once the position is known as well. Per class:")
fig = go.Figure([go.Bar(name=name, x=CLASSES, y=by_name[name].iou.tolist(),
                        text=[f"{v:.2f}" for v in by_name[name].iou], textposition="auto")
                 for name in ("colour", "colour + depth")])
fig.update_layout(barmode="group", height=300, margin=figures.MARGIN, yaxis=dict(range=(0, 1),
                  title="IoU on held-out scenes"), legend=dict(orientation="h"))
st.plotly_chart(fig, key="depth_per_class")

example = seg.synthetic.scene(seg.synthetic.eval_seed(0), height=SIZE, width=SIZE)
shown = {"Held-out scene": example.image,
         "True labels": seg.viz.colorize(example.labels, PALETTE),
         **{f"From {name}": seg.viz.colorize(by_name[name].example, PALETTE)
            for name in ("colour", "colour + depth")}}
for col, (caption, picture) in zip(st.columns(4), shown.items()):
    col.image(picture, caption=caption, width="stretch")
widgets.legend(example.labels, CLASSES, PALETTE)
st.table({"feature set": [s.name for s in scores],
          "features": [", ".join(s.features) for s in scores],
          "held-out mIoU": [f"{s.miou:.3f}" for s in scores]})
st.markdown("What remains hard even with depth: *pole*, *car* and *person* are small, and one "
            "pixel's colour and distance rarely say which of them it is. That is what the "
            "receptive field of a convolutional network adds: the neighbourhood.")

widgets.show_code(seg_depth.to_grey, seg_depth.backproject, seg_depth.point_cloud,
                  seg_depth.pixel_features, seg_depth.GaussianClassifier, seg_depth.depth_gain)
