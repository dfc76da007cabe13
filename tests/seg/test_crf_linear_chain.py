"""LinearChainCRF against brute-force enumeration of every labelling, and against autograd."""

import itertools

import pytest
import torch

from seg.crf import LinearChainCRF


def random_crf(num_labels: int, num_features: int, seed: int) -> LinearChainCRF:
    g = torch.Generator().manual_seed(seed)
    return LinearChainCRF.from_parameters(
        torch.randn(num_labels, num_features, generator=g, dtype=torch.float64),
        torch.randn(num_labels, num_labels, generator=g, dtype=torch.float64),
        torch.randn(num_labels, generator=g, dtype=torch.float64),
    )


def random_sequence(length: int, num_features: int, num_labels: int, seed: int):
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(length, num_features, generator=g, dtype=torch.float64)
    y = torch.randint(num_labels, (length,), generator=g)
    return x, y


def enumerated(crf: LinearChainCRF, x: torch.Tensor):
    """Every labelling with its probability, computed directly from the definition."""
    k, t = crf.num_labels, x.shape[0]
    labellings = torch.tensor(list(itertools.product(range(k), repeat=t)))  # (K^T, T)
    with torch.no_grad():
        scores = torch.stack([crf.score(x, y) for y in labellings])  # one at a time: no batching
    return labellings, torch.softmax(scores, 0)


SHAPES = [(2, 3, 1), (3, 4, 2), (3, 2, 5), (4, 3, 6), (2, 5, 8)]  # (K, D, T)
CASES = [(k, d, t, seed) for k, d, t in SHAPES for seed in range(2)]


@pytest.mark.parametrize(("k", "d", "t", "seed"), CASES)
def test_log_partition_equals_brute_force(k, d, t, seed):
    crf = random_crf(k, d, seed)
    x, _ = random_sequence(t, d, k, seed)
    forward = crf.log_partition(x)
    brute = crf.brute_force_log_partition(x)
    labellings, _ = enumerated(crf, x)
    by_hand = torch.logsumexp(torch.stack([crf.score(x, y) for y in labellings]), 0)
    assert torch.allclose(forward, brute, rtol=0, atol=1e-10)
    assert torch.allclose(forward, by_hand, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("k", "d", "t", "seed"), CASES)
def test_viterbi_equals_brute_force(k, d, t, seed):
    crf = random_crf(k, d, seed)
    x, _ = random_sequence(t, d, k, seed)
    labels, score = crf.viterbi(x)
    best_labels, best_score = crf.brute_force_viterbi(x)
    assert labels.tolist() == best_labels.tolist()
    assert torch.allclose(score, best_score, rtol=0, atol=1e-10)
    assert torch.allclose(crf.score(x, labels), score, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("k", "d", "t", "seed"), CASES)
def test_marginals_equal_enumeration_and_sum_to_one(k, d, t, seed):
    crf = random_crf(k, d, seed)
    x, _ = random_sequence(t, d, k, seed)
    node, pair = crf.marginals(x)
    labellings, prob = enumerated(crf, x)
    expected_node = torch.stack(
        [torch.bincount(labellings[:, i], prob, minlength=k) for i in range(t)]
    )
    assert torch.allclose(node, expected_node, rtol=0, atol=1e-10)
    assert torch.allclose(node.sum(1), torch.ones(t, dtype=node.dtype), atol=1e-12)
    assert pair.shape == (t - 1, k, k)
    for i in range(t - 1):
        joint = torch.zeros(k, k, dtype=prob.dtype).index_put_(
            (labellings[:, i], labellings[:, i + 1]), prob, accumulate=True
        )
        assert torch.allclose(pair[i], joint, rtol=0, atol=1e-10)
        assert torch.allclose(pair[i].sum(1), node[i], atol=1e-12)


@pytest.mark.parametrize(("k", "d", "t", "seed"), CASES)
def test_nll_is_minus_log_probability(k, d, t, seed):
    crf = random_crf(k, d, seed)
    x, y = random_sequence(t, d, k, seed)
    labellings, prob = enumerated(crf, x)
    index = next(i for i, lab in enumerate(labellings) if lab.tolist() == y.tolist())
    assert torch.allclose(crf.nll(x, y), -torch.log(prob[index]), rtol=0, atol=1e-10)
    assert crf.log_likelihood(x, y) == pytest.approx(float(torch.log(prob[index])), abs=1e-10)


@pytest.mark.parametrize(("k", "d", "t", "seed"), CASES)
def test_gradient_is_empirical_minus_expected_and_equals_autograd(k, d, t, seed):
    crf = random_crf(k, d, seed)
    x, y = random_sequence(t, d, k, seed)
    crf.zero_grad()
    crf.nll(x, y).backward()
    grad = crf.gradient(x, y)
    for param, g in zip((crf.weights, crf.transitions, crf.start), grad):
        assert torch.allclose(-param.grad, g, rtol=0, atol=1e-10)

    # expected counts from the definition: Σ_y p(y|x) F(x, y)
    labellings, prob = enumerated(crf, x)
    expected = [torch.zeros_like(p) for p in (crf.weights, crf.transitions, crf.start)]
    for lab, p in zip(labellings, prob):
        for acc, count in zip(expected, crf.feature_counts(x, lab)):
            acc += p * count
    for mine, ref in zip(crf.expected_feature_counts(x), expected):
        assert torch.allclose(mine, ref, rtol=0, atol=1e-10)


def test_feature_counts_score_is_linear_in_parameters():
    crf = random_crf(3, 4, 7)
    x, y = random_sequence(6, 4, 3, 7)
    counts = crf.feature_counts(x, y)
    linear = sum((p * c).sum() for p, c in zip((crf.weights, crf.transitions, crf.start), counts))
    assert torch.allclose(crf.score(x, y), linear, rtol=0, atol=1e-10)


def test_fit_step_climbs_the_log_likelihood():
    crf = LinearChainCRF(3, 4, dtype=torch.float64)
    x, y = random_sequence(8, 4, 3, 3)
    curve = [crf.log_likelihood(x, y)]
    for _ in range(20):
        curve.append(crf.fit_step(x, y, lr=0.1))
    assert all(b > a for a, b in zip(curve, curve[1:]))
    assert curve[-1] == pytest.approx(crf.log_likelihood(x, y))
    assert crf.viterbi(x)[0].tolist() == y.tolist()


def test_per_position_scores_without_transitions_give_independent_argmax():
    scores = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.5, 0.4], [0.1, 0.0, 3.0], [1.0, 0.9, 0.0]])
    crf = LinearChainCRF.from_parameters(torch.eye(3), torch.zeros(3, 3))
    assert crf.viterbi(scores)[0].tolist() == scores.argmax(1).tolist()
    sticky = LinearChainCRF.from_parameters(torch.eye(3), 5.0 * torch.eye(3))
    labels = sticky.viterbi(scores)[0].tolist()
    assert len(set(labels)) == 1  # strong "stay" transitions smooth the row to one label


def test_brute_force_refuses_huge_enumerations():
    crf = LinearChainCRF(10, 1)
    with pytest.raises(ValueError, match="labellings"):
        crf.brute_force_log_partition(torch.zeros(7, 1))


def test_wrong_feature_size_is_explained():
    with pytest.raises(ValueError, match=r"\(T, 4\)"):
        LinearChainCRF(3, 4).log_partition(torch.zeros(5, 3))
