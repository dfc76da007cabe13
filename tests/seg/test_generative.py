"""seg.generative against closed forms, scipy's densities, torch autograd and scikit-learn."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import seg
from seg import generative as g


def three_blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping 2-D Gaussian classes of unequal sizes."""
    rng = np.random.default_rng(seed)
    sizes = (n, n // 2, n + 7)
    centres = np.array([[0.0, 0.0], [2.0, 1.0], [0.5, 2.5]])
    x = np.concatenate([c + rng.standard_normal((m, 2)) * (0.6 + 0.3 * k)
                        for k, (c, m) in enumerate(zip(centres, sizes))])
    y = np.repeat(np.arange(3), sizes)
    return x, y


@pytest.mark.parametrize("shared", [True, False])
def test_gaussian_fit_is_the_maximum_likelihood_estimate(shared):
    x, y = three_blobs()
    model = g.fit_gaussians(x, y, shared_covariance=shared, reg=0)
    assert model.classes.tolist() == [0, 1, 2]
    np.testing.assert_allclose(model.priors, np.bincount(y) / len(y))
    for k in range(3):
        np.testing.assert_allclose(model.means[k], x[y == k].mean(0))
    if shared:
        # the pooled ML covariance: the class covariances weighted by the class frequencies
        pooled = sum(np.cov(x[y == k].T, bias=True) * (y == k).mean() for k in range(3))
        for k in range(3):
            np.testing.assert_allclose(model.covariances[k], pooled)
    else:
        for k in range(3):
            np.testing.assert_allclose(model.covariances[k], np.cov(x[y == k].T, bias=True))


@pytest.mark.parametrize("shared", [True, False])
def test_bayes_rule_matches_scipy_densities(shared):
    x, y = three_blobs()
    model = g.fit_gaussians(x, y, shared_covariance=shared)
    points = np.random.default_rng(1).normal(size=(50, 2)) * 2
    densities = np.stack([multivariate_normal(m, c).pdf(points)
                          for m, c in zip(model.means, model.covariances)], axis=1)  # (50, 3)
    np.testing.assert_allclose(model.log_likelihood(points), np.log(densities), rtol=1e-10)
    joint = densities * model.priors
    np.testing.assert_allclose(model.predict_proba(points), joint / joint.sum(1, keepdims=True),
                               rtol=1e-9)
    np.testing.assert_allclose(model.log_density(points), np.log(joint.sum(1)), rtol=1e-10)
    np.testing.assert_array_equal(model.predict(points), joint.argmax(1))


def test_regularisation_makes_a_one_point_class_usable():
    x = np.array([[0.0, 0.0], [1.0, 0.5], [3.0, 3.0]])
    model = g.fit_gaussians(x, np.array([0, 0, 1]), shared_covariance=False)
    loading = 1e-3 * x.var(0).mean()
    np.testing.assert_allclose(model.covariances[1], loading * np.eye(2))
    assert np.isfinite(model.predict_proba(x)).all()


def test_lda_boundary_is_the_closed_form_and_the_posterior_log_odds():
    x, y = g.make_data(80, separation=2.5, seed=3)
    model = g.fit_gaussians(x, y, reg=0)
    m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
    d0, d1 = x[y == 0] - m0, x[y == 1] - m1
    pooled = (d0.T @ d0 + d1.T @ d1) / len(x)
    w_direct = np.linalg.solve(pooled, m1 - m0)
    b_direct = -0.5 * (m1 @ np.linalg.solve(pooled, m1) - m0 @ np.linalg.solve(pooled, m0))
    w, b = model.linear_boundary()
    np.testing.assert_allclose(w, w_direct)
    np.testing.assert_allclose(b, b_direct, atol=1e-12)  # equal priors: no log-prior term
    p = model.predict_proba(x)
    np.testing.assert_allclose(np.log(p[:, 1] / p[:, 0]), x @ w + b, atol=1e-9)
    with pytest.raises(ValueError, match="shared-covariance"):
        g.fit_gaussians(x, y, shared_covariance=False).linear_boundary()


def test_samples_follow_the_model():
    model = g.true_model(3.0, shared_covariance=False)
    x, y = model.sample(40_000, seed=0)
    assert abs((y == 1).mean() - 0.5) < 0.01
    for k in range(2):
        np.testing.assert_allclose(x[y == k].mean(0), model.means[k], atol=0.03)
        np.testing.assert_allclose(np.cov(x[y == k].T), model.covariances[k], atol=0.04)
    again, _ = model.sample(40_000, seed=0)
    np.testing.assert_array_equal(x, again)


def test_polynomial_features():
    x = np.array([[1.0, 2.0, 3.0]])
    assert g.polynomial_features(x, 1).tolist() == [[1.0, 2.0, 3.0]]
    assert g.polynomial_features(x, 2).tolist() == [[1, 2, 3, 1, 2, 3, 4, 6, 9]]
    with pytest.raises(ValueError, match="degree"):
        g.polynomial_features(x, 3)


def penalised_nll(model: g.LogisticRegression, x, y, weights, bias) -> torch.Tensor:
    """The objective fit_logistic minimises, written independently in torch."""
    phi = torch.from_numpy(model.features(x))  # standardised with the training statistics
    logits = phi @ weights.T + bias
    index = torch.from_numpy(np.searchsorted(model.classes, y))
    nll = torch.nn.functional.cross_entropy(logits, index)
    return nll + 0.5 * model.l2 * (weights ** 2).sum()


@pytest.mark.parametrize("degree", [1, 2])
def test_logistic_fit_is_the_minimum_of_its_objective(degree):
    x, y = three_blobs(40)
    model = g.fit_logistic(x, y, degree=degree, l2=1e-2)
    weights = torch.tensor(model.weights, requires_grad=True)
    bias = torch.tensor(model.bias, requires_grad=True)
    loss = penalised_nll(model, x, y, weights, bias)
    grad_w, grad_b = torch.autograd.grad(loss, (weights, bias))
    assert grad_w.abs().max() < 1e-7 and grad_b.abs().max() < 1e-7  # stationary ...
    # ... and the minimum: L-BFGS from zero reaches the same loss and the same posteriors
    w0 = torch.zeros_like(weights, requires_grad=True)
    b0 = torch.zeros_like(bias, requires_grad=True)
    optimiser = torch.optim.LBFGS([w0, b0], max_iter=200, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        value = penalised_nll(model, x, y, w0, b0)
        value.backward()
        return value

    optimiser.step(closure)
    with torch.no_grad():
        assert float(penalised_nll(model, x, y, w0, b0)) == pytest.approx(float(loss), abs=1e-9)
    reference = torch.softmax(torch.from_numpy(model.features(x)) @ w0.T + b0, 1)
    np.testing.assert_allclose(model.predict_proba(x), reference.detach().numpy(), atol=1e-5)
    assert model.iterations < 20


def test_logistic_linear_boundary_is_the_log_odds_in_original_units():
    x, y = g.make_data(50, separation=2.0, outliers=0.2, seed=4)
    model = g.fit_logistic(x * 10 + 3, y)
    w, b = model.linear_boundary()
    p = model.predict_proba(x * 10 + 3)
    np.testing.assert_allclose(np.log(p[:, 1] / p[:, 0]), (x * 10 + 3) @ w + b, atol=1e-9)
    with pytest.raises(ValueError, match="degree-1"):
        g.fit_logistic(x, y, degree=2).linear_boundary()


def test_logistic_stays_finite_on_separable_data():
    x = np.array([[0.0], [1.0], [3.0], [4.0]])
    model = g.fit_logistic(x, np.array([0, 0, 1, 1]))
    assert np.isfinite(model.weights).all() and model.iterations < 50
    assert model.predict(np.array([[-1.0], [5.0]])).tolist() == [0, 1]


def test_against_scikit_learn():
    pytest.importorskip("sklearn")
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression

    x, y = three_blobs(50, seed=5)
    x = (x - x.mean(0)) / x.std(0)  # standardised: fit_logistic's own scaling is then a no-op
    probe = np.random.default_rng(2).normal(size=(30, 2))
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    ours = g.fit_gaussians(x, y, reg=0)
    np.testing.assert_allclose(ours.predict_proba(probe), lda.predict_proba(probe), atol=1e-9)
    l2 = 1e-2
    # scikit-learn minimises C·Σ loss + ½‖W‖², i.e. ours with λ = 1 / (C·N)
    reference = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-12, max_iter=10_000).fit(x, y)
    ours = g.fit_logistic(x, y, l2=l2)
    np.testing.assert_allclose(ours.predict_proba(probe), reference.predict_proba(probe), atol=1e-5)


def test_make_data_shapes_seed_and_outliers():
    x, y = g.make_data(200, separation=3.0, seed=1)
    assert x.shape == (400, 2) and y.tolist() == [0] * 200 + [1] * 200
    np.testing.assert_array_equal(x, g.make_data(200, separation=3.0, seed=1)[0])
    np.testing.assert_allclose(x[y == 1].mean(0), [1.5, 0.0], atol=0.15)
    dirty, _ = g.make_data(200, separation=3.0, outliers=0.3, seed=1)
    far = np.linalg.norm(dirty[:200] - (-1.5 - g.OUTLIER_DISTANCE, 0.0), axis=1) < 2.5
    assert 0.2 < far.mean() < 0.4  # about 30 % of class 0, all near the outlier centre
    np.testing.assert_array_equal(dirty[200:], x[200:])  # class 1 untouched
    assert not (np.linalg.norm(x[:200] - (-1.5 - g.OUTLIER_DISTANCE, 0.0), axis=1) < 2.5).any()


def test_true_model_is_bayes_optimal_on_its_own_data():
    model = g.true_model(2.0, shared_covariance=False)
    x, y = g.make_data(3000, separation=2.0, shared_covariance=False, seed=9)
    fitted = g.fit_gaussians(x[::10], y[::10], shared_covariance=True)
    assert g.accuracy(model, x, y) >= g.accuracy(fitted, x, y)


def test_learning_curve_generative_wins_early_and_outliers_hurt_it():
    sizes = (3, 200)
    clean = g.learning_curve(sizes, separation=2.0, repeats=10, test_per_class=500)
    assert clean.generative.shape == clean.discriminative.shape == (2,)
    assert clean.generative[0] > clean.discriminative[0]  # right model, few points
    assert abs(clean.generative[1] - clean.bayes) < 0.01  # both reach the best possible
    assert abs(clean.discriminative[1] - clean.bayes) < 0.01
    dirty = g.learning_curve(sizes, separation=2.0, outliers=0.1, repeats=10, test_per_class=500)
    assert dirty.discriminative[1] > dirty.generative[1] + 0.01  # the outliers pull the Gaussians
    assert dirty.bayes == clean.bayes  # same clean test set


def test_pixel_features():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    features = g.pixel_features(image, position=True)
    np.testing.assert_allclose(features[:, :3], image.reshape(-1, 3) / 255)
    assert features[5, 3:].tolist() == [1.0, 1.0] and features[1, 3:].tolist() == [0.0, 0.5]


def test_compare_on_pixels_scores_held_out_pixels_with_seg_metrics():
    scene = seg.synthetic.scene(7, height=64, width=64)
    result = g.compare_on_pixels(scene.image, scene.labels, 8, fraction=0.05, position=True)
    assert result.labelled.sum() == round(0.05 * 64 * 64)
    held_out = np.where(result.labelled, 255, scene.labels)
    for name, labels in (("generative", result.generative),
                         ("discriminative", result.discriminative)):
        assert labels.shape == (64, 64) and labels.dtype == np.int64
        assert result.scores[name]["pixel_accuracy"] == pytest.approx(
            seg.metrics.pixel_accuracy(labels, held_out, 8))
        assert result.scores[name]["miou"] == pytest.approx(seg.metrics.miou(labels, held_out, 8))
        assert result.scores[name]["pixel_accuracy"] > 0.6  # colour and position go a long way
    features = g.pixel_features(scene.image, position=True)
    np.testing.assert_array_equal(result.generative.ravel(), result.gaussians.predict(features))
    assert set(np.unique(result.generative)) <= set(result.gaussians.classes.tolist())


def test_sampling_one_class():
    model = g.true_model(3.0)
    x, y = model.sample(5000, seed=2, label=1)
    assert (y == 1).all()
    np.testing.assert_allclose(x.mean(0), model.means[1], atol=0.05)
