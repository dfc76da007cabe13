"""From classifier to fully convolutional network: FC layers become convolutions.

Long, Shelhamer & Darrell's first step (FCN, 2015). A classifier's first fully-connected layer
(fc6) multiplies the flattened last feature map, C channels of s × s, by a weight matrix
(out, C·s·s). Reshaped to (out, C, s, s), the same numbers are the weights of an s × s
convolution: on the original input size, where the feature map is exactly s × s, that
convolution has one output position and computes exactly fc6. The following FC layers take a
vector and become 1 × 1 convolutions. Nothing is retrained; but the network no longer needs
its input size: on a larger image the feature map is larger, the s × s convolution slides over
it, and the classifier answers at every position, a coarse map of class scores whose cells are
`stride` pixels apart (32 for AlexNet and VGG).

    >>> import torchvision
    >>> net, layers = convolutionalize(torchvision.models.alexnet())
    >>> [(layer.name, layer.linear_shape, layer.conv_shape) for layer in layers][0]
    ('fc6', (4096, 9216), (4096, 256, 6, 6))
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg import rng, train
from seg.models.segmenter import (IMAGENET_MEAN, IMAGENET_STD, for_inference, sharing_weights,
                                  to_tensor)
from seg.receptive_field import theoretical

__all__ = ["CoarseMap", "ConvertedLayer", "PatchClassifier", "coarse_map", "convolutionalize",
           "equivalence_error", "input_size_of", "train_patch_classifier"]

#: torchvision's ImageNet classifiers are trained on 224 × 224 crops.
IMAGENET_SIZE = 224


@dataclass(frozen=True)
class ConvertedLayer:
    """One fully-connected layer and the convolution made from its reshaped weights.

    Attributes:
        name: "fc6", "fc7", … in the order of the classifier.
        path: where the Linear layer lives in the classifier ("classifier.1").
        linear_shape: its weight shape (out, in).
        conv_shape: the same weights as a convolution kernel (out, C, k, k).
    """

    name: str
    path: str
    linear_shape: tuple[int, int]
    conv_shape: tuple[int, int, int, int]

    @property
    def parameters(self) -> int:
        """Number of weights (the same before and after: only the shape changes)."""
        return int(np.prod(self.linear_shape))


def input_size_of(classifier: nn.Module) -> int:
    """The square input side the classifier's FC layers were sized for.

    SegLab's `AlexNetSmall` says it (`in_size`); torchvision's AlexNet and VGG were trained on
    224 × 224 crops.

    Example:
        >>> from seg.models.classifiers import alexnet_small
        >>> input_size_of(alexnet_small(in_size=48))
        48
    """
    return int(getattr(classifier, "in_size", IMAGENET_SIZE))


def _conv_from_linear(linear: nn.Linear, channels: int, side: int) -> nn.Conv2d:
    """A convolution whose weights ARE the linear layer's, viewed as (out, C, side, side)."""
    conv = nn.Conv2d(channels, linear.out_features, side, bias=linear.bias is not None,
                     device="meta")  # no random init to throw away (VGG's fc6: 102 M weights)
    # torch.flatten(x, 1) on (N, C, s, s) lists channel-major, then rows, then columns: the
    # same order as a (C, s, s) view, so view() puts each weight on the pixel it multiplied.
    conv.weight = nn.Parameter(linear.weight.detach().view(linear.out_features, channels,
                                                           side, side),
                               requires_grad=False)
    if linear.bias is not None:
        conv.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
    return conv


@torch.no_grad()
def convolutionalize(classifier: nn.Module) -> tuple[nn.Sequential, list[ConvertedLayer]]:
    """Turn a classifier into a fully convolutional network by reshaping its FC weights.

    The classifier must have `features` (convolutions and pools) and `classifier` (an
    `nn.Sequential` of Linear layers with activations and dropout between), as torchvision's
    AlexNet and VGG and SegLab's `AlexNetSmall` do. torchvision's `avgpool` (an adaptive pool
    to 6 × 6 or 7 × 7, which does nothing at 224 × 224) is left out, since it would squash any
    larger feature map back to the classifier's size.

    The new network shares the classifier's parameters (views of the same tensors, frozen):
    the same numbers, reshaped. Its modules are its own (copies sharing the weights), so
    putting it in eval mode or hooking it leaves the classifier alone: it never changes the
    module it is given, so it is safe on a shared model.

    Args:
        classifier: the image classifier (its `input_size_of` is read to size fc6's kernel).

    Returns:
        `(net, layers)`: `net` = `nn.Sequential(features=…, head=…)` mapping
        (N, 3, H, W) to class scores (N, K, h, w), and one `ConvertedLayer` per FC layer.

    Raises:
        ValueError: the classifier has no `features`/`classifier`, or fc6 does not match the
            feature map at its input size.

    Example:
        >>> from seg.models.classifiers import alexnet_small
        >>> net, layers = convolutionalize(alexnet_small(in_size=48))
        >>> net(torch.zeros(1, 3, 48, 48)).shape, net(torch.zeros(1, 3, 128, 128)).shape
        (torch.Size([1, 8, 1, 1]), torch.Size([1, 8, 6, 6]))
    """
    features = getattr(classifier, "features", None)
    head = getattr(classifier, "classifier", None)
    if not isinstance(features, nn.Module) or not isinstance(head, nn.Sequential):
        raise ValueError("expected a classifier with `features` and a Sequential `classifier` "
                         "(torchvision's AlexNet/VGG, SegLab's alexnet_small)")
    size = input_size_of(classifier)
    features = for_inference(features, private=True)  # the net's own modules, eval mode
    probe = next(classifier.parameters())
    _, channels, side, side_w = features(
        torch.zeros(1, 3, size, size, device=probe.device, dtype=probe.dtype)).shape
    layers: list[ConvertedLayer] = []
    converted = OrderedDict()
    for child_name, child in head.named_children():
        if isinstance(child, nn.Linear):
            name = f"fc{6 + len(layers)}"
            if not layers:  # fc6 reads the whole C × s × s map
                if child.in_features != channels * side * side_w or side != side_w:
                    raise ValueError(
                        f"fc6 takes {child.in_features} inputs but the features of a "
                        f"{size}×{size} image are {channels}×{side}×{side_w}")
                conv = _conv_from_linear(child, channels, side)
            else:  # later FC layers read a vector: a 1 × 1 convolution over positions
                conv = _conv_from_linear(child, child.in_features, 1)
            layers.append(ConvertedLayer(name, f"classifier.{child_name}",
                                         tuple(child.weight.shape), tuple(conv.weight.shape)))
            converted[child_name] = conv
        else:  # activations and dropout work element-wise on maps as on vectors
            converted[child_name] = sharing_weights(child, hooks=False)
    net = nn.Sequential(OrderedDict(features=features, head=nn.Sequential(converted)))
    return net.eval(), layers


@torch.no_grad()
def equivalence_error(classifier: nn.Module, net: nn.Module, *, batch: int = 2,
                      seed: int = 0) -> float:
    """Largest |classifier(x) − net(x)| on random images of the classifier's own input size.

    At that size the convolutional version has a single output position, which must equal the
    classifier's logits up to floating-point rounding (summation order differs). Both run in
    eval mode (as copies sharing their weights if they are not): it never changes the modules
    it is given, so it is safe on shared models.

    Args:
        classifier: the original classifier.
        net: `convolutionalize(classifier)[0]`.
        batch: number of random images.
        seed: seed of the random images.

    Example:
        >>> from seg.models.classifiers import alexnet_small
        >>> c = alexnet_small(in_size=48)
        >>> equivalence_error(c, convolutionalize(c)[0]) < 1e-4
        True
    """
    size = input_size_of(classifier)
    probe = next(classifier.parameters())
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=generator).to(probe.device, probe.dtype)
    logits = for_inference(classifier)(x)  # (N, K)
    scores = for_inference(net)(x)  # (N, K, 1, 1)
    if scores.shape[-2:] != (1, 1):
        raise ValueError(f"expected a 1×1 score map at {size}×{size}, got {tuple(scores.shape)}")
    return float((logits - scores[:, :, 0, 0]).abs().max())


@dataclass
class CoarseMap:
    """The class scores of a convolutionalised classifier over a whole image.

    Attributes:
        probs: (K, h, w) softmax over classes at each position.
        rows, cols: image coordinates (pixel edges) of the centre of each position's window.
        stride: image pixels between neighbouring positions.
        window: side of the image window one position sees (its receptive field).
        image_size: (H, W) of the image.
        padding: pixels of reflected border added on each side so positions cover the image
            up to its edges (FCN pads its input for the same reason).
    """

    probs: torch.Tensor
    rows: np.ndarray
    cols: np.ndarray
    stride: int
    window: int
    image_size: tuple[int, int]
    padding: int

    def labels_at_pixels(self) -> np.ndarray:
        """(H, W) class of the nearest position's window centre, for every image pixel."""
        height, width = self.image_size
        labels = self.probs.argmax(0).numpy()  # (h, w)
        i = np.clip(np.rint((np.arange(height) + 0.5 - self.rows[0]) / self.stride), 0,
                    len(self.rows) - 1).astype(np.int64)  # (H,)
        j = np.clip(np.rint((np.arange(width) + 0.5 - self.cols[0]) / self.stride), 0,
                    len(self.cols) - 1).astype(np.int64)  # (W,)
        return labels[np.ix_(i, j)]


@torch.no_grad()
def coarse_map(net: nn.Module, image: np.ndarray, *, mean=IMAGENET_MEAN,
               std=IMAGENET_STD) -> CoarseMap:
    """Run a convolutionalised classifier on a whole image: where does it see which class?

    The receptive field of the last layer (`seg.receptive_field.theoretical`) gives the
    window each score position sees and the stride between positions. The image is padded by
    reflection so that the first window is centred half a stride from the top-left corner,
    so the positions tile the image. It never changes the net it is given (the field is read
    from a private copy), so it is safe on a shared model.

    Args:
        net: from `convolutionalize`.
        image: uint8 (H, W, 3).
        mean, std: the normalisation the classifier was trained with.

    Returns:
        A `CoarseMap`.

    Example:
        >>> from seg.models.classifiers import alexnet_small
        >>> net, _ = convolutionalize(alexnet_small(in_size=48))
        >>> coarse = coarse_map(net, np.zeros((128, 128, 3), np.uint8))
        >>> coarse.probs.shape, coarse.stride
        (torch.Size([8, 7, 7]), 16)
    """
    height, width = image.shape[:2]
    probe = next(net.parameters())
    # The field's geometry does not depend on the probe's size, as long as fc6 fits in it.
    field = theoretical(net, (max(height, 256), max(width, 256)))[-1]
    stride, window = int(field.jump[0]), int(field.size[0])
    # Centre of the first window at stride / 2 from the image edge, as far as the padding
    # allows (reflection needs the pad to be smaller than the image).
    padding = int(np.clip(round(field.start[0] - stride / 2), 0, min(height, width) - 1))
    x = to_tensor(image, mean, std).to(probe.device, probe.dtype)  # (1, 3, H, W)
    x = F.pad(x, (padding,) * 4, mode="reflect")  # (1, 3, H + 2p, W + 2p)
    scores = for_inference(net)(x)  # (1, K, h, w)
    probs = scores[0].float().softmax(0).cpu()  # (K, h, w)
    h, w = probs.shape[-2:]
    rows = field.start[0] - padding + stride * np.arange(h)
    cols = field.start[1] - padding + stride * np.arange(w)
    return CoarseMap(probs, rows, cols, stride, window, (height, width), padding)


@dataclass
class PatchClassifier:
    """SegLab's stand-in classifier: what it is and how well it learnt.

    Attributes:
        module: the trained `AlexNetSmall` (eval mode).
        in_size: side of its input patches.
        steps: optimisation steps.
        patches: number of training patches.
        seconds: training time (data generation included).
        accuracy: share of held-out patches (evaluation scenes) whose centre class it names.
        losses: training loss at every step.
    """

    module: nn.Module
    in_size: int
    steps: int
    patches: int
    seconds: float
    accuracy: float
    losses: list[float]


def train_patch_classifier(*, in_size: int = 32, steps: int = 200, patches: int = 1024,
                           scene_size: int = 128, seed: int = 0, device=None,
                           callback: Callable[[train.StepInfo], bool | None] | None = None
                           ) -> PatchClassifier:
    """Train SegLab's small AlexNet to name the class at the centre of a street-scene patch.

    A classifier in the ImageNet sense (one label per picture) trained on synthetic patches
    (`seg.train.patch_dataset`): its FC layers can then be convolutionalised and run on a
    whole scene. Dropout is off: a few hundred steps are far from over-fitting. Seeded with
    generators of its own (`seg.rng`): the same classifier for a seed alone or while other
    threads draw random numbers or train. The defaults
    take about 4 s of one CPU core (data included) and name the centre class of about 46 % of
    held-out patches (8 classes; chance is 12.5 %).

    Args:
        in_size: patch side. 32 gives a 1 × 1 × 64 pool5 map (fc6 becomes a 1 × 1 conv), 48 a
            2 × 2 one (a 2 × 2 conv) at 2.5 times the cost.
        steps: optimisation steps (batch 32, AdamW, one-cycle).
        patches: training patches, drawn from `train_seed` scenes.
        scene_size: side of the scenes the patches are cut from (run the converted network on
            pictures of about this size, so that things have the size it learnt them at).
        seed: sampling and initialisation seed.
        device: where to train (default: CUDA, then MPS, then CPU).
        callback: sees a `seg.train.StepInfo` after every step (e.g. a progress bar).

    Example:
        >>> result = train_patch_classifier(steps=20, patches=128)  # doctest: +SKIP
        >>> result.module(torch.zeros(1, 3, 32, 32)).shape  # doctest: +SKIP
        torch.Size([1, 8])
    """
    from seg.models import build

    start = time.perf_counter()
    x, y = train.patch_dataset(patches, patch=in_size, scene_size=scene_size, seed=seed)
    module = rng.build(build, "alexnet_small", in_size=in_size, dropout=0.0, seed=seed)
    losses = train.fit(module, train.tensor_batches(x, y, 32, seed=seed), steps=steps, lr=3e-3,
                       device=device, callback=callback, seed=seed)
    seconds = time.perf_counter() - start
    x_eval, y_eval = train.patch_dataset(256, patch=in_size, scene_size=scene_size, seed=seed,
                                         evaluation=True)
    accuracy = train.accuracy(module, x_eval, y_eval)
    return PatchClassifier(module.eval(), in_size, len(losses), patches, seconds, accuracy,
                           losses)
