"""dense_crf against an exact O(N²) mean-field computation and against pydensecrf (the C++ code).

The exact reference builds the lattice's N×N kernel matrix with a plain per-pixel loop that
transcribes Adams et al. / permutohedral.cpp (float32 where the C++ uses float, a dict as hash
table), then runs the same mean-field update densely in float64 with the same symmetric
normalisation. It never skips. The pydensecrf comparison needs the optional `pydensecrf2`
package (see requirements-oracle.txt).
"""

import math

import numpy as np
import pytest
import torch

import seg.crf as seg_crf
from seg.crf import DenseCRF, GaussianFilter, Lattice, dense_crf, kl_divergence

f32 = np.float32


def reference_kernel(features: np.ndarray) -> np.ndarray:
    """The permutohedral lattice's N×N kernel matrix (α Sᵀ B S), one pixel at a time."""
    n, d = features.shape
    d1 = d + 1
    inv_std_dev = f32(math.sqrt(2.0 / 3.0) * d1)
    scale = [f32(1.0 / math.sqrt((i + 2) * (i + 1)) * float(inv_std_dev)) for i in range(d)]
    down, up_factor = f32(1.0 / d1), f32(d1)
    table: dict[tuple[int, ...], int] = {}
    corners = []  # (pixel, vertex, barycentric weight)
    for p in range(n):
        elevated = [f32(0)] * d1
        running = f32(0)
        for j in range(d, 0, -1):
            cf = f32(features[p, j - 1] * scale[j - 1])
            elevated[j] = f32(running - f32(j * cf))
            running = f32(running + cf)
        elevated[0] = running
        rem0, total = [], 0
        for i in range(d1):
            v = f32(down * elevated[i])
            up, lo = f32(np.ceil(v) * up_factor), f32(np.floor(v) * up_factor)
            rem0.append(int(up if f32(up - elevated[i]) < f32(elevated[i] - lo) else lo))
            total += rem0[-1] // d1
        rank = [0] * d1
        for i in range(d):
            for j in range(i + 1, d1):
                if f32(elevated[i] - rem0[i]) < f32(elevated[j] - rem0[j]):
                    rank[i] += 1
                else:
                    rank[j] += 1
        for i in range(d1):
            rank[i] += total
            if rank[i] < 0:
                rank[i] += d1
                rem0[i] += d1
            elif rank[i] > d:
                rank[i] -= d1
                rem0[i] -= d1
        bary = [f32(0)] * (d1 + 1)
        for i in range(d1):
            v = f32(f32(elevated[i] - rem0[i]) * down)
            bary[d - rank[i]] = f32(bary[d - rank[i]] + v)
            bary[d - rank[i] + 1] = f32(bary[d - rank[i] + 1] - v)
        bary[0] = f32(float(bary[0]) + (1.0 + float(bary[d1])))
        for r in range(d1):
            key = tuple(rem0[i] + (r if rank[i] <= d - r else r - d1) for i in range(d))
            corners.append((p, table.setdefault(key, len(table)), float(bary[r])))
    m = len(table)
    splat = np.zeros((m, n))
    for p, v, w in corners:
        splat[v, p] += w
    values = splat
    for j in range(d1):  # blur along each lattice direction with [1/2, 1, 1/2]
        blurred = values.copy()
        for key, v in table.items():
            for sign in (-1, 1):
                nb = tuple(key[i] + sign * (-1 if i != j else d) for i in range(d))
                if nb in table:
                    blurred[v] += 0.5 * values[table[nb]]
        values = blurred
    alpha = float(f32(1.0 / (1.0 + 2.0**-d)))
    return alpha * splat.T @ values


def reference_dense_crf(image, probs, iterations, w1, theta_alpha, theta_beta, w2, theta_gamma):
    """Mean field with dense N×N kernels: Q ← softmax(-U + Σ_k w_k D_k^{-½} K_k D_k^{-½} Q)."""
    c, h, w = probs.shape
    ys, xs = np.mgrid[0:h, 0:w]
    position = np.stack([xs.ravel(), ys.ravel()], 1).astype(f32)
    colour = image.reshape(-1, 3).astype(f32)
    kernels = []
    for weight, features in (
        (w2, position / f32(theta_gamma)),
        (w1, np.concatenate([position / f32(theta_alpha), colour / f32(theta_beta)], 1)),
    ):
        k = reference_kernel(features.astype(f32))
        norm = 1.0 / np.sqrt(k.sum(1) + 1e-20)
        kernels.append(weight * norm[:, None] * k * norm[None, :])
    unary = -np.log(np.clip(probs.reshape(c, -1).astype(np.float64), 1e-5, 1.0))  # (C, N)

    def softmax(a):
        e = np.exp(a - a.max(0))
        return e / e.sum(0)

    q = softmax(-unary)
    for _ in range(iterations):
        q = softmax(-unary + sum(q @ k.T for k in kernels))
    return q.reshape(c, h, w)


def toy_problem(h, w, c, seed, noise=6.0):
    """A picture of coloured blocks with noise, and noisy probabilities that roughly follow it."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (c, 3))
    blocks = rng.integers(0, c, (max(h // 8, 1) + 1, max(w // 8, 1) + 1))
    truth = np.kron(blocks, np.ones((8, 8), dtype=np.int64))[:h, :w]  # (H, W)
    image = (palette[truth] + rng.normal(0, noise, (h, w, 3))).clip(0, 255).astype(np.uint8)
    logits = 1.5 * np.eye(c)[truth].transpose(2, 0, 1) + rng.normal(0, 1.0, (c, h, w))
    probs = torch.softmax(torch.from_numpy(logits).float(), 0)
    return image, probs


PARAMS = [
    dict(w1=4.0, theta_alpha=121.0, theta_beta=5.0, w2=3.0, theta_gamma=3.0),
    dict(w1=5.0, theta_alpha=3.0, theta_beta=20.0, w2=3.0, theta_gamma=1.0),
    dict(w1=10.0, theta_alpha=50.0, theta_beta=3.0, w2=1.0, theta_gamma=3.0),
]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_image_equals_exact_dense_mean_field(params, seed):
    image, probs = toy_problem(6, 7, 3, seed)
    mine = dense_crf(image, probs, iterations=5, **params).numpy()
    exact = reference_dense_crf(image, probs.numpy(), 5, **params)
    assert np.abs(mine - exact).max() < 1e-5
    assert (mine.argmax(0) == exact.argmax(0)).all()


def test_lattice_filter_equals_exact_kernel_matrix():
    rng = np.random.default_rng(3)
    features = (rng.random((40, 3)) * 4).astype(f32)
    exact = reference_kernel(features)
    mine = Lattice(torch.from_numpy(features)).filter(torch.eye(40)).numpy()
    assert np.abs(mine - exact).max() < 1e-5 * np.abs(exact).max()


def test_lattice_approximates_the_gaussian_kernel():
    # On a grid of positions the lattice is a smoothed stand-in for exp(-½‖f_i - f_j‖²):
    # after the symmetric normalisation each row is within a few percent of the exact one.
    ys, xs = np.mgrid[0:12, 0:12]
    features = (np.stack([xs.ravel(), ys.ravel()], 1) / 3.0).astype(f32)
    lattice = Lattice(torch.from_numpy(features)).filter(torch.eye(144)).numpy()
    gauss = np.exp(-0.5 * ((features[:, None] - features[None]) ** 2).sum(-1))

    def normalised(k):
        n = 1.0 / np.sqrt(k.sum(1))
        return n[:, None] * k * n[None, :]

    error = np.abs(normalised(lattice) - normalised(gauss)).sum(1) / normalised(gauss).sum(1)
    assert error.max() < 0.25
    assert error.mean() < 0.15


def test_agrees_with_pydensecrf_on_a_non_square_image():
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    utils = pytest.importorskip("pydensecrf.utils")
    h, w, c = 96, 128, 21
    image, probs = toy_problem(h, w, c, seed=5)
    for params, iterations in ((PARAMS[0], 5), (PARAMS[1], 10)):
        crf = dcrf.DenseCRF2D(w, h, c)  # pydensecrf takes width first
        crf.setUnaryEnergy(np.ascontiguousarray(utils.unary_from_softmax(probs.numpy())))
        crf.addPairwiseGaussian(sxy=params["theta_gamma"], compat=params["w2"])
        crf.addPairwiseBilateral(
            sxy=params["theta_alpha"], srgb=params["theta_beta"], rgbim=image, compat=params["w1"]
        )
        theirs = np.array(crf.inference(iterations)).reshape(c, h, w)
        mine = dense_crf(image, probs, iterations=iterations, **params).numpy()
        agreement = (mine.argmax(0) == theirs.argmax(0)).mean()
        assert agreement >= 0.99
        assert np.abs(mine - theirs).max() < 1e-4


def test_cpu_result_is_deterministic():
    image, probs = toy_problem(40, 56, 5, seed=2)
    first = dense_crf(image, probs, iterations=5)
    second = dense_crf(image, probs, iterations=5)
    assert torch.equal(first, second)


def test_callback_sees_every_iteration():
    image, probs = toy_problem(24, 32, 4, seed=4)
    seen = []
    out = dense_crf(image, probs, iterations=4, callback=lambda i, q: seen.append((i, q.clone())))
    assert [step for step, _ in seen] == [0, 1, 2, 3, 4]
    assert all(q.shape == (4, 24, 32) for _, q in seen)
    clipped = probs.clamp(1e-5, 1.0)
    assert torch.allclose(seen[0][1], clipped / clipped.sum(0), atol=1e-6)
    assert torch.equal(seen[-1][1], out)
    crf = DenseCRF(image, probs)
    assert torch.allclose(crf.step(seen[1][1]), seen[2][1], atol=1e-6)
    assert torch.allclose(out.sum(0), torch.ones(24, 32), atol=1e-5)


def test_iterations_make_labels_follow_the_image():
    image, probs = toy_problem(48, 64, 4, seed=6, noise=3.0)
    rng = np.random.default_rng(6)
    blocks = rng.integers(0, 4, (7, 9))
    truth = torch.from_numpy(np.kron(blocks, np.ones((8, 8), dtype=np.int64))[:48, :64])
    before = (probs.argmax(0) == truth).float().mean()
    after = (dense_crf(image, probs).argmax(0) == truth).float().mean()
    assert after > before


def test_free_energy_and_kl_track_convergence():
    image, probs = toy_problem(32, 40, 3, seed=8)
    crf = DenseCRF(image, probs)
    qs = []
    crf.run(8, callback=lambda step, q: qs.append(q.clone()))
    energies = [crf.free_energy(q) for q in qs]
    kls = [kl_divergence(b, a) for a, b in zip(qs, qs[1:])]
    assert all(math.isfinite(e) for e in energies)
    assert energies[-1] < energies[0]
    assert all(k >= -1e-7 for k in kls)
    assert kls[-1] < kls[0]
    assert kl_divergence(qs[0], qs[0]) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("iterations", [0, 1, 5])
def test_trace_gives_run_free_energy_and_kl_in_one_pass(iterations):
    image, probs = toy_problem(20, 24, 4, seed=10)
    crf = DenseCRF(image, probs, w1=5.0, theta_alpha=8.0)
    qs = []
    final = crf.run(iterations, callback=lambda step, q: qs.append(q.clone()))
    traced, energies, kls = crf.trace(iterations)
    assert len(traced) == len(energies) == len(kls) == iterations + 1
    for q, mine, energy in zip(qs, traced, energies):
        torch.testing.assert_close(mine, q, rtol=1e-5, atol=1e-6)
        assert energy == pytest.approx(crf.free_energy(q), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(traced[-1], final, rtol=1e-5, atol=1e-6)
    assert math.isnan(kls[0])
    for t in range(1, iterations + 1):
        assert kls[t] == pytest.approx(kl_divergence(qs[t], qs[t - 1]), rel=1e-4, abs=1e-7)


def test_free_energy_is_nearly_stationary_at_the_fixed_point():
    # F(Q) = <Q,U> - ½<Q, m(Q)> + <Q, log Q>, and the update is Q ∝ exp(-U + m(Q)): were the
    # lattice kernel exactly symmetric, nudging a fixed point along any direction that keeps
    # Σ_l Q = 1 would change F only to second order. It is symmetric up to the lattice's
    # approximation, so the slope there is small next to the slope at the start.
    image, probs = toy_problem(12, 14, 3, seed=9)
    crf = DenseCRF(image, probs, w1=1.0, w2=1.0)

    def slope(q):
        direction = torch.randn(q.shape, generator=torch.Generator().manual_seed(0)) * q
        direction -= q * direction.sum(0, keepdim=True)  # keep each pixel's sum fixed
        eps = 1e-2
        rise = crf.free_energy(q + eps * direction) - crf.free_energy(q - eps * direction)
        return rise / (2 * eps)

    at_start, at_end = slope(crf.initial()), slope(crf.run(60))
    assert abs(at_end) < 0.05 * abs(at_start)


def test_iterations_zero_returns_the_normalised_probs():
    image, probs = toy_problem(8, 9, 3, seed=1)
    out = dense_crf(image, probs, iterations=0)
    clipped = probs.clamp(1e-5, 1.0)
    assert torch.allclose(out, clipped / clipped.sum(0), atol=1e-6)
    assert out.dtype == torch.float32 and out.device == probs.device


def test_accepts_tensor_image_and_float64_probs():
    image, probs = toy_problem(16, 20, 3, seed=3)
    a = dense_crf(image, probs, iterations=3)
    b = dense_crf(torch.from_numpy(image), probs.double(), iterations=3)
    assert torch.allclose(a, b, atol=1e-6)


def test_swapped_height_and_width_is_explained():
    image, probs = toy_problem(16, 20, 3, seed=3)
    with pytest.raises(ValueError, match="H×W"):
        dense_crf(image.transpose(1, 0, 2), probs)
    with pytest.raises(ValueError, match="0–255"):
        dense_crf(image / 255.0, probs)


def test_gaussian_filter_stacks_lattices():
    rng = np.random.default_rng(0)
    a = Lattice(torch.from_numpy(rng.random((30, 2)).astype(f32)))
    b = Lattice(torch.from_numpy((rng.random((30, 4)) * 3).astype(f32)))
    values = torch.from_numpy(rng.random((30, 3)).astype(f32))
    one, two = torch.ones(30), torch.full((30,), 2.0)
    both = GaussianFilter([a, b], [one, two], [two, one])(values)
    assert torch.allclose(both, 2 * a.filter(values) + b.filter(2 * values), atol=1e-5)
    for lattice in (a, b):
        by_filter = lattice.filter(torch.ones(30, 1))[:, 0]
        assert torch.allclose(lattice.row_sums(), by_filter, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_equals_cpu():
    image, probs = toy_problem(96, 128, 8, seed=11)
    cpu = dense_crf(image, probs, iterations=5)
    gpu = dense_crf(image, probs.cuda(), iterations=5)
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() < 1e-4
    assert (gpu.cpu().argmax(0) == cpu.argmax(0)).float().mean() >= 0.999


def test_kernels_built_once_give_the_same_crf_and_must_match():
    image, probs = toy_problem(18, 22, 3, seed=11)
    params = dict(w1=5.0, theta_alpha=9.0, theta_beta=6.0, w2=2.0, theta_gamma=2.5)
    smooth = seg_crf.smoothness_kernel(18, 22, 2.5)
    look = seg_crf.appearance_kernel(image, 9.0, 6.0)
    fresh = DenseCRF(image, probs, **params).run(4)
    for w1, w2 in ((5.0, 2.0), (1.0, 7.0)):  # weights change, the kernels stay
        reused = DenseCRF(image, probs, **{**params, "w1": w1, "w2": w2},
                          smoothness=smooth, appearance=look).run(4)
        expected = DenseCRF(image, probs, **{**params, "w1": w1, "w2": w2}).run(4)
        torch.testing.assert_close(reused, expected, rtol=0, atol=0)
    torch.testing.assert_close(DenseCRF(image, probs, **params, smoothness=smooth).run(4), fresh,
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"appearance kernel was built with widths \(9.0, 6.0\)"):
        DenseCRF(image, probs, **{**params, "theta_alpha": 10.0}, appearance=look)
    with pytest.raises(ValueError, match="smoothness kernel was built for 396 pixels"):
        DenseCRF(image[:10], probs[:, :10], **params, smoothness=smooth)
    with pytest.raises(ValueError, match="theta_gamma must be > 0"):
        seg_crf.smoothness_kernel(4, 4, 0.0)
