"""The fully-connected CRF of Krähenbühl & Koltun (2011), as DeepLab v1 uses it after its network.

Every pixel i takes a label x_i; the energy of a labelling is

    E(x) = Σ_i ψ_u(x_i) + Σ_{i<j} μ(x_i, x_j) k(f_i, f_j)

with the unary ψ_u(x_i) = -log P(x_i) from the network, the Potts compatibility
μ(l, l') = [l ≠ l'], and two Gaussian kernels over every pair of pixels (DeepLab v1, Eq. 3):

    k(f_i, f_j) = w1 exp(-‖p_i - p_j‖²/2θα² - ‖I_i - I_j‖²/2θβ²)   appearance (bilateral)
                + w2 exp(-‖p_i - p_j‖²/2θγ²)                        smoothness

(p: position in pixels, I: colour in 0–255 units). Mean-field inference keeps one distribution
Q_i per pixel and repeats, for every pixel at once,

    Q_i(l) ∝ exp(-ψ_u(l) + Σ_k w_k Σ_j k̃_k(f_i, f_j) Q_j(l))

— "a pixel likes the labels that similar pixels (near, and of similar colour) have". The sum
over all j is a Gaussian filtering of Q, done on the permutohedral lattice (``lattice.py``) in
time linear in the pixels. As in ``pydensecrf`` (the C++ code of the paper's authors), each
kernel is normalised symmetrically, k̃ = D^{-½} K D^{-½} with D = diag(K·1), and the sum runs
over j = i too; the two agree to about 1e-6.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from seg.crf.lattice import GaussianFilter, Lattice

__all__ = [
    "DEEPLAB_V1_LARGEFOV",
    "SEARCH_RANGES",
    "SearchRange",
    "DenseCRF",
    "Kernel",
    "appearance_kernel",
    "dense_crf",
    "kl_divergence",
    "smoothness_kernel",
]

# The values commonly used with DeepLab-LargeFOV (bi_w=4, bi_xy_std=121, bi_rgb_std=5, pos_w=3,
# pos_xy_std=3). The paper fixes w2 = θγ = 3 and cross-validates w1, θα, θβ per model (copies
# of DeepLab's run_densecrf.sh for LargeFOV also use θα = 49), hence SEARCH_RANGES below.
DEEPLAB_V1_LARGEFOV = {
    "w1": 4.0,
    "theta_alpha": 121.0,
    "theta_beta": 5.0,
    "w2": 3.0,
    "theta_gamma": 3.0,
}


class SearchRange(NamedTuple):
    """A cross-validation grid ``low:step:high`` (MATLAB notation, as in the papers)."""

    low: float
    high: float
    step: float


# The coarse grids the DeepLab papers searched on 100 VOC val images before refining the step.
SEARCH_RANGES = {
    "DeepLab v1 (ICLR 2015)": {
        "w1": SearchRange(5.0, 10.0, 1.0),
        "theta_alpha": SearchRange(50.0, 100.0, 10.0),
        "theta_beta": SearchRange(3.0, 10.0, 1.0),
    },
    "DeepLab v2 (TPAMI 2017)": {
        "w1": SearchRange(3.0, 6.0, 1.0),
        "theta_alpha": SearchRange(30.0, 100.0, 10.0),
        "theta_beta": SearchRange(3.0, 6.0, 1.0),
    },
}

# Probabilities are clipped before the log, as pydensecrf.utils.unary_from_softmax does, so
# that a label the network ruled out completely can still be recovered by strong evidence.
_MIN_PROB = 1e-5


def _image_tensor(image, height: int, width: int, device: torch.device) -> Tensor:
    """The image as a (H, W, 3) float32 tensor in 0–255 units, checked against the probs' size."""
    pixels = image if isinstance(image, Tensor) else torch.from_numpy(np.asarray(image).copy())
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {tuple(pixels.shape)}")
    if tuple(pixels.shape[:2]) != (height, width):
        raise ValueError(
            f"the image is {pixels.shape[0]}×{pixels.shape[1]} (H×W) but probs are "
            f"{height}×{width}: pass probs as (C, H, W) at the image's size"
        )
    if pixels.is_floating_point() and 0.0 < float(pixels.max()) <= 1.0:
        raise ValueError("expected colours in 0–255 (uint8): θβ is measured in those units")
    return pixels.to(device=device, dtype=torch.float32)


class Kernel(NamedTuple):
    """One of the CRF's two Gaussian kernels on one picture, built: its lattice, its
    normalisation D^{-½} (N,), and the widths it was built with.

    Building the lattices is about a third of a :class:`DenseCRF`'s work at 256², and it depends
    on the picture and the widths θ only: a caller that varies the weights w₁, w₂ (or one width
    at a time) can build each kernel once and pass it to every :class:`DenseCRF` it makes.
    """

    lattice: Lattice
    norm: Tensor
    widths: tuple[float, ...]


def _kernel(features: Tensor, widths: tuple[float, ...]) -> Kernel:
    lattice = Lattice(features)
    return Kernel(lattice, 1.0 / torch.sqrt(lattice.row_sums() + 1e-20), widths)  # D_k^{-½}


def _positions(height: int, width: int, device) -> Tensor:
    """(N, 2) pixel positions (x, y) = (column, row), pixel n = y·W + x as in probs.reshape."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack([xs.flatten(), ys.flatten()], 1)


def smoothness_kernel(height: int, width: int, theta_gamma: float, device=None) -> Kernel:
    """The smoothness kernel exp(-‖p_i - p_j‖²/2θγ²) of a height × width picture.

    Example:
        >>> smoothness_kernel(4, 5, 3.0).lattice.num_points
        20
    """
    if theta_gamma <= 0:
        raise ValueError("the kernel width theta_gamma must be > 0")
    return _kernel(_positions(height, width, device) / theta_gamma, (float(theta_gamma),))


def appearance_kernel(image, theta_alpha: float, theta_beta: float, device=None) -> Kernel:
    """The appearance kernel exp(-‖p_i - p_j‖²/2θα² - ‖I_i - I_j‖²/2θβ²) of an RGB picture
    (uint8 colours, 0–255).

    Example:
        >>> appearance_kernel(np.zeros((4, 5, 3), np.uint8), 60.0, 5.0).widths
        (60.0, 5.0)
    """
    if min(theta_alpha, theta_beta) <= 0:
        raise ValueError("the kernel widths theta_alpha, theta_beta must be > 0")
    height, width = np.shape(image)[:2] if not isinstance(image, Tensor) else image.shape[:2]
    colour = _image_tensor(image, height, width, device).reshape(height * width, 3)  # (N, 3)
    features = torch.cat([_positions(height, width, colour.device) / theta_alpha,
                          colour / theta_beta], 1)
    return _kernel(features, (float(theta_alpha), float(theta_beta)))


class DenseCRF:
    """Mean-field inference for one image: the two lattices are built here, once (or passed in).

    Use :func:`dense_crf` for the usual "probs in, refined probs out". This class is for looking
    inside: one :meth:`step` at a time, the messages, and the free energy per iteration.

    Args:
        image: uint8 RGB image (H, W, 3), numpy array, tensor or PIL image.
        probs: (C, H, W) class probabilities (e.g. a softmax); the unary is -log(probs).
        w1: weight of the appearance (bilateral) kernel.
        theta_alpha: its spatial width θα, in pixels.
        theta_beta: its colour width θβ, in 0–255 units.
        w2: weight of the smoothness (Gaussian) kernel.
        theta_gamma: its spatial width θγ, in pixels.
        smoothness, appearance: the kernels already built for this picture and these widths
            (:func:`smoothness_kernel`, :func:`appearance_kernel`); built here when None.

    Example:
        >>> image = np.zeros((8, 10, 3), np.uint8)
        >>> probs = torch.full((2, 8, 10), 0.5)
        >>> crf = DenseCRF(image, probs)
        >>> q1 = crf.step(crf.initial())
        >>> q1.shape
        torch.Size([2, 8, 10])
    """

    def __init__(
        self,
        image,
        probs: Tensor,
        *,
        w1: float = DEEPLAB_V1_LARGEFOV["w1"],
        theta_alpha: float = DEEPLAB_V1_LARGEFOV["theta_alpha"],
        theta_beta: float = DEEPLAB_V1_LARGEFOV["theta_beta"],
        w2: float = DEEPLAB_V1_LARGEFOV["w2"],
        theta_gamma: float = DEEPLAB_V1_LARGEFOV["theta_gamma"],
        smoothness: Kernel | None = None,
        appearance: Kernel | None = None,
    ) -> None:
        if probs.ndim != 3:
            raise ValueError(f"expected probs of shape (C, H, W), got {tuple(probs.shape)}")
        if min(theta_alpha, theta_beta, theta_gamma) <= 0:
            raise ValueError("the kernel widths theta_alpha, theta_beta, theta_gamma must be > 0")
        c, h, w = probs.shape
        self.shape = (c, h, w)
        device = probs.device
        _image_tensor(image, h, w, device)  # the picture must be at the probs' size
        kernels = (
            smoothness or smoothness_kernel(h, w, theta_gamma, device),
            appearance or appearance_kernel(image, theta_alpha, theta_beta, device),
        )
        for kernel, widths, name in ((kernels[0], (theta_gamma,), "smoothness"),
                                     (kernels[1], (theta_alpha, theta_beta), "appearance")):
            if kernel.lattice.num_points != h * w:
                raise ValueError(f"the {name} kernel was built for {kernel.lattice.num_points} "
                                 f"pixels, but probs have {h}×{w}")
            if kernel.widths != tuple(float(t) for t in widths):
                raise ValueError(f"the {name} kernel was built with widths {kernel.widths}, "
                                 f"not {tuple(widths)}")
        norms = [kernel.norm for kernel in kernels]
        self._messages = GaussianFilter([kernel.lattice for kernel in kernels], norms,
                                        [w2 * norms[0], w1 * norms[1]])
        clipped = probs.detach().to(torch.float32).reshape(c, h * w).clamp(_MIN_PROB, 1.0)
        self.unary = torch.log(clipped).neg_().T.contiguous()  # (N, C)
        self._scratch = torch.empty_like(self.unary)  # reused by every update

    def _to_pixels(self, q: Tensor) -> Tensor:
        return q.reshape(self.shape[0], -1).T.contiguous()  # (N, C)

    def _to_image(self, q: Tensor) -> Tensor:
        return q.T.reshape(self.shape)  # (C, H, W), a view

    def initial(self) -> Tensor:
        """Q at step 0: softmax of the unary, i.e. the clipped, renormalised probs (C, H, W)."""
        return self._to_image(torch.softmax(-self.unary, 1))

    def messages(self, q: Tensor) -> Tensor:
        """m_i(l) = Σ_k w_k Σ_j k̃_k(f_i, f_j) Q_j(l), the update's pairwise term (C, H, W)."""
        return self._to_image(self._messages(self._to_pixels(q)))

    def step(self, q: Tensor) -> Tensor:
        """One parallel mean-field update, Q ← softmax(-ψ_u + m(Q)), on (C, H, W) marginals."""
        return self._to_image(self._update(self._to_pixels(q)))

    def _update(self, q: Tensor) -> Tensor:
        m = self._messages(q, out=self._scratch)  # (N, C)
        # exp(log_softmax) because torch's softmax over a short last dimension is slower.
        return torch.log_softmax(m.sub_(self.unary), 1).exp_()  # (N, C)

    def free_energy(self, q: Tensor) -> float:
        """The mean-field free energy per pixel, whose stationary points the update seeks:

            F(Q) = (1/N) Σ_i Σ_l Q_i(l) [ ψ_u(l) - ½ m_i(l) + log Q_i(l) ]

        With a symmetric kernel, F(Q) = KL(Q ‖ P) - log Z up to a constant, so it falls as Q
        approaches the CRF's distribution P, and the mean-field update is its stationary
        condition. The lattice's kernel is symmetric only approximately, and updating all
        pixels at once does not promise a fall at every step (one pixel at a time would), so
        read the curve as a trend.

        Example:
            >>> crf = DenseCRF(np.zeros((4, 4, 3), np.uint8), torch.full((2, 4, 4), 0.5))
            >>> isinstance(crf.free_energy(crf.initial()), float)
            True
        """
        pixels = self._to_pixels(q)  # (N, C)
        m = self._messages(pixels)  # (N, C)
        total = (pixels * (self.unary - 0.5 * m)).sum() + torch.xlogy(pixels, pixels).sum()
        return float(total) / pixels.shape[0]

    def trace(self, iterations: int) -> tuple[list[Tensor], list[float], list[float]]:
        """Every Q_t of ``iterations`` updates, with the free energy and the change of each.

        The same marginals as :meth:`run`, and the values of :meth:`free_energy` and
        :func:`kl_divergence` (Q_t ‖ Q_t−1) for every t, for the cost of the updates and one
        more message pass: F(Q_t) needs the messages of Q_t, which the update from Q_t computes
        anyway, and the logarithms come from the update's log-softmax.

        Returns:
            (qs, energies, kls): S + 1 marginals (C, H, W), Q_0 being the softmax of the unary;
            S + 1 free energies per pixel; S + 1 KL divergences per pixel, nan at t = 0.

        Example:
            >>> crf = DenseCRF(np.zeros((4, 4, 3), np.uint8), torch.full((2, 4, 4), 0.5))
            >>> qs, energies, kls = crf.trace(3)
            >>> len(qs), len(energies), len(kls)
            (4, 4, 4)
        """
        n = self.unary.shape[0]
        log_q = torch.log_softmax(-self.unary, 1)  # (N, C)
        q = log_q.exp()
        qs, energies, kls = [self._to_image(q)], [], [float("nan")]
        for step in range(iterations + 1):
            m = self._messages(q, out=self._scratch)  # (N, C), the messages of Q_step
            energies.append(float((q * (self.unary - 0.5 * m + log_q)).sum()) / n)
            if step == iterations:
                break
            new_log_q = torch.log_softmax(m.sub_(self.unary), 1)
            q, previous_log_q, log_q = new_log_q.exp(), log_q, new_log_q
            kls.append(float((q * (log_q - previous_log_q)).sum()) / n)
            qs.append(self._to_image(q))
        return qs, energies, kls

    def run(self, iterations: int, callback: Callable[[int, Tensor], None] | None = None) -> Tensor:
        """``iterations`` mean-field updates from :meth:`initial`; returns Q (C, H, W).

        ``callback(step, q)`` is called with step 0 (the initial Q) and after every update; q is
        (C, H, W) and must not be modified in place.
        """
        q = torch.softmax(-self.unary, 1)  # (N, C)
        if callback is not None:
            callback(0, self._to_image(q))
        for step in range(1, iterations + 1):
            q = self._update(q)
            if callback is not None:
                callback(step, self._to_image(q))
        return self._to_image(q).contiguous()


def dense_crf(
    image,
    probs: Tensor,
    *,
    iterations: int = 10,
    w1: float = DEEPLAB_V1_LARGEFOV["w1"],
    theta_alpha: float = DEEPLAB_V1_LARGEFOV["theta_alpha"],
    theta_beta: float = DEEPLAB_V1_LARGEFOV["theta_beta"],
    w2: float = DEEPLAB_V1_LARGEFOV["w2"],
    theta_gamma: float = DEEPLAB_V1_LARGEFOV["theta_gamma"],
    callback: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    """Refine class probabilities with the fully-connected CRF (mean-field inference).

    Runs ``iterations`` updates Q_i(l) ∝ exp(log P_i(l) + Σ_k w_k Σ_j k̃_k(f_i, f_j) Q_j(l))
    with the bilateral kernel (w1; features x/θα, y/θα, r/θβ, g/θβ, b/θβ) and the Gaussian
    kernel (w2; features x/θγ, y/θγ), each symmetrically normalised, Potts compatibility. The
    defaults are the values commonly used with DeepLab-LargeFOV (w1=4, θα=121, θβ=5, w2=3,
    θγ=3); DeepLab v1 fixed w2 = θγ = 3 and cross-validated w1 ∈ [5, 10], θα ∈ [50:10:100],
    θβ ∈ [3:1:10] (see :data:`SEARCH_RANGES`), with 10 iterations. Runs on the device of
    ``probs``.

    Args:
        image: uint8 RGB image (H, W, 3): numpy array, tensor or PIL image.
        probs: (C, H, W) class probabilities at the image's size.
        iterations: number of mean-field updates (DeepLab uses 10).
        w1, theta_alpha, theta_beta: appearance kernel weight, spatial width (px), colour width
            (0–255 units).
        w2, theta_gamma: smoothness kernel weight and spatial width (px).
        callback: called as ``callback(step, q)`` with q (C, H, W) the marginals; step 0 is the
            initial softmax of the unary, then once after each update.

    Returns:
        (C, H, W) float32 marginals Q on the device of ``probs``; ``argmax(0)`` gives the labels.

    Example:
        >>> image = np.zeros((6, 7, 3), np.uint8)
        >>> probs = torch.softmax(torch.randn(3, 6, 7), 0)
        >>> dense_crf(image, probs, iterations=5).shape
        torch.Size([3, 6, 7])
    """
    crf = DenseCRF(
        image, probs, w1=w1, theta_alpha=theta_alpha, theta_beta=theta_beta, w2=w2,
        theta_gamma=theta_gamma,
    )
    return crf.run(iterations, callback)


def kl_divergence(q: Tensor, p: Tensor) -> float:
    """KL(q ‖ p) per pixel, mean over pixels: (1/N) Σ_i Σ_l q_i(l) log(q_i(l) / p_i(l)).

    With q = Q_t and p = Q_{t-1} it measures how much one mean-field iteration still changes the
    marginals; it drops towards 0 as the iteration converges.

    Args:
        q, p: (C, H, W) distributions over the C labels at every pixel.

    Example:
        >>> q = torch.full((2, 3, 3), 0.5)
        >>> kl_divergence(q, q)
        0.0
    """
    per_pixel = (torch.xlogy(q, q) - torch.xlogy(q, p)).sum(0)  # (H, W)
    return float(per_pixel.mean())
