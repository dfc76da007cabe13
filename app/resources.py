"""Cached resources, in one place: models once per server, predictions by image and settings.

Models are shared by every student (`cache.shared`, eval mode, no gradients, never changed by
a request); predictions are cached by the image's hash, the model and the device
(`cache.memo`, compact and under the process's byte budget). Loads and predictions run inside
`serving.heavy()`, so that a class of students queues for the CPU instead of fighting over
it; each load logs "SegLab: loaded <name> on <device>".
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import seg
from app import cache, serving
from seg.models import Prediction, Segmenter

SOURCE_TEXT = {
    "pretrained": "pretrained weights from torchvision (trained on COCO images with the 21 "
                  "PASCAL VOC classes)",
    "seglab": "SegLab's own weights, trained by `python -m seg train` on SegLab's synthetic "
              "street scenes (8 classes)",
    "untrained": "random weights: this network has not been trained",
}


def device() -> str:
    """The device pages run on: the best available unless the sidebar forces the CPU."""
    return str(seg.devices.default_device(force_cpu=st.session_state.get("force_cpu", False)))


@cache.shared(max_entries=16, gate="Loading the model…")
def segmenter(name: str, device: str) -> Segmenter:
    """A segmenter loaded once for all students (raises WeightsUnavailable, CheckpointError)."""
    model = seg.models.load(name, device=device)
    serving.log.info("SegLab: loaded %s on %s", name, device)
    return model


@cache.shared(max_entries=1)
def cached_torchvision() -> frozenset[str]:
    """Names of torchvision networks whose weights are on this machine (checked once)."""
    from seg.models import pretrained

    return frozenset(row.name for row in pretrained.status() if row.cached)


def available_segmenters() -> list[str]:
    """Segmenters that can run here: SegLab's always, torchvision's when their weights are cached."""
    cached = cached_torchvision()
    return [n for n in seg.models.list_models(task="segmentation")
            if seg.models.entry(n).family == "seglab" or n in cached]


@cache.memo(gate="Running the model…")
def predict(name: str, device: str, image_key: str, _array: np.ndarray,
            extras: bool = False) -> Prediction:
    """A model's prediction for an image, cached by (model, device, image hash, extras)."""
    return segmenter(name, device).predict(_array, extras=extras)


def title(name: str) -> str:
    """Human title of a registered network, with where its weights come from."""
    e = seg.models.entry(name)
    return e.title if e.family == "torchvision" else f"{e.title} (SegLab)"
