"""FCN-32s, FCN-16s and FCN-8s: a classifier made fully convolutional, with skip layers.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from seg.models._blocks import check_divisible, init_weights, vgg_encoder, vgg_widths

__all__ = ["FCN", "fcn32s", "fcn16s", "fcn8s", "bilinear_kernel"]


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights that make a transposed convolution upsample each channel bilinearly.

    The kernel is the outer product of a triangle (tent) with itself, placed on the diagonal
    so channel c only feeds channel c; FCN initialises its in-network upsampling this way.
    With `kernel_size = 2 * factor`, stride `factor` and padding `factor // 2`, the
    transposed convolution equals `F.interpolate(..., mode="bilinear", align_corners=False)`
    away from the border.

    Args:
        channels: input = output channels.
        kernel_size: side of the kernel (4 for 2× upsampling).

    Returns:
        Tensor (channels, channels, kernel_size, kernel_size) for `nn.ConvTranspose2d.weight`.

    Example:
        >>> bilinear_kernel(1, 4)[0, 0, 0]
        tensor([0.0625, 0.1875, 0.1875, 0.0625])
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor  # (k,)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)  # (C, C, k, k)
    diagonal = torch.arange(channels)
    weight[diagonal, diagonal] = taps[:, None] * taps[None, :]  # (k, k) on each (c, c)
    return weight


def _upsample2x(channels: int) -> nn.ConvTranspose2d:
    # FCN's learned 2× upsampling ("upscore2"), started as bilinear interpolation.
    layer = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, 4))
    return layer


def _zero_score(in_channels: int, num_classes: int) -> nn.Conv2d:
    # FCN zero-initialises the skip scores so a fresh FCN-16s/8s starts out predicting exactly
    # what its coarser parent predicts, and learns the finer corrections from there.
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class FCN(nn.Module):
    """A fully convolutional network: VGG-style encoder, fc layers as convolutions, skips.

    FCN takes an image classifier and replaces its fully-connected layers by convolutions
    (fc6 and fc7 become convolutions over the pool5 map, fc8 a 1×1 "score" layer), so the
    network outputs a coarse map of class scores, one per 32×32 block of the image, instead of
    one vector. Upsampled ×32, that map is FCN-32s: right about *what*, vague about *where*.
    FCN-16s adds a 1×1 score layer on pool4 (stride 16) and sums it with the stride-32 scores
    upsampled ×2; FCN-8s does it once more with pool3 (stride 8). Each skip brings back
    finer *where* from a shallower layer; the final map is upsampled to the input.

    SegLab's version keeps the topology with small widths and batch norm (it is trained from
    scratch on synthetic street scenes, not fine-tuned from ImageNet):

    * fc6 is a 3×3 convolution rather than VGG's 7×7. VGG's is 7×7 because pool5 of a 224 px
      image is 7×7; at SegLab's 128–256 px pool5 is 4×4–8×8, so most of a 7×7 kernel would
      multiply padding, and its 49 weights per channel pair would take the parameter budget
      that lets fc6/fc7 stay wider than pool5 (as VGG's 4096 > 512). Dropout (0.5) follows
      fc6 and fc7 as in VGG.
    * The 2× upsamplings inside the skips are transposed convolutions initialised to bilinear
      interpolation and learned, as in the paper. The final ×32/×16/×8 upsampling is fixed
      bilinear interpolation: the paper's reference nets freeze it too (learning it brought
      nothing), and a learned 64×64 transposed convolution would cost classes² × 4096 weights.
    * Instead of padding the input by 100 px and cropping (the paper's trick for any size),
      the input must divide by 32 (`size_divisor`); `seg.models.Segmenter` pads it.

    Parameter names are the same in all three variants, so FCN-16s can start from FCN-32s
    weights with `load_state_dict(..., strict=False)`, the paper's staged training.

    Args:
        variant: 32, 16 or 8, the stride of the finest scores used.
        num_classes: number of classes.
        width: channels of the first encoder stage; stages have (1, 2, 4, 6, 8) × width.

    Returns (forward): dict with
        "out": logits (N, num_classes, H, W);
        "score_pool5": stride-32 scores (N, num_classes, H/32, W/32);
        "score_pool4": (16s, 8s) fused stride-16 scores (N, num_classes, H/16, W/16);
        "score_pool3": (8s) fused stride-8 scores (N, num_classes, H/8, W/8).

    Example:
        >>> net = FCN(8).eval()
        >>> outputs = net(torch.zeros(1, 3, 64, 96))
        >>> outputs["out"].shape, outputs["score_pool3"].shape
        (torch.Size([1, 8, 64, 96]), torch.Size([1, 8, 8, 12]))
    """

    size_divisor = 32

    def __init__(self, variant: int = 8, *, num_classes: int = 8, width: int = 16):
        super().__init__()
        if variant not in (32, 16, 8):
            raise ValueError(f"FCN variant must be 32, 16 or 8, got {variant}")
        self.variant = variant
        widths = vgg_widths(width)
        fc_channels = 2 * widths[-1]
        self.encoder = vgg_encoder(widths, [nn.MaxPool2d(2, 2) for _ in widths])
        self.fc = nn.Sequential(OrderedDict(
            fc6=nn.Conv2d(widths[-1], fc_channels, 3, padding=1),
            relu6=nn.ReLU(inplace=True), drop6=nn.Dropout(0.5),
            fc7=nn.Conv2d(fc_channels, fc_channels, 1),
            relu7=nn.ReLU(inplace=True), drop7=nn.Dropout(0.5),
        ))
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        init_weights(self)
        if variant <= 16:
            self.upscore2 = _upsample2x(num_classes)
            self.score_pool4 = _zero_score(widths[3], num_classes)
        if variant == 8:
            self.upscore_pool4 = _upsample2x(num_classes)
            self.score_pool3 = _zero_score(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_divisible(x.shape[-2:], self.size_divisor)
        size = x.shape[-2:]
        pools = []
        for stage in self.encoder:
            x = stage(x)  # (N, C_i, H / 2^i, W / 2^i)
            pools.append(x)
        pool3, pool4, pool5 = pools[2:]  # strides 8, 16, 32
        score = self.score_fr(self.fc(pool5))  # (N, K, H/32, W/32)
        outputs = {"score_pool5": score}
        if self.variant <= 16:
            score = self.upscore2(score) + self.score_pool4(pool4)  # (N, K, H/16, W/16)
            outputs["score_pool4"] = score
        if self.variant == 8:
            score = self.upscore_pool4(score) + self.score_pool3(pool3)  # (N, K, H/8, W/8)
            outputs["score_pool3"] = score
        out = F.interpolate(score, size=size, mode="bilinear", align_corners=False)  # (N, K, H, W)
        return {"out": out, **outputs}


def fcn32s(*, num_classes: int = 8, width: int = 16) -> FCN:
    """FCN-32s: stride-32 scores upsampled ×32 (no skips). See `FCN`.

    Args:
        num_classes: number of classes.
        width: channels of the first encoder stage.

    Example:
        >>> fcn32s()(torch.zeros(1, 3, 64, 64))["out"].shape
        torch.Size([1, 8, 64, 64])
    """
    return FCN(32, num_classes=num_classes, width=width)


def fcn16s(*, num_classes: int = 8, width: int = 16) -> FCN:
    """FCN-16s: FCN-32s plus a skip from pool4 at stride 16. See `FCN`.

    Args:
        num_classes: number of classes.
        width: channels of the first encoder stage.

    Example:
        >>> fcn16s()(torch.zeros(1, 3, 64, 64))["score_pool4"].shape
        torch.Size([1, 8, 4, 4])
    """
    return FCN(16, num_classes=num_classes, width=width)


def fcn8s(*, num_classes: int = 8, width: int = 16) -> FCN:
    """FCN-8s: FCN-16s plus a skip from pool3 at stride 8. See `FCN`.

    Args:
        num_classes: number of classes.
        width: channels of the first encoder stage.

    Example:
        >>> fcn8s()(torch.zeros(1, 3, 64, 64))["score_pool3"].shape
        torch.Size([1, 8, 8, 8])
    """
    return FCN(8, num_classes=num_classes, width=width)
