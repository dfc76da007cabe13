"""The one wrapper every segmentation network goes through: `Segmenter.predict`.

A network only knows normalised tensors whose sides are a multiple of its total stride. A student
has a photo of any size. `Segmenter` is the boundary between the two, written once for SegLab's
own models and torchvision's alike: PIL/numpy in, normalise, pad to the stride, forward, crop,
softmax, resize back to the photo, and say which weights ran.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from seg.devices import synchronize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Where a network's weights came from. Always shown next to its output.
SOURCES = ("pretrained", "seglab", "untrained")


def sharing_weights(original, *, hooks: bool = True):
    """A copy of a segmenter (or a module) with module objects of its own and the original's
    weights: changing a layer's stride, padding or dilation in the copy leaves the original
    alone, and the copy takes no memory for weights. For inference: training the copy would
    train the original too.

    Args:
        original: a `Segmenter` or an `nn.Module`.
        hooks: keep the original's forward and backward hooks in the copy; False gives it
            none (and copies none of the objects they hold).

    Example:
        >>> net = nn.Conv2d(3, 4, 3)
        >>> copy_ = sharing_weights(net)
        >>> copy_.dilation = (2, 2)
        >>> net.dilation, copy_.weight is net.weight
        ((1, 1), True)
    """
    module = original.module if isinstance(original, Segmenter) else original
    memo = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    if not hooks:  # the copy's hook registries start empty instead of copying the original's
        memo.update({id(getattr(m, name)): type(getattr(m, name))()
                     for m in module.modules() for name in _HOOK_REGISTRIES})
    return copy.deepcopy(original, memo)


#: The per-module dicts that hold forward and backward hooks (and their flags).
_HOOK_REGISTRIES = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
                    "_backward_pre_hooks")


def for_inference(module: nn.Module, *, private: bool = False) -> nn.Module:
    """`module` ready to run in eval mode, without changing `module`.

    Library code never changes a network it is handed: models cached for a whole class are
    run by many sessions' threads at once, and a hook, a mode switch or an attribute set on
    one of them shows in everyone's forward passes. So code that needs eval mode gets the module
    itself when it and all its submodules are in eval mode already (as every shared model is),
    and otherwise a `sharing_weights` copy switched to eval mode. Code that hooks or
    reconfigures the network asks for `private=True`: always a copy. A copy has none of the
    original's hooks and shares every parameter and buffer, so it costs milliseconds, not
    memory (FCN-8s or ResNet-18: about 10 ms on one CPU core).

    Args:
        module: the network.
        private: always return a copy of its own (hooks, attribute changes).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout()).train()
        >>> copy_ = for_inference(net)
        >>> net.training, copy_.training, copy_[0].weight is net[0].weight
        (True, False, True)
        >>> for_inference(net.eval()) is net
        True
    """
    if not private and not any(m.training for m in module.modules()):
        return module
    return sharing_weights(module, hooks=False).eval()


class Prediction:
    """What one forward pass of a segmenter produced, at the input image's size.

    `probs` and `labels` are worked out from the network's scores the first time they are
    read, then kept: `Segmenter.predict` returns as soon as the network has run, and a caller
    that only needs the labels never pays for a full-resolution softmax.

    Attributes:
        probs: float32 (C, H, W) class probabilities on the CPU.
        labels: int64 (H, W), the argmax of `probs`.
        classes: the class names, index = label.
        source: "pretrained" (torchvision weights), "seglab" (SegLab's own checkpoint) or
            "untrained" (random initialisation).
        seconds: wall time of the preprocessing and the forward pass.
        model: the registry name of the network.
        extras: named intermediate maps (e.g. FCN's stride-32 scores), on the CPU, at the
            network's own resolution; only filled when asked for.

    Give either `probs` (and optionally `labels`) or `logits` (C, h, w), on any device, with
    `size` = (H, W) when the logits are at a smaller working size than the picture.
    """

    def __init__(self, probs: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 classes=(), source: str = "untrained", seconds: float = 0.0, model: str = "",
                 extras: dict[str, torch.Tensor] | None = None, *,
                 logits: torch.Tensor | None = None, size: tuple[int, int] | None = None):
        if probs is None and logits is None:
            raise ValueError("a Prediction needs probs or logits")
        self._probs, self._labels, self._logits = probs, labels, logits
        # The picture's (H, W) when `logits` are the network's, at its working size: probs and
        # labels are upsampled from them when first read.
        self._size = tuple(size) if size is not None else None
        self.classes, self.source, self.seconds, self.model = list(classes), source, seconds, model
        self.extras = dict(extras or {})

    def _scores(self) -> torch.Tensor:
        """The logits at the picture's size (C, H, W), float32."""
        logits = self._logits.float()
        if self._size is not None and tuple(logits.shape[-2:]) != self._size:
            logits = F.interpolate(logits[None], size=self._size, mode="bilinear",
                                   align_corners=False)[0]
        return logits

    @property
    def probs(self) -> torch.Tensor:
        if self._probs is None:
            self._probs = self._scores().softmax(dim=0).cpu()  # (C, H, W)
        elif self._probs.dtype != torch.float32:
            self._probs = self._probs.float()
        return self._probs

    @property
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            scores = self._scores() if self._logits is not None else self._probs
            self._labels = channel_argmax(scores).cpu()  # (H, W)
        elif self._labels.dtype != torch.int64:
            self._labels = self._labels.long()
        return self._labels

    def __getstate__(self) -> dict:
        # Pickled (e.g. by a cache) compactly, on the CPU: the labels as bytes at the picture's
        # size and the scores in float16 at the network's working size (a 21-class prediction
        # of a 1024×683 photo: 8 MB instead of 64 MB of float32 probabilities). The
        # probabilities are worked out again from them when read.
        state = dict(self.__dict__)
        labels = self.labels
        state["_labels"] = labels.to(torch.uint8) if len(self.classes) <= 256 else labels
        if self._logits is not None:
            state["_logits"], state["_probs"] = self._logits.to("cpu", torch.float16), None
        else:
            state["_probs"] = self._probs.to("cpu", torch.float16)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_size", None)

    def __repr__(self) -> str:
        shape = tuple((self._logits if self._logits is not None else self._probs).shape)
        return (f"Prediction(model={self.model!r}, source={self.source!r}, shape={shape}, "
                f"seconds={self.seconds:.3f})")


def to_tensor(image, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Turn a PIL image or uint8 (H, W, 3) array into a normalised float tensor (1, 3, H, W).

    Example:
        >>> to_tensor(np.zeros((4, 6, 3), np.uint8)).shape
        torch.Size([1, 3, 4, 6])
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.ascontiguousarray(image)
    if not array.flags.writeable:  # decoded photos are read-only; torch wants to own its data
        array = array.copy()
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {array.dtype} {array.shape}")
    # (v / 255 - mean) / std as one scale and one shift per channel, in place: two passes
    # over the picture instead of four new tensors.
    scale = 1 / (255 * torch.tensor(std, dtype=torch.float32))  # (3,)
    shift = -torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)
    # contiguous: a permuted (H, W, 3) buffer is channels-last, and channels-last tensors
    # crash oneDNN's backward of small strided 1×1 convolutions on some CPUs (heap corruption).
    x = torch.from_numpy(array).permute(2, 0, 1).contiguous().float()  # (3, H, W)
    x.mul_(scale.view(3, 1, 1)).add_(shift.view(3, 1, 1))
    return x.unsqueeze(0)  # (1, 3, H, W)


def pad_to_multiple(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) on the bottom/right with reflection so H and W divide by `divisor`.

    Returns the padded tensor and the original (H, W) to crop back to. Reflection rather than
    zeros: a black border would be a strong (false) edge for the first convolutions.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def channel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """`scores.argmax(dim=0)` for (C, H, W) maps, without torch's slow strided argmax.

    torch's argmax over the leading dimension of a large map is several times slower than
    its `amax`, a plain vectorised maximum. So: the maximum of each pixel, then a mask of the
    channels that reach it, weighted C, C-1, …, 1 so that the largest weight left marks the
    first such channel (ties go to the first class, as with argmax; a pixel whose scores are
    NaN gets class 0).

    Example:
        >>> channel_argmax(torch.tensor([[[0.0, 2.0]], [[1.0, 2.0]]]))
        tensor([[1, 0]])
    """
    classes = scores.shape[0]
    if classes > 255:  # the weights are bytes
        return scores.argmax(dim=0)
    weights = torch.arange(classes, 0, -1, dtype=torch.uint8, device=scores.device)
    reached = (scores == scores.amax(dim=0)).view(torch.uint8)  # (C, H, W), 0 or 1
    first = reached.mul_(weights.view(-1, 1, 1)).amax(dim=0).long()  # (H, W), C … 1; 0 if NaN
    return (classes - first).remainder_(classes)


class Segmenter:
    """A segmentation network with its classes, its weights' origin and its preprocessing.

    Args:
        name: registry name.
        module: an nn.Module whose forward returns a dict with "out" logits (N, C, H, W) at
            input resolution (SegLab's and torchvision's segmenters both do).
        classes: class names.
        source: one of `SOURCES`.
        device: where the module runs.
        card: the model card (SegLab) or torchvision's weights metadata.
        max_side: photos larger than this are downscaled for inference; `probs` are
            resized back, so the caller never sees the difference except in speed.

    Example:
        >>> import seg
        >>> segmenter = seg.models.load("fcn8s")
        >>> prediction = segmenter.predict(seg.synthetic.scene(0).image)
        >>> prediction.labels.shape
        torch.Size([256, 256])
    """

    def __init__(self, name: str, module: nn.Module, classes, source: str, *, device=None,
                 card: dict | None = None, max_side: int = 640,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD):
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self.name = name
        self.device = torch.device(device or "cpu")
        self.module = module.to(self.device).eval()
        self.classes = list(classes)
        self.source = source
        self.card = dict(card or {})
        self.max_side = max_side
        self.mean, self.std = mean, std

    @property
    def size_divisor(self) -> int:
        """What H and W must divide by; read on every call (DeepLab's changes with its stride)."""
        return int(getattr(self.module, "size_divisor", 1))

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the network."""
        return sum(p.numel() for p in self.module.parameters())

    def __repr__(self) -> str:
        return (f"Segmenter({self.name!r}, source={self.source!r}, classes={len(self.classes)}, "
                f"params={self.num_parameters:,}, device={self.device})")

    def preprocess(self, image) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalised (1, 3, h, w) tensor on the device, downscaled to `max_side`, and the
        original (H, W)."""
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        height, width = image.shape[:2]
        x = to_tensor(image, self.mean, self.std).to(self.device)  # (1, 3, H, W)
        size = self.working_size(height, width)
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x, (height, width)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) at which the network sees a picture of (height, width): shrunk so that its
        long side is at most `max_side`, else unchanged."""
        scale = self.max_side / max(height, width)
        if scale >= 1:
            return height, width
        return max(1, round(height * scale)), max(1, round(width * scale))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on a normalised batch of any size; "out" is cropped back to it."""
        padded, (h, w) = pad_to_multiple(x, self.size_divisor)
        outputs = self.module(padded)
        outputs = dict(outputs) if isinstance(outputs, dict) else {"out": outputs}
        outputs["out"] = outputs["out"][..., :h, :w]  # (N, C, h, w)
        return outputs

    def predict(self, image, *, extras: bool = False) -> Prediction:
        """Segment one image: a PIL image or a uint8 (H, W, 3) array, any size.

        Args:
            image: the picture.
            extras: also return the network's named intermediate maps (on the CPU).
        """
        start = time.perf_counter()
        x, (height, width) = self.preprocess(image)
        outputs = self.forward(x)
        # (C, h, w) at the working size, a view of the crop: upsampled to (H, W), softmax and
        # argmax happen when the probabilities or labels are first read
        logits = outputs["out"][0]
        kept = {}
        if extras:
            kept = {k: v[0].float().cpu() for k, v in outputs.items()
                    if k != "out" and isinstance(v, torch.Tensor) and v.dim() == 4}
        synchronize(self.device)
        return Prediction(logits=logits, size=(height, width), classes=self.classes,
                          source=self.source, seconds=time.perf_counter() - start,
                          model=self.name, extras=kept)


class Classifier:
    """An image classifier with its class names and origin of weights (used by lessons).

    `predict(image, top=5)` returns [(class name, probability), …] best first.
    """

    def __init__(self, name: str, module: nn.Module, classes, source: str, *, device=None,
                 card: dict | None = None, resize: int = 256, crop: int = 224):
        self.name, self.classes, self.source = name, list(classes), source
        self.device = torch.device(device or "cpu")
        self.module = module.to(self.device).eval()
        self.card = dict(card or {})
        self.resize, self.crop = resize, crop

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the network."""
        return sum(p.numel() for p in self.module.parameters())

    @torch.inference_mode()
    def predict(self, image, *, top: int = 5) -> list[tuple[str, float]]:
        """Top-`top` classes of an image after the ImageNet resize and centre crop."""
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image))
        image = image.convert("RGB")
        scale = self.resize / min(image.size)
        image = image.resize((max(self.crop, round(image.width * scale)),
                              max(self.crop, round(image.height * scale))), Image.BILINEAR)
        left, upper = (image.width - self.crop) // 2, (image.height - self.crop) // 2
        image = image.crop((left, upper, left + self.crop, upper + self.crop))
        probs = self.module(to_tensor(image).to(self.device)).softmax(dim=1)[0].cpu()  # (K,)
        values, indices = probs.topk(min(top, len(probs)))
        return [(self.classes[i], float(v)) for v, i in zip(values, indices.tolist())]
