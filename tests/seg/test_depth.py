"""seg.depth: grey levels, the pinhole camera, the point cloud and the depth-gain measurement,
each checked against a direct reference (formula by hand, per-pixel loop, torch's Gaussian)."""

import math

import numpy as np
import pytest
import torch

import seg
from seg import depth


@pytest.mark.parametrize("inverse", [True, False])
def test_grey_levels_put_near_white_far_black_and_nearer_brighter(inverse):
    z = np.array([1.0, 2.0, 5.0, 10.0, 50.0, 100.0])
    grey = depth.to_grey(z, near=1.0, far=100.0, inverse=inverse)
    assert grey[0] == 255 and grey[-1] == 0
    assert (np.diff(grey.astype(int)) <= 0).all()  # farther is never brighter


def test_grey_levels_follow_the_formulas():
    z = np.array([2.0, 4.0, 20.0])
    inverse = depth.to_grey(z, near=1.0, far=100.0, inverse=True)
    linear = depth.to_grey(z, near=1.0, far=100.0, inverse=False)
    expected_inverse = np.rint(255 * (1 / z - 1 / 100) / (1 - 1 / 100))
    expected_linear = np.rint(255 * (100 - z) / 99)
    np.testing.assert_array_equal(inverse, expected_inverse)
    np.testing.assert_array_equal(linear, expected_linear)


@pytest.mark.parametrize("inverse", [True, False])
def test_round_trip_lands_on_one_of_the_two_levels_around_the_depth(inverse):
    near, far = 1.0, 200.0
    z = np.geomspace(near, far, 2000)
    back = depth.from_grey(depth.to_grey(z, near=near, far=far, inverse=inverse),
                           near=near, far=far, inverse=inverse)
    levels = depth.from_grey(np.arange(256), near=near, far=far, inverse=inverse)  # far .. near
    above = [levels[(levels >= d - 1e-4 * d)].min() for d in z]  # the level just beyond each depth
    below = [levels[(levels <= d + 1e-4 * d)].max() for d in z]  # the level just before it
    on_one = np.isclose(back, above, rtol=1e-6) | np.isclose(back, below, rtol=1e-6)
    assert on_one.all()


def test_inverse_levels_keep_near_depth_more_precisely_than_linear_ones():
    near, far = 1.0, 200.0
    z = np.linspace(2.0, 6.0, 500)
    errors = {flag: np.abs(depth.from_grey(depth.to_grey(z, near=near, far=far, inverse=flag),
                                           near=near, far=far, inverse=flag) - z).max()
              for flag in (True, False)}
    assert errors[True] < errors[False] / 5


def test_unmeasured_pixels_are_black_and_bad_ranges_refused():
    assert depth.to_grey(np.array([0.0, np.nan]), near=1, far=10).tolist() == [0, 0]
    with pytest.raises(ValueError, match="near < far"):
        depth.to_grey(np.ones(2), near=5, far=5)


def test_focal_from_fov():
    assert depth.focal_from_fov(90, 256) == pytest.approx(128.0)
    assert depth.focal_from_fov(60, 100) == pytest.approx(50 / math.tan(math.radians(30)))
    with pytest.raises(ValueError):
        depth.focal_from_fov(180, 100)


def test_backproject_matches_a_per_pixel_loop():
    rng = np.random.default_rng(0)
    z = rng.uniform(1, 30, size=(5, 7))
    f, centre = 6.0, (3.2, 2.1)
    xyz = depth.backproject(z, f, center=centre)
    for v in range(5):
        for u in range(7):
            x = (u + 0.5 - centre[0]) * z[v, u] / f
            y = (centre[1] - v - 0.5) * z[v, u] / f
            expected = [x, y, z[v, u]]
            np.testing.assert_allclose(xyz[v, u], expected, rtol=1e-6)


def test_project_undoes_backproject():
    z = np.random.default_rng(1).uniform(1, 50, size=(6, 9))
    f = 8.0
    points = depth.backproject(z, f).reshape(-1, 3)
    uv = depth.project(points, f, center=(9 / 2, 6 / 2))
    vs, us = np.mgrid[0:6, 0:9]
    np.testing.assert_allclose(uv, np.stack([us.ravel() + 0.5, vs.ravel() + 0.5], 1), atol=1e-4)


def test_point_cloud_keeps_one_point_per_subsampled_measured_pixel():
    s = seg.synthetic.scene(7, height=64, width=64)
    z = s.depth.copy()
    z[10, 10] = 0.0  # no measurement
    f = depth.focal_from_fov(55, 64)
    cloud = depth.point_cloud(s.image, z, focal=f, step=3, max_depth=120)
    sub = z[::3, ::3]
    assert len(cloud.points) == np.count_nonzero((sub > 0) & (sub <= 120))
    np.testing.assert_array_equal(cloud.colours, s.image[cloud.rows, cloud.cols])
    np.testing.assert_allclose(cloud.points, depth.backproject(z, f)[cloud.rows, cloud.cols])
    assert (cloud.points[:, 2] <= 120).all()  # the 1000 m sky is left out
    assert (cloud.rows % 3 == 0).all() and (cloud.cols % 3 == 0).all()


def test_pixel_features_columns():
    image = np.zeros((4, 3, 3), np.uint8)
    image[..., 1] = 255
    z = np.array([[1000.0] * 3, [20.0] * 3, [10.0] * 3, [0.5] * 3])  # sky, then ground rows
    x = depth.pixel_features(image, z, ["green", "row", "inverse depth", "log depth", "d(1/Z)/dy"])
    x = x.reshape(4, 3, 5)
    assert (x[..., 0] == 1).all()
    np.testing.assert_allclose(x[:, 0, 1], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(x[:, 0, 2], [1e-3, 1 / 20, 1 / 10, 1.0], rtol=1e-6)  # Z clipped to 1 m
    np.testing.assert_allclose(x[:, 0, 3], np.log([1000, 20, 10, 1]), rtol=1e-6)
    assert (x[:, :, 4] > 0).all()  # inverse depth grows downwards
    with pytest.raises(ValueError, match="unknown features"):
        depth.pixel_features(image, z, ["hue"])


def test_gaussian_classifier_matches_torch_multivariate_normal():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(2, 0.5, (100, 3))])
    y = np.repeat([0, 2], [200, 100])  # class 1 never seen
    model = depth.GaussianClassifier(3, ridge=1e-4).fit(x, y)
    query = rng.normal(1, 1.5, (50, 3))
    ours = model.log_posterior(query)
    assert np.isneginf(ours[:, 1]).all()
    for c, n in ((0, 200), (2, 100)):
        xc = torch.tensor(x[y == c])
        cov = torch.cov(xc.T) + 1e-4 * torch.eye(3, dtype=torch.float64)
        normal = torch.distributions.MultivariateNormal(xc.mean(0), covariance_matrix=cov)
        reference = normal.log_prob(torch.tensor(query)).numpy() + math.log(n / 300)
        # ours leaves out the shared constant -D/2 log 2π
        np.testing.assert_allclose(ours[:, c] - 1.5 * math.log(2 * math.pi), reference, rtol=1e-8)
    np.testing.assert_array_equal(model.predict(query), ours.argmax(1))


def test_depth_adds_to_colour_on_held_out_scenes():
    scores = depth.depth_gain([seg.synthetic.train_seed(900 + i) for i in range(6)],
                              [seg.synthetic.eval_seed(i) for i in range(4)], size=32)
    by_name = {s.name: s for s in scores}
    assert list(by_name) == list(depth.FEATURE_SETS)
    assert by_name["colour + depth"].miou > by_name["colour"].miou + 0.05
    assert by_name["colour + depth"].example.shape == (32, 32)
    for s in scores:
        assert s.miou == pytest.approx(np.nanmean(s.iou))


def test_depth_gain_refuses_overlapping_seeds():
    with pytest.raises(ValueError, match="overlap"):
        depth.depth_gain([1, 2], [2, 3], size=16)
