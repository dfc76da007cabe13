"""Video segmentation the DAVIS way: segment every frame, follow one object, score it, smooth it.

DAVIS (Densely Annotated VIdeo Segmentation; Perazzi et al. 2016, Pont-Tuset et al. 2017) gives
a mask of each object in every frame of short clips. In its semi-supervised task the mask of the
object in the first frame is given and a method must follow it through the clip. It scores each
frame with two measures, from :mod:`seg.metrics`:

- region similarity J = |M ∩ G| / |M ∪ G|, the IoU of predicted and true masks;
- boundary accuracy F = 2PR / (P + R), whether the contours line up within a few pixels;

and reports their means over frames, and the mean of the two (J&F).

Here the per-frame segmenter is a semantic one (classes, not objects), so following an object
is done the simple way (:func:`follow_object`): the object's mask in frame t is the pixels
predicted as its class inside its box from frame t − 1, grown by a margin. A model that looks at
frames one by one also *flickers*: labels change between frames where the scene did not
(:func:`flicker`). Averaging the class probabilities over time (:func:`smooth_ema`) trades that
flicker for a little lag behind moving things; both effects are measured, not assumed.

Uploaded clips (:func:`read_clip`) are animated GIF, WebP or PNG, decoded by Pillow. MP4 and
other video containers need FFmpeg, which SegLab does not install, so they are refused with the
command that converts them.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageSequence

from seg import metrics
from seg.io import ImageError

#: Longest clip SegLab segments (frames), and the largest frame it decodes (pixels per side).
MAX_FRAMES = 48
MAX_SIDE = 1024
#: Largest clip file read (bytes), the app's upload limit too (.streamlit/config.toml).
MAX_CLIP_BYTES = 20_000_000

_CONVERT = ("Convert it to an animated GIF first, e.g. `ffmpeg -i clip.mp4 -t 4 "
            "-vf fps=6,scale=256:-1 clip.gif`.")
# Leading bytes of video containers Pillow cannot read: (offset, signature, name).
_VIDEO_SIGNATURES = ((4, b"ftyp", "an MP4/MOV video"), (0, b"\x1a\x45\xdf\xa3", "a WebM/MKV video"),
                     (8, b"AVI ", "an AVI video"))
# What Pillow raises on malformed files besides UnidentifiedImageError (an OSError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError)


# ---------------------------------------------------------------------------------------------
# Reading a clip
# ---------------------------------------------------------------------------------------------


def _too_large(size: str, max_side: int) -> ImageError:
    return ImageError(f"The frames of this clip are {size}; SegLab reads clips up to {max_side} "
                      "pixels on each side. Please shrink the clip (e.g. `-vf scale=256:-1` "
                      "with ffmpeg).")


def read_clip(data: bytes, *, max_frames: int = MAX_FRAMES, max_side: int = MAX_SIDE,
              fit_side: int | None = None) -> np.ndarray:
    """Decode an animated GIF, WebP or PNG (APNG) into RGB frames, refusing what is too big.

    The checks run before the costly part: the byte count, then the frame size and frame count
    from the headers, then each frame is decoded (Pillow composes GIF/APNG frames onto the
    canvas, so every frame is the full picture) and converted to RGB.

    Args:
        data: the file's bytes.
        max_frames: more frames than this is refused.
        max_side: frames wider or taller than this are refused.
        fit_side: if given, frames are shrunk (aspect kept) so their longer side is at most this.

    Returns:
        uint8 array (T, H, W, 3), T >= 2.

    Raises:
        ImageError: a sentence for the student: not an animation, a video container, a single
            picture, too many frames, too large, or damaged.

    Example:
        >>> frames = [Image.new("RGB", (8, 6), (40 * i, 0, 0)) for i in range(3)]
        >>> buffer = io.BytesIO()
        >>> frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
        >>> read_clip(buffer.getvalue()).shape
        (3, 6, 8, 3)
    """
    data = bytes(data)
    if not data:
        raise ImageError("This file is empty (0 bytes), so there is no clip in it. "
                         "Please upload it again.")
    if len(data) > MAX_CLIP_BYTES:
        raise ImageError(f"This file is {len(data) / 1e6:.0f} MB; SegLab reads clips up to "
                         f"{MAX_CLIP_BYTES / 1e6:.0f} MB. Please upload a shorter or smaller clip.")
    for offset, signature, kind in _VIDEO_SIGNATURES:
        if data[offset:offset + len(signature)] == signature:
            raise ImageError(f"This file is {kind}. SegLab reads clips as animated GIF, WebP or "
                             "PNG only, because reading videos needs FFmpeg, which is not "
                             f"installed. {_CONVERT}")
    try:
        # Still-picture formats are opened too, only to say what the file is.
        animation = Image.open(io.BytesIO(data),
                               formats=("GIF", "WEBP", "PNG", "JPEG", "BMP", "TIFF"))
    except Image.DecompressionBombError as error:  # a header claiming billions of pixels
        raise _too_large("far too large", max_side) from error
    except _DECODE_ERRORS as error:
        raise ImageError("This file is not an animated GIF, WebP or PNG that SegLab can read. "
                         f"{_CONVERT}") from error
    if animation.format not in ("GIF", "WEBP", "PNG"):
        raise ImageError(f"This file is a single {animation.format} picture, not a clip: a clip "
                         "is an animated GIF, WebP or PNG. To segment one picture, upload it in "
                         "the sidebar instead.")
    width, height = animation.size
    if max(width, height) > max_side:
        raise _too_large(f"{width}×{height} pixels", max_side)
    try:
        count = getattr(animation, "n_frames", 1)  # reads every frame's header, not its pixels
    except _DECODE_ERRORS as error:
        raise ImageError("This clip is damaged: its frames could not be counted. "
                         "Please export it again.") from error
    if count < 2:
        raise ImageError("This file holds a single picture, not a clip: a clip needs at least 2 "
                         "frames. To segment one picture, upload it in the sidebar instead.")
    if count > max_frames:
        raise ImageError(f"This clip has {count} frames; SegLab segments at most {max_frames} "
                         f"frames (a few seconds at 8 frames per second). Please cut it shorter, "
                         f"e.g. `ffmpeg -i clip.gif -frames:v {max_frames} short.gif`.")
    frames = []
    try:
        for frame in ImageSequence.Iterator(animation):
            rgb = frame.convert("RGB")
            if fit_side is not None and max(rgb.size) > fit_side:
                scale = fit_side / max(rgb.size)
                size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
                rgb = rgb.resize(size, Image.BILINEAR)
            frames.append(np.asarray(rgb))
    except _DECODE_ERRORS as error:
        raise ImageError(f"This clip is damaged: frame {len(frames) + 1} of {count} could not be "
                         "decoded. Please export it again.") from error
    return np.stack(frames)  # (T, H, W, 3)


# ---------------------------------------------------------------------------------------------
# Segmenting frame by frame
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ClipSegmentation:
    """A segmenter's output for every frame of a clip."""

    probs: torch.Tensor  # (T, C, H, W) float32 class probabilities, CPU
    labels: torch.Tensor  # (T, H, W) int64, argmax of probs
    seconds: list[float]  # per-frame wall time


def segment_clip(segmenter, frames, *,
                 callback: Callable[[int, int], None] | None = None) -> ClipSegmentation:
    """Segment a clip one frame at a time, as a per-image network does, with no memory between frames.

    Args:
        segmenter: a :class:`seg.models.Segmenter` (anything with ``predict(image)`` returning
            a prediction with ``probs`` (C, H, W)).
        frames: uint8 (T, H, W, 3) frames.
        callback: called as ``callback(done, total)`` after each frame (e.g. a progress bar).

    Returns:
        :class:`ClipSegmentation`.

    Example:
        >>> import seg
        >>> clip = seg.synthetic.clip(0, frames=2, height=64, width=64)
        >>> segment_clip(seg.models.load("fcn8s", device="cpu"), clip.frames).probs.shape[0]
        2
    """
    probs, seconds = [], []
    for t, frame in enumerate(frames):
        start = time.perf_counter()
        probs.append(segmenter.predict(np.asarray(frame)).probs)  # (C, H, W)
        seconds.append(time.perf_counter() - start)
        if callback is not None:
            callback(t + 1, len(frames))
    stacked = torch.stack(probs)  # (T, C, H, W)
    return ClipSegmentation(probs=stacked, labels=stacked.argmax(dim=1), seconds=seconds)


def smooth_ema(probs, momentum: float) -> torch.Tensor:
    """Temporal smoothing: an exponential moving average of the class probabilities.

    s₀ = p₀ and s_t = momentum · s_{t−1} + (1 − momentum) · p_t. A label now changes only when
    the new evidence outweighs the remembered one, so one-frame hesitations vanish; the price
    is lag: a moving edge is reported where it was about momentum / (1 − momentum) frames ago.
    Only past frames are used, so it works live, frame by frame.

    Args:
        probs: (T, C, H, W) class probabilities, tensor or numpy.
        momentum: weight of the past in [0, 1); 0 returns the input.

    Returns:
        float32 tensor (T, C, H, W).

    Example:
        >>> p = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1, 1)
        >>> smooth_ema(p, 0.5).flatten().tolist()
        [1.0, 0.5, 0.75]
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    p = torch.as_tensor(probs, dtype=torch.float32)  # (T, C, H, W)
    out = torch.empty_like(p)
    out[0] = p[0]
    for t in range(1, len(p)):
        out[t] = momentum * out[t - 1] + (1 - momentum) * p[t]  # (C, H, W)
    return out


# ---------------------------------------------------------------------------------------------
# Following one object
# ---------------------------------------------------------------------------------------------


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def object_ids(objects) -> list[tuple[int, int, int]]:
    """The objects of a clip, most visible first: (id, frames where visible, mean pixels then).

    Args:
        objects: (T, H, W) instance ids, 0 = background (``Clip.objects``).

    Returns:
        List of (id, frames visible, mean area in those frames), sorted by frames visible and
        then by area, both descending.

    Example:
        >>> object_ids(np.array([[[0, 1], [2, 2]], [[0, 0], [2, 2]]]))
        [(2, 2, 2), (1, 1, 1)]
    """
    objects = _as_numpy(objects)
    rows = []
    for i in np.unique(objects):
        if i == 0:
            continue
        area = (objects == i).reshape(len(objects), -1).sum(axis=1)  # (T,)
        visible = int((area > 0).sum())
        rows.append((int(i), visible, int(round(area[area > 0].mean()))))
    return sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))


def object_class(labels, objects, object_id: int) -> int:
    """The semantic class of an object: the label most of its pixels carry in the ground truth.

    Args:
        labels: (T, H, W) class labels.
        objects: (T, H, W) instance ids.
        object_id: the object.

    Returns:
        The class index.

    Example:
        >>> object_class(np.array([[6, 6, 2]]), np.array([[1, 1, 0]]), 1)
        6
    """
    labels, objects = _as_numpy(labels), _as_numpy(objects)
    pixels = labels[objects == object_id]
    if pixels.size == 0:
        raise ValueError(f"object {object_id} does not appear in this clip")
    return int(np.bincount(pixels).argmax())


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right; exclusive ends) of a non-empty mask."""
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def _grow(box, shape, margin: float, min_margin: int) -> tuple[int, int, int, int]:
    """The box grown on every side by ``margin`` times its size (at least ``min_margin``
    pixels), clipped to the picture."""
    top, bottom, left, right = box
    dy = max(min_margin, round(margin * (bottom - top)))
    dx = max(min_margin, round(margin * (right - left)))
    return max(0, top - dy), min(shape[0], bottom + dy), max(0, left - dx), min(shape[1], right + dx)


def follow_object(labels, first_mask, object_class: int, *, margin: float = 0.25,
                  min_margin: int = 4) -> np.ndarray:
    """Follow one object through a clip from a per-frame semantic segmentation.

    DAVIS's semi-supervised setting: the object's true mask in frame 0 is given. In each frame
    t the object's mask is the pixels predicted as its class inside the box of the previous
    mask (the given one for frame 0), grown by ``margin`` times the box's height and width, as
    the object may have moved or grown. If the object vanishes (an empty mask), the search box
    keeps growing by the same margin each frame until the object is found again. Its weakness
    is visible on purpose: a neighbour of the same class that touches the box joins the mask
    and the box drifts.

    Args:
        labels: (T, H, W) predicted class labels.
        first_mask: (H, W) bool, the object's true mask in frame 0.
        object_class: the class the segmenter gives the object (e.g. CAR).
        margin: growth of the box on each side, as a fraction of its size.
        min_margin: smallest growth, in pixels.

    Returns:
        bool array (T, H, W): the followed mask in every frame.

    Example:
        >>> labels = np.zeros((2, 8, 8), int); labels[0, 2:4, 2:4] = 1; labels[1, 3:5, 3:5] = 1
        >>> labels[:, 7, 7] = 1  # another object of the same class, far away
        >>> first = labels[0] == 1; first[7, 7] = False
        >>> follow_object(labels, first, 1, min_margin=1).sum(axis=(1, 2)).tolist()
        [4, 4]
    """
    labels = _as_numpy(labels)
    previous = _as_numpy(first_mask).astype(bool)
    if not previous.any():
        raise ValueError("the first mask is empty: give the object's mask in the first frame")
    shape = previous.shape
    masks = np.zeros(labels.shape, dtype=bool)  # (T, H, W)
    box = _grow(_box(previous), shape, margin, min_margin)
    for t in range(len(labels)):
        top, bottom, left, right = box
        masks[t, top:bottom, left:right] = labels[t, top:bottom, left:right] == object_class
        # found: search around it next; lost: widen the search, as it keeps moving unseen
        box = _grow(_box(masks[t]) if masks[t].any() else box, shape, margin, min_margin)
    return masks


def j_and_f(masks, truth) -> tuple[np.ndarray, np.ndarray]:
    """DAVIS's two scores for every frame: region similarity J and boundary accuracy F.

    Args:
        masks: (T, H, W) predicted masks of one object.
        truth: (T, H, W) its true masks.

    Returns:
        (J, F), two float64 arrays (T,). Their means (and the mean of the two, J&F) are the
        clip's scores.

    Example:
        >>> m = np.zeros((1, 8, 8), bool); m[0, 2:6, 2:6] = True
        >>> j_and_f(m, m)
        (array([1.]), array([1.]))
    """
    masks, truth = _as_numpy(masks), _as_numpy(truth)
    j = np.array([metrics.region_similarity(m, g) for m, g in zip(masks, truth)])
    f = np.array([metrics.boundary_f(m, g) for m, g in zip(masks, truth)])
    return j, f


# ---------------------------------------------------------------------------------------------
# Flicker
# ---------------------------------------------------------------------------------------------


def flicker(labels) -> np.ndarray:
    """Share of pixels whose label changes from each frame to the next.

    Labels also change because things move and the camera moves, so the flicker a model adds is
    this share for its prediction minus the same share for the ground truth.

    Args:
        labels: (T, H, W) class labels, T >= 2.

    Returns:
        float64 array (T - 1,): entry t compares frames t and t + 1.

    Example:
        >>> flicker(np.array([[[0, 0]], [[0, 1]], [[0, 1]]])).tolist()
        [0.5, 0.0]
    """
    labels = _as_numpy(labels)
    if len(labels) < 2:
        raise ValueError("flicker needs at least 2 frames")
    changed = labels[1:] != labels[:-1]  # (T-1, H, W)
    return changed.reshape(len(changed), -1).mean(axis=1)



def change_errors(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Split the prediction's label changes into wrong ones and missing ones.

    The flicker a model adds (its :func:`flicker` minus the truth's) is a net number: changes
    where nothing changed (noise) minus true changes it did not follow (lag). Smoothing trades
    the first for the second; these two shares show the trade separately.

    Args:
        pred: (T, H, W) predicted labels, T >= 2.
        truth: (T, H, W) true labels.

    Returns:
        (spurious, missed), two float64 arrays (T - 1,): the share of pixels whose predicted
        label changes from frame t to t + 1 while the true one does not, and the share whose
        true label changes while the predicted one does not.

    Example:
        >>> pred = np.array([[[0, 0]], [[1, 0]]]); truth = np.array([[[0, 0]], [[0, 1]]])
        >>> [a.tolist() for a in change_errors(pred, truth)]
        [[0.5], [0.5]]
    """
    pred, truth = _as_numpy(pred), _as_numpy(truth)
    if pred.shape != truth.shape or len(pred) < 2:
        raise ValueError(f"need two (T, H, W) label arrays of the same shape with T >= 2, "
                         f"got {pred.shape} and {truth.shape}")
    predicted = (pred[1:] != pred[:-1]).reshape(len(pred) - 1, -1)  # (T-1, H*W)
    true = (truth[1:] != truth[:-1]).reshape(len(pred) - 1, -1)  # (T-1, H*W)
    return (predicted & ~true).mean(axis=1), (true & ~predicted).mean(axis=1)
