"""seg.upsampling against PyTorch's own layers and brute-force loops."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seg import upsampling
from seg.models.fcn import fcn8s, fcn16s, fcn32s
from seg.models.segmenter import Segmenter
from seg.models.segnet import segnet, unpool_with_indices
from seg.synthetic import CLASSES


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def maps(seed=0, relu=False):
    x = torch.randn(2, 3, 8, 12, generator=torch.Generator().manual_seed(seed))  # (N, C, H, W)
    # After a ReLU many windows are all zeros: ties, where the first maximum must win.
    return x.clamp_min(0.5) - 0.5 if relu else x


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("kernel_size", [2, 4])
def test_max_pool_with_indices_matches_torch(relu, kernel_size):
    x = maps(relu=relu)
    pooled, indices = upsampling.max_pool_with_indices(x, kernel_size)
    reference, reference_indices = F.max_pool2d(x, kernel_size, return_indices=True)
    assert torch.equal(pooled, reference)
    assert torch.equal(indices, reference_indices)


def test_max_pool_refuses_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="divisible by 2"):
        upsampling.max_pool_with_indices(torch.zeros(1, 1, 5, 4))


@pytest.mark.parametrize("relu", [False, True])
def test_unpool_puts_each_maximum_back_at_its_index_and_zeros_elsewhere(relu):
    x = maps(relu=relu)
    pooled, indices = upsampling.max_pool_with_indices(x)
    out = upsampling.unpool(pooled, indices, x.shape[-2:])
    assert torch.equal(out, nn.MaxUnpool2d(2)(pooled, indices, output_size=x.shape[-2:]))
    assert torch.equal(out, unpool_with_indices(pooled, indices, x.shape[-2:]))
    flat = out.flatten(2)  # (N, C, H·W)
    assert torch.equal(flat.gather(2, indices.flatten(2)), pooled.flatten(2))
    kept = torch.zeros_like(flat, dtype=torch.bool).scatter_(2, indices.flatten(2), True)
    assert (flat[~kept] == 0).all()
    # Where the maximum was non-zero, it sits exactly where the input had it.
    assert torch.equal(out[out != 0], x[out != 0])


def test_window_positions_name_the_corner_of_each_maximum():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 2] = x[0, 0, 3, 0] = x[0, 0, 3, 3] = 1.0
    _, indices = upsampling.max_pool_with_indices(x)
    assert upsampling.window_positions(indices[0, 0], 4).tolist() == [[1, 2], [2, 3]]


@pytest.mark.parametrize("kernel, stride, padding, output_padding",
                         [(3, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (5, 3, 2, 2), (2, 2, 0, 0),
                          (1, 1, 0, 0), (7, 3, 0, 1)])
def test_transposed_conv_matches_torch(kernel, stride, padding, output_padding):
    rng = np.random.default_rng(kernel * 10 + stride)
    x, weights = rng.normal(size=(3, 5)), rng.normal(size=(kernel, kernel))
    ours = upsampling.transposed_conv(x, weights, stride, padding, output_padding)
    theirs = F.conv_transpose2d(torch.from_numpy(x)[None, None],
                                torch.from_numpy(weights)[None, None], stride=stride,
                                padding=padding, output_padding=output_padding)[0, 0].numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_transposed_conv_refuses_output_padding_beyond_the_stride():
    with pytest.raises(ValueError, match="smaller than the stride"):
        upsampling.transposed_conv(np.ones((2, 2)), np.ones((3, 3)), 2, 1, output_padding=2)


@pytest.mark.parametrize("kernel, stride", [(3, 2), (4, 2), (5, 2), (3, 3), (6, 3), (7, 4)])
def test_overlap_counts_are_the_transposed_convolution_of_ones(kernel, stride):
    counts = upsampling.overlap_counts((6, 7), kernel, stride)
    ones = F.conv_transpose2d(torch.ones(1, 1, 6, 7), torch.ones(1, 1, kernel, kernel),
                              stride=stride)[0, 0]
    assert np.array_equal(counts, ones.round().long().numpy())
    interior = counts[kernel:-kernel, kernel:-kernel]
    # Even overlaps exactly when the stride divides the kernel size: no checkerboard.
    assert (interior.min() == interior.max()) == (kernel % stride == 0)
    assert interior.max() == math.ceil(kernel / stride) ** 2
    assert interior.min() == (kernel // stride) ** 2


def test_bilinear_matches_the_half_pixel_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4))
    out = upsampling.bilinear(x, 2)
    h, w = x.shape

    def sample(o, n):  # source coordinate of output o with half-pixel centres, clamped
        s = min(max((o + 0.5) / 2 - 0.5, 0.0), n - 1)
        i = min(int(np.floor(s)), n - 2)
        return i, s - i

    for r in range(2 * h):
        for c in range(2 * w):
            i, a = sample(r, h)
            j, b = sample(c, w)
            expected = ((1 - a) * (1 - b) * x[i, j] + (1 - a) * b * x[i, j + 1]
                        + a * (1 - b) * x[i + 1, j] + a * b * x[i + 1, j + 1])
            assert out[r, c] == pytest.approx(expected)


@pytest.mark.parametrize("kernel", [3, 2])
def test_resize_convolve_is_nearest_upsampling_then_a_same_size_convolution(kernel):
    rng = np.random.default_rng(2)
    x, weights = rng.normal(size=(3, 4)), rng.normal(size=(kernel, kernel))
    out = upsampling.resize_convolve(x, 2, weights)
    big = np.kron(x, np.ones((2, 2)))  # nearest neighbour, (6, 8)
    top = (kernel - 1) // 2
    for r in range(6):
        for c in range(8):
            expected = sum(weights[a, b] * big[r + a - top, c + b - top]
                           for a in range(kernel) for b in range(kernel)
                           if 0 <= r + a - top < 6 and 0 <= c + b - top < 8)
            assert out[r, c] == pytest.approx(expected)
    # Every interior pixel gets all k×k taps: no checkerboard.
    taps = upsampling.resize_convolve(np.ones((4, 4)), 2, np.ones((kernel, kernel)))
    assert (taps[1:-1, 1:-1] == kernel * kernel).all()


def test_numeric_example_step_by_step():
    example = upsampling.numeric_example()
    assert example["pooled"].tolist() == [[4, 5], [6, 7]]
    assert example["indices"].tolist() == [[4, 7], [12, 14]]
    expected_unpooled = np.zeros((4, 4))
    expected_unpooled.flat[[4, 7, 12, 14]] = [4, 5, 6, 7]
    assert np.array_equal(example["unpooled"], expected_unpooled)
    transposed = F.conv_transpose2d(torch.tensor([[[[4., 5.], [6., 7.]]]]), torch.ones(1, 1, 3, 3),
                                    stride=2, padding=1, output_padding=1)[0, 0].numpy()
    np.testing.assert_allclose(example["transposed"], transposed)
    assert example["overlaps"].tolist() == [[1, 2, 1, 1], [2, 4, 2, 2], [1, 2, 1, 1],
                                            [1, 2, 1, 1]]
    np.testing.assert_allclose(
        example["bilinear"],
        F.interpolate(torch.tensor([[[[4., 5.], [6., 7.]]]]), scale_factor=2,
                      mode="bilinear")[0, 0].numpy())
    assert all(example[k].shape == (4, 4) for k in ("input", "unpooled", "transposed",
                                                   "bilinear"))


@pytest.mark.parametrize("builder", [segnet, fcn8s])
def test_encoder_features_are_what_the_stage_pools(builder):
    torch.manual_seed(0)
    segmenter = Segmenter("net", builder(), CLASSES, "untrained")
    image = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    features = upsampling.encoder_features(segmenter, image, 3)  # (C3, 16, 24)
    assert features.shape[1:] == (16, 24)
    x, _ = segmenter.preprocess(image)
    with torch.no_grad():
        for block in segmenter.module.encoder[:2]:
            x = block(x)
            x = x[0] if isinstance(x, tuple) else x
        expected = segmenter.module.encoder[2].convs(x)[0]
    torch.testing.assert_close(features, expected)


def test_encoder_features_refuse_a_missing_stage():
    segmenter = Segmenter("net", segnet(), CLASSES, "untrained")
    with pytest.raises(ValueError, match="stage 6"):
        upsampling.encoder_features(segmenter, np.zeros((32, 32, 3), np.uint8), 6)


@pytest.mark.parametrize("builder, skips", [(fcn32s, []), (fcn16s, ["pool4"]),
                                            (fcn8s, ["pool3", "pool4"])])
def test_fcn_skip_memory_is_the_size_of_the_pooled_maps(builder, skips):
    net = builder().eval()
    seen = {}
    for i in (3, 4):
        net.encoder[i - 1].register_forward_hook(
            lambda module, args, out, i=i: seen.__setitem__(f"pool{i}", tuple(out.shape[1:])))
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 96))
    rows = upsampling.fcn_skip_memory(net, (64, 96))
    assert [row["skip"] for row in rows] == skips
    for row in rows:
        assert row["shape"] == seen[row["skip"]]
        assert row["bytes"] == 4 * int(np.prod(seen[row["skip"]]))


@pytest.mark.parametrize("kernel, stride", [(4, 2), (3, 2), (5, 2), (5, 3), (6, 3), (3, 1)])
def test_transposed_upsample_is_conv_transpose_with_matching_padding(kernel, stride):
    rng = np.random.default_rng(kernel + 7 * stride)
    x, weights = rng.normal(size=(4, 5)), rng.normal(size=(kernel, kernel))
    padding = math.ceil((kernel - stride) / 2)
    layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding,
                               output_padding=2 * padding - (kernel - stride), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weights))
        expected = layer(torch.from_numpy(x).float()[None, None])[0, 0].double().numpy()
    ours = upsampling.transposed_upsample(x, weights, stride)
    assert ours.shape == (4 * stride, 5 * stride)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_transposed_upsample_leaves_holes_when_the_kernel_is_smaller_than_the_stride():
    out = upsampling.transposed_upsample(np.ones((3, 3)), np.ones((1, 1)), 3)
    assert out.shape == (9, 9)
    assert out.sum() == 9 and (out[::3, ::3] == 1).all()
