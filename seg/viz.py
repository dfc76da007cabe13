"""Turning label maps and score maps into pictures: palettes, colourise, overlay, colormaps.

Everything here is plain numpy on uint8 images (H, W, 3), so it works the same for a page, a
notebook or a test. A label map is an integer array (H, W) of class indices; the label 255
marks "ignore" (unlabelled) pixels and is drawn black. Score maps (probabilities, depth,
entropy) become grey levels with :func:`grey` or colours with :func:`heat`, whose colormaps
are interpolated from a few anchor colours (no matplotlib needed).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "voc_palette",
    "palette_for",
    "to_hex",
    "colorize",
    "overlay",
    "blend",
    "grey",
    "colormap",
    "heat",
    "boundaries",
    "legend_rows",
    "upscale_nearest",
]

IGNORE_INDEX = 255

# Anchor colours of the colormaps, evenly spaced from 0 to 1; 256 entries are interpolated.
# viridis: perceptually uniform, readable in grey and by colour-blind students (9 samples of
# matplotlib's viridis). coolwarm: Moreland's diverging map (blue < middle grey < red) for
# signed quantities such as differences and gradients.
_ANCHORS = {
    "viridis": [
        (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140),
        (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37),
    ],
    "coolwarm": [
        (59, 76, 192), (98, 130, 234), (141, 176, 254), (184, 208, 249), (221, 221, 221),
        (245, 196, 173), (244, 154, 123), (222, 96, 77), (180, 4, 38),
    ],
    "grey": [(0, 0, 0), (255, 255, 255)],
}


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour palette: colour i spreads the bits of i over R, G and B.

    Bits 0, 1, 2 of the index go to the most significant bit of R, G, B, bits 3, 4, 5 to the
    next, and so on, so neighbouring class indices get clearly different colours:
    background (0) is black, aeroplane (1) dark red, bicycle (2) dark green, ...

    Args:
        n: number of colours.

    Returns:
        uint8 array (n, 3).

    Example:
        >>> voc_palette(3).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    index = np.arange(n, dtype=np.int64)  # (n,)
    palette = np.zeros((n, 3), dtype=np.int64)  # (n, 3)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def palette_for(num_classes: int, base=None) -> np.ndarray:
    """A palette with exactly ``num_classes`` colours.

    Without ``base`` this is the VOC palette. With a base palette (e.g. SegLab's Cityscapes-like
    ``seg.synthetic.PALETTE``) its colours come first, and if more classes are needed the
    palette is extended with VOC colours that are neither black nor already used.

    Args:
        num_classes: number of colours wanted.
        base: optional (K, 3) palette to start from.

    Returns:
        uint8 array (num_classes, 3).

    Example:
        >>> palette_for(2, base=[(70, 130, 180)]).tolist()
        [[70, 130, 180], [128, 0, 0]]
    """
    if base is None:
        return voc_palette(num_classes)
    base = np.asarray(base, dtype=np.uint8).reshape(-1, 3)  # (K, 3)
    missing = num_classes - len(base)
    if missing <= 0:
        return base[:num_classes].copy()
    used = {tuple(c) for c in base.tolist()} | {(0, 0, 0)}
    extra = [c for c in voc_palette(max(256, num_classes + len(used))).tolist() if tuple(c) not in used]
    return np.concatenate([base, np.asarray(extra[:missing], dtype=np.uint8)])


def to_hex(rgb) -> str:
    """CSS hex string of an RGB triple.

    Example:
        >>> to_hex((220, 20, 60))
        '#dc143c'
    """
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _check_labels(labels, palette) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, palette and ignore mask as arrays; refuses labels the palette cannot colour."""
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)  # (K, 3)
    if labels.ndim != 2:
        raise ValueError(f"expected a label map (H, W), got shape {labels.shape}")
    ignored = labels == IGNORE_INDEX  # (H, W)
    shown = labels[~ignored]
    if shown.size and (shown.min() < 0 or shown.max() >= len(palette)):
        raise ValueError(
            f"labels range from {shown.min()} to {shown.max()} but the palette has only "
            f"{len(palette)} colours; use palette_for(num_classes)"
        )
    return labels, palette, ignored


def _as_rgb(image) -> np.ndarray:
    """An image as uint8 (H, W, 3): grey (H, W) is repeated, an alpha channel dropped."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an image (H, W, 3), got shape {image.shape}")
    return image[:, :, :3].astype(np.uint8, copy=False)


def colorize(labels, palette) -> np.ndarray:
    """Paint each pixel of a label map with its class colour; ignore (255) pixels are black.

    Args:
        labels: integer label map (H, W).
        palette: (K, 3) colours, one per class (K > every label except 255).

    Returns:
        uint8 image (H, W, 3).

    Example:
        >>> colorize(np.array([[0, 1, 255]]), [(10, 20, 30), (40, 50, 60)]).tolist()
        [[[10, 20, 30], [40, 50, 60], [0, 0, 0]]]
    """
    labels, palette, ignored = _check_labels(labels, palette)
    return np.where(ignored[:, :, None], np.uint8(0), palette[np.where(ignored, 0, labels)])


def blend(a, b, t) -> np.ndarray:
    """Linear mix ``(1 - t) * a + t * b`` of two uint8 images, rounded.

    Args:
        a: image (H, W, 3) shown at t = 0.
        b: image (H, W, 3) shown at t = 1.
        t: mixing weight in [0, 1], a number or an (H, W) map for a per-pixel mix.

    Returns:
        uint8 image (H, W, 3).

    Example:
        >>> blend(np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 200, np.uint8), 0.25)[0, 0]
        array([50, 50, 50], dtype=uint8)
    """
    a, b = _as_rgb(a), _as_rgb(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if t.ndim == 2:
        t = t[:, :, None]  # (H, W, 1) broadcasts over colour
    mixed = (1.0 - t) * a + t * b
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def overlay(image, labels, palette, alpha: float = 0.5) -> np.ndarray:
    """Show a segmentation on top of its image: class colours mixed in with weight ``alpha``.

    Ignore (255) pixels keep the plain image, so unlabelled regions stay visible.

    Args:
        image: photo (H, W, 3) uint8.
        labels: label map (H, W) of the same size.
        palette: (K, 3) class colours.
        alpha: 0 shows only the image, 1 only the class colours.

    Returns:
        uint8 image (H, W, 3).

    Example:
        >>> overlay(np.zeros((1, 1, 3), np.uint8), np.array([[0]]), [(200, 100, 0)], 0.5)[0, 0]
        array([100,  50,   0], dtype=uint8)
    """
    image = _as_rgb(image)
    labels, palette, ignored = _check_labels(labels, palette)
    if image.shape[:2] != labels.shape:
        raise ValueError(
            f"image is {image.shape[:2]} but labels are {labels.shape}; resize the labels "
            "to the image (nearest neighbour) first"
        )
    weight = np.where(ignored, 0.0, alpha)  # (H, W)
    return blend(image, colorize(labels, palette), weight)


def _normalise(values, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Values scaled so lo -> 0 and hi -> 1 (clipped), plus the mask of finite values.

    Missing ``lo``/``hi`` default to the finite minimum/maximum; a constant map becomes 0.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if lo is None:
        lo = values[finite].min() if finite.any() else 0.0
    if hi is None:
        hi = values[finite].max() if finite.any() else 1.0
    span = hi - lo
    scaled = (values - lo) / span if span > 0 else np.zeros_like(values)
    return np.clip(np.where(finite, scaled, 0.0), 0.0, 1.0), finite


def grey(values, lo=None, hi=None, invert: bool = False) -> np.ndarray:
    """A scalar map as grey levels, made for depth: by default SMALL values are BRIGHT.

    A depth map read this way shows near things bright and far things dark, as in most
    depth-estimation figures. ``invert=True`` flips it (large values bright), e.g. for a
    probability or an error map. Values are scaled linearly between ``lo`` and ``hi``
    (default: the map's own finite minimum and maximum) and clipped; nan/inf pixels are black.

    Args:
        values: array (H, W) of numbers.
        lo: value drawn white (black with ``invert``); default the minimum.
        hi: value drawn black (white with ``invert``); default the maximum.
        invert: draw large values bright instead.

    Returns:
        uint8 array (H, W).

    Example:
        >>> grey(np.array([[1.0, 2.0, 3.0]])).tolist()  # depth in metres: near is bright
        [[255, 128, 0]]
    """
    scaled, finite = _normalise(values, lo, hi)
    brightness = scaled if invert else 1.0 - scaled
    return np.where(finite, np.rint(brightness * 255), 0).astype(np.uint8)


def colormap(name: str = "viridis") -> np.ndarray:
    """The 256-colour table behind :func:`heat`: "viridis", the diverging "coolwarm", or "grey"
    (black to white, entry k = (k, k, k)).

    Args:
        name: colormap name.

    Returns:
        uint8 array (256, 3), entry 0 for the lowest value.

    Example:
        >>> colormap("viridis")[[0, -1]].tolist()
        [[68, 1, 84], [253, 231, 37]]
    """
    if name not in _ANCHORS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {sorted(_ANCHORS)}")
    anchors = np.asarray(_ANCHORS[name], dtype=np.float64)  # (A, 3)
    at = np.linspace(0.0, 1.0, len(anchors))  # (A,) anchor positions
    x = np.linspace(0.0, 1.0, 256)  # (256,)
    table = np.stack([np.interp(x, at, anchors[:, c]) for c in range(3)], axis=1)  # (256, 3)
    return np.rint(table).astype(np.uint8)


def heat(values, lo: float | None = 0.0, hi: float | None = 1.0, cmap: str = "viridis") -> np.ndarray:
    """A scalar map in colour: ``lo`` gets the first colormap entry, ``hi`` the last.

    The default range [0, 1] suits probabilities; pass ``lo=None, hi=None`` to stretch over
    the map's own range, or a symmetric range with ``cmap="coolwarm"`` for signed values.
    nan/inf pixels are black.

    Args:
        values: array (H, W) of numbers.
        lo: value mapped to the low end (None: the minimum).
        hi: value mapped to the high end (None: the maximum).
        cmap: "viridis", "coolwarm" or "grey".

    Returns:
        uint8 image (H, W, 3).

    Example:
        >>> heat(np.array([[0.0, 1.0]])).tolist()
        [[[68, 1, 84], [253, 231, 37]]]
    """
    scaled, finite = _normalise(values, lo, hi)
    rgb = colormap(cmap)[np.rint(scaled * 255).astype(np.int64)]  # (H, W, 3)
    return np.where(finite[:, :, None], rgb, np.uint8(0))


def boundaries(labels) -> np.ndarray:
    """Pixels on the border between two labels (a 4-neighbour has a different label).

    Both sides of each border are marked, giving lines two pixels wide that stay visible
    when drawn over an image.

    Args:
        labels: integer label map (H, W).

    Returns:
        bool array (H, W).

    Example:
        >>> boundaries(np.array([[0, 0, 1, 1]])).tolist()
        [[False, True, True, False]]
    """
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    horizontal = labels[:, 1:] != labels[:, :-1]  # (H, W-1) differs from right neighbour
    vertical = labels[1:, :] != labels[:-1, :]  # (H-1, W) differs from lower neighbour
    edge[:, :-1] |= horizontal
    edge[:, 1:] |= horizontal
    edge[:-1, :] |= vertical
    edge[1:, :] |= vertical
    return edge


def legend_rows(labels, classes, palette) -> list[tuple[str, str, float]]:
    """Legend entries for the classes that appear in a label map, largest first.

    Args:
        labels: integer label map (H, W); ignore (255) pixels are not counted.
        classes: class names, indexed by label.
        palette: (K, 3) class colours.

    Returns:
        A list of ``(name, hex colour, share)`` for every present class, sorted by share
        (fraction of the non-ignored pixels, summing to 1), ties in class order.

    Example:
        >>> legend_rows(np.array([[0, 1, 1]]), ["sky", "road"], [(70, 130, 180), (128, 64, 128)])
        [('road', '#804080', 0.6666666666666666), ('sky', '#4682b4', 0.3333333333333333)]
    """
    labels, palette, ignored = _check_labels(labels, palette)
    counts = np.bincount(labels[~ignored].ravel(), minlength=len(classes))  # (K,)
    total = counts.sum()
    present = [c for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    return [(classes[c], to_hex(palette[c]), float(counts[c] / total)) for c in present]


def upscale_nearest(img, factor: int) -> np.ndarray:
    """Enlarge an image by an integer factor, each pixel becoming a factor × factor block.

    Used to show small score maps (e.g. an 8 × 8 stride-32 output) with visible cells instead
    of a browser's blurry resampling.

    Args:
        img: array (H, W) or (H, W, C).
        factor: integer scale, at least 1.

    Returns:
        Array (H * factor, W * factor[, C]) of the same dtype.

    Example:
        >>> upscale_nearest(np.array([[1, 2]]), 2).tolist()
        [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a whole number >= 1, got {factor}")
    img = np.asarray(img)
    return np.repeat(np.repeat(img, int(factor), axis=0), int(factor), axis=1)
