"""Receptive fields: how much of the image one output unit can see.

Two views of the same idea, so a lesson can put them side by side:

- `theoretical` walks a network once and applies the receptive-field recurrence layer by layer
  (Dumoulin & Visin's convolution arithmetic; Araujo et al., "Computing receptive fields of
  convolutional neural networks", Distill 2019). With jump `j` (input pixels between two
  neighbouring units of a feature map) and size `r`, a layer with kernel `k`, stride `s`,
  dilation `d` and padding `p` gives

      k_eff = d·(k − 1) + 1      r_out = r_in + (k_eff − 1)·j_in      j_out = j_in·s
      start_out = start_in + ((k_eff − 1)/2 − p)·j_in

  which reproduces the published tables: AlexNet pool5 sees 195 pixels, VGG-16 pool5 212.
- `empirical` asks the network itself: the gradient of one output unit with respect to the
  input is non-zero exactly where that unit can look, and its magnitude shows that the
  *effective* field is much smaller and centre-weighted (Luo et al. 2016).

    >>> import torchvision
    >>> theoretical(torchvision.models.alexnet().features, (224, 224))[-1].size
    (195, 195)
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg.models.segmenter import Prediction, for_inference, pad_to_multiple

__all__ = ["LayerRF", "effective_extent", "empirical", "explain_pixel", "theoretical"]

Pair = tuple[int, int]


@dataclass(frozen=True)
class LayerRF:
    """The receptive field after one convolution or pooling layer, per axis (height, width).

    Attributes:
        name: the layer's qualified name in the module ("features.3").
        kind: "conv", "conv_transpose", "max_pool" or "avg_pool".
        kernel, stride, padding, dilation: the layer's hyper-parameters (padding: the top/left
            amount, which is what positions the field).
        jump: input pixels between two neighbouring output units (the layer's output stride).
        size: how many input pixels one output unit can see.
        start: centre of the field of output unit (0, 0), in input pixel coordinates where
            pixel i spans [i, i + 1); negative or past the image where padding is seen.
        out_shape: the layer's output shape without the batch axis, (C, H, W).
    """

    name: str
    kind: str
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    jump: tuple[float, float]
    size: Pair
    start: tuple[float, float]
    out_shape: tuple[int, ...]

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """The input window `(top, left, bottom, right)` that output unit (y, x) sees.

        Pixel edges, so the rows covered are top ≤ i < bottom; the window may reach past the
        image where the network pads.

        Example:
            >>> layer = theoretical(nn.Conv2d(3, 1, 3, padding=1), (8, 8))[0]
            >>> layer.box(0, 0)
            (-1.0, -1.0, 2.0, 2.0)
        """
        cy = self.start[0] + y * self.jump[0]
        cx = self.start[1] + x * self.jump[1]
        return (cy - self.size[0] / 2, cx - self.size[1] / 2,
                cy + self.size[0] / 2, cx + self.size[1] / 2)


class _Field(NamedTuple):
    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]


def _pair(value) -> Pair:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _hyper(layer: nn.Module) -> tuple[str, Pair, Pair, Pair, Pair]:
    """(kind, kernel, stride, top/left padding, dilation) of an RF layer."""
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        kernel, dilation = _pair(layer.kernel_size), _pair(layer.dilation)
        if layer.padding == "valid":
            padding = (0, 0)
        elif layer.padding == "same":
            # PyTorch puts the odd pixel of "same" padding at the bottom/right.
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        else:
            padding = _pair(layer.padding)
        kind = "conv_transpose" if isinstance(layer, nn.ConvTranspose2d) else "conv"
        return kind, kernel, _pair(layer.stride), padding, dilation
    kernel = _pair(layer.kernel_size)
    stride = _pair(layer.stride or layer.kernel_size)
    dilation = _pair(getattr(layer, "dilation", 1))  # AvgPool2d has no dilation
    kind = "max_pool" if isinstance(layer, nn.MaxPool2d) else "avg_pool"
    return kind, kernel, stride, _pair(layer.padding), dilation


def _step(field: _Field, kind: str, kernel: Pair, stride: Pair, padding: Pair,
          dilation: Pair) -> _Field:
    """Apply one layer's recurrence to `field`, each axis on its own."""
    size, jump, start = [], [], []
    for r, j, s0, k, s, p, d in zip(*field, kernel, stride, padding, dilation):
        k_eff = d * (k - 1) + 1
        if kind == "conv_transpose":
            # Output unit o gathers input units (o + p − t·d)/s for the taps t that divide
            # evenly: at most ceil(k_eff / s) neighbours, and the grid gets s times finer.
            size.append(r + (math.ceil(k_eff / s) - 1) * j)
            jump.append(j / s)
            start.append(s0 + (p - (k_eff - 1) / 2) / s * j)
        else:
            size.append(r + (k_eff - 1) * j)
            jump.append(j * s)
            start.append(s0 + ((k_eff - 1) / 2 - p) * j)
    return _Field(tuple(size), tuple(jump), tuple(start))


_RF_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


def theoretical(module: nn.Module, input_size: tuple[int, int]) -> list[LayerRF]:
    """The theoretical receptive field after every convolution and pooling layer.

    One forward pass on zeros of shape (1, 3, *input_size), in eval mode and without gradients,
    records every `Conv2d`, `ConvTranspose2d`, `MaxPool2d` and `AvgPool2d` in execution order and
    applies the recurrence of the module docstring. The forward hooks that record them are set
    on a private copy sharing the weights (`seg.models.segmenter.for_inference`): it never
    changes the module it is given, so it is safe on a shared model that other threads are
    running meanwhile. The network is treated as a chain along its main path:
    each layer continues from the field of the tensor it receives, followed through other
    modules (batch-norm, ReLU, dropout) that keep the field unchanged. A tensor made outside a
    module (a residual sum, a concatenation, `F.interpolate`) takes the largest field computed
    so far, which is right for sums and concatenations of branches on the same grid, so a
    ResNet's 1×1 shortcut convolutions do not add their stride to the main path. Not modelled:
    upsampling by interpolation (it does not refine the jump), adaptive and global pooling,
    recurrent sweeps; a transposed convolution counts the most input units any output gathers.

    Args:
        module: any `nn.Module` taking a (1, 3, H, W) image (left as it is).
        input_size: (H, W) of the zeros image; it sets the `out_shape`s (not the fields).

    Returns:
        One `LayerRF` per layer call, in execution order.

    Example:
        >>> import torchvision
        >>> layers = theoretical(torchvision.models.vgg16().features, (224, 224))
        >>> [(layer.name, layer.size[0]) for layer in layers[-2:]]
        [('28', 196), ('30', 212)]
    """
    parameter = next(module.parameters(), torch.zeros(()))
    image = torch.zeros(1, 3, *input_size, device=parameter.device,
                        dtype=parameter.dtype)  # (1, 3, H, W)
    identity = _Field((1.0, 1.0), (1.0, 1.0), (0.5, 0.5))
    fields = {id(image): identity}
    alive = [image]  # tensors whose id() is a key of `fields`: keep them so ids are not reused
    largest = [identity]
    layers: list[LayerRF] = []

    def hook(layer: nn.Module, args, output, name: str) -> None:
        inputs = _tensors(args)
        field = fields.get(id(inputs[0])) if inputs else None
        if field is None:
            field = largest[0]
        if isinstance(layer, _RF_LAYERS):
            kind, kernel, stride, padding, dilation = _hyper(layer)
            field = _step(field, kind, kernel, stride, padding, dilation)
            layers.append(LayerRF(
                name=name or type(layer).__name__, kind=kind, kernel=kernel, stride=stride,
                padding=padding, dilation=dilation, jump=field.jump,
                size=tuple(math.ceil(r - 1e-9) for r in field.size), start=field.start,
                out_shape=tuple(_tensors(output)[0].shape[1:])))
            if field.size[0] * field.size[1] >= largest[0].size[0] * largest[0].size[1]:
                largest[0] = field
        for tensor in _tensors(output):
            fields[id(tensor)] = field
            alive.append(tensor)

    own = for_inference(module, private=True)  # the hooks go on this copy, never on `module`
    for name, sub in own.named_modules():
        if isinstance(sub, _RF_LAYERS) or next(sub.children(), None) is None:
            sub.register_forward_hook(functools.partial(hook, name=name))
    with torch.no_grad():
        own(image)
    return layers


def empirical(module: nn.Module, image_tensor: torch.Tensor, y: int, x: int, *,
              output_key: str = "out", channel: int | None = None) -> np.ndarray:
    """Where in the image one output unit looks: |∂ output(y, x) / ∂ image|.

    The module runs in eval mode with gradients on (a copy sharing its weights if it is not in
    eval mode: it never changes the module it is given, so it is safe on a shared model); the
    output at (y, x) is summed over all channels (or only `channel`) and differentiated with
    respect to the input; the absolute
    gradient is summed over the colour channels and divided by its maximum. Zero outside the
    theoretical field, and typically concentrated near its centre.

    Args:
        module: returns a (N, C, h, w) tensor or a dict holding one under `output_key`.
        image_tensor: (3, H, W) or (1, 3, H, W), prepared as the module expects.
        y, x: the output unit, in the output's own coordinates (equal to pixel coordinates for
            segmenters, whose `"out"` is at input resolution).
        output_key: which entry of a dict output to use.
        channel: one output channel (a class) instead of the sum over all of them.

    Returns:
        float32 array (H, W) in [0, 1]; all zeros when the unit does not depend on the input
        (e.g. every path through it is cut by a ReLU).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1))
        >>> grad = empirical(net, torch.rand(3, 32, 32), 16, 16)
        >>> effective_extent(grad, threshold=0.0)
        (5, 5)
    """
    image = image_tensor if image_tensor.dim() == 4 else image_tensor.unsqueeze(0)  # (1, 3, H, W)
    if image.shape[0] != 1:
        raise ValueError(f"empirical() takes one image; got a batch of {image.shape[0]}")
    parameter = next(module.parameters(), None)
    if parameter is not None:
        image = image.to(parameter.device, parameter.dtype)
    image = image.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = for_inference(module)(image)
        if isinstance(output, dict):
            output = output[output_key]
        if output.dim() != 4:
            raise ValueError("empirical() needs a spatial output (N, C, H, W); got shape "
                             f"{tuple(output.shape)}")
        height, width = output.shape[-2:]
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"(y, x) = ({y}, {x}) is outside the {height}×{width} output")
        unit = output[0, :, y, x].sum() if channel is None else output[0, channel, y, x]
        (grad,) = torch.autograd.grad(unit, image)  # (1, 3, H, W)
    magnitude = grad[0].abs().sum(0)  # (H, W)
    peak = magnitude.max()
    if peak > 0:
        magnitude = magnitude / peak
    return magnitude.detach().float().cpu().numpy()


def explain_pixel(segmenter, image, y: int, x: int):
    """A segmenter's prediction and what one pixel's predicted class depends on, in one pass.

    The same answer as `segmenter.predict(image)` followed by `empirical` on the class it
    predicts at (y, x), for about half the cost: the forward pass that gives the labels is the
    one that is differentiated, so a lesson that shows both runs the network once. Like
    `predict`, it never changes the segmenter's module, so it is safe on a shared model.

    Args:
        segmenter: a `seg.models.Segmenter` (its `max_side` downscaling and `size_divisor`
            padding apply, as in `predict`).
        image: uint8 (H, W, 3) array or PIL image.
        y, x: the pixel, in the image's own coordinates.

    Returns:
        (prediction, gradient): the `Prediction` at (H, W), and |∂ s_c(y, x) / ∂ image| as
        float32 (H, W) in [0, 1], where c is the predicted class at (y, x) and s_c its score.
        On a downscaled picture the gradient is computed at the network's working size and
        each value repeated over the pixels it stands for.
    """
    start = time.perf_counter()
    module = for_inference(segmenter.module)
    small, (height, width) = segmenter.preprocess(image)  # (1, 3, h, w)
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"(y, x) = ({y}, {x}) is outside the {height}×{width} image")
    h, w = small.shape[-2:]
    padded, _ = pad_to_multiple(small, segmenter.size_divisor)
    padded = padded.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = module(padded)
        output = (output["out"] if isinstance(output, dict) else output)[..., :h, :w]
        scores = output.detach()  # (1, C, h, w)
        if (h, w) != (height, width):
            scores = F.interpolate(scores, size=(height, width), mode="bilinear",
                                   align_corners=False)
        prediction = Prediction(logits=scores[0].float(), classes=segmenter.classes,
                                source=segmenter.source, model=segmenter.name)
        label = int(prediction.labels[y, x])
        unit = output[0, label, min(y * h // height, h - 1), min(x * w // width, w - 1)]
        (grad,) = torch.autograd.grad(unit, padded)  # (1, 3, h', w')
    magnitude = grad[0, :, :h, :w].abs().sum(0)  # (h, w)
    peak = magnitude.max()
    if peak > 0:
        magnitude = magnitude / peak
    if (h, w) != (height, width):
        magnitude = F.interpolate(magnitude[None, None], size=(height, width),
                                  mode="nearest")[0, 0]
    prediction.seconds = time.perf_counter() - start
    return prediction, magnitude.detach().float().cpu().numpy()


def effective_extent(grad_map: np.ndarray, threshold: float = 0.01) -> tuple[int, int]:
    """Height and width of the bounding box of the pixels above `threshold` × the maximum.

    With `threshold=0` this is the support of the gradient, which for a network without
    ReLUs or max-pooling equals the theoretical field; larger thresholds measure how much of
    it matters.

    Args:
        grad_map: (H, W) map from `empirical` (any non-negative map works).
        threshold: fraction of the map's maximum a pixel must exceed.

    Returns:
        (height, width) in pixels; (0, 0) for an all-zero map.

    Example:
        >>> effective_extent(np.array([[0, 0, 0], [0, 1, 0.5], [0, 0, 0]]))
        (1, 2)
    """
    peak = float(np.max(grad_map))
    if peak <= 0:
        return (0, 0)
    rows, cols = np.nonzero(np.asarray(grad_map) > threshold * peak)
    return (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
