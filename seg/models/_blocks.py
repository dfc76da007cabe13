"""Building blocks shared by SegLab's own networks (private: import from the model files).

Every VGG-style network in SegLab (FCN, SegNet, DeepLab v1) is made of the same parts as VGG-16
(Simonyan & Zisserman, 2015): stages of 3×3 convolutions, each followed by a pool. SegLab adds
batch normalisation after every convolution (as SegNet does) so the small networks train in
minutes on a CPU from a random start instead of from ImageNet weights. The parts live here once
so that the model files read like their papers and differ only where the papers differ.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

#: 3×3 convolutions per stage in VGG-16 (13 in all); SegLab keeps the count, shrinks the widths.
VGG16_CONVS = (2, 2, 3, 3, 3)

#: Widths of the five stages relative to the first; VGG-16 doubles up to 512 (1, 2, 4, 8, 8),
#: SegLab grows more slowly so the deepest, most expensive stages stay within the budget.
VGG_WIDTH_MULTIPLIERS = (1, 2, 4, 6, 8)


def vgg_widths(width: int) -> tuple[int, ...]:
    """Channels of the five VGG-style stages for a first-stage width.

    Args:
        width: channels of the first stage (VGG-16 has 64; SegLab's default is 16).

    Example:
        >>> vgg_widths(16)
        (16, 32, 64, 96, 128)
    """
    if width < 1:
        raise ValueError(f"width must be a positive number of channels, got {width}")
    return tuple(width * m for m in VGG_WIDTH_MULTIPLIERS)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 dilation: int = 1, relu: bool = True) -> nn.Sequential:
    """Convolution → batch norm → ReLU, padded so that stride 1 keeps the spatial size.

    The convolution has no bias because the batch norm right after it adds one. The padding is
    `dilation * (kernel_size // 2)`: a dilated 3×3 kernel spans `2 * dilation + 1` pixels.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel side.
        stride: convolution stride.
        dilation: spacing between kernel taps (atrous rate).
        relu: end with a ReLU; residual blocks leave it out before the addition.

    Example:
        >>> block = conv_bn_relu(3, 8, dilation=2)
        >>> block(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """
    layers = OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                       padding=dilation * (kernel_size // 2), dilation=dilation, bias=False),
        bn=nn.BatchNorm2d(out_channels),
    )
    if relu:
        layers["relu"] = nn.ReLU(inplace=True)
    return nn.Sequential(layers)


def conv_stack(channels: Sequence[int], *, dilation: int = 1) -> nn.Sequential:
    """A run of 3×3 conv-BN-ReLU layers going through the given channel counts.

    `conv_stack([3, 16, 16])` is VGG's first stage: two convolutions, 3 → 16 → 16 channels.
    SegNet's decoder uses it the other way round, e.g. `[128, 128, 96]`, shrinking at the end.

    Args:
        channels: input channels followed by each layer's output channels.
        dilation: atrous rate of every layer in the run.

    Example:
        >>> conv_stack([3, 16, 16])(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """
    return nn.Sequential(*(conv_bn_relu(c_in, c_out, dilation=dilation)
                           for c_in, c_out in zip(channels[:-1], channels[1:])))


def vgg_encoder(widths: Sequence[int], pools: Sequence[nn.Module],
                dilations: Sequence[int] = (1, 1, 1, 1, 1)) -> nn.ModuleList:
    """VGG-16's five stages: each a `conv_stack` (2, 2, 3, 3, 3 layers) followed by a pool.

    Each stage is an `nn.Sequential` with children `convs` and `pool`, so a model can call a
    stage whole (FCN, DeepLab) or call `convs` and `pool` apart to keep the pool's indices
    (SegNet).

    Args:
        widths: channels of the five stages, e.g. `vgg_widths(16)`.
        pools: one pooling module per stage; the models choose kernel, stride and indices.
        dilations: atrous rate of each stage's convolutions (DeepLab dilates stage 5).

    Example:
        >>> encoder = vgg_encoder(vgg_widths(4), [nn.MaxPool2d(2, 2) for _ in range(5)])
        >>> x = torch.zeros(1, 3, 64, 64)
        >>> for stage in encoder:
        ...     x = stage(x)
        >>> x.shape
        torch.Size([1, 32, 2, 2])
    """
    if not len(widths) == len(pools) == len(dilations) == len(VGG16_CONVS):
        raise ValueError("a VGG encoder has five stages: give five widths, pools and dilations")
    stages, in_channels = [], 3
    for out_channels, num_convs, pool, dilation in zip(widths, VGG16_CONVS, pools, dilations):
        convs = conv_stack([in_channels] + [out_channels] * num_convs, dilation=dilation)
        stages.append(nn.Sequential(OrderedDict(convs=convs, pool=pool)))
        in_channels = out_channels
    return nn.ModuleList(stages)


def init_weights(module: nn.Module, nonlinearity: str = "relu") -> None:
    """Kaiming initialisation (He et al., 2015) of every convolution and linear layer.

    Weights are drawn with variance `gain² / fan`, the gain matching the activation that
    follows ("relu", "tanh" or "sigmoid"), so the signal keeps its scale through depth at
    initialisation. Convolutions use the fan-out (the backward pass keeps its scale, as in
    torchvision's ResNet); linear layers the fan-in. Biases start at zero, batch norms at the
    identity. Recurrent layers keep PyTorch's uniform initialisation (their gates are sigmoids
    and tanhs, for which Kaiming's derivation does not hold).

    Args:
        module: the network, initialised in place.
        nonlinearity: the activation used between layers.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        >>> init_weights(net)
        >>> bool((net[1].weight == 1).all())
        True
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=nonlinearity)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def check_divisible(size: torch.Size | Sequence[int], divisor: int) -> None:
    """Raise a `ValueError` that says how to pad if H or W is not a multiple of `divisor`.

    A network that pools five times by 2 needs sides divisible by 32, or the decoder's maps
    stop lining up with the encoder's. `seg.models.Segmenter` pads for you; this message is
    for students calling a module directly.

    Args:
        size: (H, W), e.g. `x.shape[-2:]` of the input batch.
        divisor: the network's `size_divisor`.

    Example:
        >>> check_divisible((200, 300), 32)
        Traceback (most recent call last):
        ...
        ValueError: expected H and W divisible by 32; pad to (224, 320) (got (200, 300))
    """
    h, w = size
    if h % divisor or w % divisor:
        padded = (math.ceil(h / divisor) * divisor, math.ceil(w / divisor) * divisor)
        raise ValueError(f"expected H and W divisible by {divisor}; pad to {padded} "
                         f"(got ({h}, {w}))")
