"""Generative and discriminative classifiers, side by side.

A *generative* classifier models how the data is made: a prior P(y) over classes and, per class,
a density P(x | y) of the inputs. It classifies with Bayes' rule,

    P(y | x) = P(x | y) P(y) / Σ_k P(x | k) P(k),

and because it holds the whole joint P(x, y) it can also *draw* new inputs. Here P(x | y) is a
Gaussian N(μ_y, Σ_y), fitted by maximum likelihood in closed form (class means, class
covariances, class frequencies). With one covariance shared by all classes (linear
discriminant analysis, LDA) the log-odds are linear in x; with one covariance per class
(quadratic discriminant analysis, QDA) they are quadratic.

A *discriminative* classifier models only P(y | x). Logistic regression writes it as a softmax
of linear functions of features of x, and fits them by maximising the conditional likelihood
of the labels (Newton's method here: the problem is convex). With features x it has exactly the
functional form of LDA's posterior; with features x and all products x_i x_j, that of QDA's.
The two members of each pair differ only in *how* the same kind of boundary is fitted, which is
the comparison of Ng & Jordan, "On discriminative vs. generative classifiers", NIPS 2002: the
generative fit approaches its (higher) asymptotic error with fewer samples, the discriminative
fit approaches a lower one when the Gaussian assumption is wrong.

The module also draws the 2-D teaching data (`make_data`), measures learning curves, and puts
both ideas to work on pixels: per-class colour Gaussians against a logistic regression on
colour, the per-pixel classifiers that conditional random fields start from.

    >>> x, y = make_data(50, separation=3.0, seed=0)
    >>> gen, dis = fit_gaussians(x, y), fit_logistic(x, y)
    >>> x_test, y_test = make_data(500, separation=3.0, seed=1)
    >>> bool(accuracy(gen, x_test, y_test) > 0.9 and accuracy(dis, x_test, y_test) > 0.9)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seg import metrics

__all__ = [
    "GaussianClassifier", "LogisticRegression", "LearningCurve", "PixelComparison",
    "accuracy", "compare_on_pixels", "fit_gaussians", "fit_logistic", "learning_curve",
    "OUTLIER_DISTANCE", "make_data", "pixel_features", "polynomial_features", "true_model",
]

_LOG_2PI = float(np.log(2 * np.pi))


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable for very negative or very positive scores."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True, eq=False)
class GaussianClassifier:
    """Class-conditional Gaussians with class priors: a generative classifier.

    Attributes:
        classes: (K,) the labels, in the order of the other arrays.
        priors: (K,) P(y = k), the class frequencies of the training set.
        means: (K, D) μ_k.
        covariances: (K, D, D) Σ_k (K identical copies when `shared`).
        shared: one covariance for all classes (LDA) or one per class (QDA).
    """

    classes: np.ndarray
    priors: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    shared: bool

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """log P(x | y = k) for every point and class: (N, D) → (N, K).

        Example:
            >>> model = true_model(2.0)
            >>> model.log_likelihood(np.zeros((1, 2))).shape
            (1, 2)
        """
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((len(x), len(self.classes)))
        for k, (mean, cov) in enumerate(zip(self.means, self.covariances)):
            chol = np.linalg.cholesky(cov)  # Σ = L Lᵀ
            z = np.linalg.solve(chol, (x - mean).T)  # (D, N): L⁻¹(x − μ)
            log_det = 2 * np.log(np.diag(chol)).sum()
            out[:, k] = -0.5 * ((z ** 2).sum(0) + log_det + x.shape[1] * _LOG_2PI)
        return out

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """log P(x, y = k) = log P(x | k) + log P(k): (N, D) → (N, K)."""
        with np.errstate(divide="ignore"):  # a prior of 0 is a log-probability of −∞
            return self.log_likelihood(x) + np.log(self.priors)

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log P(x) = log Σ_k P(x | k) P(k), the mixture density of the inputs: (N,)."""
        joint = self.log_joint(x)
        peak = joint.max(axis=1, keepdims=True)
        return (peak + np.log(np.exp(joint - peak).sum(axis=1, keepdims=True)))[:, 0]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(y = k | x) by Bayes' rule: the joint, normalised over classes: (N, K)."""
        return np.exp(_log_softmax(self.log_joint(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most probable class of every point: (N,) labels from `classes`."""
        return self.classes[self.log_joint(x).argmax(axis=1)]

    def linear_boundary(self) -> tuple[np.ndarray, float]:
        """(w, b) with log P(y=1|x)/P(y=0|x) = w·x + b: the boundary of a shared-covariance
        model of two classes is the line w·x + b = 0.

        w = Σ⁻¹(μ₁ − μ₀),  b = −½(μ₁ᵀΣ⁻¹μ₁ − μ₀ᵀΣ⁻¹μ₀) + log(π₁/π₀).

        Example:
            >>> w, b = fit_gaussians(*make_data(100, seed=0)).linear_boundary()
            >>> w.shape
            (2,)
        """
        if not self.shared or len(self.classes) != 2:
            raise ValueError("only a shared-covariance model of two classes has a linear boundary")
        precision = np.linalg.inv(self.covariances[0])
        m0, m1 = self.means
        w = precision @ (m1 - m0)
        b = -0.5 * (m1 @ precision @ m1 - m0 @ precision @ m0)
        return w, float(b + np.log(self.priors[1] / self.priors[0]))

    def sample(self, n: int, seed: int = 0, *, label=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw n new labelled points from the model: y ~ P(y), then x ~ N(μ_y, Σ_y).

        Only a generative model can do this: a discriminative one has no P(x).

        Args:
            n: number of points.
            seed: random seed.
            label: draw every point from this class, x ~ P(x | y = label), instead.

        Example:
            >>> x, y = true_model(3.0).sample(10, seed=0)
            >>> x.shape, y.shape
            ((10, 2), (10,))
        """
        rng = np.random.default_rng(seed)
        if label is None:
            index = rng.choice(len(self.classes), size=n, p=self.priors)
        else:
            index = np.full(n, int(np.flatnonzero(self.classes == label)[0]))
        chols = np.linalg.cholesky(self.covariances)  # (K, D, D)
        noise = rng.standard_normal((n, self.means.shape[1]))  # (n, D)
        x = self.means[index] + np.einsum("nij,nj->ni", chols[index], noise)
        return x, self.classes[index]


def fit_gaussians(x: np.ndarray, y: np.ndarray, *, shared_covariance: bool = True,
                  reg: float = 1e-3) -> GaussianClassifier:
    """Fit class-conditional Gaussians and priors by maximum likelihood.

    The maximum-likelihood estimates are closed-form: the prior of a class is its share of the
    points, its mean the average of its points, its covariance the average outer product of its
    points' deviations from that mean (divided by n, not n − 1). A shared covariance is the
    average over all points of the deviation from their own class mean. To keep a class seen
    through one or two points invertible, `reg` × the average variance of the data is added to
    every diagonal (reg=0 gives the plain estimate).

    Args:
        x: (N, D) inputs.
        y: (N,) labels; every label present becomes a class.
        shared_covariance: one covariance for all classes (LDA) or one per class (QDA).
        reg: diagonal loading relative to the data's average variance.

    Returns:
        A `GaussianClassifier`.

    Example:
        >>> x = np.array([[0.0, 0], [2, 0], [0, 4], [2, 4]])
        >>> model = fit_gaussians(x, np.array([0, 0, 1, 1]), reg=0)
        >>> model.means.tolist(), model.covariances[0].tolist()
        ([[1.0, 0.0], [1.0, 4.0]], [[1.0, 0.0], [0.0, 0.0]])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    classes, index = np.unique(y, return_inverse=True)
    counts = np.bincount(index, minlength=len(classes))  # (K,)
    means = np.stack([x[index == k].mean(0) for k in range(len(classes))])  # (K, D)
    deviations = x - means[index]  # (N, D)
    loading = reg * x.var(0).mean() * np.eye(x.shape[1])
    if shared_covariance:
        covariance = deviations.T @ deviations / len(x) + loading  # (D, D)
        covariances = np.repeat(covariance[None], len(classes), axis=0)
    else:
        covariances = np.stack([deviations[index == k].T @ deviations[index == k] / counts[k]
                                for k in range(len(classes))]) + loading  # (K, D, D)
    return GaussianClassifier(classes, counts / len(x), means, covariances, shared_covariance)


def polynomial_features(x: np.ndarray, degree: int) -> np.ndarray:
    """The inputs (degree 1), or the inputs and all their pairwise products (degree 2).

    Degree 2 gives logistic regression the functional form of QDA's posterior (a quadratic
    function of x inside the softmax), as degree 1 gives it LDA's.

    Example:
        >>> polynomial_features(np.array([[2.0, 3.0]]), 2).tolist()
        [[2.0, 3.0, 4.0, 6.0, 9.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    if degree == 1:
        return x
    if degree != 2:
        raise ValueError(f"degree must be 1 (linear) or 2 (quadratic), got {degree}")
    rows, cols = np.triu_indices(x.shape[1])
    return np.concatenate([x, x[:, rows] * x[:, cols]], axis=1)


@dataclass(frozen=True, eq=False)
class LogisticRegression:
    """Multinomial logistic regression, P(y = k | x) = softmax_k(w_k·φ(x) + b_k).

    φ(x) are `polynomial_features` standardised with the training set's mean and spread (so one
    L2 strength suits any units, pixel values as well as 2-D coordinates).

    Attributes:
        classes: (K,) the labels.
        weights: (K, F) w_k, on standardised features.
        bias: (K,) b_k.
        degree: 1 (linear features) or 2 (quadratic).
        feature_mean, feature_scale: (F,) the standardisation of φ(x).
        l2: the penalty strength λ it was fitted with.
        iterations: Newton steps taken.
    """

    classes: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    degree: int
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    l2: float
    iterations: int

    def features(self, x: np.ndarray) -> np.ndarray:
        """Standardised φ(x): (N, D) → (N, F)."""
        return (polynomial_features(x, self.degree) - self.feature_mean) / self.feature_scale

    def logits(self, x: np.ndarray) -> np.ndarray:
        """w_k·φ(x) + b_k: (N, D) → (N, K)."""
        return self.features(x) @ self.weights.T + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(y = k | x), modelled directly: (N, K)."""
        return np.exp(_log_softmax(self.logits(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most probable class of every point: (N,) labels from `classes`."""
        return self.classes[self.logits(x).argmax(axis=1)]

    def linear_boundary(self) -> tuple[np.ndarray, float]:
        """(w, b) in the original units with log P(y=1|x)/P(y=0|x) = w·x + b (degree 1, two
        classes): the boundary is the line w·x + b = 0, comparable with LDA's.

        Example:
            >>> w, b = fit_logistic(*make_data(100, seed=0)).linear_boundary()
            >>> w.shape
            (2,)
        """
        if self.degree != 1 or len(self.classes) != 2:
            raise ValueError("only a degree-1 model of two classes has a linear boundary")
        w_std = self.weights[1] - self.weights[0]
        w = w_std / self.feature_scale
        return w, float(self.bias[1] - self.bias[0] - w @ self.feature_mean)


def _objective(theta: np.ndarray, design: np.ndarray, onehot: np.ndarray, l2: float,
               penalised: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean negative log-likelihood + λ/2 ‖W‖², its gradient (K, F+1) and probabilities."""
    log_p = _log_softmax(design @ theta.T)  # (N, K)
    loss = -(onehot * log_p).sum() / len(design) + 0.5 * l2 * ((theta * penalised) ** 2).sum()
    p = np.exp(log_p)
    grad = (p - onehot).T @ design / len(design) + l2 * theta * penalised  # (K, F+1)
    return float(loss), grad, p


def fit_logistic(x: np.ndarray, y: np.ndarray, *, degree: int = 1, l2: float = 1e-4,
                 max_iter: int = 50, tol: float = 1e-8) -> LogisticRegression:
    """Fit logistic regression by Newton's method on the penalised conditional likelihood.

    Minimises  −(1/N) Σ_n log P(y_n | x_n) + (λ/2) Σ_k ‖w_k‖²  (biases not penalised). The
    objective is convex, so Newton's method with a backtracking line search finds its unique
    minimum in a handful of steps: each step solves H d = g with the gradient
    g = (1/N) Σ_n (p_n − e_{y_n}) ⊗ φ̃_n + λ w and the Hessian
    H = (1/N) Σ_n (diag p_n − p_n p_nᵀ) ⊗ φ̃_n φ̃_nᵀ + λ I (φ̃ = [φ, 1]). Softmax logits are
    defined up to a common shift of the biases, so H is singular along that shift; the solve
    adds curvature along it alone, which leaves the step orthogonal to it.

    The L2 penalty keeps the weights finite when the classes are separable (the unpenalised
    optimum is then at infinity).

    Args:
        x: (N, D) inputs.
        y: (N,) labels; every label present becomes a class.
        degree: 1 (linear boundaries, LDA's form) or 2 (quadratic, QDA's form).
        l2: λ, on standardised features.
        max_iter: Newton steps at most.
        tol: stop when the largest gradient entry is below this.

    Returns:
        A `LogisticRegression`.

    Example:
        >>> model = fit_logistic(np.array([[0.0], [1], [2], [3]]), np.array([0, 0, 1, 1]))
        >>> model.predict(np.array([[0.2], [2.8]])).tolist()
        [0, 1]
    """
    phi = polynomial_features(x, degree)  # (N, F)
    mean = phi.mean(0)
    scale = phi.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # a constant feature stays as it is
    design = np.concatenate([(phi - mean) / scale, np.ones((len(phi), 1))], axis=1)  # (N, F+1)
    classes, index = np.unique(np.asarray(y), return_inverse=True)
    n, width = design.shape
    k = len(classes)
    onehot = np.eye(k)[index]  # (N, K)
    penalised = np.ones((k, width))
    penalised[:, -1] = 0
    shift = (1 - penalised).ravel() / np.sqrt(k)  # unit vector: every bias up by the same
    theta = np.zeros((k, width))  # [W | b]
    loss, grad, p = _objective(theta, design, onehot, l2, penalised)
    steps = 0
    while steps < max_iter and np.abs(grad).max() > tol:
        curvature = p[:, :, None] * (np.eye(k) - p[:, None, :])  # (N, K, K)
        weighted = (curvature[..., None] * design[:, None, None, :]).reshape(n, -1)  # (N, K·K·F̃)
        hessian = (weighted.T @ design).reshape(k, k, width, width) / n  # (K, K, F+1, F+1)
        hessian = hessian.transpose(0, 2, 1, 3).reshape(k * width, k * width)
        # λ on the weights; on the biases, a unit curvature along the common shift only (the
        # gradient has no component along it, so the step is the one orthogonal to it).
        hessian += np.diag(l2 * penalised.ravel()) + np.outer(shift, shift)
        direction = np.linalg.solve(hessian, grad.ravel()).reshape(k, width)
        t, slope = 1.0, float((grad * direction).sum())
        while True:
            trial = theta - t * direction
            new_loss, new_grad, new_p = _objective(trial, design, onehot, l2, penalised)
            if new_loss <= loss - 0.25 * t * slope or t < 1e-10:
                break
            t /= 2
        theta, loss, grad, p = trial, new_loss, new_grad, new_p
        steps += 1
    return LogisticRegression(classes, theta[:, :-1].copy(), theta[:, -1].copy(), degree, mean,
                              scale, l2, steps)


def accuracy(model: GaussianClassifier | LogisticRegression, x: np.ndarray, y: np.ndarray) -> float:
    """Share of points a model labels correctly.

    Example:
        >>> accuracy(true_model(4.0), *true_model(4.0).sample(200, seed=1)) > 0.9
        True
    """
    return float((model.predict(x) == np.asarray(y)).mean())


def _rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _oriented(degrees: float, variances: tuple[float, float]) -> np.ndarray:
    r = _rotation(degrees)
    return r @ np.diag(variances) @ r.T


def true_model(separation: float = 2.0, *, shared_covariance: bool = True) -> GaussianClassifier:
    """The two-class world the 2-D data is drawn from, as a `GaussianClassifier`.

    Class 0 is centred at (−separation/2, 0), class 1 at (+separation/2, 0), equally likely.
    Both clouds are elongated and tilted, so the best boundary is not simply the perpendicular
    bisector of the means. With `shared_covariance=False` class 1 is broader and tilted the
    other way, so the best boundary is curved. Its predictions are the Bayes-optimal ones.

    Example:
        >>> true_model(3.0).means.tolist()
        [[-1.5, 0.0], [1.5, 0.0]]
    """
    covariance0 = _oriented(35.0, (1.0, 0.2))
    covariance1 = covariance0 if shared_covariance else _oriented(-40.0, (1.8, 0.15))
    means = np.array([[-separation / 2, 0.0], [separation / 2, 0.0]])
    return GaussianClassifier(np.array([0, 1]), np.array([0.5, 0.5]), means,
                              np.stack([covariance0, covariance1]), shared_covariance)


#: Outliers sit this far beyond class 0's mean, on the side away from class 1.
OUTLIER_DISTANCE = 8.0


def make_data(n_per_class: int, *, separation: float = 2.0, shared_covariance: bool = True,
              outliers: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw 2-D labelled points: n_per_class from each Gaussian of `true_model`.

    Outliers are correctly labelled but atypical points: each of class 0's points is, with
    probability `outliers`, moved `OUTLIER_DISTANCE` beyond its mean, away from class 1 (into a
    small cloud of radius ≈ 0.5). They lie on the right side of every sensible boundary, yet
    they pull a Gaussian's mean and inflate its covariance.

    Args:
        n_per_class: points per class.
        separation: distance between the two class means.
        shared_covariance: both classes with the same covariance, or different ones.
        outliers: probability that a point of class 0 is replaced by a far-away one.
        seed: random seed; the same seed gives the same points.

    Returns:
        x (2 n_per_class, 2) float64 and y (2 n_per_class,) int64, class 0 first.

    Example:
        >>> x, y = make_data(3, seed=0)
        >>> x.shape, y.tolist()
        ((6, 2), [0, 0, 0, 1, 1, 1])
    """
    model = true_model(separation, shared_covariance=shared_covariance)
    rng = np.random.default_rng(seed)
    chols = np.linalg.cholesky(model.covariances)  # (2, 2, 2)
    x = np.concatenate([model.means[k] + rng.standard_normal((n_per_class, 2)) @ chols[k].T
                        for k in range(2)])  # (2n, 2)
    y = np.repeat(np.arange(2), n_per_class)
    moved = rng.random(n_per_class) < outliers  # (n,) which of class 0's points move
    centre = model.means[0] - np.array([OUTLIER_DISTANCE, 0.0])
    x[:n_per_class][moved] = centre + 0.5 * rng.standard_normal((int(moved.sum()), 2))
    return x, y


@dataclass(frozen=True)
class LearningCurve:
    """Test accuracy of both classifiers against the training-set size.

    Attributes:
        sizes: (S,) training points per class.
        generative, discriminative: (S,) mean test accuracy over the repeats.
        generative_std, discriminative_std: (S,) their standard deviation over the repeats.
        bayes: accuracy of the true model on the same test set, the best any classifier can do.
    """

    sizes: np.ndarray
    generative: np.ndarray
    discriminative: np.ndarray
    generative_std: np.ndarray
    discriminative_std: np.ndarray
    bayes: float


def learning_curve(sizes, *, separation: float = 2.0, shared_covariance: bool = True,
                   outliers: float = 0.0, quadratic: bool = False, repeats: int = 20,
                   test_per_class: int = 2000, seed: int = 0) -> LearningCurve:
    """Average test accuracy of the generative and the discriminative fit per training size.

    For every size, `repeats` training sets are drawn (with the outliers), both models fitted on
    each, and scored on one clean test set drawn from the true model (no outliers: the world
    they should learn). `quadratic` compares QDA with logistic regression on quadratic features,
    otherwise LDA with linear logistic regression.

    Args:
        sizes: training points per class, e.g. (2, 5, 10, 50).
        separation, shared_covariance, outliers: as in `make_data`.
        quadratic: the pair with quadratic boundaries instead of linear ones.
        repeats: training sets per size.
        test_per_class: test points per class.
        seed: random seed of the whole experiment.

    Example:
        >>> curve = learning_curve((3, 30), repeats=2, test_per_class=100)
        >>> curve.generative.shape
        (2,)
    """
    x_test, y_test = make_data(test_per_class, separation=separation,
                               shared_covariance=shared_covariance, seed=seed + 1_000_003)
    sizes = np.asarray(sizes, dtype=np.int64)
    scores = np.zeros((2, len(sizes), repeats))
    for i, size in enumerate(sizes):
        for r in range(repeats):
            x, y = make_data(int(size), separation=separation, shared_covariance=shared_covariance,
                             outliers=outliers, seed=seed + 7919 * r + int(size))
            generative = fit_gaussians(x, y, shared_covariance=not quadratic)
            discriminative = fit_logistic(x, y, degree=2 if quadratic else 1)
            scores[0, i, r] = accuracy(generative, x_test, y_test)
            scores[1, i, r] = accuracy(discriminative, x_test, y_test)
    best = accuracy(true_model(separation, shared_covariance=shared_covariance), x_test, y_test)
    return LearningCurve(sizes, scores[0].mean(1), scores[1].mean(1), scores[0].std(1),
                         scores[1].std(1), best)


def pixel_features(image: np.ndarray, *, position: bool = False) -> np.ndarray:
    """One row per pixel: its colour in [0, 1], optionally followed by its (row, column) in [0, 1].

    Example:
        >>> pixel_features(np.zeros((2, 3, 3), np.uint8), position=True).shape
        (6, 5)
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    colour = image.reshape(-1, 3).astype(np.float64) / 255  # (H*W, 3)
    if not position:
        return colour
    rows, cols = np.mgrid[0:height, 0:width]
    where = np.stack([rows.ravel() / max(height - 1, 1), cols.ravel() / max(width - 1, 1)], 1)
    return np.concatenate([colour, where], axis=1)  # (H*W, 5)


@dataclass(frozen=True, eq=False)
class PixelComparison:
    """Both classifiers trained on a few labelled pixels of one picture, applied to all of it.

    Attributes:
        labelled: bool (H, W), the training pixels.
        generative, discriminative: int64 (H, W) label maps.
        scores: {"generative" | "discriminative": {"pixel_accuracy": …, "miou": …}}, on the
            pixels that were not used for training.
        gaussians: the fitted per-class Gaussians (colour, or colour and position).
        logistic: the fitted logistic regression.
    """

    labelled: np.ndarray
    generative: np.ndarray
    discriminative: np.ndarray
    scores: dict
    gaussians: GaussianClassifier
    logistic: LogisticRegression


def compare_on_pixels(image: np.ndarray, labels: np.ndarray, num_classes: int, *,
                      fraction: float = 0.02, position: bool = False,
                      seed: int = 0) -> PixelComparison:
    """Label a picture from a few labelled pixels: colour Gaussians vs logistic regression.

    A random `fraction` of the pixels keep their label (as if an annotator had clicked them).
    The generative model fits one Gaussian per class to those pixels' features (each class with
    its own covariance: a colour model, as GrabCut's) and labels every pixel by Bayes' rule.
    The discriminative one fits a logistic regression on quadratic features of the same inputs,
    whose posterior has the same quadratic form. Both are scored with `seg.metrics` on the
    pixels that were not used for training. A class none of the chosen pixels shows is never
    predicted by either.

    Args:
        image: uint8 (H, W, 3).
        labels: int (H, W) true classes.
        num_classes: number of classes, for the scores.
        fraction: share of pixels whose label is given.
        position: add the pixel's (row, column) to its colour.
        seed: which pixels are given.

    Example:
        >>> import seg
        >>> s = seg.synthetic.scene(7, height=64, width=64)
        >>> result = compare_on_pixels(s.image, s.labels, 8, fraction=0.05)
        >>> result.generative.shape
        (64, 64)
    """
    labels = np.asarray(labels)
    height, width = labels.shape
    features = pixel_features(image, position=position)  # (H*W, D)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels.size, size=max(2, int(round(fraction * labels.size))), replace=False)
    x, y = features[chosen], labels.ravel()[chosen]
    gaussians = fit_gaussians(x, y, shared_covariance=False)
    logistic = fit_logistic(x, y, degree=2)
    labelled = np.zeros(labels.size, dtype=bool)
    labelled[chosen] = True
    labelled = labelled.reshape(height, width)
    held_out = np.where(labelled, 255, labels)  # score only the pixels nobody labelled
    maps, scores = {}, {}
    for name, model in (("generative", gaussians), ("discriminative", logistic)):
        maps[name] = model.predict(features).reshape(height, width).astype(np.int64)
        cm = metrics.confusion_matrix(maps[name], held_out, num_classes)  # (C, C)
        scores[name] = {"pixel_accuracy": float(cm.trace() / cm.sum()),
                        "miou": float(np.nanmean(metrics.iou_from_confusion(cm).numpy()))}
    return PixelComparison(labelled, maps["generative"], maps["discriminative"], scores,
                           gaussians, logistic)
