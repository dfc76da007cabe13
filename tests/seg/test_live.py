"""seg.live against direct computations: autograd vs formulas, hooks vs hand-run layers,
recorded training errors and gradients vs recomputing them from the same seed."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from seg import live, train
from seg.models import registry


@pytest.fixture(autouse=True)
def one_thread():
    # Several engineers share two cores; these tests are small enough for one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- Activations -------------------------------------------------------------------------------

def test_activation_curves_match_the_formulas():
    x = np.linspace(-5, 5, 101)
    for name, f, slope in (
            ("relu", np.maximum(x, 0), (x > 0).astype(float)),
            ("tanh", np.tanh(x), 1 - np.tanh(x) ** 2),
            ("sigmoid", 1 / (1 + np.exp(-x)), np.exp(-x) / (1 + np.exp(-x)) ** 2)):
        values, derivative = live.activation_curves(name, x)
        np.testing.assert_allclose(values, f, atol=1e-12)
        np.testing.assert_allclose(derivative, slope, atol=1e-12)


def test_saturating_regions_end_where_the_slope_is_a_tenth_of_its_maximum():
    x = np.linspace(-8, 8, 16001)
    (left, right) = live.saturating("tanh", x)
    edge = np.arctanh(np.sqrt(0.9))  # 1 - tanh² = 0.1
    assert left[0] == -8 and right[1] == 8
    assert left[1] == pytest.approx(-edge, abs=2e-3) and right[0] == pytest.approx(edge, abs=2e-3)
    (left, right) = live.saturating("sigmoid", x)
    # σ' = 0.025 where σ(1 - σ) = 0.025, i.e. σ = (1 + sqrt(0.9)) / 2.
    s = (1 + np.sqrt(0.9)) / 2
    assert right[0] == pytest.approx(np.log(s / (1 - s)), abs=2e-3)
    assert live.saturating("relu", x) == [(-8.0, 0.0)]


# --- Curves ------------------------------------------------------------------------------------

def test_moving_average_and_steps_to_match_brute_force():
    rng = np.random.default_rng(0)
    values = rng.random(37)
    for window in (1, 5, 20):
        brute = [values[max(0, i - window + 1):i + 1].mean() for i in range(len(values))]
        np.testing.assert_allclose(live.moving_average(values, window), brute)
    assert live.steps_to([0.9, 0.7, 0.4, 0.2], 0.4) == 3
    assert live.steps_to([0.9, 0.7], 0.4) is None


def test_race_steps_to_and_speedup():
    relu = [0.9] * 10 + [0.3] * 10
    tanh = [0.9] * 18 + [0.3] * 2
    result = live.Race(("relu", "tanh"), {"relu": relu, "tanh": tanh},
                       {"relu": relu, "tanh": tanh}, 1, {}, {}, {}, {})
    assert result.steps_to(0.5) == {"relu": 11, "tanh": 19}
    assert result.speedup(0.5) == pytest.approx(19 / 11)
    assert result.speedup(0.1) is None
    assert result.steps_to(0.1) == {"relu": None, "tanh": None}
    slower = live.Race(("relu", "tanh"), {}, {"relu": relu, "tanh": [0.9] * 20}, 1,
                       {}, {}, {}, {})
    assert slower.speedup(0.5) == pytest.approx(20 / 11)  # a lower bound: tanh never got there


# --- Training experiments ----------------------------------------------------------------------

def test_race_records_the_error_of_each_batch_before_its_update():
    result = live.race(("relu", "tanh"), steps=6, seed=3, train_size=96, validation=32,
                       batch_size=16)
    assert result.names == ("relu", "tanh")
    for name in result.names:
        assert len(result.loss[name]) == len(result.error[name]) == 6
        assert 0 <= result.train_error[name] <= 1 and 0 <= result.val_error[name] <= 1
    # Recompute step 1 by hand: the same seed gives the same weights and the same first batch.
    x, y = train.patch_dataset(96, patch=live.PATCH, scene_size=live.SCENE, seed=3)
    xb, yb = next(train.tensor_batches(x, y, 16, seed=3))
    torch.manual_seed(3)
    net = registry.build("alexnet_small", activation="tanh", dropout=0.0, in_size=live.PATCH)
    logits = net(xb)
    assert result.loss["tanh"][0] == pytest.approx(F.cross_entropy(logits, yb).item(), rel=1e-5)
    assert result.error["tanh"][0] == pytest.approx((logits.argmax(1) != yb).float().mean().item())


def test_race_is_deterministic_for_a_seed():
    a = live.race(("relu",), steps=4, seed=1, train_size=64, validation=0, batch_size=16)
    b = live.race(("relu",), steps=4, seed=1, train_size=64, validation=0, batch_size=16)
    assert a.loss == b.loss and a.error == b.error


def test_regularised_returns_every_weight_and_l2_shrinks_them():
    kwargs = dict(train_size=64, validation=32, steps=8, batch_size=16, evaluations=2)
    plain = live.regularised(**kwargs)
    decayed = live.regularised(l2=5.0, **kwargs)
    net = registry.build("alexnet_small", in_size=live.PATCH)
    count = sum(m.weight.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert plain.weights.shape == (count,)
    assert plain.steps == [4, 8] and len(plain.loss) == 8
    assert plain.gap == pytest.approx(plain.val_error[-1] - plain.train_error[-1])
    assert decayed.rms < plain.rms
    assert plain.near_zero(1.0) == pytest.approx(np.mean(np.abs(plain.weights) < 1.0))


def test_l1_makes_more_weights_near_zero_than_no_penalty():
    kwargs = dict(train_size=64, validation=32, steps=20, batch_size=16, evaluations=1, lr=0.05)
    assert (live.regularised(l1=3e-3, **kwargs).near_zero(1e-2)
            > live.regularised(**kwargs).near_zero(1e-2))


def test_gradient_norms_match_a_direct_backward_pass():
    for residual in (False, True):
        got = live.gradient_norms(6, residual=residual, seed=2, batch=8, width=4, patch=16)
        x, y = train.patch_dataset(8, patch=16, scene_size=live.SCENE, seed=2)
        torch.manual_seed(2)
        net = registry.build("resnet_small" if residual else "plain_net", depth=6, width=4)
        F.cross_entropy(net.train()(x), y).backward()
        expected = [torch.linalg.vector_norm(c.weight.grad).item() for _, c in net.conv_layers()]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        assert got.shape == (6,)


def test_depth_race_trains_every_kind_and_depth_from_the_same_start():
    result = live.depth_race((2, 3), steps=3, seed=0, width=4, batch_size=8, train_size=32,
                             window=2, patch=16)
    assert set(result.loss) == {("plain", 2), ("residual", 2), ("plain", 3), ("residual", 3)}
    assert all(len(v) == 3 for v in result.loss.values())
    assert result.final("plain", 3) == pytest.approx(np.mean(result.loss["plain", 3][-2:]))
    assert set(result.train_loss) == set(result.loss) == set(result.train_error)
    x, y = train.patch_dataset(32, patch=16, scene_size=live.SCENE, seed=0)
    xb, yb = next(train.tensor_batches(x, y, 8, seed=0))
    torch.manual_seed(0)
    net = registry.build("resnet_small", depth=3, width=4)
    assert result.loss["residual", 3][0] == pytest.approx(
        F.cross_entropy(net.train()(xb), yb).item(), rel=1e-5)


def test_progress_callback_reaches_one():
    seen = []
    live.depth_race((2,), steps=5, width=4, batch_size=8, train_size=32,
                    callback=lambda fraction, text: seen.append(fraction))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


# --- Layer tables ------------------------------------------------------------------------------

def test_layer_table_of_torchvision_alexnet_matches_running_its_layers():
    net = torchvision.models.alexnet()
    rows = live.layer_table(net, (224, 224))
    assert [r.name for r in rows] == ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4",
                                      "conv5", "pool5", "avgpool", "fc6", "fc7", "fc8"]
    assert sum(r.params for r in rows) == sum(p.numel() for p in net.parameters())
    x = torch.zeros(1, 3, 224, 224)
    shapes = []
    for layer in net.features:
        x = layer(x)
        if not isinstance(layer, nn.ReLU):
            shapes.append(tuple(x.shape[1:]))
    assert [r.output for r in rows[:8]] == shapes
    assert rows[0].shape_text == "55×55×64"
    assert live.layer_table(net, (227, 227))[0].shape_text == "56×56×64"  # conv1 pads by 2


def test_paper_alexnet_has_96_conv1_filters_and_61_million_parameters():
    rows = live.layer_table(live.paper_alexnet(), (227, 227))
    by_name = {r.name: r for r in rows}
    assert by_name["conv1"].output == (96, 55, 55)
    assert by_name["pool1"].output == (96, 27, 27)
    assert by_name["pool5"].output == (256, 6, 6)
    assert by_name["fc8"].output == (1000,)
    # The paper's count by hand: two-GPU groups halve the inputs of conv2, conv4 and conv5.
    convs = [(3, 96, 11), (48, 256, 5), (256, 384, 3), (192, 384, 3), (192, 256, 3)]
    fcs = [(9216, 4096), (4096, 4096), (4096, 1000)]
    expected = (sum(i * o * k * k + o for i, o, k in convs) + sum(i * o + o for i, o in fcs))
    assert sum(r.params for r in rows) == expected == 60_965_224
    # The same module with real memory gives the same table.
    assert live.layer_table(live.paper_alexnet("cpu"), (227, 227)) == rows



def test_the_papers_alexnet_does_not_fit_224_pixels():
    # (224 - 11) / 4 + 1 is not a whole number: conv1 rounds down to 54, pool5 ends at 5×5,
    # and fc6 gets 5·5·256 = 6400 inputs instead of 9216.
    expected = (r"after pool5 \(5×5×256\), fc6 \(9216 → 4096\) cannot run: "
                r"it expects 9216 inputs and gets 6400")
    with pytest.raises(live.ShapeMismatch, match=expected) as caught:
        live.layer_table(live.paper_alexnet(), (224, 224))
    assert caught.value.rows[0].shape_text == "54×54×96"
    assert [r.name for r in caught.value.rows][-1] == "pool5"


def test_first_layer_filters_stretch_each_filter_to_the_full_range():
    net = torchvision.models.alexnet()
    filters = live.first_layer_filters(net)
    assert filters.shape == (64, 11, 11, 3) and filters.dtype == np.uint8
    flat = filters.reshape(64, -1)
    assert (flat.min(1) == 0).all() and (flat.max(1) == 255).all()
    w = net.features[0].weight.detach()[5].permute(1, 2, 0).numpy()
    expected = np.round((w - w.min()) / (w.max() - w.min()) * 255)
    np.testing.assert_array_equal(filters[5], expected.astype(np.uint8))


def test_mosaic_places_pictures_row_by_row():
    pictures = np.arange(5, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(3, 2)  # (5, 2, 3)
    grid = live.mosaic(pictures, columns=3, gap=1)
    assert grid.shape == (5, 11)
    assert grid[0, 0] == 0 and grid[0, 4] == 1 and grid[3, 4] == 4 and grid[0, 3] == 255
    assert grid[3, 8] == 255  # the empty sixth cell


def test_feature_maps_match_running_the_stages_by_hand():
    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 64, 64)
    maps = live.feature_maps(net, x, ["layer1", "layer2"])
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        layer1 = net.layer1(h)
        layer2 = net.layer2(layer1)
    np.testing.assert_allclose(maps["layer1"], layer1[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["layer2"], layer2[0].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="layer9"):
        live.feature_maps(net, x, ["layer9"])


def test_loss_and_error_match_a_direct_computation():
    torch.manual_seed(0)
    net = registry.build("plain_net", depth=3, width=4).train()
    x, y = torch.randn(10, 3, 16, 16), torch.randint(0, 8, (10,))
    loss, error = live.loss_and_error(net, x, y, batch_size=4)
    assert net.training  # never switched: a copy sharing its weights ran in eval mode
    with torch.no_grad():
        logits = net.eval()(x)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert error == pytest.approx((logits.argmax(1) != y).float().mean().item())
