"""ReNet: recurrent sweeps over an image instead of convolutions.

Visin, Kastner, Cho, Matteucci, Courville & Bengio, "ReNet: A Recurrent Neural Network Based
Alternative to Convolutional Networks", 2015; used for segmentation in ReSeg (Visin et al. 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seg.models._blocks import check_divisible, init_weights

__all__ = ["ReNet", "ReNetLayer", "bidirectional_sweep", "renet"]


def bidirectional_sweep(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """Run a bidirectional GRU down and up every column of a feature map.

    Each column of `x` is one sequence read top to bottom (and, by the backward direction,
    bottom to top); all N × W columns go through the GRU together as one batch. The output at
    row i holds the state of the downward pass after rows 0..i (first half of the channels) and
    of the upward pass after rows i..H-1 (second half). For a horizontal sweep, transpose H and W
    before and after.

    Args:
        gru: `nn.GRU(C, hidden, batch_first=True, bidirectional=True)`.
        x: (N, C, H, W).

    Returns:
        (N, 2 * hidden, H, W).

    Example:
        >>> gru = nn.GRU(3, 4, batch_first=True, bidirectional=True)
        >>> bidirectional_sweep(gru, torch.zeros(2, 3, 5, 6)).shape
        torch.Size([2, 8, 5, 6])
    """
    n, c, h, w = x.shape
    columns = x.permute(0, 3, 2, 1).reshape(n * w, h, c)  # (N*W, H, C): one sequence per column
    states, _ = gru(columns)  # (N*W, H, 2*hidden)
    return states.reshape(n, w, h, -1).permute(0, 3, 2, 1)  # (N, 2*hidden, H, W)


class ReNetLayer(nn.Module):
    """One ReNet layer: patches, then a vertical and a horizontal bidirectional sweep.

    The input is cut into non-overlapping p×p patches, each flattened into one vector (the
    layer's "pixels"). A bidirectional RNN sweeps every column of patches top→bottom and
    bottom→top; its two states are concatenated. A second bidirectional RNN sweeps every row of
    that map left→right and right→left. After the two sweeps each output position has seen the
    whole input: its row through the horizontal sweep, and every column through the vertical
    one. Convolutions need many layers for such a receptive field.

    Args:
        in_channels: channels of the input.
        hidden: GRU state size per direction; the output has 2 * hidden channels.
        patch_size: side p of the patches (the layer's stride).

    Example:
        >>> layer = ReNetLayer(3, 8, patch_size=4)
        >>> vertical, horizontal = layer(torch.zeros(1, 3, 16, 24))
        >>> horizontal.shape
        torch.Size([1, 16, 4, 6])
    """

    def __init__(self, in_channels: int, hidden: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.vertical = nn.GRU(in_channels * patch_size ** 2, hidden, batch_first=True,
                               bidirectional=True)
        self.horizontal = nn.GRU(2 * hidden, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = F.pixel_unshuffle(x, self.patch_size)  # (N, C*p*p, H/p, W/p)
        vertical = bidirectional_sweep(self.vertical, patches)  # (N, 2h, H/p, W/p)
        rows = vertical.transpose(2, 3)  # (N, 2h, W/p, H/p): rows become columns
        horizontal = bidirectional_sweep(self.horizontal, rows).transpose(2, 3)  # (N, 2h, H/p, W/p)
        return vertical, horizontal


class ReNet(nn.Module):
    """A segmenter built from two ReNet layers, a 1×1 classifier and bilinear upsampling.

    Two ReNet layers are stacked (patches of `patch_size`, then 2×2), as ReSeg does on top of
    its feature extractor; here they read the normalised image directly, so every feature is
    learned by recurrent sweeps. A 1×1 convolution turns the last layer's states into class
    scores, upsampled to the input by fixed bilinear interpolation (ReSeg learns transposed
    convolutions; a fixed upsampler keeps the lesson on the sweeps and the model small).

    Args:
        num_classes: number of classes.
        patch_size: patch side of the first layer; the second layer uses 2.
        hidden: GRU state size per direction in both layers.

    Returns (forward): dict with
        "out": logits (N, num_classes, H, W);
        "vertical": first layer's vertical sweep, (N, 2*hidden, H/p, W/p);
        "horizontal": first layer's horizontal sweep, (N, 2*hidden, H/p, W/p).

    Example:
        >>> net = ReNet().eval()
        >>> outputs = net(torch.zeros(1, 3, 64, 96))
        >>> outputs["out"].shape, outputs["horizontal"].shape
        (torch.Size([1, 8, 64, 96]), torch.Size([1, 128, 16, 24]))
    """

    def __init__(self, num_classes: int = 8, patch_size: int = 4, hidden: int = 64):
        super().__init__()
        self.layer1 = ReNetLayer(3, hidden, patch_size)
        self.layer2 = ReNetLayer(2 * hidden, hidden, 2)
        self.classifier = nn.Conv2d(2 * hidden, num_classes, 1)
        self.size_divisor = patch_size * 2
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_divisible(x.shape[-2:], self.size_divisor)
        vertical, horizontal = self.layer1(x)  # (N, 2h, H/p, W/p) each
        _, features = self.layer2(horizontal)  # (N, 2h, H/2p, W/2p)
        scores = self.classifier(features)  # (N, K, H/2p, W/2p)
        out = F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"out": out, "vertical": vertical, "horizontal": horizontal}  # out: (N, K, H, W)

    def sweeps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The first layer's four directional state maps: "down", "up", "right", "left".

        "down" at a patch is the state of the top→bottom pass after reaching it (it has seen
        the patches above it in its column), "up" the bottom→top one; "right" and "left" are
        the left→right and right→left passes of the horizontal sweep, which read the vertical
        states and so have seen whole columns.

        Args:
            x: (N, 3, H, W), H and W divisible by `size_divisor`.

        Returns:
            dict of four (N, hidden, H/p, W/p) maps.

        Example:
            >>> maps = ReNet(hidden=8).sweeps(torch.zeros(1, 3, 32, 32))
            >>> list(maps), maps["down"].shape
            (['down', 'up', 'right', 'left'], torch.Size([1, 8, 8, 8]))
        """
        check_divisible(x.shape[-2:], self.size_divisor)
        vertical, horizontal = self.layer1(x)  # (N, 2h, H/p, W/p) each
        down, up = vertical.chunk(2, dim=1)  # GRU output: [forward, backward] states
        right, left = horizontal.chunk(2, dim=1)
        return {"down": down, "up": up, "right": right, "left": left}


def renet(*, num_classes: int = 8, patch_size: int = 4, hidden: int = 64) -> ReNet:
    """A two-layer ReNet segmenter (patches p, then 2). See `ReNet`.

    Args:
        num_classes: number of classes.
        patch_size: patch side of the first layer.
        hidden: GRU state size per direction.

    Example:
        >>> renet()(torch.zeros(1, 3, 64, 64))["out"].shape
        torch.Size([1, 8, 64, 64])
    """
    return ReNet(num_classes=num_classes, patch_size=patch_size, hidden=hidden)
