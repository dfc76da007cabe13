"""A linear-chain conditional random field, exact: forward-backward, Viterbi and the gradient.

Labels y = (y_0, …, y_{T-1}), each one of K, for a sequence of feature vectors
x = (x_0, …, x_{T-1}) (for instance one row of pixels). The model (Lafferty, McCallum &
Pereira 2001) is

    p(y | x) = exp(s(x, y)) / Z(x),    s(x, y) = λ·F(x, y)
             = Σ_t W[y_t]·x_t  +  π[y_0]  +  Σ_{t≥1} A[y_{t-1}, y_t],

    Z(x) = Σ_{y'} exp(s(x, y')),

with parameters λ = (W (K, D) emission weights, A (K, K) transitions, π (K,) start scores) and
F(x, y) = Σ_t f(x, y_{t-1}, y_t) the feature counts: x_t added to row y_t of W's counts, one
count for each transition (y_{t-1}, y_t) and one for the start label y_0.

Z(x) sums K^T terms, but the chain structure lets the **forward algorithm** do it in O(T K²):

    log α_0(k) = π_k + e_0(k),    log α_t(k) = e_t(k) + logsumexp_j (log α_{t-1}(j) + A_jk),
    log Z(x) = logsumexp_k log α_{T-1}(k),         e_t(k) = W[k]·x_t,

**Viterbi** replaces logsumexp by max (and remembers the argmax) to find the best labelling,
and **forward-backward** gives the marginals p(y_t = k | x) and p(y_{t-1} = j, y_t = k | x).
The log-likelihood's gradient is "empirical minus expected feature counts":

    ∂ log p(y | x) / ∂λ = F(x, y) - E_{y' ~ p(·|x)} [F(x, y')].

Everything here is checked against enumerating all K^T labellings on short sequences.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["FeatureCounts", "LinearChainCRF"]

# Brute force builds every labelling as a row: past this many it is no longer a quick check.
_MAX_ENUMERATED = 1_000_000


class FeatureCounts(NamedTuple):
    """Counts (or expected counts, or gradients) with the shapes of the parameters."""

    weights: Tensor  # (K, D)
    transitions: Tensor  # (K, K)
    start: Tensor  # (K,)


class LinearChainCRF(nn.Module):
    """Linear-chain CRF p(y|x) = exp(Σ_t W[y_t]·x_t + π[y_0] + Σ_t A[y_{t-1}, y_t]) / Z(x).

    Parameters start at zero (every labelling equally likely). ``x`` is a (T, D) sequence of
    feature vectors and ``y`` a (T,) int64 labelling; with D = K and W = c·I the features are
    simply per-position label scores (e.g. noisy class scores along a row of pixels).

    Args:
        num_labels: K.
        num_features: D.
        dtype: dtype of the parameters (float64 for exact comparisons).

    Example:
        >>> crf = LinearChainCRF.from_parameters(torch.eye(3), torch.zeros(3, 3))
        >>> x = torch.tensor([[2.0, 0, 0], [0, 1.0, 0], [2.0, 0, 0]])
        >>> crf.viterbi(x)[0].tolist()
        [0, 1, 0]
        >>> torch.allclose(crf.log_partition(x), crf.brute_force_log_partition(x))
        True
    """

    def __init__(
        self, num_labels: int, num_features: int, *, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        k, d = num_labels, num_features
        self.weights = nn.Parameter(torch.zeros(k, d, dtype=dtype))  # W (K, D)
        self.transitions = nn.Parameter(torch.zeros(k, k, dtype=dtype))  # A (K, K)
        self.start = nn.Parameter(torch.zeros(k, dtype=dtype))  # π (K,)

    @classmethod
    def from_parameters(
        cls, weights: Tensor, transitions: Tensor, start: Tensor | None = None
    ) -> LinearChainCRF:
        """A CRF with the given W (K, D), A (K, K) and π (K,) (zeros if not given), in their dtype.

        Example:
            >>> LinearChainCRF.from_parameters(torch.eye(2), torch.zeros(2, 2)).num_labels
            2
        """
        crf = cls(*weights.shape, dtype=weights.dtype)
        with torch.no_grad():
            crf.weights.copy_(weights)
            crf.transitions.copy_(transitions)
            if start is not None:
                crf.start.copy_(start)
        return crf

    @property
    def num_labels(self) -> int:
        """K, the number of labels."""
        return self.transitions.shape[0]

    def _sequence(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.weights.shape[1] or x.shape[0] == 0:
            d = self.weights.shape[1]
            raise ValueError(f"expected a (T, {d}) sequence with T ≥ 1, got {tuple(x.shape)}")
        return x.to(self.weights.dtype)

    def emissions(self, x: Tensor) -> Tensor:
        """e_t(k) = W[k]·x_t, the per-position label scores, (T, K)."""
        return self._sequence(x) @ self.weights.T  # (T, K)

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """s(x, y) = Σ_t e_t(y_t) + π[y_0] + Σ_{t≥1} A[y_{t-1}, y_t], the unnormalised log p(y|x).

        ``y`` may be one labelling (T,) or a batch (B, T); the result is () or (B,).

        Example:
            >>> LinearChainCRF(2, 1).score(torch.ones(3, 1), torch.tensor([0, 1, 1]))
            tensor(0., grad_fn=<AddBackward0>)
        """
        e = self.emissions(x)  # (T, K)
        t = torch.arange(e.shape[0])
        emitted = e[t, y].sum(-1)  # () or (B,)
        moved = self.transitions[y[..., :-1], y[..., 1:]].sum(-1)
        return emitted + self.start[y[..., 0]] + moved

    def _forward(self, e: Tensor) -> Tensor:
        log_alpha = [self.start + e[0]]  # each (K,)
        for t in range(1, e.shape[0]):
            log_alpha.append(e[t] + torch.logsumexp(log_alpha[-1][:, None] + self.transitions, 0))
        return torch.stack(log_alpha)  # (T, K)

    def _backward(self, e: Tensor) -> Tensor:
        log_beta = [torch.zeros_like(e[0])]  # β_{T-1} = 1
        for t in range(e.shape[0] - 1, 0, -1):
            log_beta.append(torch.logsumexp(self.transitions + (e[t] + log_beta[-1])[None, :], 1))
        return torch.stack(log_beta[::-1])  # (T, K)

    def log_partition(self, x: Tensor) -> Tensor:
        """log Z(x) by the forward algorithm in log space, O(T K²); differentiable.

        Example:
            >>> LinearChainCRF(2, 1).log_partition(torch.zeros(3, 1))  # 2³ equal labellings
            tensor(2.0794, grad_fn=<LogsumexpBackward0>)
        """
        return torch.logsumexp(self._forward(self.emissions(x))[-1], 0)

    def nll(self, x: Tensor, y: Tensor) -> Tensor:
        """-log p(y | x) = log Z(x) - s(x, y); differentiable.

        Example:
            >>> LinearChainCRF(2, 1).nll(torch.zeros(3, 1), torch.tensor([0, 1, 1]))
            tensor(2.0794, grad_fn=<SubBackward0>)
        """
        return self.log_partition(x) - self.score(x, y)

    def log_likelihood(self, x: Tensor, y: Tensor) -> float:
        """log p(y | x) as a number (no gradient), e.g. for a learning curve.

        Example:
            >>> crf = LinearChainCRF(2, 1)
            >>> round(crf.log_likelihood(torch.zeros(3, 1), torch.tensor([0, 1, 1])), 4)
            -2.0794
        """
        with torch.no_grad():
            return -float(self.nll(x, y))

    def marginals(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Forward-backward: p(y_t = k | x) (T, K) and p(y_{t-1} = j, y_t = k | x) (T-1, K, K).

            p(y_t = k | x) = α_t(k) β_t(k) / Z,
            p(y_{t-1} = j, y_t = k | x) = α_{t-1}(j) exp(A_jk + e_t(k)) β_t(k) / Z.

        Example:
            >>> node, pair = LinearChainCRF(2, 1).marginals(torch.zeros(3, 1))
            >>> torch.allclose(node.sum(1), torch.ones(3)), pair.shape
            (True, torch.Size([2, 2, 2]))
        """
        with torch.no_grad():
            e = self.emissions(x)  # (T, K)
            log_alpha, log_beta = self._forward(e), self._backward(e)  # (T, K) each
            log_z = torch.logsumexp(log_alpha[-1], 0)
            node = torch.exp(log_alpha + log_beta - log_z)  # (T, K)
            arrive = (e[1:] + log_beta[1:])[:, None, :]  # (T-1, 1, K)
            pair = torch.exp(log_alpha[:-1, :, None] + self.transitions + arrive - log_z)
        return node, pair

    def viterbi(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The most probable labelling argmax_y s(x, y) and its score, by dynamic programming.

            δ_0(k) = π_k + e_0(k),   δ_t(k) = e_t(k) + max_j (δ_{t-1}(j) + A_jk),

        then follow the remembered argmax back from argmax_k δ_{T-1}(k).

        Returns:
            labels (T,) int64 and the score s(x, labels) (a 0-d tensor).

        Example:
            >>> stay = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
            >>> crf = LinearChainCRF.from_parameters(torch.eye(2), stay)
            >>> crf.viterbi(torch.tensor([[1.0, 0.0], [0.0, 0.5], [1.0, 0.0]]))[0].tolist()
            [0, 0, 0]
        """
        with torch.no_grad():
            e = self.emissions(x)  # (T, K)
            delta = self.start + e[0]  # (K,)
            back = []
            for t in range(1, e.shape[0]):
                best, arg = (delta[:, None] + self.transitions).max(0)  # (K,) each
                back.append(arg)
                delta = e[t] + best
            score, last = delta.max(0)
            labels = [int(last)]
            for arg in reversed(back):
                labels.append(int(arg[labels[-1]]))
        return torch.tensor(labels[::-1]), score

    def _all_labellings(self, length: int) -> Tensor:
        count = self.num_labels**length
        if count > _MAX_ENUMERATED:
            raise ValueError(
                f"brute force would enumerate K^T = {self.num_labels}^{length} = {count:,} "
                f"labellings; keep it under {_MAX_ENUMERATED:,} (shorter sequences)"
            )
        every = itertools.product(range(self.num_labels), repeat=length)
        return torch.tensor(list(every))  # (K^T, T)

    def brute_force_log_partition(self, x: Tensor) -> Tensor:
        """log Z(x) = log Σ_y exp(s(x, y)) by enumerating all K^T labellings (short sequences).

        Example:
            >>> LinearChainCRF(2, 1).brute_force_log_partition(torch.zeros(3, 1))
            tensor(2.0794, grad_fn=<LogsumexpBackward0>)
        """
        return torch.logsumexp(self.score(x, self._all_labellings(x.shape[0])), 0)

    def brute_force_viterbi(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """argmax_y s(x, y) and its score by enumerating all K^T labellings (short sequences only).

        Example:
            >>> LinearChainCRF(2, 1).brute_force_viterbi(torch.zeros(2, 1))[0].shape
            torch.Size([2])
        """
        with torch.no_grad():
            labellings = self._all_labellings(x.shape[0])  # (K^T, T)
            scores = self.score(x, labellings)  # (K^T,)
            best = int(scores.argmax())
        return labellings[best], scores[best]

    def feature_counts(self, x: Tensor, y: Tensor) -> FeatureCounts:
        """F(x, y): each x_t added to row y_t; each transition (y_{t-1}, y_t) and y_0 counted.

        Example:
            >>> crf = LinearChainCRF(2, 1)
            >>> crf.feature_counts(torch.ones(3, 1), torch.tensor([0, 1, 1])).transitions
            tensor([[0., 1.],
                    [0., 1.]])
        """
        x = self._sequence(x)
        k = self.num_labels
        one_hot = nn.functional.one_hot(y, k).to(x.dtype)  # (T, K)
        return FeatureCounts(
            weights=one_hot.T @ x,  # (K, D)
            transitions=one_hot[:-1].T @ one_hot[1:],  # (K, K)
            start=one_hot[0],  # (K,)
        )

    def expected_feature_counts(self, x: Tensor) -> FeatureCounts:
        """E_{y ~ p(·|x)}[F(x, y)] from the forward-backward marginals.

        Example:
            >>> LinearChainCRF(2, 1).expected_feature_counts(torch.ones(3, 1)).start
            tensor([0.5000, 0.5000])
        """
        node, pair = self.marginals(x)  # (T, K), (T-1, K, K)
        x = self._sequence(x)
        return FeatureCounts(weights=node.T @ x, transitions=pair.sum(0), start=node[0])

    def gradient(self, x: Tensor, y: Tensor) -> FeatureCounts:
        """∂ log p(y|x) / ∂λ = F(x, y) - E[F(x, ·)], for W, A and π (equal to -∇ nll).

        Example:
            >>> LinearChainCRF(2, 1).gradient(torch.ones(2, 1), torch.tensor([1, 1])).start
            tensor([-0.5000,  0.5000])
        """
        empirical = self.feature_counts(x, y)
        expected = self.expected_feature_counts(x)
        return FeatureCounts(*(a - b for a, b in zip(empirical, expected)))

    def fit_step(self, x: Tensor, y: Tensor, lr: float) -> float:
        """One gradient-ascent step λ ← λ + lr·(F(x, y) - E[F]); returns the new log p(y | x).

        Example:
            >>> crf = LinearChainCRF(2, 1)
            >>> x, y = torch.ones(3, 1), torch.tensor([0, 1, 1])
            >>> before = crf.log_likelihood(x, y)
            >>> crf.fit_step(x, y, 0.5) > before
            True
        """
        grad = self.gradient(x, y)
        with torch.no_grad():
            for param, g in zip((self.weights, self.transitions, self.start), grad):
                param.add_(g, alpha=lr)
        return self.log_likelihood(x, y)
