"""The experiments of the CRF and DeepLab v1 lessons, as plain functions of arrays and models.

Two halves, one per kind of CRF:

- **A row of pixels as a linear chain.** :func:`noisy_row` takes one row of a picture and gives
  every pixel noisy scores for a few labels (a network's log-probabilities plus Gaussian noise).
  :func:`chain_crf` turns a transition matrix into a :class:`~seg.crf.LinearChainCRF` whose
  emission weights pass the scores through unchanged, :func:`decode_row` compares its Viterbi
  labelling with the independent per-pixel argmax and checks the forward algorithm's Z(x)
  against brute force, and :func:`fit_chain` climbs the log-likelihood by gradient ascent
  (empirical minus expected feature counts).
- **The fully-connected CRF after a network.** :func:`crf_on_prediction` runs mean-field
  inference once and keeps every iteration (labels, free energy, KL between iterations, mIoU);
  :func:`deeplab_pipeline` shows DeepLab v1's stages (stride-8 scores, bilinear upsampling,
  CRF); :func:`with_output_stride` copies a DeepLab segmenter at another output stride; and
  :func:`crf_miou_table` measures mIoU with and without the CRF on held-out synthetic scenes.

    >>> import seg
    >>> scene = seg.synthetic.scene(7, height=64, width=64)
    >>> probs = torch.softmax(torch.randn(8, 64, 64), 0)
    >>> row = noisy_row(scene.image, probs, 40, truth=scene.labels, classes=seg.synthetic.CLASSES)
    >>> summary = decode_row(chain_crf(2.0 * torch.eye(row.num_labels)), row, segment=(0, 6))
    >>> abs(summary.segment_log_z - summary.segment_log_z_brute_force) < 1e-9
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from seg import metrics, synthetic
from seg.crf.dense import DEEPLAB_V1_LARGEFOV, DenseCRF, Kernel, dense_crf
from seg.crf.linear_chain import LinearChainCRF
from seg.io import fit_within
from seg.models.segmenter import sharing_weights

__all__ = [
    "OTHER",
    "CRFRun",
    "CRFTable",
    "ChainFit",
    "ChainSummary",
    "DeepLabStages",
    "NoisyRow",
    "chain_crf",
    "crf_miou_table",
    "crf_on_prediction",
    "decode_row",
    "deeplab_pipeline",
    "fit_chain",
    "held_out_scenes",
    "noisy_row",
    "with_output_stride",
    "working_image",
]

#: Name of the label that groups every class not shown on its own in a row.
OTHER = "other"
#: Probability of the true class when the row's clean scores come from the true labels.
TRUTH_CONFIDENCE = 0.6
# log(0) would make a label impossible whatever the transitions say; clip as the dense CRF does.
_MIN_PROB = 1e-5


# ---------------------------------------------------------------------------------------------
# A row of pixels as a linear chain
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NoisyRow:
    """One row of pixels with noisy scores for K labels: the input x of the linear-chain CRF.

    Attributes:
        row: index of the row in the picture.
        pixels: uint8 (T, 3) the row's colours.
        labels: the K label names; the last may be :data:`OTHER`.
        members: for each label, the class indices it stands for (one, or all the others).
        clean: float64 (T, K) log-probabilities of the labels before the noise.
        scores: float64 (T, K) the noisy scores x_t = clean_t + ε_t, ε ~ N(0, noise²).
        target: int64 (T,) the labelling the CRF learns: the true classes on a synthetic
            scene, otherwise the argmax of the clean scores.
        target_is_truth: whether ``target`` comes from exact labels.
        noise: the standard deviation of ε.
    """

    row: int
    pixels: np.ndarray
    labels: list[str]
    members: list[tuple[int, ...]]
    clean: Tensor
    scores: Tensor
    target: Tensor
    target_is_truth: bool
    noise: float

    @property
    def num_labels(self) -> int:
        """K, the number of labels of the chain."""
        return len(self.labels)

    @property
    def length(self) -> int:
        """T, the number of pixels in the row."""
        return self.scores.shape[0]

    def argmax(self) -> Tensor:
        """The independent per-pixel decision argmax_k x_t(k), (T,) int64."""
        return self.scores.argmax(1)

    def colours(self, palette: np.ndarray) -> np.ndarray:
        """uint8 (K, 3) colour of each label: its class colour, mid grey for :data:`OTHER`."""
        return np.array([palette[m[0]] if len(m) == 1 else (150, 150, 150) for m in self.members],
                        dtype=np.uint8)


def _row_labels(counts: np.ndarray, mass: np.ndarray, max_labels: int) -> list[tuple[int, ...]]:
    """Group the classes into at most `max_labels` labels, the most frequent on their own."""
    num_classes = len(counts)
    present = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    if len(present) < 2:  # a row of one class: add the runner-up by probability, a real choice
        runner_up = [int(c) for c in np.argsort(-mass, kind="stable") if int(c) not in present]
        present += runner_up[: 2 - len(present)]
    if len(present) <= max_labels:
        return [(c,) for c in present]
    alone = present[: max_labels - 1]
    rest = tuple(c for c in range(num_classes) if c not in alone)
    return [(c,) for c in alone] + [rest]


def noisy_row(image, probs: Tensor, row: int, *, truth=None, classes: Sequence[str],
              noise: float = 1.0, seed: int = 0, max_labels: int = 4,
              scores_from: str = "model") -> NoisyRow:
    """One row of a picture with noisy per-pixel label scores, for the linear-chain CRF.

    The labels are the classes of the row (its true classes on a synthetic scene, otherwise
    the network's answers), the most frequent ones on their own and the rest grouped as
    :data:`OTHER` so that there are at most ``max_labels`` (few enough labels to enumerate
    every labelling of a short segment). The clean score of a label is the log of its
    probability, summed over the classes it groups: the network's probabilities
    (``scores_from="model"``), or, on a synthetic scene, a made-up network that gives the true
    class probability 0.6 everywhere (``scores_from="truth"``). Gaussian noise of standard
    deviation ``noise`` is then added to every score, independently at every pixel: that is
    what the independent argmax suffers from and what the chain's transitions can smooth away.

    Args:
        image: uint8 (H, W, 3) picture.
        probs: (C, H, W) class probabilities of a network at the picture's size.
        row: the row to take, 0 ≤ row < H.
        truth: int (H, W) true labels (synthetic scenes) or None.
        classes: the C class names.
        noise: standard deviation of the Gaussian noise added to the log-probabilities.
        seed: seed of the noise.
        max_labels: K at most (the last groups the remaining classes).
        scores_from: "model" or "truth" (needs ``truth``).

    Returns:
        A :class:`NoisyRow`.

    Example:
        >>> probs = torch.softmax(torch.randn(5, 4, 9), 0)
        >>> row = noisy_row(np.zeros((4, 9, 3), np.uint8), probs, 2, classes="abcde", max_labels=3)
        >>> row.scores.shape[0], row.num_labels <= 3
        (9, True)
    """
    array = np.asarray(image)
    num_classes, height, width = probs.shape
    if array.shape[:2] != (height, width):
        raise ValueError(f"the image is {array.shape[:2]} (H, W) but probs are {(height, width)}")
    if not 0 <= row < height:
        raise ValueError(f"row must be in [0, {height}), got {row}")
    if scores_from not in ("model", "truth"):
        raise ValueError(f"scores_from must be 'model' or 'truth', got {scores_from!r}")
    if scores_from == "truth" and truth is None:
        raise ValueError("scores from the true labels need the true labels (a synthetic scene)")
    row_probs = probs[:, row, :].detach().double().cpu().T  # (T, C)
    true_row = None if truth is None else torch.as_tensor(np.asarray(truth)[row]).long()  # (T,)
    decided = true_row if true_row is not None else row_probs.argmax(1)  # (T,)
    counts = np.bincount(decided.numpy(), minlength=num_classes)
    members = _row_labels(counts, row_probs.sum(0).numpy(), max_labels)
    label_of = torch.empty(num_classes, dtype=torch.long)  # class → label
    for k, group in enumerate(members):
        label_of[list(group)] = k
    if scores_from == "truth":
        k = len(members)
        grouped = torch.full((width, k), (1 - TRUTH_CONFIDENCE) / (k - 1), dtype=torch.float64)
        grouped[torch.arange(width), label_of[true_row]] = TRUTH_CONFIDENCE  # (T, K)
    else:
        grouped = torch.stack([row_probs[:, list(g)].sum(1) for g in members], 1)  # (T, K)
    clean = grouped.clamp_min(_MIN_PROB).log()  # (T, K)
    generator = torch.Generator().manual_seed(seed)
    scores = clean + noise * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    target = label_of[true_row] if true_row is not None else clean.argmax(1)  # (T,)
    labels = [classes[g[0]] if len(g) == 1 else OTHER for g in members]
    return NoisyRow(row=row, pixels=array[row].copy(), labels=labels, members=members,
                    clean=clean, scores=scores, target=target,
                    target_is_truth=true_row is not None, noise=float(noise))


def chain_crf(transitions: Tensor) -> LinearChainCRF:
    """A linear-chain CRF over the row's scores: W = I (emission = the score), A = ``transitions``.

    With W the identity, the pixel term of λ·f(x, y_{t-1}, y_t) is x_t(y_t), the noisy score of
    the chosen label, and A[j, k] is added each time label j is followed by label k: a large
    diagonal says "stay in the same class". π starts at 0. Parameters are float64 so that the
    forward algorithm and brute force can be compared to 1e-9.

    Args:
        transitions: (K, K) transition weights A.

    Example:
        >>> chain_crf(torch.eye(3)).num_labels
        3
    """
    a = torch.as_tensor(transitions, dtype=torch.float64)  # (K, K)
    return LinearChainCRF.from_parameters(torch.eye(a.shape[0], dtype=torch.float64), a)


@dataclass(frozen=True, eq=False)
class ChainSummary:
    """What a linear-chain CRF makes of a row (see :func:`decode_row`)."""

    log_z: float  # log Z(x) of the whole row, forward algorithm
    segment: tuple[int, int]  # (start, length) of the short segment
    segment_log_z: float  # log Z of the segment, forward algorithm
    segment_log_z_brute_force: float  # log Z of the segment, all K^length labellings summed
    labellings: int  # K^length
    viterbi: Tensor  # (T,) int64 the most probable labelling
    viterbi_log_prob: float  # log p(viterbi | x) = s(x, y*) - log Z(x)
    argmax: Tensor  # (T,) int64 the independent per-pixel decisions
    viterbi_accuracy: float  # share of pixels where viterbi == target
    argmax_accuracy: float  # share of pixels where argmax == target
    target_log_prob: float  # log p(target | x)


def decode_row(crf: LinearChainCRF, row: NoisyRow, *, segment: tuple[int, int]) -> ChainSummary:
    """Z(x) by the forward algorithm (and by brute force on a short segment), Viterbi vs argmax.

    Args:
        crf: a linear-chain CRF over the row's K labels (e.g. :func:`chain_crf`).
        row: a :class:`NoisyRow`.
        segment: (start, length) of the segment whose Z is also enumerated; K^length must be
            small (4 labels and 8 pixels: 65,536 labellings).

    Example:
        >>> probs = torch.softmax(torch.randn(3, 2, 8), 0)
        >>> row = noisy_row(np.zeros((2, 8, 3), np.uint8), probs, 1, classes="abc")
        >>> summary = decode_row(chain_crf(torch.eye(row.num_labels)), row, segment=(2, 5))
        >>> summary.labellings == row.num_labels ** 5
        True
    """
    start, length = segment
    if length < 1 or start < 0 or start + length > row.length:
        raise ValueError(f"segment {segment} does not fit in a row of {row.length} pixels")
    x = row.scores  # (T, K)
    piece = x[start:start + length]  # (L, K)
    with torch.no_grad():
        log_z = float(crf.log_partition(x))
        segment_log_z = float(crf.log_partition(piece))
        brute = float(crf.brute_force_log_partition(piece))
        target_log_prob = -float(crf.nll(x, row.target))
    viterbi, best = crf.viterbi(x)
    argmax = row.argmax()
    return ChainSummary(
        log_z=log_z, segment=(start, length), segment_log_z=segment_log_z,
        segment_log_z_brute_force=brute, labellings=row.num_labels ** length,
        viterbi=viterbi, viterbi_log_prob=float(best) - log_z, argmax=argmax,
        viterbi_accuracy=float((viterbi == row.target).double().mean()),
        argmax_accuracy=float((argmax == row.target).double().mean()),
        target_log_prob=target_log_prob)


@dataclass(frozen=True, eq=False)
class ChainFit:
    """Gradient ascent on log p(target | x) (see :func:`fit_chain`).

    Attributes:
        log_likelihoods: log p(y | x) before the first step and after every step.
        weights, transitions, start: λ after the steps: W (K, K), A (K, K), π (K,).
        step_size: the step η reached (the next step starts from it).
        empirical: (K, K) transition counts of the target labelling, F_A(x, y).
        expected: (K, K) their expectation under p(·|x) at the final λ, E[F_A].
        viterbi: (T,) int64 Viterbi labelling with the final λ.
        viterbi_accuracy: share of pixels where it equals the target.
        seconds: wall time of all the steps so far.
    """

    log_likelihoods: list[float]
    weights: Tensor
    transitions: Tensor
    start: Tensor
    step_size: float
    empirical: Tensor
    expected: Tensor
    viterbi: Tensor
    viterbi_accuracy: float
    seconds: float

    @property
    def steps(self) -> int:
        """Number of gradient steps taken."""
        return len(self.log_likelihoods) - 1

    @property
    def gradient(self) -> Tensor:
        """∂ log p(y|x) / ∂A at the final λ: empirical minus expected transition counts, (K, K)."""
        return self.empirical - self.expected

    def crf(self) -> LinearChainCRF:
        """The linear-chain CRF with the learned λ."""
        return LinearChainCRF.from_parameters(self.weights, self.transitions, self.start)


def fit_chain(row: NoisyRow, transitions: Tensor, *, steps: int, lr: float = 1.0,
              resume: ChainFit | None = None,
              callback: Callable[[int, float], None] | None = None) -> ChainFit:
    """Learn λ = (W, A, π) on one row by gradient ascent on log p(target | x).

    Starts from :func:`chain_crf` (W = I, A = ``transitions``), or from where ``resume`` ended,
    and repeats

        g = F(x, y) - E_{y' ~ p(·|x)}[F(x, y')],        λ ← λ + η g,

    the gradient of the log-likelihood being the empirical feature counts minus the expected
    ones (forward-backward, :meth:`~seg.crf.LinearChainCRF.gradient`). The log-likelihood is
    concave in λ, so a small enough step always climbs; how small depends on the scale of the
    features (the scores' counts are much larger than the transitions'). So each step
    backtracks: η is halved until log p(y|x) does not fall, then grows by half again for the
    next step. The first η is lr / T (counts grow with the row's length T).

    Args:
        row: a :class:`NoisyRow` (its ``target`` is the labelling to learn).
        transitions: (K, K) starting transition weights (ignored when resuming).
        steps: number of gradient steps to take now (0: only evaluate).
        lr: first step size per pixel.
        resume: a previous fit on the same row to continue from (its curve is kept).
        callback: ``callback(step, log_likelihood)`` after every step (e.g. a progress bar).

    Example:
        >>> probs = torch.softmax(torch.randn(3, 2, 12), 0)
        >>> row = noisy_row(np.zeros((2, 12, 3), np.uint8), probs, 0, classes="abc")
        >>> fit = fit_chain(row, torch.zeros(row.num_labels, row.num_labels), steps=5)
        >>> more = fit_chain(row, None, steps=5, resume=fit)
        >>> more.steps, more.log_likelihoods[-1] >= fit.log_likelihoods[-1] > fit.log_likelihoods[0]
        (10, True)
    """
    x, y = row.scores, row.target
    if resume is None:
        crf, eta, curve, seconds = chain_crf(transitions), lr / row.length, [], 0.0
        curve.append(crf.log_likelihood(x, y))
    else:
        crf, eta = resume.crf(), resume.step_size
        curve, seconds = list(resume.log_likelihoods), resume.seconds
    parameters = (crf.weights, crf.transitions, crf.start)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        gradient = crf.gradient(x, y)  # FeatureCounts: empirical - expected, per parameter
        before = [p.detach().clone() for p in parameters]
        while True:
            with torch.no_grad():
                for p, p0, g in zip(parameters, before, gradient):
                    torch.add(p0, g, alpha=eta, out=p)
            climbed = crf.log_likelihood(x, y)
            if climbed >= curve[-1]:
                break
            eta /= 2
            if eta < 1e-12:  # no step climbs any more: λ is at the top (to rounding), stay
                with torch.no_grad():
                    for p, p0 in zip(parameters, before):
                        p.copy_(p0)
                climbed = curve[-1]
                break
        curve.append(climbed)
        eta *= 1.5
        if callback is not None:
            callback(step, climbed)
    seconds += time.perf_counter() - start
    viterbi, _ = crf.viterbi(x)
    return ChainFit(
        log_likelihoods=curve, weights=crf.weights.detach().clone(),
        transitions=crf.transitions.detach().clone(), start=crf.start.detach().clone(),
        step_size=eta, empirical=crf.feature_counts(x, y).transitions,
        expected=crf.expected_feature_counts(x).transitions, viterbi=viterbi,
        viterbi_accuracy=float((viterbi == y).double().mean()), seconds=seconds)


# ---------------------------------------------------------------------------------------------
# The fully-connected CRF after a network
# ---------------------------------------------------------------------------------------------


def working_image(array: np.ndarray, max_side: int = 384) -> np.ndarray:
    """The picture reduced so that its longest side is at most ``max_side`` (else unchanged).

    The lessons keep every mean-field iteration of the CRF for a scrubber, (C, H, W) floats
    each; at 384 pixels that stays a few megabytes and well under a second.

    Example:
        >>> working_image(np.zeros((600, 800, 3), np.uint8)).shape
        (288, 384, 3)
    """
    image = Image.fromarray(np.asarray(array))
    return np.asarray(fit_within(image, max_side))


@dataclass(frozen=True, eq=False)
class CRFRun:
    """Every iteration of one mean-field run (see :func:`crf_on_prediction`); t = 0 is the network.

    Attributes:
        labels: uint8 (S+1, H, W) argmax_l Q_t(l) for t = 0..S.
        confidence: float32 (S+1, H, W) max_l Q_t(l).
        free_energy: S+1 values of the mean-field free energy per pixel F(Q_t).
        kl: S+1 values KL(Q_t ‖ Q_{t-1}) per pixel (nan at t = 0).
        miou: S+1 values of mIoU against the true labels, or None without them.
        seconds: wall time of the S mean-field updates (with each Q_t, its free energy and KL).
        params: the CRF parameters used (w1, theta_alpha, theta_beta, w2, theta_gamma).
    """

    labels: np.ndarray
    confidence: np.ndarray
    free_energy: list[float]
    kl: list[float]
    miou: list[float] | None
    seconds: float
    params: dict

    @property
    def iterations(self) -> int:
        """S, the number of mean-field updates."""
        return len(self.labels) - 1

    def changed(self, t: int) -> np.ndarray:
        """bool (H, W): the pixels whose label at iteration t differs from the network's."""
        return self.labels[t] != self.labels[0]


def crf_on_prediction(image, probs: Tensor, *, iterations: int = 10, truth=None,
                      smoothness: Kernel | None = None, appearance: Kernel | None = None,
                      **params: float) -> CRFRun:
    """Run the fully-connected CRF once and keep every iteration, for scrubbing and curves.

    One :class:`~seg.crf.DenseCRF` is built (the lattices once); :meth:`~seg.crf.DenseCRF.trace`
    gives every Q_t with its free energy F(Q_t) and KL(Q_t ‖ Q_{t-1}) (how much iteration t
    still changed); then the labels and the confidence of every t are read off.

    Args:
        image: uint8 (H, W, 3) picture.
        probs: (C, H, W) the network's probabilities at the picture's size; the CRF runs on
            their device.
        iterations: mean-field updates S.
        truth: int (H, W) true labels for the mIoU per iteration, or None.
        smoothness, appearance: the kernels already built for this picture and these widths
            (see :class:`~seg.crf.Kernel`), e.g. kept while only the weights change.
        **params: w1, theta_alpha, theta_beta, w2, theta_gamma (default DeepLab-LargeFOV's).

    Example:
        >>> probs = torch.softmax(torch.randn(3, 6, 7), 0)
        >>> run = crf_on_prediction(np.zeros((6, 7, 3), np.uint8), probs, iterations=3)
        >>> run.labels.shape, len(run.free_energy)
        ((4, 6, 7), 4)
    """
    params = {**DEEPLAB_V1_LARGEFOV, **params}
    crf = DenseCRF(image, probs, smoothness=smoothness, appearance=appearance, **params)
    start = time.perf_counter()
    qs, energy, kl = crf.trace(iterations)
    if probs.device.type == "cuda":
        torch.cuda.synchronize(probs.device)
    seconds = time.perf_counter() - start
    num_classes = probs.shape[0]
    labels = np.stack([q.argmax(0).to(torch.uint8).cpu().numpy() for q in qs])  # (S+1, H, W)
    confidence = np.stack([q.amax(0).float().cpu().numpy() for q in qs])  # (S+1, H, W)
    miou = None if truth is None else [metrics.miou(lab, truth, num_classes) for lab in labels]
    return CRFRun(labels=labels, confidence=confidence, free_energy=energy, kl=kl, miou=miou,
                  seconds=seconds, params=params)


def with_output_stride(segmenter, output_stride: int):
    """A copy of a DeepLab segmenter running at another output stride; the original is untouched.

    ``set_output_stride`` changes the pools and dilations of the module in place; a segmenter
    shared by several pages (or students) must never be changed, so the change is made on a copy
    that shares the original's weights (:func:`seg.models.sharing_weights`).

    Args:
        segmenter: a :class:`~seg.models.Segmenter` whose module has ``set_output_stride``.
        output_stride: 8, 16 or 32.

    Example:
        >>> import seg
        >>> shared = seg.models.load("deeplab_v1_largefov", device="cpu")
        >>> with_output_stride(shared, 32).size_divisor, shared.size_divisor
        (32, 8)
    """
    copied = sharing_weights(segmenter)
    copied.module.set_output_stride(output_stride)
    return copied


@dataclass(frozen=True, eq=False)
class DeepLabStages:
    """DeepLab v1's pipeline on one picture (see :func:`deeplab_pipeline`).

    Attributes:
        scores: float32 (C, h, w) fc8's logits at the output stride (h ≈ H / output_stride).
        probs: float32 (C, H, W) the scores upsampled bilinearly to the picture, softmaxed.
        crf_probs: float32 (C, H, W) after the CRF, or None when it is off.
        output_stride: pixels of the picture per score.
        seconds_network, seconds_crf: wall times of the two halves.
    """

    scores: Tensor
    probs: Tensor
    crf_probs: Tensor | None
    output_stride: int
    seconds_network: float
    seconds_crf: float

    @property
    def labels(self) -> Tensor:
        """(H, W) the final labels: after the CRF if it ran, else the upsampled scores'."""
        return (self.crf_probs if self.crf_probs is not None else self.probs).argmax(0)


def deeplab_pipeline(segmenter, image: np.ndarray, *, iterations: int = 10,
                     **params: float) -> DeepLabStages:
    """DeepLab v1 in its three stages: atrous network → bilinear upsampling → fully-connected CRF.

    The network's fc8 gives class scores at its output stride (8 for DeepLab). They are upsampled
    to the picture by bilinear interpolation, a fixed operation with nothing learned (here done
    explicitly from the scores: the segmenter pads the picture to a multiple of the stride, so
    the scores cover the padded size and are cropped back after upsampling). The softmax of that
    is the CRF's unary, and ``iterations`` mean-field updates refine it (0: no CRF).

    Args:
        segmenter: a DeepLab v1 :class:`~seg.models.Segmenter` (its module returns "scores").
        image: uint8 (H, W, 3) picture, at most ``segmenter.max_side`` on its longest side.
        iterations: mean-field updates of the CRF (0 turns it off).
        **params: the CRF's w1, theta_alpha, theta_beta, w2, theta_gamma.

    Example:
        >>> import seg
        >>> net = seg.models.load("deeplab_v1_largefov", device="cpu")
        >>> image = seg.synthetic.scene(0, height=64, width=64).image
        >>> stages = deeplab_pipeline(net, image, iterations=2)
        >>> tuple(stages.scores.shape), tuple(stages.crf_probs.shape)
        ((8, 8, 8), (8, 64, 64))
    """
    height, width = image.shape[:2]
    if max(height, width) > segmenter.max_side:
        raise ValueError(f"the picture is {width}×{height}; reduce it to {segmenter.max_side} "
                         "pixels on its longest side first (working_image)")
    start = time.perf_counter()
    scores = segmenter.predict(image, extras=True).extras["scores"]  # (C, h, w)
    stride = segmenter.module.output_stride
    padded = (scores.shape[1] * stride, scores.shape[2] * stride)
    logits = F.interpolate(scores[None], size=padded, mode="bilinear",
                           align_corners=False)[0, :, :height, :width]  # (C, H, W)
    probs = logits.softmax(0)  # (C, H, W)
    seconds_network = time.perf_counter() - start
    crf_probs, seconds_crf = None, 0.0
    if iterations > 0:
        start = time.perf_counter()
        crf_probs = dense_crf(image, probs.to(segmenter.device), iterations=iterations,
                              **params).cpu()  # (C, H, W)
        seconds_crf = time.perf_counter() - start
    return DeepLabStages(scores=scores, probs=probs, crf_probs=crf_probs, output_stride=stride,
                         seconds_network=seconds_network, seconds_crf=seconds_crf)


def held_out_scenes(count: int, size: int = 256) -> list[synthetic.Scene]:
    """The first ``count`` evaluation scenes (``eval_seed(i)``), never seen in training.

    Example:
        >>> [s.seed for s in held_out_scenes(2, size=32)]
        [1000000, 1000001]
    """
    return [synthetic.scene(synthetic.eval_seed(i), height=size, width=size) for i in range(count)]


@dataclass(frozen=True, eq=False)
class CRFTable:
    """mIoU of a network with and without the CRF on a set of scenes (see :func:`crf_miou_table`).

    ``miou_without`` / ``miou_with`` are the data set's mIoU, from the confusion matrices summed
    over the scenes (as PASCAL VOC scores a method); ``rows`` has each scene's own numbers.
    """

    miou_without: float
    miou_with: float
    accuracy_without: float
    accuracy_with: float
    rows: list[dict]
    iterations: int
    params: dict
    seconds_network: float
    seconds_crf: float

    @property
    def gain(self) -> float:
        """mIoU with the CRF minus without, in mIoU units (0.05 = 5 points)."""
        return self.miou_with - self.miou_without


def crf_miou_table(model, scenes: Iterable[synthetic.Scene], *, iterations: int = 10,
                   progress: Callable[[int, int], None] | None = None,
                   **params: float) -> CRFTable:
    """mIoU of ``model`` on ``scenes`` without and with the fully-connected CRF.

    The experiment of DeepLab v1's Table 1 on SegLab's scenes: the same network, its output
    taken as it is, then refined by ``iterations`` mean-field updates of the CRF with
    ``params``. The CRF runs on the model's device.

    Args:
        model: a :class:`~seg.models.Segmenter` (any with ``predict``).
        scenes: synthetic scenes with true labels (e.g. :func:`held_out_scenes`).
        iterations: mean-field updates.
        progress: ``progress(done, total)`` after each scene.
        **params: w1, theta_alpha, theta_beta, w2, theta_gamma.

    Example:
        >>> import seg
        >>> net = seg.models.load("deeplab_v1_largefov", device="cpu")
        >>> table = crf_miou_table(net, held_out_scenes(1, size=64), iterations=2)
        >>> 0 <= table.miou_without <= 1 and 0 <= table.miou_with <= 1
        True
    """
    scenes = list(scenes)
    params = {**DEEPLAB_V1_LARGEFOV, **params}
    num_classes = len(model.classes)
    without = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # (C, C)
    with_crf = torch.zeros_like(without)
    rows, seconds_network, seconds_crf = [], 0.0, 0.0
    for done, scene in enumerate(scenes, 1):
        prediction = model.predict(scene.image)
        seconds_network += prediction.seconds
        start = time.perf_counter()
        refined = dense_crf(scene.image, prediction.probs.to(model.device), iterations=iterations,
                            **params).argmax(0).cpu()  # (H, W)
        seconds_crf += time.perf_counter() - start
        before = metrics.confusion_matrix(prediction.labels, scene.labels, num_classes).cpu()
        after = metrics.confusion_matrix(refined, scene.labels, num_classes).cpu()
        without += before
        with_crf += after
        rows.append({"seed": scene.seed,
                     "mIoU without CRF": float(metrics.iou_from_confusion(before).nanmean()),
                     "mIoU with CRF": float(metrics.iou_from_confusion(after).nanmean()),
                     "pixels changed": float((refined != prediction.labels).double().mean())})
        if progress is not None:
            progress(done, len(scenes))

    def accuracy(cm: Tensor) -> float:
        return float(cm.diagonal().sum() / cm.sum())

    return CRFTable(
        miou_without=float(metrics.iou_from_confusion(without).nanmean()),
        miou_with=float(metrics.iou_from_confusion(with_crf).nanmean()),
        accuracy_without=accuracy(without), accuracy_with=accuracy(with_crf), rows=rows,
        iterations=iterations, params=params, seconds_network=seconds_network,
        seconds_crf=seconds_crf)
