"""DeepLab v1 LargeFOV: atrous (dilated) convolutions keep the scores at output stride 8.

Chen, Papandreou, Kokkinos, Murphy & Yuille, "Semantic Image Segmentation with Deep
Convolutional Nets and Fully Connected CRFs", ICLR 2015.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from seg.models._blocks import check_divisible, init_weights, vgg_encoder, vgg_widths

__all__ = ["DeepLabV1", "deeplab_v1_largefov"]

OUTPUT_STRIDES = (8, 16, 32)


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    # Same weights, taps spread `dilation` pixels apart; padding = dilation keeps a 3×3
    # convolution's output the size of its input.
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation, dilation)


class DeepLabV1(nn.Module):
    """DeepLab-LargeFOV: a VGG-style network that stops downsampling at stride 8.

    FCN's scores are coarse because VGG pools five times (stride 32). DeepLab removes the
    subsampling of the last two pools (pool4 and pool5 become 3×3 max pools with stride 1) and
    keeps every later filter seeing the same image extent by spreading its taps apart
    ("atrous" or dilated convolution, the *algorithme à trous*): conv5's 3×3 kernels get
    dilation 2, and fc6 becomes a 3×3 convolution with dilation 12 (LargeFOV: a large field of
    view from only 9 weights per channel pair). fc7 (1×1) and fc8 (the 1×1 scores) follow. The
    scores come out at stride 8 and are upsampled to the image by fixed bilinear interpolation:
    nothing is learned after fc8. DeepLab v1 then sharpens them with a fully-connected CRF
    (`seg.crf.dense_crf`).

    Two run-time switches make the lesson's points on one trained network:
    `set_fc6_dilation(r)` changes fc6's field of view without touching its weights, and
    `set_output_stride(os)` turns the stride-1 pools back into stride-2 ones (8 → 16 → 32),
    shrinking the dilations to match, to show what the atrous trick bought.

    SegLab's version keeps the topology with small widths, batch norm after the VGG
    convolutions, and fc6/fc7 twice as wide as conv5 (the paper: 1024 vs 512).

    Args:
        num_classes: number of classes.
        width: channels of the first stage; stages have (1, 2, 4, 6, 8) × width.
        fc6_dilation: fc6's dilation at output stride 8 (12 for LargeFOV).

    Returns (forward): dict with
        "out": logits (N, num_classes, H, W);
        "scores": fc8's logits at the output stride, (N, num_classes, H/os, W/os).

    Example:
        >>> net = DeepLabV1().eval()
        >>> net(torch.zeros(1, 3, 64, 96))["scores"].shape
        torch.Size([1, 8, 8, 12])
        >>> net.set_output_stride(32)
        >>> net(torch.zeros(1, 3, 64, 96))["scores"].shape
        torch.Size([1, 8, 2, 3])
    """

    def __init__(self, num_classes: int = 8, width: int = 16, fc6_dilation: int = 12):
        super().__init__()
        widths = vgg_widths(width)
        fc_channels = 2 * widths[-1]
        # DeepLab's pools are 3×3 with padding 1 (overlapping); pool4 and pool5 get their
        # stride from set_output_stride below.
        pools = [nn.MaxPool2d(3, stride=2, padding=1) for _ in widths]
        self.encoder = vgg_encoder(widths, pools)
        self.fc = nn.Sequential(OrderedDict(
            fc6=nn.Conv2d(widths[-1], fc_channels, 3),
            relu6=nn.ReLU(inplace=True), drop6=nn.Dropout(0.5),
            fc7=nn.Conv2d(fc_channels, fc_channels, 1),
            relu7=nn.ReLU(inplace=True), drop7=nn.Dropout(0.5),
        ))
        self.fc8 = nn.Conv2d(fc_channels, num_classes, 1)
        init_weights(self)
        self.fc6_dilation = fc6_dilation
        self.set_output_stride(8)

    @property
    def output_stride(self) -> int:
        """Input pixels per score pixel: 8 (DeepLab), 16 or 32 (VGG/FCN-32s)."""
        return self._output_stride

    @property
    def size_divisor(self) -> int:
        """H and W must divide by the output stride so the scores tile the image exactly."""
        return self._output_stride

    def set_fc6_dilation(self, dilation: int) -> None:
        """Change fc6's dilation (its field of view) keeping its 3×3 weights.

        `dilation` is the rate at output stride 8 (the paper's 12 for LargeFOV, 4 for a
        smaller field of view); at output stride 16 or 32 fc6 uses a half or a quarter of it.

        Args:
            dilation: a positive integer.

        Example:
            >>> net = DeepLabV1()
            >>> net.set_fc6_dilation(4)
            >>> net.fc.fc6.dilation
            (4, 4)
        """
        if dilation < 1:
            raise ValueError(f"fc6 dilation must be a positive integer, got {dilation}")
        self.fc6_dilation = int(dilation)
        _set_dilation(self.fc.fc6, max(1, self.fc6_dilation * 8 // self._output_stride))

    def set_output_stride(self, output_stride: int) -> None:
        """Make pool4/pool5 stride 1 or 2 and set the later dilations to match.

        Dilation compensates for a pool whose stride was removed: a layer that runs k times
        more densely spreads its taps k times further so it still sees the same image extent.

            output stride | pool4 | pool5 | conv5 dilation | fc6 dilation
            8  (DeepLab)  |   1   |   1   |       2        |  r
            16            |   2   |   1   |       1        |  r / 2
            32 (VGG, FCN) |   2   |   2   |       1        |  r / 4 (at least 1)

        The weights do not change, so a network trained at stride 8 also runs at 16 and 32:
        same receptive fields, coarser scores.

        Args:
            output_stride: 8, 16 or 32.

        Example:
            >>> net = DeepLabV1()
            >>> net.set_output_stride(16)
            >>> net.size_divisor, net.fc.fc6.dilation
            (16, (6, 6))
        """
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        self._output_stride = output_stride
        self.encoder[3].pool.stride = 1 if output_stride == 8 else 2
        self.encoder[4].pool.stride = 2 if output_stride == 32 else 1
        for layer in self.encoder[4].convs:
            _set_dilation(layer.conv, 2 if output_stride == 8 else 1)
        self.set_fc6_dilation(self.fc6_dilation)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_divisible(x.shape[-2:], self.size_divisor)
        size = x.shape[-2:]
        for stage in self.encoder:
            x = stage(x)  # strides 2, 4, 8, then 8 or 16 or 32 as set
        scores = self.fc8(self.fc(x))  # (N, K, H/os, W/os)
        out = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)  # (N, K, H, W)
        return {"out": out, "scores": scores}


def deeplab_v1_largefov(*, num_classes: int = 8, width: int = 16,
                        fc6_dilation: int = 12) -> DeepLabV1:
    """DeepLab v1 LargeFOV at output stride 8 (fc6: 3×3, dilation 12). See `DeepLabV1`.

    Args:
        num_classes: number of classes.
        width: channels of the first stage.
        fc6_dilation: fc6's dilation at output stride 8.

    Example:
        >>> deeplab_v1_largefov()(torch.zeros(1, 3, 64, 64))["out"].shape
        torch.Size([1, 8, 64, 64])
    """
    return DeepLabV1(num_classes=num_classes, width=width, fc6_dilation=fc6_dilation)
