"""Upsampling inside a network: unpooling with indices, transposed convolution, resizing.

A segmentation decoder has to turn a coarse map back into a fine one. Three ways are compared
in the lessons, each written here so that its numbers can be printed in the cells of a small
grid and checked against PyTorch's own layers:

- **Unpooling with indices** (SegNet): max pooling remembers *where* each maximum was; the
  decoder writes each value back at that position and zeros everywhere else.
- **Transposed convolution** (FCN's learned upsampling): every input value stamps a copy of
  the kernel, scaled by the value, into the output, stride pixels apart from its neighbours'
  stamps. Where stamps overlap they add up. When the kernel size is not a multiple of the
  stride, some output pixels are covered by more stamps than others: the checkerboard
  artefact (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", 2016).
- **Resize, then convolve**: a fixed interpolation (nearest or bilinear) followed by an
  ordinary convolution; every output pixel sees the same number of taps, so there is no
  checkerboard.

The maps here are single-channel 2-D arrays (H, W) unless the function says (N, C, H, W).

    >>> pooled, indices = max_pool_with_indices(torch.arange(16.).view(1, 1, 4, 4))
    >>> unpool(pooled, indices, (4, 4))[0, 0]
    tensor([[ 0.,  0.,  0.,  0.],
            [ 0.,  5.,  0.,  7.],
            [ 0.,  0.,  0.,  0.],
            [ 0., 13.,  0., 15.]])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg.models.segmenter import Segmenter, pad_to_multiple

__all__ = ["NUMERIC_INPUT", "bilinear", "encoder_features", "fcn_skip_memory",
           "max_pool_with_indices", "numeric_example", "overlap_counts", "resize_convolve",
           "transposed_conv", "transposed_upsample", "unpool", "window_positions"]

#: The 4×4 input of the worked example: each 2×2 window has its maximum in a different place.
NUMERIC_INPUT = np.array([[1, 3, 2, 1],
                          [4, 2, 0, 5],
                          [0, 1, 2, 3],
                          [6, 2, 7, 1]], dtype=np.float32)


def max_pool_with_indices(x: torch.Tensor, kernel_size: int = 2) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Non-overlapping max pooling that also returns where each maximum was.

    The map is cut into `kernel_size` × `kernel_size` windows; each window gives its largest
    value and that value's position as a flat index `row * W + col` into the (H, W) plane,
    the convention of `nn.MaxPool2d(return_indices=True)` and of `nn.MaxUnpool2d`. Ties (all
    zeros after a ReLU, for instance) go to the first maximum in reading order, as in PyTorch.

    Args:
        x: (N, C, H, W) with H and W divisible by `kernel_size`.
        kernel_size: window side (= stride).

    Returns:
        pooled (N, C, H/k, W/k) and indices (N, C, H/k, W/k) int64.

    Example:
        >>> pooled, indices = max_pool_with_indices(torch.tensor([[[[1., 2.], [4., 3.]]]]))
        >>> pooled.item(), indices.item()
        (4.0, 2)
    """
    n, c, h, w = x.shape
    k = kernel_size
    if h % k or w % k:
        raise ValueError(f"expected H and W divisible by {k}, got {h}×{w}")
    windows = (x.reshape(n, c, h // k, k, w // k, k)
               .permute(0, 1, 2, 4, 3, 5)
               .reshape(n, c, h // k, w // k, k * k))  # (N, C, h, w, k²) in reading order
    pooled, position = windows.max(dim=-1)  # (N, C, h, w) each; the first maximum wins
    rows = torch.arange(h // k, device=x.device).view(-1, 1) * k + position // k  # (N, C, h, w)
    cols = torch.arange(w // k, device=x.device).view(1, -1) * k + position % k  # (N, C, h, w)
    return pooled, rows * w + cols


def unpool(pooled: torch.Tensor, indices: torch.Tensor,
           output_size: tuple[int, int]) -> torch.Tensor:
    """SegNet's unpooling: each value back at the position of its maximum, zeros elsewhere.

    Args:
        pooled: (N, C, h, w) values.
        indices: (N, C, h, w) flat positions in the (H, W) plane, from
            `max_pool_with_indices` or `nn.MaxPool2d(return_indices=True)`.
        output_size: (H, W) of the map before pooling.

    Returns:
        (N, C, H, W), zero except at the `indices`.

    Example:
        >>> unpool(torch.tensor([[[[4.]]]]), torch.tensor([[[[2]]]]), (2, 2))[0, 0]
        tensor([[0., 0.],
                [4., 0.]])
    """
    n, c = pooled.shape[:2]
    height, width = output_size
    out = pooled.new_zeros(n, c, height * width)  # (N, C, H·W)
    out.scatter_(2, indices.reshape(n, c, -1), pooled.reshape(n, c, -1))
    return out.view(n, c, height, width)


def window_positions(indices: torch.Tensor, width: int, kernel_size: int = 2) -> np.ndarray:
    """Where inside its window each maximum was, numbered in reading order (0 … k²−1).

    For 2×2 windows: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. These are the
    "2 bits per window" that SegNet's decoder needs from its encoder.

    Args:
        indices: (h, w) flat indices from max pooling a map of width `width`.
        width: W of the map that was pooled.
        kernel_size: window side.

    Example:
        >>> window_positions(torch.tensor([[5, 3]]), 4).tolist()
        [[3, 1]]
    """
    index = np.asarray(indices)
    rows, cols = index // width, index % width
    return (rows % kernel_size) * kernel_size + cols % kernel_size


def transposed_conv(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int = 0,
                    output_padding: int = 0) -> np.ndarray:
    """A transposed convolution written as what it does: stamp the kernel, add the overlaps.

    Input pixel (i, j) adds `x[i, j] · kernel` into the output with its top-left corner at
    (i · stride, j · stride); the full output has side (h − 1)·stride + k. `padding` crops
    that many rows and columns from each side and `output_padding` gives back that many at the
    bottom/right, exactly as `nn.ConvTranspose2d`, whose output side is
    (h − 1)·stride − 2·padding + k + output_padding.

    Args:
        x: (h, w) input.
        kernel: (k, k) weights.
        stride: spacing of the stamps (the upsampling factor).
        padding: rows/columns cropped from each side of the full output.
        output_padding: rows/columns given back at the bottom/right (< stride).

    Returns:
        float64 array.

    Example:
        >>> transposed_conv(np.array([[1., 2.]]), np.ones((1, 3)), stride=2)
        array([[1., 1., 3., 2., 2.]])
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    (h, w), (kh, kw) = x.shape, kernel.shape
    if not 0 <= output_padding < stride:
        raise ValueError(f"output_padding must be smaller than the stride ({stride}), "
                         f"got {output_padding}")
    # The full stamped output, plus `output_padding` rows/columns that no stamp reaches.
    full = np.zeros(((h - 1) * stride + kh + output_padding,
                     (w - 1) * stride + kw + output_padding))
    for a in range(kh):  # one shifted, strided copy of x per kernel tap
        for b in range(kw):
            full[a:a + (h - 1) * stride + 1:stride, b:b + (w - 1) * stride + 1:stride] += \
                kernel[a, b] * x
    return full[padding:full.shape[0] - padding, padding:full.shape[1] - padding]


def transposed_upsample(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """A transposed convolution used as an upsampling layer: output exactly `stride` × larger.

    The full stamped output ((h − 1)·s + k per side) is cropped by ⌈(k − s)/2⌉ at the top/left
    and cut to h·s, which is what `nn.ConvTranspose2d(k, stride=s, padding=p,
    output_padding=2p − (k − s))` with p = ⌈(k − s)/2⌉ does (FCN's 4 × 4, stride 2, padding 1 is
    such a layer). A kernel smaller than the stride leaves rows and columns that no stamp
    reaches: zeros.

    Args:
        x: (h, w) input.
        kernel: (k, k) weights.
        stride: upsampling factor s.

    Returns:
        (h · s, w · s) float64.

    Example:
        >>> transposed_upsample(np.array([[1., 2.]]), np.ones((1, 1)), 2)
        array([[1., 0., 2., 0.],
               [0., 0., 0., 0.]])
    """
    x = np.asarray(x, dtype=np.float64)
    (h, w), k = x.shape, len(kernel)
    full = transposed_conv(x, kernel, stride)
    top = max(0, -(-(k - stride) // 2))  # ⌈(k − s) / 2⌉
    out = np.zeros((h * stride, w * stride))
    part = full[top:top + h * stride, top:top + w * stride]
    out[:part.shape[0], :part.shape[1]] = part
    return out


def overlap_counts(size: tuple[int, int], kernel_size: int, stride: int,
                   padding: int = 0) -> np.ndarray:
    """How many kernel stamps of a transposed convolution cover each output pixel.

    It is the transposed convolution of a map of ones with a kernel of ones. Away from the
    border every pixel gets ⌈k/s⌉ or ⌊k/s⌋ stamps per axis: the same number everywhere when
    the stride divides the kernel size, and alternating otherwise, which a learned kernel
    must compensate exactly or the output shows a checkerboard.

    Args:
        size: (h, w) of the input map.
        kernel_size: k.
        stride: s.
        padding: as in `transposed_conv`.

    Returns:
        int64 array ((h − 1)·s − 2·padding + k, (w − 1)·s − 2·padding + k).

    Example:
        >>> overlap_counts((1, 3), 3, 2)[0].tolist()
        [1, 1, 2, 1, 2, 1, 1]
    """
    ones = np.ones(size)
    counts = transposed_conv(ones, np.ones((kernel_size, kernel_size)), stride, padding)
    return np.rint(counts).astype(np.int64)


def bilinear(x: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor (half-pixel centres, as `F.interpolate`).

    Each output pixel is a weighted mean of the 2×2 input pixels around its centre, the
    weights falling linearly with distance: fixed, nothing learned, no checkerboard.

    Args:
        x: (h, w) map.
        factor: upsampling factor.

    Returns:
        (h · factor, w · factor) float64.

    Example:
        >>> bilinear(np.array([[0., 4.]]), 2)
        array([[0., 1., 3., 4.],
               [0., 1., 3., 4.]])
    """
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))[None, None]  # (1, 1, h, w)
    out = F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def resize_convolve(x: np.ndarray, factor: int, kernel: np.ndarray) -> np.ndarray:
    """Resize-convolution: nearest-neighbour upsampling, then an ordinary convolution.

    Odena et al.'s cure for the checkerboard: the upsampling copies each value into a
    factor × factor block, and the convolution that follows (zero padding, same size) gives
    every output pixel the same k × k taps, so no pixel is favoured.

    Args:
        x: (h, w) map.
        factor: upsampling factor.
        kernel: (k, k) weights of the convolution (k odd or even; even kernels pad one more
            row/column at the bottom/right).

    Returns:
        (h · factor, w · factor) float64.

    Example:
        >>> resize_convolve(np.array([[1., 2.]]), 2, np.ones((1, 3)))
        array([[2., 4., 5., 4.],
               [2., 4., 5., 4.]])
    """
    upsampled = np.repeat(np.repeat(np.asarray(x, dtype=np.float64), factor, 0), factor, 1)
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw = kernel.shape
    t = torch.from_numpy(upsampled)[None, None]  # (1, 1, H, W)
    t = F.pad(t, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))  # zeros, "same" size
    return F.conv2d(t, torch.from_numpy(kernel)[None, None])[0, 0].numpy()  # (H, W)


def numeric_example() -> dict[str, np.ndarray]:
    """The worked 4×4 → 2×2 → 4×4 example of the upsampling lesson, every step in numbers.

    `NUMERIC_INPUT` is max pooled (2×2 windows) and brought back to 4×4 in three ways:
    unpooling with the pooling indices, a transposed convolution (3×3 kernel of ones,
    stride 2, padding 1, output padding 1: the size arithmetic of a 2× layer with an odd
    kernel), and bilinear interpolation.

    Returns:
        {"input" (4, 4), "pooled" (2, 2), "indices" (2, 2) flat positions in the 4×4 input,
        "unpooled" (4, 4), "transposed" (4, 4), "overlaps" (4, 4) stamps per output pixel of
        that transposed convolution, "bilinear" (4, 4)}.

    Example:
        >>> numeric_example()["pooled"].tolist()
        [[4.0, 5.0], [6.0, 7.0]]
    """
    x = torch.from_numpy(NUMERIC_INPUT)[None, None]  # (1, 1, 4, 4)
    pooled, indices = max_pool_with_indices(x)  # (1, 1, 2, 2) each
    small = pooled[0, 0].numpy()
    ones = np.ones((3, 3))
    return {
        "input": NUMERIC_INPUT.copy(),
        "pooled": small,
        "indices": indices[0, 0].numpy(),
        "unpooled": unpool(pooled, indices, (4, 4))[0, 0].numpy(),
        "transposed": transposed_conv(small, ones, 2, padding=1, output_padding=1),
        "overlaps": np.rint(transposed_conv(np.ones((2, 2)), ones, 2, padding=1,
                                            output_padding=1)).astype(np.int64),
        "bilinear": bilinear(small, 2),
    }


@torch.inference_mode()
def encoder_features(segmenter: Segmenter, image, stage: int) -> torch.Tensor:
    """The feature map a VGG-style encoder (FCN, SegNet, DeepLab v1) has just before pool `stage`.

    The image is prepared as `Segmenter.predict` prepares it (normalised, downscaled past
    `max_side`, padded to the network's divisor), then run through stages 1 … `stage` − 1 and
    the convolutions of stage `stage`. This is the map that stage's max pooling reduces.

    Args:
        segmenter: a segmenter whose module has a VGG-style `encoder` (5 stages of `convs` +
            `pool`).
        image: PIL image or uint8 (H, W, 3) array.
        stage: 1 … 5.

    Returns:
        (C, H / 2^(stage−1), W / 2^(stage−1)) on the CPU, for the padded input.

    Example:
        >>> import seg
        >>> maps = encoder_features(seg.models.load("segnet"), seg.synthetic.scene(0).image, 3)
        >>> maps.shape
        torch.Size([48, 64, 64])
    """
    encoder = getattr(segmenter.module, "encoder", None)
    if not isinstance(encoder, nn.ModuleList) or not 1 <= stage <= len(encoder):
        raise ValueError(f"{segmenter.name} has no VGG-style encoder stage {stage}")
    x, _ = segmenter.preprocess(image)  # (1, 3, h, w)
    x, _ = pad_to_multiple(x, segmenter.size_divisor)
    for i, block in enumerate(encoder, start=1):
        x = block.convs(x)  # (1, C_i, H_i, W_i)
        if i == stage:
            return x[0].float().cpu()
        x = block.pool(x)
        if isinstance(x, tuple):  # SegNet's pools also return their indices
            x = x[0]
    raise AssertionError("unreachable: stage was checked above")


def fcn_skip_memory(module: nn.Module, input_size: tuple[int, int]) -> list[dict]:
    """What an FCN's decoder keeps from its encoder for one image: the pooled maps it skips from.

    FCN-16s adds scores computed from pool4 (stride 16), FCN-8s also from pool3 (stride 8);
    those pooled feature maps must wait, in float32, until the decoder reaches them.

    Args:
        module: a `seg.models.fcn.FCN` (variant 32, 16 or 8).
        input_size: (H, W) of the (padded) input.

    Returns:
        One row per skip: {"skip": "pool4", "stride": 16, "shape": (C, h, w), "bytes": int}.
        Empty for FCN-32s.

    Example:
        >>> from seg.models.fcn import fcn8s
        >>> [row["skip"] for row in fcn_skip_memory(fcn8s(), (256, 256))]
        ['pool3', 'pool4']
    """
    height, width = input_size
    rows = []
    for stage, stride in ((3, 8), (4, 16)):
        if module.variant > stride:
            continue
        channels = module.encoder[stage - 1].convs[-1].conv.out_channels
        shape = (channels, height // stride, width // stride)
        rows.append({"skip": f"pool{stage}", "stride": stride, "shape": shape,
                     "bytes": int(np.prod(shape)) * torch.float32.itemsize})
    return rows
