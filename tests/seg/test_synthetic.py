"""Tests for seg.synthetic: determinism, shapes, class coverage, perspective, clips, colours.

The references are geometry (a pinhole camera over a flat ground gives 1 / depth linear in
the image row, and sizes proportional to 1 / depth), counts over many seeds, and the scenes
themselves at other sizes or seeds.
"""

from functools import lru_cache

import numpy as np
import pytest

from seg import synthetic
from seg.synthetic import CAR, CLASSES, PALETTE, PERSON, POLE, ROAD, SKY, SKY_DEPTH, VEGETATION

N_SEEDS = 50


@lru_cache(maxsize=None)
def _scenes(size: int = 256):
    return tuple(synthetic.scene(synthetic.train_seed(i), height=size, width=size) for i in range(N_SEEDS))


@lru_cache(maxsize=None)
def _clip(seed: int, frames: int = 4):
    return synthetic.clip(seed, frames=frames, height=128, width=160)


def _ring(mask: np.ndarray) -> np.ndarray:
    """Pixels 4-adjacent to a mask but outside it."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown & ~mask


def test_classes_and_palette():
    assert CLASSES == ("sky", "building", "road", "sidewalk", "vegetation", "pole", "car", "person")
    assert PALETTE.shape == (8, 3) and PALETTE.dtype == np.uint8
    assert tuple(PALETTE[CLASSES.index("road")]) == (128, 64, 128)
    assert tuple(PALETTE[CLASSES.index("person")]) == (220, 20, 60)
    assert len({tuple(c) for c in PALETTE}) == 8


def test_seed_ranges_are_disjoint():
    train = {synthetic.train_seed(i) for i in (0, 1, 999_999)}
    evaluation = {synthetic.eval_seed(i) for i in (0, 1, 999_999)}
    assert not train & evaluation
    assert synthetic.train_seed(5) == 5 and synthetic.eval_seed(5) == 1_000_005
    with pytest.raises(ValueError):
        synthetic.train_seed(1_000_000)
    with pytest.raises(ValueError):
        synthetic.eval_seed(-1)


def test_same_seed_same_scene_different_seed_different_scene():
    a, b, c = synthetic.scene(11, height=96, width=128), synthetic.scene(11, height=96, width=128), synthetic.scene(12, height=96, width=128)
    for field in ("image", "labels", "depth"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("height, width", [(256, 256), (240, 320), (64, 96), (160, 120)])
def test_shapes_dtypes_and_ranges(height, width):
    s = synthetic.scene(3, height=height, width=width)
    assert s.seed == 3
    assert s.image.shape == (height, width, 3) and s.image.dtype == np.uint8
    assert s.labels.shape == (height, width) and s.labels.dtype == np.int64
    assert s.depth.shape == (height, width) and s.depth.dtype == np.float32
    assert s.labels.min() >= 0 and s.labels.max() < len(CLASSES)
    assert np.isfinite(s.depth).all() and (s.depth > 0).all()
    assert np.all(s.depth[s.labels == SKY] == SKY_DEPTH)
    assert s.depth[s.labels != SKY].max() < SKY_DEPTH


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="16x16"):
        synthetic.scene(0, height=8, width=64)
    with pytest.raises(ValueError, match="frame"):
        synthetic.clip(0, frames=0)


def test_every_class_in_most_scenes():
    present = np.array([np.bincount(s.labels.ravel(), minlength=len(CLASSES)) > 0 for s in _scenes()])
    share = present.mean(axis=0)
    for name, fraction in zip(CLASSES, share):
        assert fraction >= 0.8, f"{name} appears in only {fraction:.0%} of scenes"


def test_ground_depth_follows_the_pinhole_camera():
    # On a flat ground seen by a pinhole camera, 1 / depth = (row - horizon) / (height * focal):
    # linear in the row, and depth falls strictly going down every column.
    for s in _scenes()[:10]:
        road = s.labels == ROAD
        rows = np.nonzero(road)[0] + 0.5
        inverse = 1.0 / s.depth[road].astype(np.float64)
        slope, intercept = np.polyfit(rows, inverse, 1)
        residual = inverse - (slope * rows + intercept)
        assert slope > 0
        assert np.abs(residual).max() < 1e-4 * inverse.max()
        for col in range(0, s.labels.shape[1], 8):
            d = s.depth[road[:, col], col]
            assert np.all(np.diff(d) < 0), f"depth not decreasing down column {col} of seed {s.seed}"


def test_people_shrink_with_distance():
    # An unoccluded person's height in pixels times its depth is focal length x body height,
    # so log(height) against log(1 / depth) has slope 1.
    heights, depths = [], []
    for seed in range(40):
        c = synthetic.clip(seed, frames=1)
        objects, labels, depth = c.objects[0], c.labels[0], c.depth[0]
        for i in np.unique(objects)[1:]:
            mask = objects == i
            if labels[mask][0] != PERSON or np.isin(labels[_ring(mask)], [POLE, CAR, PERSON, VEGETATION]).any():
                continue  # something may hide part of this person
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            if rows[0] == 0 or rows[-1] == 255 or cols[0] == 0 or cols[-1] == 255 or rows[-1] - rows[0] < 8:
                continue
            heights.append(rows[-1] - rows[0] + 1)
            depths.append(np.median(depth[mask]))
    heights, depths = np.array(heights, float), np.array(depths, float)
    assert len(heights) >= 10
    assert np.ptp(depths) > 10  # near and far people
    slope = np.polyfit(np.log(1 / depths), np.log(heights), 1)[0]
    assert 0.8 < slope < 1.2
    # focal length is 0.8..1.05 image widths, people are 1.05..1.95 m tall
    assert np.all((heights * depths / 256 > 0.75) & (heights * depths / 256 < 2.2))
    assert heights.max() <= 70


def test_poles_are_at_least_two_pixels_wide():
    runs = []
    for s in _scenes()[:20]:
        pole = (s.labels == POLE).astype(np.int8)
        edges = np.diff(np.pad(pole, ((0, 0), (1, 1))), axis=1)
        starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
        runs.append(ends[1] - starts[1])
    runs = np.concatenate(runs)
    assert np.mean(runs >= 2) > 0.9


def test_scene_is_the_same_street_at_any_resolution():
    small, large = synthetic.scene(21, height=128, width=128), synthetic.scene(21, height=256, width=256)
    assert np.mean(small.labels == large.labels[::2, ::2]) > 0.9


def test_colour_alone_does_not_give_the_class():
    def mean_colour(s, label):
        return s.image[s.labels == label].astype(float).mean(axis=0)

    def greyness(c):  # 0 for a perfect grey
        return np.ptp(c) / max(c.max(), 1.0)

    scenes = [s for s in _scenes() if (s.labels == ROAD).any() and (s.labels == synthetic.BUILDING).any()]
    road = np.array([mean_colour(s, ROAD) for s in scenes])
    building = np.array([mean_colour(s, synthetic.BUILDING) for s in scenes])
    sky = np.array([mean_colour(s, SKY) for s in scenes if (s.labels == SKY).any()])
    # A building greyer than its road, and brightness ranges that overlap.
    assert any(greyness(b) < greyness(r) for r, b in zip(road, building))
    assert road.mean(1).max() > building.mean(1).min() and building.mean(1).max() > road.mean(1).min()
    # Overcast skies: some sky is grey, not blue.
    assert any(greyness(c) < 0.1 for c in sky)
    # A nearest-mean colour rule cannot separate road from building.
    centre_r, centre_b = road.mean(0), building.mean(0)
    wrong = np.sum(np.linalg.norm(road - centre_b, axis=1) < np.linalg.norm(road - centre_r, axis=1))
    wrong += np.sum(np.linalg.norm(building - centre_r, axis=1) < np.linalg.norm(building - centre_b, axis=1))
    assert wrong >= 0.1 * len(scenes)


def test_clip_shapes_and_first_frame():
    c = _clip(5)
    assert c.frames.shape == (4, 128, 160, 3) and c.frames.dtype == np.uint8
    assert c.labels.shape == c.depth.shape == c.objects.shape == (4, 128, 160)
    assert c.labels.dtype == c.objects.dtype == np.int64 and c.depth.dtype == np.float32
    assert c.labels.max() < len(CLASSES) and np.isfinite(c.depth).all()
    assert np.array_equal(c.frames[0], synthetic.scene(5, height=128, width=160).image)
    again = synthetic.clip(5, frames=4, height=128, width=160)
    assert np.array_equal(again.frames, c.frames) and np.array_equal(again.objects, c.objects)


def test_clip_instances_are_cars_and_people_with_stable_ids():
    for seed in range(6):
        c = _clip(seed)
        ids = np.unique(c.objects)
        assert ids[0] == 0 and len(ids) > 1
        for t in range(c.objects.shape[0]):
            instance = c.objects[t] > 0
            assert np.isin(c.labels[t][instance], [CAR, PERSON]).all()
            assert not np.isin(c.labels[t][~instance], [CAR, PERSON]).any()
        for i in ids[1:]:
            # one class per id, over all frames
            assert len(np.unique(c.labels[c.objects == i])) == 1


def test_clip_camera_moves_forward_and_cars_drive():
    moved_people, moved_cars = [], []
    for seed in range(6):
        c = _clip(seed)
        # The ground slides under the camera: same labels, different texture.
        road = (c.labels[0] == ROAD) & (c.labels[1] == ROAD)
        assert np.abs(c.frames[0][road].astype(int) - c.frames[1][road].astype(int)).mean() > 2
        for i in np.unique(c.objects[0])[1:]:
            first, last = c.objects[0] == i, c.objects[-1] == i
            if first.sum() < 20 or last.sum() < 20:
                continue
            change = np.median(c.depth[-1][last]) - np.median(c.depth[0][first])
            (moved_people if c.labels[0][first][0] == PERSON else moved_cars).append(change)
    # People walk slowly, so they come closer as the camera drives on; cars keep their own speed.
    assert moved_people and max(moved_people) < 0
    assert moved_cars and np.ptp(moved_cars + moved_people) > 1.0
