"""Small image classifiers that lessons train live: AlexNet's pattern, and plain vs residual.

Segmentation networks are classifiers made fully convolutional, so two classification results
are worth seeing happen on a student's own CPU in a minute:

* AlexNet (Krizhevsky, Sutskever & Hinton, 2012) trained several times faster with ReLUs than
  with saturating tanh units (their Figure 1). `alexnet_small` keeps AlexNet's layer pattern on
  32–64 px crops so the race between activations can be rerun live.
* Deeper plain networks train *worse* than shallower ones, and identity shortcuts fix it
  (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning"). `plain_net` and `resnet_small` build
  the same stack of 3×3 conv-BN-ReLU layers with and without shortcuts, and `conv_layers()`
  names the layers in depth order so a lesson can plot the gradient norm of each.

All three return logits (N, num_classes), not a dict: they are classifiers, not segmenters.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from seg.models._blocks import conv_bn_relu, init_weights

__all__ = ["AlexNetSmall", "StackedConvNet", "alexnet_small", "plain_net", "resnet_small"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _pool_side(side: int) -> int:
    # AlexNet's overlapping max-pool: 3×3 windows, stride 2, no padding.
    return (side - 3) // 2 + 1


class AlexNetSmall(nn.Module):
    """AlexNet's layer pattern at a small scale, for 32–64 px crops.

    AlexNet has five convolutions and three fully-connected layers. The first convolution is
    large and strided (11×11, stride 4 on 224 px; here 5×5, stride 2, a similar share of a 64 px
    crop); overlapping 3×3/2 max-pools follow conv1, conv2 and conv5; local response
    normalisation (optional here) follows the activations of conv1 and conv2; dropout guards the
    first two fully-connected layers. There is no batch normalisation (it came three years
    later), so the choice of activation matters as it did in 2012: ReLUs do not saturate, tanh
    and sigmoid do, and their gradients shrink layer after layer.

    Args:
        num_classes: number of classes.
        activation: "relu", "tanh" or "sigmoid", used after every layer but the last.
        dropout: dropout probability before fc6 and fc7.
        in_size: side of the square inputs (at least 32); the fully-connected layers are sized
            for it.
        lrn: use AlexNet's local response normalisation after conv1 and conv2.

    Example:
        >>> net = AlexNetSmall(num_classes=8, activation="tanh", in_size=32)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 8])
    """

    widths = (24, 64, 96, 96, 64)
    hidden = 256

    def __init__(self, num_classes: int, activation: str = "relu", dropout: float = 0.5,
                 in_size: int = 64, lrn: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if in_size < 32:
            raise ValueError(f"in_size must be at least 32 (three 3×3/2 pools), got {in_size}")
        self.in_size = in_size
        act = ACTIVATIONS[activation]
        c1, c2, c3, c4, c5 = self.widths

        def norm() -> nn.Module:
            # AlexNet's constants: n=5 neighbouring channels, k=2, alpha=1e-4, beta=0.75.
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0) if lrn else nn.Identity()

        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, c1, 5, stride=2, padding=2), act1=act(), norm1=norm(),
            pool1=nn.MaxPool2d(3, 2),
            conv2=nn.Conv2d(c1, c2, 5, padding=2), act2=act(), norm2=norm(),
            pool2=nn.MaxPool2d(3, 2),
            conv3=nn.Conv2d(c2, c3, 3, padding=1), act3=act(),
            conv4=nn.Conv2d(c3, c4, 3, padding=1), act4=act(),
            conv5=nn.Conv2d(c4, c5, 3, padding=1), act5=act(),
            pool5=nn.MaxPool2d(3, 2),
        ))
        # conv1 halves the side (stride 2, "same" padding), then three pools shrink it.
        side = _pool_side(_pool_side(_pool_side((in_size + 1) // 2)))
        self.classifier = nn.Sequential(OrderedDict(
            drop6=nn.Dropout(dropout), fc6=nn.Linear(c5 * side * side, self.hidden), act6=act(),
            drop7=nn.Dropout(dropout), fc7=nn.Linear(self.hidden, self.hidden), act7=act(),
            fc8=nn.Linear(self.hidden, num_classes),
        ))
        init_weights(self, nonlinearity=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(f"this AlexNet was built for {self.in_size}×{self.in_size} inputs "
                             f"(its fully-connected layers have a fixed size); got "
                             f"{x.shape[-2]}×{x.shape[-1]}: resize or crop first")
        x = self.features(x)  # (N, C5, s, s)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


class _Block(nn.Module):
    """One or two 3×3 conv-BN layers and, in a residual network, the shortcut around them.

    Plain:    y = ReLU(F(x)).          Residual: y = ReLU(F(x) + shortcut(x)).
    F is conv-BN-ReLU-conv-BN (or a single conv-BN); the last ReLU comes after the addition as
    in He et al. The shortcut is the identity when F keeps the shape. When F halves the
    resolution or changes the width, x cannot be added as it is, so the shortcut is a strided
    1×1 convolution + BN (He et al.'s "projection shortcut", option B).
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, num_convs: int,
                 residual: bool):
        super().__init__()
        layers = [conv_bn_relu(in_channels, out_channels, stride=stride, relu=num_convs == 2)]
        if num_convs == 2:
            layers.append(conv_bn_relu(out_channels, out_channels, relu=False))
        self.body = nn.Sequential(*layers)
        self.shortcut = None
        if residual:
            same_shape = stride == 1 and in_channels == out_channels
            self.shortcut = nn.Identity() if same_shape else conv_bn_relu(
                in_channels, out_channels, kernel_size=1, stride=stride, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)  # (N, C_out, H / stride, W / stride)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.relu(y)


class StackedConvNet(nn.Module):
    """A stack of `depth` 3×3 conv-BN-ReLU layers, with or without identity shortcuts.

    The layout is He et al.'s CIFAR network: a first convolution, then blocks of two
    convolutions in three stages of width `width`, `2 * width`, `4 * width` (the first block
    of stages 2 and 3 has stride 2), global average pooling and a linear classifier. With
    `residual=True` every block computes y = F(x) + x, so the gradient reaching layer 1 is the
    sum of a path through every F and a path that skips them all; without shortcuts it must go
    through all `depth` layers. When `depth - 1` is odd the last block has a single
    convolution (its shortcut is still the identity: the shape does not change).

    Args:
        depth: number of 3×3 convolutions (≥ 1).
        width: channels of the first stage.
        num_classes: number of classes.
        residual: add the shortcuts.

    Example:
        >>> net = StackedConvNet(depth=8, width=8, num_classes=4, residual=True)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4])
        >>> len(net.conv_layers())
        8
    """

    def __init__(self, depth: int, width: int = 16, num_classes: int = 8, *, residual: bool):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth counts 3×3 convolutions and must be at least 1, got {depth}")
        self.depth, self.residual = depth, residual
        self.stem = conv_bn_relu(3, width)
        convs_per_block = [2] * ((depth - 1) // 2) + [1] * ((depth - 1) % 2)
        blocks, in_channels = [], width
        num_stages = min(3, len(convs_per_block))
        for stage in range(num_stages):
            # Spread the blocks over the stages as evenly as possible, earlier stages first.
            start = stage * len(convs_per_block) // num_stages
            stop = (stage + 1) * len(convs_per_block) // num_stages
            out_channels = width * 2 ** stage
            for i, num_convs in enumerate(convs_per_block[start:stop]):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_Block(in_channels, out_channels, stride=stride,
                                     num_convs=num_convs, residual=residual))
                in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def conv_layers(self) -> list[tuple[str, nn.Conv2d]]:
        """The `depth` 3×3 convolutions as (qualified name, module), first layer first.

        Shortcut projections (1×1) are left out: they are not layers of the stack. Use it to
        read per-layer gradient norms, e.g. `[c.weight.grad.norm() for _, c in net.conv_layers()]`.
        """
        return [(name, m) for name, m in self.named_modules()
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))  # (N, C, H / s, W / s)
        x = x.mean(dim=(2, 3))  # (N, C) global average pooling
        return self.head(x)  # (N, num_classes)


def alexnet_small(*, num_classes: int = 8, activation: str = "relu", dropout: float = 0.5,
                  in_size: int = 64, lrn: bool = False) -> AlexNetSmall:
    """AlexNet's pattern (5 conv + 3 FC) for small crops; see `AlexNetSmall`.

    Args:
        num_classes: number of classes.
        activation: "relu", "tanh" or "sigmoid".
        dropout: dropout probability before fc6 and fc7.
        in_size: side of the square inputs (≥ 32).
        lrn: local response normalisation after conv1 and conv2.

    Example:
        >>> alexnet_small(num_classes=8, in_size=64)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 8])
    """
    return AlexNetSmall(num_classes, activation, dropout, in_size, lrn)


def plain_net(*, depth: int, width: int = 16, num_classes: int = 8) -> StackedConvNet:
    """`depth` 3×3 conv-BN-ReLU layers without shortcuts; see `StackedConvNet`.

    Args:
        depth: number of 3×3 convolutions.
        width: channels of the first stage.
        num_classes: number of classes.

    Example:
        >>> plain_net(depth=20, num_classes=8)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 8])
    """
    return StackedConvNet(depth, width, num_classes, residual=False)


def resnet_small(*, depth: int, width: int = 16, num_classes: int = 8) -> StackedConvNet:
    """The same `depth` layers as `plain_net` with identity shortcuts; see `StackedConvNet`.

    Args:
        depth: number of 3×3 convolutions.
        width: channels of the first stage.
        num_classes: number of classes.

    Example:
        >>> resnet_small(depth=20, num_classes=8)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 8])
    """
    return StackedConvNet(depth, width, num_classes, residual=True)
