"""How good is a segmentation? Confusion matrix, IoU, mIoU, pixel accuracy; J & F for masks.

Semantic segmentation is scored per class from one confusion matrix: entry ``[t, p]`` counts
the pixels whose true class is ``t`` and whose predicted class is ``p``. Everything else
(IoU, mIoU, pixel accuracy, the per-class table on the pages) is read off that matrix, which is
also why a data set is scored by *summing* confusion matrices over images and computing IoU
once, not by averaging per-image mIoU.

Video object segmentation (DAVIS) scores a binary mask with two numbers: the region
similarity J (IoU of the masks) and the boundary measure F (do the contours line up, within a
small tolerance?). Probability-map helpers (entropy, confidence, KL divergence) serve the
lessons that look at how sure a model is.

All label functions accept numpy arrays or torch tensors (CPU or GPU).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "confusion_matrix",
    "iou_from_confusion",
    "iou",
    "miou",
    "pixel_accuracy",
    "stride_ceiling",
    "per_class_table",
    "region_similarity",
    "boundary_f",
    "entropy",
    "confidence",
    "kl_divergence",
]


def _as_tensor(x, device: torch.device | None = None) -> torch.Tensor:
    """A tensor view of ``x`` (numpy array, list or tensor), moved to ``device`` if given."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(x))
    return t if device is None else t.to(device)


def _as_mask(x) -> np.ndarray:
    """A 2-D numpy bool mask from a numpy array or torch tensor (non-zero = foreground)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) mask, got shape {tuple(a.shape)}")
    return a != 0


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Count pixels per (true class, predicted class) pair.

    Row ``t``, column ``p`` holds the number of pixels labelled ``t`` in the ground truth and
    predicted as ``p``; the diagonal holds the correct pixels. Pixels whose target equals
    ``ignore_index`` (unlabelled / void) are skipped. The count is one ``torch.bincount`` over
    the flat index ``t * C + p``, so it runs on whatever device ``pred`` lives on.

    Args:
        pred: predicted labels, integer array or tensor of any shape (usually (H, W)).
        target: ground-truth labels, same shape as ``pred``; moved to ``pred``'s device.
        num_classes: C, the number of classes; labels must lie in ``[0, C)``.
        ignore_index: target value that marks pixels to leave out.

    Returns:
        int64 tensor (C, C) on ``pred``'s device; rows = target, columns = prediction.

    Example:
        >>> confusion_matrix([[0, 1], [1, 1]], [[0, 1], [0, 255]], num_classes=2)
        tensor([[1, 1],
                [0, 1]])
    """
    pred = _as_tensor(pred)
    target = _as_tensor(target, device=pred.device)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}; "
            "resize the prediction to the label size (nearest neighbour) before scoring"
        )
    pred = pred.reshape(-1).long()  # (P,)
    target = target.reshape(-1).long()  # (P,)
    valid = target != ignore_index  # (P,)
    pred, target = pred[valid], target[valid]  # (V,), (V,)
    for name, labels in (("pred", pred), ("target", target)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} contains labels outside [0, {num_classes}) "
                f"(min {int(labels.min())}, max {int(labels.max())}); "
                f"is num_classes right, and is {ignore_index} the ignore label?"
            )
    flat = target * num_classes + pred  # (V,) one bin per (true, predicted) pair
    counts = torch.bincount(flat, minlength=num_classes * num_classes)  # (C*C,)
    return counts.reshape(num_classes, num_classes)  # (C, C)


def iou_from_confusion(cm) -> torch.Tensor:
    """Per-class intersection over union from a confusion matrix.

    IoU_c = TP / (TP + FP + FN) = cm[c, c] / (row c + column c - cm[c, c]). A class absent from
    both prediction and target has 0 / 0 and gets ``nan``: there is nothing to score, and
    ``nan`` keeps it out of the mean instead of counting it as 0 or 1. Use this to score a
    whole data set from the sum of its images' confusion matrices.

    Args:
        cm: (C, C) confusion matrix, rows = target, columns = prediction.

    Returns:
        float64 tensor (C,) on the CPU (float64 is not available on every accelerator).

    Example:
        >>> iou_from_confusion(torch.tensor([[3, 1], [0, 0]]))
        tensor([0.7500, 0.0000], dtype=torch.float64)
    """
    cm = _as_tensor(cm).cpu().double()  # (C, C)
    tp = cm.diagonal()  # (C,)
    union = cm.sum(dim=1) + cm.sum(dim=0) - tp  # (C,)
    return tp / union  # (C,) 0/0 -> nan for absent classes


def iou(pred, target, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Intersection over union of each class between a prediction and its ground truth.

    Args:
        pred: predicted labels (H, W), numpy or torch.
        target: ground-truth labels (H, W); ``ignore_index`` pixels are skipped.
        num_classes: C.
        ignore_index: target value that marks pixels to leave out.

    Returns:
        float64 tensor (C,) on the CPU, ``nan`` where a class is absent from both.

    Example:
        >>> iou([[0, 0], [1, 1]], [[0, 1], [1, 1]], num_classes=3)
        tensor([0.5000, 0.6667,    nan], dtype=torch.float64)
    """
    return iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))


def miou(pred, target, num_classes: int, ignore_index: int = 255) -> float:
    """Mean IoU over the classes present in prediction or target (the usual headline score).

    Classes absent from both are ``nan`` in :func:`iou` and left out of the mean; if every
    pixel is ignored the result is ``nan``.

    Args:
        pred: predicted labels (H, W), numpy or torch.
        target: ground-truth labels (H, W).
        num_classes: C.
        ignore_index: target value that marks pixels to leave out.

    Returns:
        The mean IoU as a Python float in [0, 1] (or nan).

    Example:
        >>> round(miou([[0, 0], [1, 1]], [[0, 1], [1, 1]], num_classes=3), 4)
        0.5833
    """
    return float(torch.nanmean(iou(pred, target, num_classes, ignore_index)))


def pixel_accuracy(pred, target, num_classes: int, ignore_index: int = 255) -> float:
    """Fraction of non-ignored pixels whose predicted class is right.

    Easy to read but flattered by large classes (sky, road): a model that never finds a pole
    still scores high, which is why mIoU is the headline number.

    Args:
        pred: predicted labels (H, W), numpy or torch.
        target: ground-truth labels (H, W).
        num_classes: C.
        ignore_index: target value that marks pixels to leave out.

    Returns:
        Accuracy as a Python float in [0, 1]; nan if every pixel is ignored.

    Example:
        >>> pixel_accuracy([[0, 0], [1, 1]], [[0, 1], [1, 255]], num_classes=2)
        0.6666666666666666
    """
    cm = confusion_matrix(pred, target, num_classes, ignore_index)  # (C, C)
    total = int(cm.sum())
    return int(cm.trace()) / total if total else math.nan


def stride_ceiling(target, stride: int, num_classes: int) -> torch.Tensor:
    """The labels of the best score map a network of output stride `stride` could give.

    A network whose last scores are `stride` times smaller than the picture, upsampled
    bilinearly (FCN-32s: 32; FCN-8s and DeepLab v1: 8), cannot draw detail finer than its
    grid. The *perfect* such map holds, in each stride × stride cell, the share of the cell's
    pixels of each class (the true labels one-hot, average-pooled); upsampled bilinearly and
    arg-maxed it is the labelling any such network can at best approach. Its mIoU against
    `target` is the ceiling that no training of that network will break by much: a pole one
    pixel wide is a few per cent of a 32 × 32 cell and never wins the argmax.

    Args:
        target: true labels (H, W), numpy or torch, values < num_classes.
        stride: the output stride (1 gives `target` back).
        num_classes: C.

    Returns:
        int64 (H, W) labels on the CPU.

    Example:
        >>> t = torch.zeros(8, 8, dtype=torch.int64); t[:, 3] = 1  # a pole 1 px wide
        >>> bool((stride_ceiling(t, 4, 2) == 1).any())
        False
        >>> bool((stride_ceiling(t, 1, 2) == t).all())
        True
    """
    labels = _as_tensor(target).long().cpu()  # (H, W)
    height, width = labels.shape
    one_hot = torch.nn.functional.one_hot(labels, num_classes).permute(2, 0, 1)[None].float()
    pad_h, pad_w = (-height) % stride, (-width) % stride
    padded = torch.nn.functional.pad(one_hot, (0, pad_w, 0, pad_h), mode="replicate")
    cells = torch.nn.functional.avg_pool2d(padded, stride)  # (1, C, H'/s, W'/s)
    up = torch.nn.functional.interpolate(cells, scale_factor=stride, mode="bilinear",
                                         align_corners=False)  # (1, C, H', W')
    return up[0, :, :height, :width].argmax(0)


def per_class_table(pred, target, classes, ignore_index: int = 255) -> list[dict]:
    """One row per class for the pages: its IoU and how much of each image it covers.

    Comparing "target share" with "prediction share" shows at a glance whether a model
    over- or under-predicts a class (e.g. thin poles swallowed by the building around them).

    Args:
        pred: predicted labels (H, W), numpy or torch.
        target: ground-truth labels (H, W).
        classes: class names; their number is C.
        ignore_index: target value that marks pixels to leave out.

    Returns:
        A list of C dicts in class order with keys ``"class"`` (name), ``"IoU"`` (float, nan if
        absent from both), ``"target share"`` and ``"prediction share"`` (fractions of the
        non-ignored pixels, each summing to 1 over the classes).

    Example:
        >>> per_class_table([[0, 1]], [[0, 0]], ["sky", "road"])[0]
        {'class': 'sky', 'IoU': 0.5, 'target share': 1.0, 'prediction share': 0.5}
    """
    cm = confusion_matrix(pred, target, len(classes), ignore_index).cpu()  # (C, C)
    ious = iou_from_confusion(cm)  # (C,)
    total = max(int(cm.sum()), 1)
    target_share = cm.sum(dim=1).double() / total  # (C,)
    pred_share = cm.sum(dim=0).double() / total  # (C,)
    return [
        {
            "class": name,
            "IoU": float(ious[c]),
            "target share": float(target_share[c]),
            "prediction share": float(pred_share[c]),
        }
        for c, name in enumerate(classes)
    ]


def region_similarity(pred_mask, gt_mask) -> float:
    """DAVIS region similarity J: the IoU of two binary masks.

    Both masks empty means the object is correctly reported absent, which scores 1.0.

    Args:
        pred_mask: predicted mask (H, W), bool or 0/1 (non-zero = object), numpy or torch.
        gt_mask: ground-truth mask (H, W).

    Returns:
        J as a Python float in [0, 1].

    Example:
        >>> region_similarity([[1, 1], [0, 0]], [[1, 0], [0, 0]])
        0.5
    """
    pred, gt = _as_mask(pred_mask), _as_mask(gt_mask)
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {gt.shape}")
    union = np.count_nonzero(pred | gt)
    return float(np.count_nonzero(pred & gt) / union) if union else 1.0


def _boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-thin contour of a bool mask, as ``seg2bmap`` in the DAVIS benchmark.

    A pixel is on the contour when it differs from its east, south or south-east neighbour,
    so each edge is marked once (on its upper/left side) rather than on both sides. The last
    row and column only compare along the border, so the image frame itself is not a contour.
    """
    east = np.zeros_like(mask)
    south = np.zeros_like(mask)
    south_east = np.zeros_like(mask)
    east[:, :-1] = mask[:, 1:]
    south[:-1, :] = mask[1:, :]
    south_east[:-1, :-1] = mask[1:, 1:]
    bmap = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    bmap[-1, :] = mask[-1, :] ^ east[-1, :]
    bmap[:, -1] = mask[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def _dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask`` by the disk x² + y² ≤ radius² (skimage's ``disk(radius)``).

    The disk is cut into rows: row ``dy`` is a horizontal segment of half-width
    ``floor(sqrt(r² - dy²))``, and "any set pixel within a horizontal window" is a difference of
    running sums. That costs (2r + 1) passes over the image instead of (2r + 1)² shifts.
    """
    if radius <= 0:
        return mask.copy()
    h, w = mask.shape
    r = radius
    padded = np.pad(mask, r)  # (H + 2r, W + 2r), outside the image is background
    running = np.zeros((h + 2 * r, w + 2 * r + 1), dtype=np.int64)
    np.cumsum(padded, axis=1, out=running[:, 1:])  # running[:, x] = set pixels left of x
    out = np.zeros_like(mask)
    for dy in range(-r, r + 1):
        half = math.isqrt(r * r - dy * dy)
        rows = running[r + dy : r + dy + h]  # (H, W + 2r + 1) source rows shifted by dy
        window = rows[:, r + half + 1 : r + half + 1 + w] - rows[:, r - half : r - half + w]
        out |= window > 0
    return out


def boundary_f(pred_mask, gt_mask, bound_th: float = 0.008) -> float:
    """DAVIS boundary measure F: do the predicted and true contours line up?

    Both masks are thinned to one-pixel contours. A predicted contour pixel counts as correct
    if a true contour pixel lies within a tolerance disk, and vice versa: precision P is the
    matched fraction of predicted contour pixels, recall R that of true contour pixels, and
    F = 2PR / (P + R). The tolerance is ``bound_th`` times the image diagonal (rounded up to
    whole pixels) when ``bound_th < 1``, else ``bound_th`` pixels. As in the benchmark, both
    contours empty scores 1.0 and exactly one empty scores 0.0.

    Args:
        pred_mask: predicted mask (H, W), bool or 0/1 (non-zero = object), numpy or torch.
        gt_mask: ground-truth mask (H, W).
        bound_th: tolerance, a fraction of the diagonal (< 1) or pixels (>= 1).

    Returns:
        F as a Python float in [0, 1].

    Example:
        >>> gt = np.zeros((64, 64), bool); gt[16:48, 16:48] = True
        >>> boundary_f(np.roll(gt, 1, axis=1), gt)  # 1 px shift is within the 1 px tolerance
        1.0
    """
    pred, gt = _as_mask(pred_mask), _as_mask(gt_mask)
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {gt.shape}")
    radius = bound_th if bound_th >= 1 else bound_th * math.hypot(*pred.shape)
    radius = math.ceil(radius)
    pred_b, gt_b = _boundary_map(pred), _boundary_map(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 or n_gt == 0:
        return 1.0 if n_pred == n_gt else 0.0
    precision = np.count_nonzero(pred_b & _dilate_disk(gt_b, radius)) / n_pred
    recall = np.count_nonzero(gt_b & _dilate_disk(pred_b, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _as_probs(probs) -> torch.Tensor:
    """A floating (C, H, W) tensor from a numpy array or tensor of probabilities."""
    p = _as_tensor(probs)
    if p.ndim != 3:
        raise ValueError(f"expected class probabilities (C, H, W), got shape {tuple(p.shape)}")
    return p if p.is_floating_point() else p.float()


def entropy(probs) -> torch.Tensor:
    """Per-pixel Shannon entropy of the class distribution, in nats.

    H = -Σ_c p_c log p_c, with 0 log 0 = 0. It is 0 where the model is certain and log C where
    it spreads its belief evenly over all C classes; object borders light up.

    Args:
        probs: class probabilities (C, H, W) summing to 1 over C, tensor or numpy.

    Returns:
        Tensor (H, W) on the device of ``probs``.

    Example:
        >>> entropy(torch.full((4, 1, 1), 0.25))  # uniform over 4 classes: log 4
        tensor([[1.3863]])
    """
    p = _as_probs(probs)  # (C, H, W)
    return -torch.special.xlogy(p, p).sum(dim=0)  # (H, W)


def confidence(probs) -> torch.Tensor:
    """Per-pixel confidence: the probability of the predicted (most likely) class.

    Args:
        probs: class probabilities (C, H, W), tensor or numpy.

    Returns:
        Tensor (H, W) on the device of ``probs``, values in [1/C, 1].

    Example:
        >>> confidence(torch.tensor([[[0.2]], [[0.8]]]))
        tensor([[0.8000]])
    """
    return _as_probs(probs).amax(dim=0)  # (H, W)


def kl_divergence(p, q, eps: float = 1e-12) -> float:
    """Mean over pixels of KL(p ‖ q) = Σ_c p_c log(p_c / q_c), in nats.

    Measures how much a second probability map ``q`` (e.g. after a CRF, or from another
    model) departs from ``p``. It is 0 for identical maps and not symmetric. ``q`` is clamped
    below at ``eps`` so a class that ``q`` rules out costs a large but finite amount.

    Args:
        p: reference class probabilities (C, H, W).
        q: other class probabilities (C, H, W), same shape; moved to ``p``'s device.
        eps: floor for ``q`` before the logarithm.

    Returns:
        The mean per-pixel divergence as a Python float.

    Example:
        >>> p = torch.tensor([[[0.5]], [[0.5]]]); q = torch.tensor([[[0.9]], [[0.1]]])
        >>> round(kl_divergence(p, q), 4)
        0.5108
    """
    p = _as_probs(p)  # (C, H, W)
    q = _as_probs(q).to(p.device)  # (C, H, W)
    if p.shape != q.shape:
        raise ValueError(f"probability maps differ in shape: {tuple(p.shape)} vs {tuple(q.shape)}")
    per_pixel = (torch.special.xlogy(p, p) - torch.special.xlogy(p, q.clamp_min(eps))).sum(dim=0)
    return float(per_pixel.mean())  # mean over (H, W)
