"""Every network of the lessons behind one registry.

    >>> import seg
    >>> seg.models.list_models(task="segmentation")[:3]
    ['fcn32s', 'fcn16s', 'fcn8s']
"""

import importlib

from seg.models.checkpoints import CheckpointError
from seg.models.registry import (Entry, build, entry, list_models, load, load_classifier,
                                 register)
from seg.models.segmenter import Classifier, Prediction, Segmenter, sharing_weights


def __getattr__(name):
    # `pretrained` pulls in torchvision: only when asked for.
    if name in ("pretrained", "WeightsUnavailable"):
        pretrained = importlib.import_module("seg.models.pretrained")
        return pretrained if name == "pretrained" else getattr(pretrained, name)
    raise AttributeError(f"module 'seg.models' has no attribute {name!r}")


__all__ = ["CheckpointError", "Classifier", "Entry", "Prediction", "Segmenter", "build", "entry",
           "list_models", "load", "load_classifier", "register", "sharing_weights"]
