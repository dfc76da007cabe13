"""SegLab's own architectures: contracts, budgets, and each paper's idea checked by reference.

Shapes at a non-square 64×96 input; references are torch's own layers, brute-force loops and
gradients (which input pixels can reach which output).
"""

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seg.models.classifiers import alexnet_small, plain_net, resnet_small
from seg.models.deeplab_v1 import deeplab_v1_largefov
from seg.models.fcn import bilinear_kernel, fcn8s, fcn16s, fcn32s
from seg.models.renet import bidirectional_sweep, renet
from seg.models.segnet import segnet, unpool_with_indices

H, W, K = 64, 96, 8
MAX_PARAMS = 1_200_000
MAX_CHECKPOINT_BYTES = 5_000_000

SEGMENTERS = {
    "fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s, "segnet": segnet,
    "deeplab_v1_largefov": deeplab_v1_largefov, "renet": renet,
}
# Every output of every segmenter, as (C, H, W) at a 64×96 input with the default widths.
EXPECTED_SHAPES = {
    "fcn32s": {"out": (K, H, W), "score_pool5": (K, H // 32, W // 32)},
    "fcn16s": {"out": (K, H, W), "score_pool5": (K, H // 32, W // 32),
               "score_pool4": (K, H // 16, W // 16)},
    "fcn8s": {"out": (K, H, W), "score_pool5": (K, H // 32, W // 32),
              "score_pool4": (K, H // 16, W // 16), "score_pool3": (K, H // 8, W // 8)},
    "segnet": {"out": (K, H, W), "unpooled_1": (96, H // 16, W // 16)},
    "deeplab_v1_largefov": {"out": (K, H, W), "scores": (K, H // 8, W // 8)},
    "renet": {"out": (K, H, W), "vertical": (128, H // 4, W // 4),
              "horizontal": (128, H // 4, W // 4)},
}
CLASSIFIERS = {
    "alexnet_small-relu-64": (lambda: alexnet_small(num_classes=K, in_size=64), 64),
    "alexnet_small-tanh-lrn-32": (
        lambda: alexnet_small(num_classes=K, activation="tanh", in_size=32, lrn=True), 32),
    "alexnet_small-sigmoid-48": (
        lambda: alexnet_small(num_classes=K, activation="sigmoid", in_size=48), 48),
    "plain_net-50": (lambda: plain_net(depth=50, num_classes=K), 32),
    "resnet_small-50": (lambda: resnet_small(depth=50, num_classes=K), 32),
    "resnet_small-7": (lambda: resnet_small(depth=7, width=8, num_classes=K), 32),
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name, seed=0):
    torch.manual_seed(seed)
    return SEGMENTERS[name]()


def image(seed=0, height=H, width=W):
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed))


def checkpoint_bytes(module):
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


# --- every segmenter ------------------------------------------------------------------------

@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmenter_outputs_have_contract_keys_and_shapes(name):
    net = build(name).eval()
    with torch.no_grad():
        outputs = net(image())
    assert {k: tuple(v.shape[1:]) for k, v in outputs.items()} == EXPECTED_SHAPES[name]
    assert all(v.shape[0] == 2 for v in outputs.values())
    assert H % net.size_divisor == 0 and W % net.size_divisor == 0


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmenter_is_deterministic_in_eval_and_by_seed(name):
    net = build(name).eval()
    with torch.no_grad():
        first, second = net(image()), net(image())
        rebuilt = build(name).eval()(image())
    for key in first:
        assert torch.equal(first[key], second[key])
        assert torch.equal(first[key], rebuilt[key])


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmenter_fits_the_budget(name):
    net = build(name)
    assert sum(p.numel() for p in net.parameters()) <= MAX_PARAMS
    assert checkpoint_bytes(net) <= MAX_CHECKPOINT_BYTES


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmenter_trains_every_parameter(name):
    net = build(name).train()
    out = net(image(height=64, width=64))["out"]
    F.cross_entropy(out, torch.randint(0, K, (2, 64, 64))).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmenter_refuses_indivisible_input_and_says_how_to_pad(name):
    net = build(name)
    d = net.size_divisor
    with pytest.raises(ValueError, match=rf"divisible by {d}; pad to \({2 * d}, {d}\)"):
        net(torch.zeros(1, 3, d + 1, d))


# --- FCN ------------------------------------------------------------------------------------

def test_bilinear_kernel_upsamples_like_interpolate():
    up = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
    up.weight.data.copy_(bilinear_kernel(3, 4))
    x = torch.randn(1, 3, 5, 7)
    reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    # The transposed convolution sees zeros beyond the border; interpolate replicates the edge.
    torch.testing.assert_close(up(x)[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1])


def test_fcn_skips_start_silent_and_reuse_the_coarser_variants_weights():
    net32 = fcn32s().eval()
    net16 = fcn16s().eval()
    result = net16.load_state_dict(net32.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == ["score_pool4.bias", "score_pool4.weight",
                                           "upscore2.weight"]
    with torch.no_grad():
        outputs = net16(image())
        # Zero-initialised score_pool4: the fused map is just the stride-32 map upsampled ×2.
        torch.testing.assert_close(outputs["score_pool4"], net16.upscore2(outputs["score_pool5"]))
        torch.testing.assert_close(outputs["score_pool5"], net32(image())["score_pool5"])


def test_fcn_first_convolution_sees_only_a_3x3_window():
    net = fcn8s().eval()
    x = image()[:1].requires_grad_(True)
    first = net.encoder[0].convs[0].conv(x)  # (1, C, H, W)
    first[0, :, 20, 30].sum().backward()
    reach = x.grad[0].abs().sum(0) > 0  # (H, W)
    expected = torch.zeros(H, W, dtype=torch.bool)
    expected[19:22, 29:32] = True
    assert torch.equal(reach, expected)


# --- SegNet ---------------------------------------------------------------------------------

def test_unpool_with_indices_equals_max_unpool_and_puts_each_max_at_its_index():
    x = torch.randn(2, 3, 6, 8)
    pooled, indices = nn.MaxPool2d(2, 2, return_indices=True)(x)
    unpooled = unpool_with_indices(pooled, indices, x.shape[-2:])
    assert torch.equal(unpooled, nn.MaxUnpool2d(2, 2)(pooled, indices, output_size=x.shape[-2:]))
    # Brute force: each window's maximum back at its argmax, zeros everywhere else.
    expected = torch.zeros_like(x)
    for n in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(4):
                    window = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    di, dj = divmod(int(window.argmax()), 2)
                    expected[n, c, 2 * i + di, 2 * j + dj] = window.max()
    assert torch.equal(unpooled, expected)


def test_segnet_decoder_receives_only_indices():
    net = segnet().eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    with torch.no_grad():
        sparse = net(image())["unpooled_1"]  # (2, C, H/16, W/16)
    nonzero_per_window = F.avg_pool2d((sparse != 0).float(), 2) * 4
    assert nonzero_per_window.max() == 1


def test_segnet_decoder_memory_matches_the_tensors_the_decoder_keeps():
    net = segnet().eval()
    indices, features = [], []

    def keep(module, inputs, output):  # what each pool gets and gives back
        features.append(inputs[0])
        indices.append(output[1])

    hooks = [stage.pool.register_forward_hook(keep) for stage in net.encoder]
    with torch.no_grad():
        net(image()[:1])
    for hook in hooks:
        hook.remove()
    memory = net.decoder_memory((H, W))
    assert [s["indices_bytes"] for s in memory["stages"]] == [
        t.numel() * t.element_size() for t in indices]
    assert [s["feature_bytes"] for s in memory["stages"]] == [
        t.numel() * t.element_size() for t in features]
    assert [s["indices_shape"] for s in memory["stages"]] == [tuple(t.shape[1:]) for t in indices]
    assert memory["feature_bytes"] == 64 * memory["indices_2bit_bytes"]
    assert memory["indices_bytes"] == sum(s["indices_bytes"] for s in memory["stages"])


# --- DeepLab v1 -----------------------------------------------------------------------------

def test_deeplab_fc6_dilation_changes_the_field_of_view_not_the_weights():
    net = deeplab_v1_largefov().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = image(height=128, width=128)
    with torch.no_grad():
        large = net(x)["scores"]
        net.set_fc6_dilation(1)
        small = net(x)["scores"]
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.fc.fc6.weight.shape[-2:] == (3, 3)
    assert net.fc.fc6.dilation == (1, 1) and net.fc.fc6.padding == (1, 1)
    assert small.shape == large.shape and not torch.allclose(small, large)


def test_deeplab_output_stride_switches_score_resolution_and_back():
    net = deeplab_v1_largefov().eval()
    x = image(height=128, width=160)
    with torch.no_grad():
        reference = net(x)
        for output_stride in (8, 16, 32):
            net.set_output_stride(output_stride)
            outputs = net(x)
            assert net.size_divisor == output_stride
            assert outputs["scores"].shape[-2:] == (128 // output_stride, 160 // output_stride)
            assert outputs["out"].shape[-2:] == (128, 160)
        assert net.fc.fc6.dilation == (3, 3)  # 12 at stride 8 is 3 at stride 32
        net.set_output_stride(8)
        assert net.fc.fc6.dilation == (12, 12)
        assert torch.equal(net(x)["scores"], reference["scores"])
    with pytest.raises(ValueError, match="output stride"):
        net.set_output_stride(4)


# --- ReNet ----------------------------------------------------------------------------------

def test_bidirectional_sweep_equals_running_the_gru_on_each_column():
    torch.manual_seed(0)
    gru = nn.GRU(3, 4, batch_first=True, bidirectional=True)
    x = torch.randn(2, 3, 5, 6)
    swept = bidirectional_sweep(gru, x)  # (2, 8, 5, 6)
    for n in range(2):
        for j in range(6):
            column, _ = gru(x[n, :, :, j].T[None])  # (1, 5, 8)
            torch.testing.assert_close(swept[n, :, :, j], column[0].T)


def test_renet_output_sees_the_whole_image():
    torch.manual_seed(0)
    net = renet(hidden=8).eval()
    x = image(height=32, width=48)[:1].requires_grad_(True)
    net(x)["out"][0, :, 2, 3].sum().backward()
    assert (x.grad[0].abs().sum(0) > 0).all()


def test_renet_sweeps_read_in_their_directions():
    torch.manual_seed(0)
    net = renet(hidden=8).eval()
    x = image(height=32, width=32)[:1]
    with torch.no_grad():
        outputs = net(x)
        maps = net.sweeps(x)
    assert list(maps) == ["down", "up", "right", "left"]
    torch.testing.assert_close(torch.cat([maps["down"], maps["up"]], 1), outputs["vertical"])
    torch.testing.assert_close(torch.cat([maps["right"], maps["left"]], 1), outputs["horizontal"])

    def reach(direction, i, j):  # which 4×4 patches of the input the state at (i, j) has read
        image_ = x.clone().requires_grad_(True)
        net.sweeps(image_)[direction][0, :, i, j].sum().backward()
        return image_.grad[0].abs().sum(0).reshape(8, 4, 8, 4).sum((1, 3)) > 0  # (8, 8) patches

    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    assert torch.equal(reach("down", 3, 5), (rows <= 3) & (cols == 5))
    assert torch.equal(reach("up", 3, 5), (rows >= 3) & (cols == 5))
    assert torch.equal(reach("right", 3, 5), cols <= 5)
    assert torch.equal(reach("left", 3, 5), cols >= 5)


# --- classifiers ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_returns_logits_within_budget(name):
    make, size = CLASSIFIERS[name]
    torch.manual_seed(0)
    net = make().eval()
    x = image(height=size, width=size)
    with torch.no_grad():
        logits = net(x)
        assert torch.equal(logits, net(x))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, K)
    assert sum(p.numel() for p in net.parameters()) <= MAX_PARAMS


def test_alexnet_small_refuses_other_sizes():
    with pytest.raises(ValueError, match="built for 64×64"):
        alexnet_small(num_classes=K, in_size=64)(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("depth", [1, 2, 7, 40])
def test_plain_and_residual_nets_are_the_same_stack_of_depth_layers(depth):
    plain = plain_net(depth=depth, num_classes=K).conv_layers()
    residual = resnet_small(depth=depth, num_classes=K).conv_layers()
    assert len(plain) == len(residual) == depth
    assert [c.weight.shape for _, c in plain] == [c.weight.shape for _, c in residual]
    assert [name for name, _ in plain] == [name for name, _ in residual]


def first_and_per_layer_grad_norms(builder, depth=40):
    torch.manual_seed(0)
    net = builder(depth=depth, width=8, num_classes=K).train()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, K, (8,), generator=torch.Generator().manual_seed(2))
    F.cross_entropy(net(x), y).backward()
    return torch.stack([conv.weight.grad.norm() for _, conv in net.conv_layers()])


def test_shortcuts_keep_gradient_norms_even_through_depth():
    # With batch norm the 40-layer plain net's gradients do not vanish at initialisation: they
    # grow towards the input (Yang et al. 2019), over two orders of magnitude, and are mostly
    # noise. Identity shortcuts keep the per-layer norms within a factor of about 20
    # (He et al. 2016 also saw healthy gradient norms in plain BN nets: the trouble is
    # optimisation, not vanishing).
    plain = first_and_per_layer_grad_norms(plain_net)
    residual = first_and_per_layer_grad_norms(resnet_small)
    assert plain.max() / plain.min() > 100
    assert residual.max() / residual.min() < 50
    assert plain[0] > residual[0]
