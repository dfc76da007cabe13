"""SegLab's library: semantic segmentation models, CRFs, synthetic scenes and metrics.

Pure PyTorch/NumPy/Pillow, usable from a notebook:

    >>> import seg
    >>> scene = seg.synthetic.scene(0)
    >>> prediction = seg.models.load("fcn8s").predict(scene.image)
    >>> seg.metrics.miou(prediction.labels, scene.labels, len(seg.synthetic.CLASSES))  # doctest: +SKIP

Submodules are imported on first use, so `import seg` is quick and a notebook that only needs
`seg.synthetic` does not pay for torchvision.
"""

import importlib

__all__ = ["crf", "devices", "io", "metrics", "models", "receptive_field", "synthetic", "train",
           "viz"]


def __getattr__(name):
    try:
        return importlib.import_module(f"seg.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"seg.{name}":
            raise
        raise AttributeError(f"module 'seg' has no attribute {name!r}") from None
