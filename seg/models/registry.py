"""One registry of every network SegLab knows, and the honest way to load one.

`load(name)` gives a ready `Segmenter` and says where its weights came from:
- SegLab's own architectures load their checkpoint from `weights/` (source "seglab"), or run
  with random weights (source "untrained") when no checkpoint was trained yet;
- torchvision's segmenters load their cached weights (source "pretrained") and refuse with
  `WeightsUnavailable` when the weights are not on this machine: loading never downloads.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from seg.devices import default_device
from seg.models import checkpoints
from seg.models.segmenter import Classifier, Segmenter
from seg.synthetic import CLASSES


@dataclass(frozen=True)
class Entry:
    """A registered network: where its builder lives and what it is."""

    name: str
    task: str  # "segmentation" | "classification"
    family: str  # "seglab" | "torchvision"
    module: str  # the module holding the builder, imported on first use
    builder: str
    title: str
    paper: str = ""
    defaults: dict = field(default_factory=dict)

    def build_fn(self) -> Callable[..., nn.Module]:
        """The builder function (imported lazily so `import seg` stays fast)."""
        return getattr(importlib.import_module(self.module), self.builder)


_REGISTRY: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    """Add a network to the registry (names are unique)."""
    if entry.name in _REGISTRY:
        raise ValueError(f"a model called {entry.name!r} is registered already")
    _REGISTRY[entry.name] = entry
    return entry


def entry(name: str) -> Entry:
    """The registry entry of `name`, with a helpful error for unknown names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def list_models(task: str | None = None, family: str | None = None) -> list[str]:
    """Names of the registered networks, optionally only of one task or family.

    Example:
        >>> "fcn8s" in list_models(task="segmentation")
        True
    """
    return [e.name for e in _REGISTRY.values()
            if (task is None or e.task == task) and (family is None or e.family == family)]


def build(name: str, **kwargs) -> nn.Module:
    """A fresh, randomly initialised network (SegLab's builders only; kwargs override defaults).

    Example:
        >>> net = build("resnet_small", depth=20, num_classes=8)
    """
    e = entry(name)
    if e.family != "seglab":
        raise ValueError(f"{name} is a torchvision network: use load() for its weights")
    return e.build_fn()(**{**e.defaults, **kwargs})


def load(name: str, *, device=None, weights_dir=None) -> Segmenter:
    """A segmenter ready to `predict`, on `device` (default: CUDA, then MPS, then CPU).

    Args:
        name: a name from `list_models(task="segmentation")`.
        device: torch device or string; None picks the best available.
        weights_dir: where SegLab checkpoints are (default: the repository's `weights/`).

    Raises:
        seg.models.pretrained.WeightsUnavailable: a torchvision network whose weights are not
            cached on this machine.
        seg.models.checkpoints.CheckpointError: a damaged or mismatched SegLab checkpoint.
    """
    e = entry(name)
    if e.task != "segmentation":
        raise ValueError(f"{name} is a classifier: build it with seg.models.build({name!r}, ...)")
    device = device or default_device()
    if e.family == "torchvision":
        from seg.models import pretrained

        module, weights = pretrained.build(name, device=device)
        meta = dict(weights.meta)
        card = {"title": e.title, "paper": e.paper, "weights": str(weights),
                "published": pretrained.published_metrics(name),
                "num_params": meta.get("num_params"), "recipe": meta.get("recipe")}
        return Segmenter(name, module, meta["categories"], "pretrained", device=device,
                         card=card, max_side=520)
    path = checkpoints.checkpoint_path(name, weights_dir)
    if path.is_file():
        kwargs, state = checkpoints.load_checkpoint(path)
        module = checkpoints.load_into(e.build_fn()(**kwargs), state, path)
        card = {"title": e.title, "paper": e.paper,
                **checkpoints.read_card(name, weights_dir)}
        return Segmenter(name, module, CLASSES, "seglab", device=device, card=card)
    module = e.build_fn()(**e.defaults)
    return Segmenter(name, module, CLASSES, "untrained", device=device,
                     card={"title": e.title, "paper": e.paper})


def load_classifier(name: str, *, device=None) -> Classifier:
    """A torchvision ImageNet classifier ("alexnet", "vgg16", "resnet18", "resnet50") from
    cached weights, ready to `predict` top-5 classes.

    Raises:
        seg.models.pretrained.WeightsUnavailable: its weights are not cached on this machine.
    """
    from seg.models import pretrained

    device = device or default_device()
    module, weights = pretrained.build(name, device=device)
    return Classifier(name, module, weights.meta["categories"], "pretrained", device=device,
                      card={"weights": str(weights), "published": pretrained.published_metrics(name)})


for _entry in (
    Entry("fcn32s", "segmentation", "seglab", "seg.models.fcn", "fcn32s", "FCN-32s",
          "Long, Shelhamer & Darrell 2015"),
    Entry("fcn16s", "segmentation", "seglab", "seg.models.fcn", "fcn16s", "FCN-16s",
          "Long, Shelhamer & Darrell 2015"),
    Entry("fcn8s", "segmentation", "seglab", "seg.models.fcn", "fcn8s", "FCN-8s",
          "Long, Shelhamer & Darrell 2015"),
    Entry("segnet", "segmentation", "seglab", "seg.models.segnet", "segnet", "SegNet",
          "Badrinarayanan, Kendall & Cipolla 2017"),
    Entry("deeplab_v1_largefov", "segmentation", "seglab", "seg.models.deeplab_v1",
          "deeplab_v1_largefov", "DeepLab v1 LargeFOV", "Chen et al. 2015"),
    Entry("renet", "segmentation", "seglab", "seg.models.renet", "renet", "ReNet segmenter",
          "Visin et al. 2015"),
    Entry("fcn_resnet50", "segmentation", "torchvision", "seg.models.pretrained", "build",
          "FCN ResNet-50 (torchvision, VOC classes)", "Long, Shelhamer & Darrell 2015"),
    Entry("deeplabv3_resnet50", "segmentation", "torchvision", "seg.models.pretrained", "build",
          "DeepLabV3 ResNet-50 (torchvision, VOC classes)", "Chen et al. 2017"),
    Entry("deeplabv3_mobilenet_v3_large", "segmentation", "torchvision", "seg.models.pretrained",
          "build", "DeepLabV3 MobileNetV3-Large (torchvision, VOC classes)", "Chen et al. 2017"),
    Entry("lraspp_mobilenet_v3_large", "segmentation", "torchvision", "seg.models.pretrained",
          "build", "LR-ASPP MobileNetV3-Large (torchvision, VOC classes)", "Howard et al. 2019"),
    Entry("alexnet_small", "classification", "seglab", "seg.models.classifiers", "alexnet_small",
          "AlexNet-style classifier (5 conv + 3 FC)", "Krizhevsky, Sutskever & Hinton 2012",
          {"num_classes": len(CLASSES)}),
    Entry("plain_net", "classification", "seglab", "seg.models.classifiers", "plain_net",
          "Plain deep network", "He et al. 2016", {"depth": 20, "num_classes": len(CLASSES)}),
    Entry("resnet_small", "classification", "seglab", "seg.models.classifiers", "resnet_small",
          "Residual network (identity shortcuts)", "He et al. 2016",
          {"depth": 20, "num_classes": len(CLASSES)}),
):
    register(_entry)
