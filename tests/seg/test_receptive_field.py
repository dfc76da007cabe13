"""seg.receptive_field against the published tables and against brute-force gradients."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from seg.receptive_field import effective_extent, empirical, explain_pixel, theoretical


def positive_chain(*layers: nn.Module) -> nn.Sequential:
    """A linear network (no ReLU, no max-pool) in float64 with all-positive weights and no bias:
    every input pixel inside a unit's theoretical field then has a strictly positive gradient,
    every pixel outside it exactly zero, so the gradient's support is the field itself."""
    net = nn.Sequential(*layers).double()
    generator = torch.Generator().manual_seed(0)
    for layer in net:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator,
                                              dtype=torch.float64) + 0.1)
    return net


def support_box(grad: np.ndarray) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) pixel edges of the non-zero gradient."""
    rows, cols = np.nonzero(grad > 0)
    return (rows.min(), cols.min(), rows.max() + 1.0, cols.max() + 1.0)


def test_alexnet_matches_published_table():
    # Araujo et al. (Distill 2019) list AlexNet pool5 at 195 pixels.
    layers = theoretical(torchvision.models.alexnet(), (224, 224))
    assert [layer.size[0] for layer in layers] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [layer.kind for layer in layers] == ["conv", "max_pool", "conv", "max_pool",
                                                "conv", "conv", "conv", "max_pool"]
    pool5 = layers[-1]
    assert pool5.name == "features.12" and pool5.size == (195, 195)
    assert pool5.jump == (32.0, 32.0) and pool5.out_shape == (256, 6, 6)


def test_vgg16_matches_published_table():
    layers = theoretical(torchvision.models.vgg16().features, (224, 224))
    assert [layer.size[0] for layer in layers] == [
        3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    conv5_3, pool5 = layers[-2:]
    assert conv5_3.size == (196, 196) and pool5.size == (212, 212)
    assert pool5.out_shape == (512, 7, 7)


def test_resnet_shortcuts_do_not_add_their_stride():
    # ResNet-18's main path: 7x7/2 stem, 3x3/2 max-pool, 16 3x3 convs, 3 of them strided.
    layers = theoretical(torchvision.models.resnet18(), (224, 224))
    assert max(layer.size[0] for layer in layers) == 435
    assert {layer.jump for layer in layers if layer.name.startswith("layer4")} == {(32.0, 32.0)}
    shortcut = next(layer for layer in layers if layer.name == "layer2.0.downsample.0")
    assert shortcut.size == (43, 43) and shortcut.jump == (8.0, 8.0)  # 1x1: same field as its input


def test_dilated_stack_1_2_4_grows_3_7_15_and_matches_gradients():
    net = positive_chain(*[nn.Conv2d(3, 3, 3, padding=rate, dilation=rate) for rate in (1, 2, 4)])
    layers = theoretical(net, (48, 48))
    assert [layer.size for layer in layers] == [(3, 3), (7, 7), (15, 15)]
    assert [layer.dilation for layer in layers] == [(1, 1), (2, 2), (4, 4)]
    assert all(layer.jump == (1.0, 1.0) for layer in layers)
    grad = empirical(net, torch.rand(3, 48, 48, dtype=torch.float64), 24, 20)
    assert effective_extent(grad, threshold=0.0) == (15, 15)
    assert support_box(grad) == layers[-1].box(24, 20)


def test_dilation_changes_the_field_not_the_grid():
    for dilation, size in [(1, 3), (2, 5), (6, 13)]:
        (layer,) = theoretical(nn.Conv2d(3, 1, 3, padding="same", dilation=dilation), (32, 32))
        assert layer.size == (size, size) and layer.jump == (1.0, 1.0)
        assert layer.out_shape == (1, 32, 32)
        assert layer.box(10, 10) == (10.5 - size / 2, 10.5 - size / 2,
                                     10.5 + size / 2, 10.5 + size / 2)


@pytest.mark.parametrize("y, x", [(10, 10), (7, 12), (12, 5)])
def test_strided_pooled_chain_equals_gradient_support(y, x):
    net = positive_chain(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),
        nn.Conv2d(4, 2, (5, 3)),
    )
    layers = theoretical(net, (96, 96))
    assert [layer.size for layer in layers] == [(3, 3), (5, 5), (7, 7), (23, 23), (39, 31)]
    assert layers[-1].jump == (4.0, 4.0)
    grad = empirical(net, torch.rand(1, 3, 96, 96, dtype=torch.float64), y, x)
    assert grad.shape == (96, 96) and grad.max() == 1.0 and grad.min() >= 0.0
    assert effective_extent(grad, threshold=0.0) == layers[-1].size
    assert support_box(grad) == layers[-1].box(y, x)


def test_transposed_convolution_refines_the_grid():
    net = positive_chain(nn.Conv2d(3, 3, 3, stride=2, padding=1),
                         nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1))
    down, up = theoretical(net, (32, 32))
    assert up.kind == "conv_transpose" and up.jump == (1.0, 1.0) and up.out_shape == (2, 32, 32)
    assert up.size == (5, 5)
    image = torch.rand(3, 32, 32, dtype=torch.float64)
    # The widest any output unit gathers: both parities of the 2x up-sampling.
    extents = [effective_extent(empirical(net, image, y, y), threshold=0.0) for y in (15, 16)]
    assert max(extents) == up.size


def test_empirical_reads_dict_outputs_and_one_channel_and_restores_modes():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.left = nn.Conv2d(3, 1, 3, padding=1)
            self.right = nn.Conv2d(3, 1, 7, padding=3)
            self.norm = nn.BatchNorm2d(2)

        def forward(self, x):
            out = self.norm(torch.cat([self.left(x), self.right(x)], 1))
            return {"out": out}

    torch.manual_seed(0)
    head = Head().train()
    head.norm.eval()
    image = torch.rand(3, 24, 24)
    assert effective_extent(empirical(head, image, 12, 12, channel=0), 0.0) == (3, 3)
    assert effective_extent(empirical(head, image, 12, 12, channel=1), 0.0) == (7, 7)
    assert effective_extent(empirical(head, image, 12, 12), 0.0) == (7, 7)
    assert head.training and head.left.training and not head.norm.training
    # The concatenation takes the larger of its branches' fields.
    assert [layer.size for layer in theoretical(head, (24, 24))] == [(3, 3), (7, 7)]
    assert head.training and not head.norm.training


def test_empirical_refuses_units_outside_the_output():
    net = nn.Conv2d(3, 2, 3)
    with pytest.raises(ValueError, match="outside the 14×14 output"):
        empirical(net, torch.rand(3, 16, 16), 14, 0)


def test_effective_extent_thresholds_relative_to_the_peak():
    grad = np.zeros((9, 9))
    grad[4, 4] = 1.0
    grad[2:7, 3] = 0.05
    assert effective_extent(grad) == (5, 2)
    assert effective_extent(grad, threshold=0.1) == (1, 1)
    assert effective_extent(np.zeros((4, 4))) == (0, 0)


@pytest.mark.parametrize("max_side", [640, 40])  # as the picture is, and downscaled
def test_explain_pixel_is_predict_and_empirical_in_one_pass(max_side):
    from seg.models import Segmenter
    from seg.models.segmenter import pad_to_multiple
    from seg.models.fcn import fcn8s
    from seg.synthetic import CLASSES

    torch.manual_seed(0)
    segmenter = Segmenter("net", fcn8s(), CLASSES, "untrained", max_side=max_side)
    image = np.random.default_rng(4).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    prediction, grad = explain_pixel(segmenter, image, 30, 20)
    expected = segmenter.predict(image)
    assert torch.allclose(prediction.probs, expected.probs, atol=1e-5)
    assert torch.equal(prediction.labels, expected.labels)
    assert prediction.classes == list(CLASSES) and prediction.model == "net"
    # The gradient of the predicted class's score at the pixel, at the network's working size.
    small, _ = segmenter.preprocess(image)
    h, w = small.shape[-2:]
    padded, _ = pad_to_multiple(small, segmenter.size_divisor)
    direct = empirical(segmenter.module, padded, 30 * h // 50, 20 * w // 70,
                       channel=int(expected.labels[30, 20]))[:h, :w]
    assert grad.shape == (50, 70) and grad.max() == pytest.approx(1.0)
    if max_side == 640:
        np.testing.assert_allclose(grad, direct / direct.max(), atol=1e-5)
    else:  # each working pixel repeated over the picture's pixels it stands for
        assert (h, w) == (29, 40)
        rows, cols = np.arange(50) * h // 50, np.arange(70) * w // 70
        np.testing.assert_allclose(grad, (direct / direct.max())[rows][:, cols], atol=1e-5)
    with pytest.raises(ValueError, match="outside the 50×70 image"):
        explain_pixel(segmenter, image, 50, 0)
