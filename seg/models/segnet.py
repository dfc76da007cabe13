"""SegNet: an encoder-decoder whose decoder upsamples with the encoder's max-pooling indices.

Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture
for Image Segmentation", IEEE TPAMI 2017.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seg.models._blocks import (VGG16_CONVS, check_divisible, conv_stack, init_weights,
                                vgg_encoder, vgg_widths)

__all__ = ["SegNet", "segnet", "unpool_with_indices"]

_INDEX_BYTES = torch.int64.itemsize  # PyTorch keeps pooling indices as int64
_FLOAT_BYTES = torch.float32.itemsize


def unpool_with_indices(x: torch.Tensor, indices: torch.Tensor,
                        output_size: tuple[int, int]) -> torch.Tensor:
    """SegNet's upsampling: put each value back where its max came from, zeros elsewhere.

    During 2×2 max pooling the encoder remembers, for every output, which of the four inputs
    was the maximum (`indices`, flat positions in the H×W plane). Unpooling writes each value
    of `x` at that position of an (H, W) map of zeros: the upsampled map is sparse (one non-zero
    per 2×2 window) and the decoder's convolutions that follow densify it. Boundaries stay where
    the encoder saw them, at the cost of storing positions rather than whole feature maps.

    Args:
        x: (N, C, h, w) values to place.
        indices: (N, C, h, w) int64 positions from `nn.MaxPool2d(2, 2, return_indices=True)`.
        output_size: (H, W) of the map before pooling.

    Returns:
        (N, C, H, W) sparse map.

    Example:
        >>> pool = nn.MaxPool2d(2, 2, return_indices=True)
        >>> x = torch.tensor([[[[1., 2.], [3., 4.]]]])
        >>> pooled, indices = pool(x)
        >>> unpool_with_indices(pooled, indices, (2, 2))
        tensor([[[[0., 0.],
                  [0., 4.]]]])
    """
    return F.max_unpool2d(x, indices, kernel_size=2, stride=2, output_size=output_size)


class SegNet(nn.Module):
    """SegNet: VGG-16's 13 convolutions as encoder, a mirrored decoder, pooling indices between.

    The encoder is VGG-16's five conv stages, each ending in a 2×2 max pool that also returns
    the position of every maximum. The decoder mirrors it: each stage first *unpools* with the
    indices of its encoder twin (`unpool_with_indices`: values back at their argmax, zeros
    elsewhere), then convolves the sparse map into a dense one; its last convolution narrows to
    the width of the next (shallower) stage. A 1×1 convolution gives the class scores. Only the
    indices cross from encoder to decoder: no transposed convolutions to learn and no feature
    maps kept for skips, which is the paper's point about memory (see `decoder_memory`).
    SegLab's version keeps the topology (5 + 5 stages, batch norm after every convolution as in
    the paper) with small widths.

    Args:
        num_classes: number of classes.
        width: channels of the first stage; stages have (1, 2, 4, 6, 8) × width. The decoder
            doubles the convolutions, hence a smaller default than FCN's.

    Returns (forward): dict with
        "out": logits (N, num_classes, H, W);
        "unpooled_1": the sparse map after the first (deepest) unpooling, (N, C5, H/16, W/16).

    Example:
        >>> net = SegNet().eval()
        >>> outputs = net(torch.zeros(1, 3, 64, 96))
        >>> outputs["out"].shape, outputs["unpooled_1"].shape
        (torch.Size([1, 8, 64, 96]), torch.Size([1, 96, 4, 6]))
    """

    size_divisor = 32

    def __init__(self, num_classes: int = 8, width: int = 12):
        super().__init__()
        self.widths = vgg_widths(width)
        self.encoder = vgg_encoder(self.widths, [nn.MaxPool2d(2, 2, return_indices=True)
                                                 for _ in self.widths])
        # Decoder stage i mirrors encoder stage i (deepest first): same number of convolutions,
        # the last one narrowing to the width of the stage above it.
        decoder = []
        for i in reversed(range(len(self.widths))):
            channels = self.widths[i]
            narrowed = self.widths[max(i - 1, 0)]
            decoder.append(conv_stack([channels] * VGG16_CONVS[i] + [narrowed]))
        self.decoder = nn.ModuleList(decoder)
        self.classifier = nn.Conv2d(self.widths[0], num_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_divisible(x.shape[-2:], self.size_divisor)
        crossings = []  # (indices, size before pooling) of each encoder stage
        for stage in self.encoder:
            features = stage.convs(x)  # (N, C_i, H_i, W_i)
            x, indices = stage.pool(features)  # (N, C_i, H_i / 2, W_i / 2) twice
            crossings.append((indices, features.shape[-2:]))
        unpooled_1 = None
        for stage, (indices, size) in zip(self.decoder, reversed(crossings)):
            x = unpool_with_indices(x, indices, size)  # (N, C_i, H_i, W_i), sparse
            if unpooled_1 is None:
                unpooled_1 = x
            x = stage(x)  # (N, C_{i-1}, H_i, W_i), dense
        return {"out": self.classifier(x), "unpooled_1": unpooled_1}  # out: (N, K, H, W)

    def decoder_memory(self, input_size: tuple[int, int]) -> dict:
        """What the decoder must keep from the encoder for one image, in bytes, per stage.

        SegNet keeps only the max-pooling indices. The paper notes they need 2 bits per 2×2
        window; PyTorch stores them as int64 (8 bytes each), so the saving is only realised
        with a compact encoding. A decoder with skip connections (FCN-like additions, U-Net
        concatenations) into the same stages would keep each encoder feature map before its
        pool, at the decoder stage's resolution, in float32: 4× as many values, 4 bytes each.

        Args:
            input_size: (H, W) of the input, divisible by 32.

        Returns:
            {"stages": [per encoder stage, shallowest first: {"stage", "indices_shape",
            "indices_bytes" (int64 as PyTorch keeps them), "indices_2bit_bytes" (the paper's
            2 bits per window), "feature_shape", "feature_bytes" (float32 pre-pool map)}],
            plus the totals "indices_bytes", "indices_2bit_bytes", "feature_bytes"}.

        Example:
            >>> memory = SegNet().decoder_memory((256, 256))
            >>> memory["feature_bytes"] // memory["indices_2bit_bytes"]
            64
        """
        height, width = input_size
        check_divisible(input_size, self.size_divisor)
        stages = []
        for i, channels in enumerate(self.widths, start=1):
            height, width = height // 2, width // 2
            windows = channels * height * width  # one index per 2×2 window
            stages.append({
                "stage": i,
                "indices_shape": (channels, height, width),
                "indices_bytes": windows * _INDEX_BYTES,
                "indices_2bit_bytes": (windows * 2 + 7) // 8,
                "feature_shape": (channels, 2 * height, 2 * width),
                "feature_bytes": 4 * windows * _FLOAT_BYTES,
            })
        totals = {key: sum(s[key] for s in stages)
                  for key in ("indices_bytes", "indices_2bit_bytes", "feature_bytes")}
        return {"stages": stages, **totals}


def segnet(*, num_classes: int = 8, width: int = 12) -> SegNet:
    """SegNet with a 5-stage VGG-style encoder and an index-unpooling decoder. See `SegNet`.

    Args:
        num_classes: number of classes.
        width: channels of the first stage.

    Example:
        >>> segnet()(torch.zeros(1, 3, 64, 64))["out"].shape
        torch.Size([1, 8, 64, 64])
    """
    return SegNet(num_classes=num_classes, width=width)
