"""Depth maps: storing them as grey levels, lifting a picture into 3-D, and what depth is worth.

A depth map gives every pixel the distance Z (metres, along the camera's viewing axis) of the
surface it sees. Three things a student does with one:

1. **Look at it.** A screen shows 256 grey levels, so metres must be mapped to levels.
   :func:`to_grey` maps ``near`` to white and ``far`` to black, either linearly in Z or linearly
   in the *inverse depth* 1/Z (what stereo cameras measure: disparity = focal × baseline / Z).
   :func:`from_grey` undoes it; the round trip shows how much each convention loses where.
2. **Lift the picture into 3-D.** With a pinhole camera of focal length f pixels and principal
   point (cx, cy), pixel (u, v) at depth Z is the point
   X = (u + ½ − cx) Z / f, Y = (cy − v − ½) Z / f, Z (X right, Y up, Z forward):
   :func:`backproject`, :func:`point_cloud`; :func:`project` goes back to pixels.
3. **Measure what depth adds to segmentation.** A per-pixel Gaussian classifier
   (:class:`GaussianClassifier`) is trained on held-in synthetic scenes with colour features
   alone, then with depth features added, and both are scored by mIoU on held-out scenes
   (:func:`depth_gain`). Colour alone cannot tell a grey road from a grey wall; depth can: the
   ground's inverse depth grows steadily down the image, an upright wall's stays constant
   along a column, and the sky is 1000 m away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seg import metrics, synthetic

#: The features :func:`pixel_features` knows, in the order they are stacked.
FEATURES = ("red", "green", "blue", "row", "inverse depth", "log depth", "d(1/Z)/dy", "d(1/Z)/dx")
COLOUR = ("red", "green", "blue")
DEPTH = ("inverse depth", "log depth", "d(1/Z)/dy", "d(1/Z)/dx")
#: The comparisons of :func:`depth_gain`: name -> features used.
FEATURE_SETS = {
    "colour": COLOUR,
    "colour + position": COLOUR + ("row",),
    "colour + depth": COLOUR + DEPTH,
    "colour + position + depth": COLOUR + ("row",) + DEPTH,
}


# ---------------------------------------------------------------------------------------------
# Depth <-> grey levels
# ---------------------------------------------------------------------------------------------


def _check_range(near: float, far: float) -> None:
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")


def to_grey(depth, *, near: float, far: float, inverse: bool = True) -> np.ndarray:
    """Depth in metres as 8-bit grey levels: ``near`` is white (255), ``far`` black (0).

    With ``inverse=True`` the levels are spread linearly in 1/Z, so near things, where a depth
    sensor is precise and where a robot must not bump into anything, get most of the 256 levels
    and the far background shares a few. With ``inverse=False`` they are linear in Z: every
    level is the same number of metres, and with a far ``far`` everything close shares one grey.
    Depths outside [near, far] are clipped; 0 (no measurement) and non-finite values are black.

    Args:
        depth: array (H, W) of distances in metres.
        near: distance drawn white, > 0.
        far: distance drawn black, > near.
        inverse: levels linear in 1/Z (True) or in Z (False).

    Returns:
        uint8 array (H, W).

    Example:
        >>> to_grey(np.array([[1.0, 2.0, 100.0]]), near=1.0, far=100.0).tolist()
        [[255, 126, 0]]
    """
    _check_range(near, far)
    z = np.asarray(depth, dtype=np.float64)
    measured = np.isfinite(z) & (z > 0)
    z = np.clip(np.where(measured, z, far), near, far)  # (H, W)
    if inverse:
        level = (1.0 / z - 1.0 / far) / (1.0 / near - 1.0 / far)
    else:
        level = (far - z) / (far - near)
    return np.where(measured, np.rint(level * 255), 0).astype(np.uint8)


def from_grey(grey, *, near: float, far: float, inverse: bool = True) -> np.ndarray:
    """Metres from grey levels written by :func:`to_grey` with the same settings.

    Each level stands for one depth, so the round trip ``from_grey(to_grey(z))`` moves z to the
    depth of its level: the gap between neighbouring levels is the precision the picture keeps
    (constant ``(far - near) / 255`` when linear in Z, growing as Z² when linear in 1/Z).

    Args:
        grey: uint8 (or integer) array of levels 0..255.
        near: distance of level 255.
        far: distance of level 0.
        inverse: the convention used to write the levels.

    Returns:
        float32 array of distances in metres, same shape as ``grey``.

    Example:
        >>> from_grey(np.array([255, 0]), near=1.0, far=100.0).tolist()
        [1.0, 100.0]
    """
    _check_range(near, far)
    level = np.asarray(grey, dtype=np.float64) / 255.0
    if inverse:
        z = 1.0 / (1.0 / far + level * (1.0 / near - 1.0 / far))
    else:
        z = far - level * (far - near)
    return z.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Pinhole camera: pixels <-> points
# ---------------------------------------------------------------------------------------------


def focal_from_fov(fov_degrees: float, width: int) -> float:
    """Focal length in pixels of a camera whose picture ``width`` pixels wide spans this angle.

    The image half-width w/2 is seen under half the field of view: f = (w / 2) / tan(fov / 2).
    A phone's main camera spans about 65-70° across; SegLab's street scenes 50-65°.

    Args:
        fov_degrees: horizontal field of view, strictly between 0 and 180.
        width: picture width in pixels.

    Returns:
        The focal length in pixels.

    Example:
        >>> round(focal_from_fov(90, 256), 6)
        128.0
    """
    if not 0 < fov_degrees < 180:
        raise ValueError(f"the field of view must lie strictly between 0 and 180 degrees, "
                         f"got {fov_degrees}")
    return (width / 2) / math.tan(math.radians(fov_degrees) / 2)


def backproject(depth, focal: float, center: tuple[float, float] | None = None) -> np.ndarray:
    """Every pixel's 3-D point (X right, Y up, Z forward, metres) under a pinhole camera.

    Pixel (row v, column u) covers the square [u, u + 1) × [v, v + 1); its centre
    (u + ½, v + ½) is the point that projects there. By similar triangles a point at depth Z
    lands (X / Z) × f pixels right of the principal point, so X = (u + ½ − cx) Z / f and, rows
    growing downwards, Y = (cy − v − ½) Z / f.

    Args:
        depth: (H, W) distances Z in metres.
        focal: focal length in pixels (see :func:`focal_from_fov`).
        center: principal point (cx, cy) in pixels; default the picture's centre (W/2, H/2).

    Returns:
        float32 array (H, W, 3) of (X, Y, Z).

    Example:
        >>> backproject(np.full((2, 2), 4.0), focal=2.0)[0, 0].tolist()  # top-left pixel
        [-1.0, 1.0, 4.0]
    """
    z = np.asarray(depth, dtype=np.float64)  # (H, W)
    h, w = z.shape
    cx, cy = center if center is not None else (w / 2, h / 2)
    u = np.arange(w) + 0.5 - cx  # (W,) pixel-centre offsets from the principal point
    v = cy - (np.arange(h) + 0.5)  # (H,) upward offsets
    x = u[None, :] * z / focal  # (H, W)
    y = v[:, None] * z / focal  # (H, W)
    return np.stack([x, y, z], axis=-1).astype(np.float32)  # (H, W, 3)


def project(points, focal: float, center: tuple[float, float]) -> np.ndarray:
    """Where 3-D points (X, Y, Z) land in the picture: the inverse of :func:`backproject`.

    Args:
        points: (N, 3) points in metres, Z > 0.
        focal: focal length in pixels.
        center: principal point (cx, cy).

    Returns:
        float64 array (N, 2) of (u, v) pixel coordinates (pixel centres end in .5).

    Example:
        >>> project(np.array([[-1.0, 1.0, 4.0]]), focal=2.0, center=(1.0, 1.0)).tolist()
        [[0.5, 0.5]]
    """
    p = np.asarray(points, dtype=np.float64)  # (N, 3)
    u = center[0] + focal * p[:, 0] / p[:, 2]  # (N,)
    v = center[1] - focal * p[:, 1] / p[:, 2]  # (N,)
    return np.stack([u, v], axis=1)


@dataclass(frozen=True, eq=False)
class PointCloud:
    """Coloured 3-D points lifted from an image and its depth map."""

    points: np.ndarray  # (N, 3) float32 (X right, Y up, Z forward) metres
    colours: np.ndarray  # (N, 3) uint8, the pixel's RGB
    rows: np.ndarray  # (N,) int64 pixel row of each point
    cols: np.ndarray  # (N,) int64 pixel column


def point_cloud(image, depth, *, focal: float, step: int = 1,
                max_depth: float = math.inf) -> PointCloud:
    """The picture as a coloured point cloud: one point per kept pixel, coloured like it.

    Every ``step``-th pixel of every ``step``-th row is kept (a 256 × 256 picture has 65 536
    pixels; a browser turns 16 384 points comfortably). Pixels without a measurement (depth 0 or
    not finite) and those farther than ``max_depth`` (e.g. SegLab's sky, 1000 m by convention)
    are left out.

    Args:
        image: uint8 (H, W, 3) RGB picture.
        depth: (H, W) distances in metres, same size.
        focal: focal length in pixels.
        step: keep one pixel in ``step`` along each axis (>= 1).
        max_depth: farthest depth kept.

    Returns:
        :class:`PointCloud` with the kept points in row-major pixel order.

    Example:
        >>> cloud = point_cloud(np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 2.0), focal=4.0, step=2)
        >>> cloud.points.shape
        (4, 3)
    """
    image, depth = np.asarray(image), np.asarray(depth, dtype=np.float32)
    if image.shape[:2] != depth.shape:
        raise ValueError(f"image is {image.shape[:2]} but depth is {depth.shape}; "
                         "they must be the same size")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    xyz = backproject(depth, focal)[::step, ::step]  # (h, w, 3)
    z = depth[::step, ::step]  # (h, w)
    keep = np.isfinite(z) & (z > 0) & (z <= max_depth)  # (h, w)
    rows, cols = np.nonzero(keep)
    return PointCloud(points=xyz[keep], colours=image[::step, ::step][keep],
                      rows=rows * step, cols=cols * step)


# ---------------------------------------------------------------------------------------------
# What depth adds to segmentation: a per-pixel classifier with and without depth features
# ---------------------------------------------------------------------------------------------


def pixel_features(image, depth, names=FEATURES) -> np.ndarray:
    """Per-pixel feature vectors for a pixel classifier, one row per pixel (row-major).

    - ``red``, ``green``, ``blue``: the colour in [0, 1].
    - ``row``: the pixel's height in the picture, 0 at the top and 1 at the bottom.
    - ``inverse depth``: 1/Z with Z clipped to >= 1 m, so in (0, 1]; the sky is near 0.
    - ``log depth``: log Z, which spreads the distances evenly over scales.
    - ``d(1/Z)/dy``, ``d(1/Z)/dx``: how inverse depth changes down and across the picture (per
      picture height / width, clipped to [-1, 1]). The ground's 1/Z grows steadily downwards,
      an upright wall's is constant down a column, a car's or person's constant across it.

    Args:
        image: uint8 (H, W, 3).
        depth: (H, W) metres (only read when a depth feature is asked for).
        names: which features, any of :data:`FEATURES`, in the order wanted.

    Returns:
        float32 array (H * W, len(names)).

    Example:
        >>> x = pixel_features(np.zeros((2, 3, 3), np.uint8), np.ones((2, 3)), ["row", "log depth"])
        >>> x.shape
        (6, 2)
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown features {unknown}; choose from {FEATURES}")
    h, w = image.shape[:2]
    columns = {}
    rgb = np.asarray(image, dtype=np.float32) / 255  # (H, W, 3)
    for i, name in enumerate(COLOUR):
        columns[name] = rgb[..., i]
    columns["row"] = np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w))
    if any(n in DEPTH for n in names):
        z = np.maximum(np.asarray(depth, dtype=np.float32), 1.0)  # (H, W), nearest drawn is 1 m
        inverse = 1.0 / z
        columns["inverse depth"] = inverse
        columns["log depth"] = np.log(z)
        columns["d(1/Z)/dy"] = np.clip(np.gradient(inverse, axis=0) * h, -1, 1)
        columns["d(1/Z)/dx"] = np.clip(np.gradient(inverse, axis=1) * w, -1, 1)
    return np.stack([columns[n] for n in names], axis=-1).reshape(h * w, len(names)).astype(np.float32)


class GaussianClassifier:
    """One Gaussian per class in feature space; a pixel goes to the most probable class.

    Fitting is counting: each class's prior (share of training pixels), mean and covariance
    (plus ``ridge`` on the diagonal, so a feature that is constant within a class, like the sky's
    depth, does not make the covariance singular). Prediction is Bayes' rule,
    argmax_c log p(c) + log N(x; μ_c, Σ_c) (quadratic discriminant analysis). No gradient steps,
    so a fit on 100 000 pixels takes milliseconds, which is what makes the comparison live.

    Args:
        num_classes: C.
        ridge: added to every covariance diagonal.

    Example:
        >>> x = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
        >>> GaussianClassifier(2).fit(x, y).predict(np.array([[0.05], [0.9]])).tolist()
        [0, 1]
    """

    def __init__(self, num_classes: int, ridge: float = 1e-4):
        self.num_classes, self.ridge = num_classes, ridge
        self.means = self.whiten = self.offsets = None

    def fit(self, x, y) -> GaussianClassifier:
        """Estimate each class's prior, mean and covariance from features x (N, D) and labels y (N,)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
        d = x.shape[1]
        self.means = np.zeros((self.num_classes, d))  # (C, D)
        self.whiten = np.zeros((self.num_classes, d, d))  # (C, D, D): L⁻ᵀ with Σ = L Lᵀ
        # (C,) log prior - ½ log det Σ; -inf for a class never seen, so it is never predicted
        self.offsets = np.full(self.num_classes, -np.inf)
        for c in range(self.num_classes):
            xc = x[y == c]  # (N_c, D)
            if len(xc) < 2:
                continue
            self.means[c] = xc.mean(axis=0)
            covariance = np.cov(xc, rowvar=False).reshape(d, d) + self.ridge * np.eye(d)
            chol = np.linalg.cholesky(covariance)  # (D, D) lower triangular
            self.whiten[c] = np.linalg.inv(chol).T
            self.offsets[c] = math.log(len(xc) / len(x)) - np.log(np.diag(chol)).sum()
        return self

    def log_posterior(self, x) -> np.ndarray:
        """log p(c) + log N(x; μ_c, Σ_c) for each row of x (N, D) and each class, up to a
        constant shared by all: (N, C)."""
        x = np.asarray(x, dtype=np.float64)  # (N, D)
        scores = np.empty((len(x), self.num_classes))  # (N, C)
        for c in range(self.num_classes):
            white = (x - self.means[c]) @ self.whiten[c]  # (N, D): Mahalanobis coordinates
            scores[:, c] = self.offsets[c] - 0.5 * np.einsum("nd,nd->n", white, white)
        return scores

    def predict(self, x) -> np.ndarray:
        """The most probable class of each row of x (N, D): int64 (N,)."""
        return self.log_posterior(x).argmax(axis=1)


@dataclass(frozen=True, eq=False)
class FeatureSetScore:
    """How well one set of per-pixel features segments held-out scenes."""

    name: str
    features: tuple[str, ...]
    miou: float
    iou: np.ndarray  # (C,) per-class IoU over all held-out pixels, nan where absent
    example: np.ndarray  # (H, W) int64 predicted labels of the first held-out scene


def depth_gain(train_seeds, eval_seeds, *, size: int = 64, feature_sets=None) -> list[FeatureSetScore]:
    """Train a per-pixel classifier with and without depth and score it on held-out scenes.

    For each feature set a :class:`GaussianClassifier` is fitted on every pixel of the
    training scenes and scored on the evaluation scenes by mIoU (one confusion matrix summed
    over all of their pixels). A per-pixel classifier sees no neighbourhood, so the differences
    between the sets are what each kind of feature tells about a pixel on its own. Comparing
    "colour + position" with "colour + depth" separates what depth adds beyond "the road is at
    the bottom".

    Args:
        train_seeds: seeds of the training scenes (use ``synthetic.train_seed``).
        eval_seeds: seeds of the held-out scenes (use ``synthetic.eval_seed``; keep them apart).
        size: scenes are rendered size × size pixels.
        feature_sets: {name: feature names}; default :data:`FEATURE_SETS`.

    Returns:
        One :class:`FeatureSetScore` per feature set, in the given order.

    Example:
        >>> train = [synthetic.train_seed(i) for i in range(4)]
        >>> scores = depth_gain(train, [synthetic.eval_seed(0)], size=16)
        >>> [s.name for s in scores]
        ['colour', 'colour + position', 'colour + depth', 'colour + position + depth']
    """
    train_seeds, eval_seeds = list(train_seeds), list(eval_seeds)
    if set(train_seeds) & set(eval_seeds):
        raise ValueError("training and evaluation seeds overlap: held-out scenes must be unseen")
    num_classes = len(synthetic.CLASSES)
    train = [synthetic.scene(s, height=size, width=size) for s in train_seeds]
    held_out = [synthetic.scene(s, height=size, width=size) for s in eval_seeds]
    y = np.concatenate([s.labels.reshape(-1) for s in train])  # (N,)
    truth = np.stack([s.labels for s in held_out])  # (S, H, W)
    scores = []
    for name, names in (feature_sets or FEATURE_SETS).items():
        x = np.concatenate([pixel_features(s.image, s.depth, names) for s in train])  # (N, D)
        model = GaussianClassifier(num_classes).fit(x, y)
        predictions = np.stack([model.predict(pixel_features(s.image, s.depth, names))
                                for s in held_out]).reshape(len(held_out), size, size)  # (S, H, W)
        cm = metrics.confusion_matrix(predictions, truth, num_classes)  # (C, C) all held-out pixels
        iou = metrics.iou_from_confusion(cm).numpy()  # (C,)
        scores.append(FeatureSetScore(name, tuple(names), float(np.nanmean(iou)), iou, predictions[0]))
    return scores

