"""Conditional random fields: the fully-connected CRF of DeepLab v1 and an exact linear-chain CRF.

- :func:`dense_crf` refines a network's class probabilities with mean-field inference on the
  fully-connected CRF (Krähenbühl & Koltun 2011); :class:`DenseCRF` exposes the iterations,
  messages and free energy for lessons; :func:`kl_divergence` compares two iterations.
- :class:`LinearChainCRF` is the chain-structured CRF, solved exactly (forward algorithm,
  Viterbi, forward-backward, gradient of the log-likelihood).
- :class:`Lattice` / :class:`GaussianFilter` are the permutohedral-lattice filtering underneath.
"""

from seg.crf.dense import (
    DEEPLAB_V1_LARGEFOV,
    SEARCH_RANGES,
    DenseCRF,
    Kernel,
    SearchRange,
    appearance_kernel,
    dense_crf,
    kl_divergence,
    smoothness_kernel,
)
from seg.crf.lattice import GaussianFilter, Lattice
from seg.crf.linear_chain import FeatureCounts, LinearChainCRF

__all__ = [
    "DEEPLAB_V1_LARGEFOV",
    "SEARCH_RANGES",
    "DenseCRF",
    "FeatureCounts",
    "GaussianFilter",
    "Kernel",
    "Lattice",
    "LinearChainCRF",
    "SearchRange",
    "appearance_kernel",
    "dense_crf",
    "kl_divergence",
    "smoothness_kernel",
]
