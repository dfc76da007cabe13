"""seg.viz against explicit per-pixel references."""

import numpy as np
import pytest

from seg.viz import (
    blend,
    boundaries,
    colorize,
    colormap,
    grey,
    heat,
    legend_rows,
    overlay,
    palette_for,
    to_hex,
    upscale_nearest,
    voc_palette,
)

PALETTE = np.array([(70, 130, 180), (70, 70, 70), (128, 64, 128), (220, 20, 60)], np.uint8)


def random_labels(seed, shape=(9, 11), num_classes=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, shape)
    labels[rng.random(shape) < 0.1] = 255
    return labels


def random_image(seed, shape=(9, 11)):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def voc_reference(i):
    """The bitget loop of the VOC devkit (VOClabelcolormap.m)."""
    r = g = b = 0
    c = i
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return (r, g, b)


def test_voc_palette():
    palette = voc_palette()
    assert palette.dtype == np.uint8 and palette.shape == (256, 3)
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert [tuple(c) for c in palette.tolist()] == [voc_reference(i) for i in range(256)]
    assert len({tuple(c) for c in palette.tolist()}) == 256
    np.testing.assert_array_equal(voc_palette(21), palette[:21])


def test_palette_for():
    np.testing.assert_array_equal(palette_for(21), voc_palette(21))
    np.testing.assert_array_equal(palette_for(3, base=PALETTE), PALETTE[:3])
    extended = palette_for(30, base=PALETTE)
    assert extended.shape == (30, 3) and extended.dtype == np.uint8
    np.testing.assert_array_equal(extended[:4], PALETTE)
    colours = [tuple(c) for c in extended.tolist()]
    assert len(set(colours)) == 30 and (0, 0, 0) not in colours


def test_to_hex():
    assert to_hex((0, 0, 0)) == "#000000"
    assert to_hex(np.array([255, 128, 1], np.uint8)) == "#ff8001"


def test_colorize_maps_exactly():
    labels = random_labels(0)
    out = colorize(labels, PALETTE)
    assert out.dtype == np.uint8 and out.shape == (*labels.shape, 3)
    for y in range(labels.shape[0]):
        for x in range(labels.shape[1]):
            expected = (0, 0, 0) if labels[y, x] == 255 else tuple(PALETTE[labels[y, x]])
            assert tuple(out[y, x]) == expected


def test_colorize_refuses_labels_without_colour():
    with pytest.raises(ValueError, match="palette_for"):
        colorize(np.array([[0, 4]]), PALETTE)
    with pytest.raises(ValueError, match="palette_for"):
        colorize(np.array([[-1, 0]]), PALETTE)


def test_overlay_alpha_endpoints_and_middle():
    image, labels = random_image(1), random_labels(1)
    np.testing.assert_array_equal(overlay(image, labels, PALETTE, alpha=0.0), image)
    full = overlay(image, labels, PALETTE, alpha=1.0)
    ignored = labels == 255
    np.testing.assert_array_equal(full[~ignored], PALETTE[labels[~ignored]])
    np.testing.assert_array_equal(full[ignored], image[ignored])  # unlabelled stays visible
    half = overlay(image, labels, PALETTE, alpha=0.5)
    colours = colorize(labels, PALETTE).astype(float)
    expected = np.where(ignored[..., None], image, np.rint(0.5 * image + 0.5 * colours))
    np.testing.assert_array_equal(half, expected.astype(np.uint8))
    with pytest.raises(ValueError, match="resize"):
        overlay(image, labels[:-1], PALETTE)


def test_blend():
    a, b = random_image(2), random_image(3)
    np.testing.assert_array_equal(blend(a, b, 0.0), a)
    np.testing.assert_array_equal(blend(a, b, 1.0), b)
    np.testing.assert_array_equal(blend(a, b, 0.3), np.rint(0.7 * a + 0.3 * b).astype(np.uint8))
    per_pixel = np.zeros(a.shape[:2])
    per_pixel[:, 5:] = 1.0
    mixed = blend(a, b, per_pixel)
    np.testing.assert_array_equal(mixed[:, :5], a[:, :5])
    np.testing.assert_array_equal(mixed[:, 5:], b[:, 5:])
    grey_image = a[..., 0]
    np.testing.assert_array_equal(blend(grey_image, b, 0.0), np.repeat(grey_image[..., None], 3, 2))


def test_grey_is_monotone_near_bright():
    depth = np.linspace(1.0, 80.0, 50).reshape(5, 10)
    g = grey(depth)
    assert g.dtype == np.uint8 and g.shape == depth.shape
    flat = g.ravel().astype(int)
    assert flat[0] == 255 and flat[-1] == 0 and np.all(np.diff(flat) <= 0)
    inverted = grey(depth, invert=True).ravel().astype(int)
    assert inverted[0] == 0 and inverted[-1] == 255 and np.all(np.diff(inverted) >= 0)
    clipped = grey(depth, lo=10.0, hi=20.0)
    assert clipped[depth <= 10].min() == 255 and clipped[depth >= 20].max() == 0
    assert grey(np.array([[np.nan, 1.0, 2.0]])).tolist() == [[0, 255, 0]]
    assert grey(np.full((2, 2), 3.0)).tolist() == [[255, 255], [255, 255]]


@pytest.mark.parametrize("name", ["viridis", "coolwarm"])
def test_colormaps(name):
    table = colormap(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    steps = np.abs(np.diff(table.astype(int), axis=0)).max()
    assert steps <= 3  # smooth: neighbouring entries are close
    values = np.linspace(0, 1, 256).reshape(16, 16)
    np.testing.assert_array_equal(heat(values, cmap=name).reshape(256, 3), table)


def test_heat_range_and_nan():
    assert heat(np.array([[0.0, 1.0]])).tolist() == [[[68, 1, 84], [253, 231, 37]]]
    out = heat(np.array([[-5.0, 5.0, np.nan]]), lo=-1, hi=1, cmap="coolwarm")
    table = colormap("coolwarm")
    assert out[0, 0].tolist() == table[0].tolist() and out[0, 1].tolist() == table[-1].tolist()
    assert out[0, 2].tolist() == [0, 0, 0]
    stretched = heat(np.array([[2.0, 4.0]]), lo=None, hi=None)
    assert stretched[0, 0].tolist() == colormap()[0].tolist()
    with pytest.raises(ValueError, match="colormap"):
        colormap("jet")


def test_boundaries_match_brute_force():
    labels = random_labels(4, shape=(7, 8))
    h, w = labels.shape
    expected = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                if 0 <= y + dy < h and 0 <= x + dx < w and labels[y + dy, x + dx] != labels[y, x]:
                    expected[y, x] = True
    np.testing.assert_array_equal(boundaries(labels), expected)
    assert not boundaries(np.zeros((4, 4), int)).any()


def test_legend_rows():
    labels = random_labels(5)
    classes = ["sky", "building", "road", "person"]
    rows = legend_rows(labels, classes, PALETTE)
    assert sum(share for _, _, share in rows) == pytest.approx(1.0)
    shares = [share for _, _, share in rows]
    assert shares == sorted(shares, reverse=True)
    valid = labels[labels != 255]
    for name, colour, share in rows:
        c = classes.index(name)
        assert colour == to_hex(PALETTE[c])
        assert share == pytest.approx((valid == c).mean())
    assert [name for name, _, _ in legend_rows(np.array([[2, 2, 255]]), classes, PALETTE)] == ["road"]


def test_upscale_nearest():
    img = random_image(6, shape=(3, 4))
    big = upscale_nearest(img, 3)
    assert big.shape == (9, 12, 3) and big.dtype == img.dtype
    for y in range(9):
        for x in range(12):
            assert big[y, x].tolist() == img[y // 3, x // 3].tolist()
    np.testing.assert_array_equal(upscale_nearest(img[..., 0], 1), img[..., 0])
    with pytest.raises(ValueError):
        upscale_nearest(img, 0)
