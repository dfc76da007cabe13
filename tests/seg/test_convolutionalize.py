"""seg.convolutionalize: FC layers become convolutions with the same numbers, same answers."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from seg import convolutionalize
from seg.models.classifiers import alexnet_small


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(in_size=48, seed=0, activation="relu"):
    torch.manual_seed(seed)
    return alexnet_small(num_classes=8, in_size=in_size, activation=activation).eval()


@pytest.mark.parametrize("in_size, side", [(32, 1), (48, 2), (64, 3)])
def test_fc_to_conv_is_equivalent_at_the_original_size(in_size, side):
    classifier = small(in_size)
    net, layers = convolutionalize.convolutionalize(classifier)
    x = torch.randn(3, 3, in_size, in_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = classifier(x)  # (3, 8)
        scores = net(x)  # (3, 8, 1, 1)
    assert scores.shape == (3, 8, 1, 1)
    torch.testing.assert_close(scores[:, :, 0, 0], expected, atol=1e-5, rtol=1e-5)
    assert convolutionalize.equivalence_error(classifier, net) < 1e-5
    assert [layer.name for layer in layers] == ["fc6", "fc7", "fc8"]
    assert layers[0].linear_shape == (256, 64 * side * side)
    assert layers[0].conv_shape == (256, 64, side, side)
    assert layers[2].conv_shape == (8, 256, 1, 1)


def test_the_convolution_weights_are_the_fc_weights_reshaped_not_copied():
    classifier = small()
    net, _ = convolutionalize.convolutionalize(classifier)
    fc6, conv6 = classifier.classifier.fc6, net.head.fc6
    assert conv6.weight.data_ptr() == fc6.weight.data_ptr()
    assert torch.equal(conv6.weight.flatten(1), fc6.weight)
    assert torch.equal(conv6.bias, fc6.bias)
    # Weight (o, c, i, j) multiplies the pooled feature at channel c, row i, column j.
    assert conv6.weight[5, 7, 1, 0] == fc6.weight[5, 7 * 4 + 1 * 2 + 0]


def test_on_a_larger_image_each_position_is_the_fc_head_on_one_window_of_features():
    classifier = small(48, activation="tanh")
    net, _ = convolutionalize.convolutionalize(classifier)
    x = torch.randn(1, 3, 112, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features = classifier.features(x)  # (1, 64, h + 1, w + 1): fc6 is 2×2
        scores = net(x)  # (1, 8, h, w)
        assert scores.shape[-2:] == (features.shape[2] - 1, features.shape[3] - 1)
        for i in range(scores.shape[2]):
            for j in range(scores.shape[3]):
                window = features[:, :, i:i + 2, j:j + 2].flatten(1)  # (1, 64·2·2)
                torch.testing.assert_close(scores[:, :, i, j], classifier.classifier(window),
                                           atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("builder, fc6", [
    (torchvision.models.alexnet, ((4096, 9216), (4096, 256, 6, 6))),
    (torchvision.models.vgg11, ((4096, 25088), (4096, 512, 7, 7))),
])
def test_torchvision_classifiers_convert_too(builder, fc6):
    # Random weights: the conversion is about shapes and arithmetic, not about what was learnt
    # (VGG-11 has VGG-16's FC layers on a cheaper feature extractor).
    torch.manual_seed(0)
    classifier = builder().eval()
    net, layers = convolutionalize.convolutionalize(classifier)
    assert (layers[0].linear_shape, layers[0].conv_shape) == fc6
    assert layers[-1].conv_shape == (1000, 4096, 1, 1)
    assert convolutionalize.equivalence_error(classifier, net, batch=1) < 1e-4
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.modules())


def test_shapes_of_torchvision_classifiers_without_their_weights():
    # On the meta device nothing is allocated: the page shows VGG-16's and AlexNet's shapes
    # even where their weights are not downloaded.
    with torch.device("meta"):
        vgg = torchvision.models.vgg16()
    _, layers = convolutionalize.convolutionalize(vgg)
    assert [(layer.linear_shape, layer.conv_shape) for layer in layers] == [
        ((4096, 25088), (4096, 512, 7, 7)), ((4096, 4096), (4096, 4096, 1, 1)),
        ((1000, 4096), (1000, 4096, 1, 1))]


def test_refuses_a_network_without_fc_layers():
    with pytest.raises(ValueError, match="features"):
        convolutionalize.convolutionalize(nn.Sequential(nn.Conv2d(3, 8, 3)))


def test_coarse_map_positions_tile_the_image():
    net, _ = convolutionalize.convolutionalize(small())
    image = np.random.default_rng(0).integers(0, 256, (160, 224, 3), dtype=np.uint8)
    coarse = convolutionalize.coarse_map(net, image)
    k, h, w = coarse.probs.shape
    assert k == 8 and coarse.stride == 16
    torch.testing.assert_close(coarse.probs.sum(0), torch.ones(h, w))
    assert np.allclose(np.diff(coarse.rows), 16) and np.allclose(np.diff(coarse.cols), 16)
    # One position per 16-pixel cell, the first centred near the top-left cell's centre.
    assert abs(coarse.rows[0] - 8) <= 8 and abs(coarse.cols[0] - 8) <= 8
    assert abs(h - 160 / 16) <= 1 and abs(w - 224 / 16) <= 1
    labels = coarse.labels_at_pixels()
    assert labels.shape == (160, 224)
    # Each pixel takes the class of the position whose window centre is nearest.
    grid = coarse.probs.argmax(0).numpy()
    for y, x in [(0, 0), (37, 101), (159, 223), (80, 8)]:
        i = int(np.argmin(np.abs(coarse.rows - (y + 0.5))))
        j = int(np.argmin(np.abs(coarse.cols - (x + 0.5))))
        assert labels[y, x] == grid[i, j]


def test_train_patch_classifier_learns_something_quickly():
    result = convolutionalize.train_patch_classifier(steps=30, patches=128, scene_size=128)
    assert result.steps == 30 and len(result.losses) == 30
    assert np.mean(result.losses[-10:]) < result.losses[0]
    assert 0.0 <= result.accuracy <= 1.0
    assert not result.module.training
    assert result.in_size == 32
    with torch.no_grad():
        assert result.module(torch.zeros(1, 3, 32, 32)).shape == (1, 8)
