"""torchvision's pretrained networks: is the file here, fetch it (verified), build from it.

torchvision attaches to every builder a weights enum whose members carry the download URL, the
class names, the preprocessing and the published accuracy. Its own loader
(`Weights.get_state_dict` → `torch.hub.load_state_dict_from_url`) downloads whatever is missing
the moment a model is built, with no timeout. A classroom laptop may be offline, so SegLab
splits the two steps:

- `build` only ever reads the torch.hub cache (`<torch.hub.get_dir()>/checkpoints/`, the same
  file torchvision would use, so weights fetched by either are shared) and raises
  `WeightsUnavailable` with a sentence a student can act on when the file is missing or broken.
- `download` is the one place that touches the network: connect and read time out, the bytes
  are checked against the SHA-256 prefix that torchvision puts in every file name
  (`lraspp_mobilenet_v3_large-d234d4ea.pth`, torch.hub's `HASH_REGEX` rule), and only a
  verified file is renamed into the cache, so a half-finished download never looks cached.

A cached file can still change after its download (a bad copy from a USB stick, a disk
error); a few flipped bytes in a tensor load without complaint and give wrong answers. So
`build` checks the file against the prefix in its name too, once per process and version of
the file (`seg.models.checkpoints.file_sha256`; a verified download counts as that check).

    >>> from seg.models import pretrained
    >>> [s.name for s in pretrained.status() if s.cached]  # doctest: +SKIP
    ['lraspp_mobilenet_v3_large']
    >>> module, weights = pretrained.build("lraspp_mobilenet_v3_large")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.hub
from torch import nn
from torchvision import models
from torchvision.models import segmentation
from torchvision.models._api import WeightsEnum

from seg.models.checkpoints import file_sha256, remember_sha256

__all__ = ["TORCHVISION_CLASSIFIERS", "TORCHVISION_SEGMENTERS", "Preprocessing",
           "WeightsStatus", "WeightsUnavailable", "build", "cache_path", "categories",
           "download", "is_cached", "published_metrics", "status", "transforms"]

#: The four torchvision segmenters: builder and the weights SegLab uses (COCO images,
#: trained on the 20 Pascal VOC classes plus background).
TORCHVISION_SEGMENTERS: dict[str, tuple[Callable[..., nn.Module], WeightsEnum]] = {
    "fcn_resnet50": (segmentation.fcn_resnet50,
                     segmentation.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "deeplabv3_resnet50": (segmentation.deeplabv3_resnet50,
                           segmentation.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "deeplabv3_mobilenet_v3_large": (
        segmentation.deeplabv3_mobilenet_v3_large,
        segmentation.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
    "lraspp_mobilenet_v3_large": (
        segmentation.lraspp_mobilenet_v3_large,
        segmentation.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
}

#: The four ImageNet classifiers of the lessons: builder and weights.
TORCHVISION_CLASSIFIERS: dict[str, tuple[Callable[..., nn.Module], WeightsEnum]] = {
    "alexnet": (models.alexnet, models.AlexNet_Weights.IMAGENET1K_V1),
    "vgg16": (models.vgg16, models.VGG16_Weights.IMAGENET1K_V1),
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1),
}

# The published FCN and DeepLabV3 checkpoints also hold the auxiliary head trained on
# layer3 (`aux_classifier.*`); torchvision builds it whenever these weights are asked for, and
# a strict load needs it too. LR-ASPP has no auxiliary head.
_AUX_HEAD = {"fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large"}

# Read in pieces of 1 MiB: small enough for a smooth progress bar, few enough callbacks that a
# Streamlit progress widget is not redrawn thousands of times.
_CHUNK = 1 << 20

_FETCH_AT_HOME = ("Run `python -m seg weights download` on a computer with internet and copy "
                  "the file into {folder}.")
_DOWNLOAD_AGAIN = ("Delete it and download it again with `python -m seg weights download {name}` "
                   "(needs internet).")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights that are not on this machine, cannot be fetched, or are damaged.

    `str()` is one or two sentences that say what happened and what to do.
    """


@dataclass(frozen=True)
class WeightsStatus:
    """Where one torchvision network's weights stand on this machine.

    Attributes:
        name: SegLab's name ("fcn_resnet50", "alexnet", ...).
        task: "segmentation" or "classification".
        cached: whether the file is in the torch.hub cache.
        path: where the file is, or would be after `download`.
        url: where `download` fetches it from.
        size_mb: size of the cached file in MiB, None when not cached.
        download_mb: size of the published file in MB, as torchvision states it.
        metrics: published accuracy, `{dataset: {metric: value}}` (see `published_metrics`).
        num_params: number of parameters of the network.
    """

    name: str
    task: str
    cached: bool
    path: Path
    url: str
    size_mb: float | None
    download_mb: float
    metrics: dict[str, dict[str, float]]
    num_params: int


@dataclass(frozen=True)
class Preprocessing:
    """How an image must be prepared for a torchvision network, read from its weights.

    Attributes:
        mean: per-channel mean subtracted after scaling to [0, 1] (RGB).
        std: per-channel standard deviation divided by (RGB).
        resize_size: the shorter side is resized to this many pixels.
        crop_size: side of the central crop (classifiers), None for segmenters.
        interpolation: resampling used for the resize ("bilinear").
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_size: int
    crop_size: int | None
    interpolation: str


def _entry(name: str) -> tuple[Callable[..., nn.Module], WeightsEnum]:
    table = {**TORCHVISION_SEGMENTERS, **TORCHVISION_CLASSIFIERS}
    if name not in table:
        raise ValueError(f"Unknown torchvision network {name!r}; choose one of "
                         f"{', '.join(sorted(table))}.")
    return table[name]


def _task(name: str) -> str:
    return "segmentation" if name in TORCHVISION_SEGMENTERS else "classification"


def names(task: str | None = None) -> list[str]:
    """The torchvision networks SegLab knows, segmenters first; optionally of one task
    ("segmentation" or "classification")."""
    return [n for n in (*TORCHVISION_SEGMENTERS, *TORCHVISION_CLASSIFIERS)
            if task is None or _task(n) == task]


def cache_path(name: str) -> Path:
    """The file torch.hub keeps `name`'s weights in, whether it exists yet or not.

    It is `<torch.hub.get_dir()>/checkpoints/<file name of the URL>`, exactly where
    torchvision's own loader looks, so it follows `TORCH_HOME` and `torch.hub.set_dir`.

    Args:
        name: a key of `TORCHVISION_SEGMENTERS` or `TORCHVISION_CLASSIFIERS`.

    Example:
        >>> cache_path("alexnet").name
        'alexnet-owt-7be5be79.pth'
    """
    _, weights = _entry(name)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def is_cached(name: str) -> bool:
    """Whether `name`'s weights file is in the torch.hub cache (not whether it is intact).

    Example:
        >>> is_cached("resnet50")  # doctest: +SKIP
        False
    """
    return cache_path(name).is_file()


def published_metrics(name: str) -> dict[str, dict[str, float]]:
    """The accuracy torchvision publishes for `name`'s weights, per evaluation set.

    Segmenters report mIoU and pixel accuracy (in %) on COCO val2017 restricted to the 20 VOC
    classes; classifiers report top-1 and top-5 accuracy (in %) on ImageNet-1K validation.

    Args:
        name: a torchvision network name.

    Returns:
        `{dataset: {metric: value}}`, a copy the caller may change.

    Example:
        >>> published_metrics("fcn_resnet50")
        {'COCO-val2017-VOC-labels': {'miou': 60.5, 'pixel_acc': 91.4}}
    """
    _, weights = _entry(name)
    return {dataset: dict(values) for dataset, values in weights.meta["_metrics"].items()}


def categories(name: str) -> list[str]:
    """The class names of `name`'s output channels, in order.

    Example:
        >>> categories("lraspp_mobilenet_v3_large")[:3]
        ['__background__', 'aeroplane', 'bicycle']
    """
    _, weights = _entry(name)
    return list(weights.meta["categories"])


def transforms(name: str) -> Preprocessing:
    """The preprocessing `name`'s weights were trained with (mean/std, resize, crop).

    Example:
        >>> transforms("alexnet").crop_size
        224
    """
    _, weights = _entry(name)
    preset = weights.transforms()
    crop = getattr(preset, "crop_size", None)
    return Preprocessing(mean=tuple(preset.mean), std=tuple(preset.std),
                         resize_size=int(preset.resize_size[0]),
                         crop_size=int(crop[0]) if crop else None,
                         interpolation=preset.interpolation.value)


def status() -> list[WeightsStatus]:
    """The cache state of every torchvision network SegLab knows, segmenters first.

    Example:
        >>> [(s.name, s.cached) for s in status()][:1]  # doctest: +SKIP
        [('fcn_resnet50', False)]
    """
    rows = []
    for name in [*TORCHVISION_SEGMENTERS, *TORCHVISION_CLASSIFIERS]:
        _, weights = _entry(name)
        path = cache_path(name)
        cached = path.is_file()
        rows.append(WeightsStatus(
            name=name, task=_task(name), cached=cached, path=path, url=weights.url,
            size_mb=path.stat().st_size / 2**20 if cached else None,
            download_mb=float(weights.meta["_file_size"]), metrics=published_metrics(name),
            num_params=int(weights.meta["num_params"])))
    return rows


def download(name: str, progress: Callable[[int, int | None], None] | None = None,
             timeout: float = 10.0, *, url: str | None = None) -> Path:
    """Fetch `name`'s weights into the torch.hub cache, verified, and return the file's path.

    The bytes go to a temporary file next to the destination while their SHA-256 is computed;
    only when its first hex digits match the ones in the file name (torch.hub's rule) is the
    file renamed into place, atomically. Anything else leaves the cache as it was. An already
    cached file is returned without touching the network.

    Args:
        name: a torchvision network name.
        progress: called as `progress(done_bytes, total_bytes)` after every chunk; `total_bytes`
            is None when the server does not say.
        timeout: seconds allowed to connect and for each read. Name lookup (DNS) is left to the
            system resolver, which gives up on its own.
        url: fetch from this address instead of download.pytorch.org: a mirror of the same
            file, or a `file://` URL in tests. The bytes must still match the hash prefix of
            `cache_path(name)`, the name they are stored (and checked again by `build`) under.

    Returns:
        `cache_path(name)`.

    Raises:
        WeightsUnavailable: no connection, the server refused, or the file is corrupted.

    Example:
        >>> download("resnet18", progress=lambda done, total: print(done, total))  # doctest: +SKIP
    """
    destination = cache_path(name)
    if destination.is_file():
        return destination
    source = url or _entry(name)[1].url
    hash_prefix = _hash_prefix(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f"{destination.name}.{uuid.uuid4().hex}.partial")
    host = urlparse(source).hostname or source
    try:
        digest = _fetch(source, partial, progress, timeout)
        if not digest.startswith(hash_prefix):
            raise WeightsUnavailable(
                f"The downloaded weights of {name} were corrupted (SHA-256 {digest[:8]}…, "
                f"expected {hash_prefix}…) and were deleted; try the download again.")
        os.replace(partial, destination)
        remember_sha256(destination, digest)  # verified: build need not read it again
    except urllib.error.HTTPError as error:
        raise WeightsUnavailable(
            f"Could not download the weights of {name}: {host} answered {error.code} "
            f"{error.reason}. " + _FETCH_AT_HOME.format(folder=destination.parent)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError,
            http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise WeightsUnavailable(
            f"No internet connection: could not download the weights of {name} from {host} "
            f"({reason}). " + _FETCH_AT_HOME.format(folder=destination.parent)) from None
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _hash_prefix(path: Path) -> str:
    """The SHA-256 prefix in a torchvision file name (`alexnet-owt-7be5be79.pth` -> 7be5be79)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None or not match.group(1):
        raise WeightsUnavailable(f"Cannot verify {path.name}: its file name carries no SHA-256 "
                                 "prefix (expected name-<hash>.pth).")
    return match.group(1)


def _fetch(url: str, path: Path, progress, timeout: float) -> str:
    """Stream `url` into `path` in chunks; return the SHA-256 hex digest of what was written."""
    sha256 = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "seglab"})
    # `timeout` bounds the connect and every single read, so a stalled server cannot hang us.
    with urllib.request.urlopen(request, timeout=timeout) as response, path.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        done = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            sha256.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return sha256.hexdigest()


def build(name: str, *, device: torch.device | str | None = None) -> tuple[nn.Module, WeightsEnum]:
    """The torchvision network `name` with its pretrained weights, in eval mode.

    Reads only the cached file (see `cache_path`); it never downloads. The file must hash to
    the SHA-256 prefix in its name (checked once per process and version of the file). The
    network is built
    empty (`weights=None, weights_backbone=None`, so torchvision fetches nothing), with the
    class count and auxiliary head the weights require, and the file is loaded with
    `torch.load(weights_only=True)` (it cannot run code) and a strict `load_state_dict`.
    Segmenters return torchvision's dict: `"out"` (N, 21, H, W) logits, and `"aux"` for FCN
    and DeepLabV3; classifiers return (N, 1000) logits.

    Args:
        name: a torchvision network name.
        device: where to put the network; None keeps it on the CPU.

    Returns:
        `(module, weights)`; `weights.meta["categories"]` names the output channels.

    Raises:
        WeightsUnavailable: the file is not cached, its bytes do not match the hash in its
            name, or it is damaged or does not fit.

    Example:
        >>> module, weights = build("lraspp_mobilenet_v3_large")  # doctest: +SKIP
        >>> module(torch.zeros(1, 3, 64, 64))["out"].shape  # doctest: +SKIP
        torch.Size([1, 21, 64, 64])
    """
    builder, weights = _entry(name)
    path = cache_path(name)
    if not path.is_file():
        raise WeightsUnavailable(
            f"The pretrained weights of {name} are not on this computer (looked for {path}). "
            "Download them with `python -m seg weights download` (needs internet).")
    digest, expected = file_sha256(path), _hash_prefix(path)
    if not digest.startswith(expected):
        raise WeightsUnavailable(
            f"The weights file {path} is damaged: its bytes changed after it was downloaded "
            f"(SHA-256 {digest[:8]}…, its name says {expected}…), so the network would "
            "give wrong answers. " + _DOWNLOAD_AGAIN.format(name=name))
    kwargs = {"weights": None, "num_classes": len(weights.meta["categories"])}
    if name in TORCHVISION_SEGMENTERS:
        kwargs["weights_backbone"] = None
        if name in _AUX_HEAD:
            kwargs["aux_loss"] = True
    module = builder(**kwargs)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    except Exception as error:  # a damaged file fails in zip, pickle or tensor code alike
        raise WeightsUnavailable(
            f"The weights file {path} is damaged or does not belong to {name} "
            f"({type(error).__name__}). " + _DOWNLOAD_AGAIN.format(name=name)) from error
    return module.eval().to(device or "cpu"), weights
