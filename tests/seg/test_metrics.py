"""seg.metrics against brute force (pixel loops), numpy and a scikit-image DAVIS reference."""

import math

import numpy as np
import pytest
import torch
from skimage.morphology import dilation, disk

from seg import metrics
from seg.metrics import (
    boundary_f,
    confidence,
    confusion_matrix,
    entropy,
    iou,
    iou_from_confusion,
    kl_divergence,
    miou,
    per_class_table,
    pixel_accuracy,
    region_similarity,
)

C = 5


def random_labels(seed, shape=(13, 17), ignore_fraction=0.15):
    """Prediction and target with a few ignore pixels in the target."""
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, C, shape)
    target = rng.integers(0, C, shape)
    target[rng.random(shape) < ignore_fraction] = 255
    return pred, target


def brute_confusion(pred, target, num_classes, ignore_index=255):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist()):
        if t != ignore_index:
            cm[t, p] += 1
    return cm


def brute_iou(pred, target, num_classes, ignore_index=255):
    out = []
    for c in range(num_classes):
        inter = union = 0
        for p, t in zip(pred.ravel().tolist(), target.ravel().tolist()):
            if t == ignore_index:
                continue
            inter += p == c and t == c
            union += p == c or t == c
        out.append(inter / union if union else math.nan)
    return np.array(out)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("as_torch", [False, True])
def test_confusion_matrix_matches_brute_force(seed, as_torch):
    pred, target = random_labels(seed)
    args = (torch.from_numpy(pred), torch.from_numpy(target)) if as_torch else (pred, target)
    cm = confusion_matrix(*args, num_classes=C)
    assert cm.dtype == torch.int64 and cm.shape == (C, C)
    np.testing.assert_array_equal(cm.numpy(), brute_confusion(pred, target, C))
    assert int(cm.sum()) == int((target != 255).sum())


def test_confusion_matrix_rows_are_target():
    cm = confusion_matrix(np.array([1, 1, 1]), np.array([0, 0, 1]), num_classes=2)
    assert cm.tolist() == [[0, 2], [0, 1]]


def test_confusion_matrix_uint8_and_custom_ignore():
    pred, target = random_labels(7)
    target8 = target.astype(np.uint8)
    np.testing.assert_array_equal(
        confusion_matrix(pred.astype(np.uint8), target8, C).numpy(), brute_confusion(pred, target, C)
    )
    target_neg = np.where(target == 255, -1, target)
    np.testing.assert_array_equal(
        confusion_matrix(pred, target_neg, C, ignore_index=-1).numpy(), brute_confusion(pred, target, C)
    )


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), C)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([C]), np.array([0]), C)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0]), np.array([C]), C)


@pytest.mark.parametrize("seed", range(4))
def test_iou_miou_accuracy_match_brute_force(seed):
    pred, target = random_labels(seed)
    pred[pred == 3] = 0  # class 3 never predicted ...
    target[target == 3] = 255  # ... nor labelled: its IoU must be nan
    expected = brute_iou(pred, target, C)
    got = iou(pred, target, C)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, equal_nan=True)
    assert math.isnan(got[3])
    assert type(miou(pred, target, C)) is float and type(pixel_accuracy(pred, target, C)) is float
    assert miou(pred, target, C) == pytest.approx(np.nanmean(expected))
    valid = target != 255
    assert pixel_accuracy(pred, target, C) == pytest.approx((pred[valid] == target[valid]).mean())


def test_iou_from_summed_confusion_is_dataset_iou():
    (p1, t1), (p2, t2) = random_labels(1), random_labels(2)
    summed = confusion_matrix(p1, t1, C) + confusion_matrix(p2, t2, C)
    both = brute_iou(np.concatenate([p1, p2]), np.concatenate([t1, t2]), C)
    np.testing.assert_allclose(iou_from_confusion(summed).numpy(), both, equal_nan=True)


def test_perfect_prediction_and_all_ignored():
    _, target = random_labels(3)
    perfect = np.where(target == 255, 0, target)
    assert miou(perfect, target, C) == 1.0
    assert pixel_accuracy(perfect, target, C) == 1.0
    all_ignored = np.full((4, 4), 255)
    assert math.isnan(pixel_accuracy(np.zeros((4, 4), int), all_ignored, C))
    assert math.isnan(miou(np.zeros((4, 4), int), all_ignored, C))


def test_per_class_table():
    pred, target = random_labels(5)
    classes = [f"c{i}" for i in range(C)]
    rows = per_class_table(pred, target, classes)
    valid = target != 255
    expected_iou = brute_iou(pred, target, C)
    assert [r["class"] for r in rows] == classes
    for c, row in enumerate(rows):
        assert set(row) == {"class", "IoU", "target share", "prediction share"}
        assert row["IoU"] == pytest.approx(expected_iou[c])
        assert row["target share"] == pytest.approx((target[valid] == c).mean())
        assert row["prediction share"] == pytest.approx((pred[valid] == c).mean())
    assert sum(r["target share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["prediction share"] for r in rows) == pytest.approx(1.0)


# --- DAVIS J and F ---------------------------------------------------------------------------


def davis_seg2bmap(seg):
    """seg2bmap of the DAVIS benchmark (davis2017-evaluation, metrics.py), same-size case."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def davis_f_reference(fg, gt, bound_th=0.008):
    """DAVIS f_measure with skimage's disk dilation in place of cv2.dilate."""
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_b, gt_b = davis_seg2bmap(fg), davis_seg2bmap(gt)
    fg_dil = dilation(fg_b, disk(bound_pix))
    gt_dil = dilation(gt_b, disk(bound_pix))
    n_fg, n_gt = fg_b.sum(), gt_b.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_b & gt_dil) / n_fg
        recall = np.sum(gt_b & fg_dil) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def blob_mask(seed, shape, count=4):
    """Union of random discs: shapes with curved and straight-ish contours, touching borders."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for _ in range(count):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(3, min(shape) / 3)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


@pytest.mark.parametrize("shape", [(48, 64), (64, 64), (97, 120), (160, 90)])
@pytest.mark.parametrize("bound_th", [0.008, 0.03, 2, 5])
def test_boundary_f_matches_davis_reference(shape, bound_th):
    for seed in range(3):
        gt = blob_mask(seed, shape)
        pred = blob_mask(seed + 100, shape) if seed == 2 else np.roll(gt, (seed + 1, -seed), axis=(0, 1))
        expected = davis_f_reference(pred, gt, bound_th)
        assert boundary_f(pred, gt, bound_th) == pytest.approx(expected, abs=1e-12)
        assert boundary_f(torch.from_numpy(pred), torch.from_numpy(gt), bound_th) == pytest.approx(expected)


def test_boundary_map_matches_brute_force():
    mask = blob_mask(4, (20, 23))
    h, w = mask.shape
    expected = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                neighbours = [(y, x + 1)]
            elif x == w - 1:
                neighbours = [(y + 1, x)]
            else:
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            expected[y, x] = any(mask[n] != mask[y, x] for n in neighbours)
    np.testing.assert_array_equal(metrics._boundary_map(mask), expected)


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 7])
def test_disk_dilation_matches_skimage(radius):
    sparse = np.random.default_rng(radius).random((31, 40)) < 0.02
    sparse[0, 0] = sparse[-1, 5] = sparse[10, -1] = True  # reach over every border
    np.testing.assert_array_equal(metrics._dilate_disk(sparse, radius), dilation(sparse, disk(radius)))


def test_j_and_f_perfect_empty_and_missing():
    gt = blob_mask(1, (40, 50))
    empty = np.zeros_like(gt)
    assert type(region_similarity(gt, gt)) is float and type(boundary_f(gt, gt)) is float
    assert region_similarity(gt, gt) == 1.0 and boundary_f(gt, gt) == 1.0
    assert region_similarity(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert region_similarity(empty, gt) == 0.0 and boundary_f(empty, gt) == 0.0
    assert region_similarity(gt, empty) == 0.0 and boundary_f(gt, empty) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_j_is_iou_of_masks(seed):
    a, b = blob_mask(seed, (30, 40)), blob_mask(seed + 10, (30, 40))
    expected = brute_iou(a.astype(int), b.astype(int), 2)[1]
    assert region_similarity(a, b) == pytest.approx(expected)
    assert region_similarity(a.astype(np.uint8), torch.from_numpy(b)) == pytest.approx(expected)
    assert region_similarity(a, b) == pytest.approx(float(iou(a.astype(int), b.astype(int), 2)[1]))


def test_f_rewards_small_shifts_only():
    gt = np.zeros((64, 64), bool)
    gt[16:48, 16:48] = True
    assert boundary_f(np.roll(gt, 1, axis=1), gt) == 1.0  # within the 1 px tolerance
    assert boundary_f(np.roll(gt, 4, axis=1), gt) < 0.6


# --- probability maps ------------------------------------------------------------------------


def random_probs(seed, shape=(4, 6, 7)):
    return torch.softmax(torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2, dim=0)


def test_entropy_and_confidence_match_numpy():
    p = random_probs(0)
    p[:, 0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # 0 log 0 must count as 0
    p[:, 0, 1] = 0.25
    a = p.numpy().astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = -np.nansum(a * np.log(a), axis=0)
    np.testing.assert_allclose(entropy(p).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert float(entropy(p)[0, 0]) == 0.0
    assert float(entropy(p)[0, 1]) == pytest.approx(math.log(4))
    np.testing.assert_array_equal(confidence(p).numpy(), a.max(axis=0).astype(np.float32))
    np.testing.assert_allclose(entropy(a).numpy(), expected, rtol=1e-9)


def test_kl_divergence_matches_numpy():
    p, q = random_probs(1), random_probs(2)
    a, b = p.double().numpy(), q.double().numpy()
    expected = (a * np.log(a / b)).sum(axis=0).mean()
    assert kl_divergence(p, q) == pytest.approx(expected, rel=1e-5)
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-6)
    hard = torch.zeros(2, 1, 1)
    hard[0] = 1.0
    assert math.isfinite(kl_divergence(torch.full((2, 1, 1), 0.5), hard))


def test_probability_maps_need_three_dims():
    with pytest.raises(ValueError, match="C, H, W"):
        entropy(torch.ones(3, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_metrics_on_cuda_match_cpu():
    pred, target = random_labels(9, shape=(64, 80))
    cm = confusion_matrix(torch.from_numpy(pred).cuda(), torch.from_numpy(target).cuda(), C)
    assert cm.device.type == "cuda"
    np.testing.assert_array_equal(cm.cpu().numpy(), brute_confusion(pred, target, C))
    mixed = confusion_matrix(torch.from_numpy(pred).cuda(), target, C)  # numpy target follows pred
    np.testing.assert_array_equal(mixed.cpu().numpy(), cm.cpu().numpy())
    assert miou(torch.from_numpy(pred).cuda(), target, C) == pytest.approx(miou(pred, target, C))
    p = random_probs(3)
    torch.testing.assert_close(entropy(p.cuda()).cpu(), entropy(p))


def test_stride_ceiling_keeps_what_a_stride_s_grid_can_hold():
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 3, (6, 5))
    target = np.kron(blocks, np.ones((8, 8), dtype=np.int64))  # (48, 40): 8×8 blocks
    # Stride 1 gives the labels back; a grid aligned with the blocks keeps their insides.
    assert torch.equal(metrics.stride_ceiling(target, 1, 3), torch.from_numpy(target))
    inside = metrics.stride_ceiling(target, 8, 3).numpy()[2:-2, 2:-2]
    assert (inside == target[2:-2, 2:-2]).mean() > 0.8
    # A pole one pixel wide is a quarter of a 4×4 cell at most: it never wins one.
    pole = np.zeros((16, 16), dtype=np.int64)
    pole[:, 6] = 1
    assert not (metrics.stride_ceiling(pole, 4, 2) == 1).any()
    assert (metrics.stride_ceiling(pole, 1, 2) == 1).sum() == 16
    # Sides that no stride divides: the answer keeps the target's size.
    assert metrics.stride_ceiling(target[:45, :37], 16, 3).shape == (45, 37)


def test_stride_ceiling_falls_as_the_stride_grows():
    from seg.synthetic import CLASSES, eval_seed, scene

    truth = scene(eval_seed(0), height=128, width=128).labels
    mious = [metrics.miou(metrics.stride_ceiling(truth, s, len(CLASSES)), truth, len(CLASSES))
             for s in (1, 4, 8, 16, 32)]
    assert mious[0] == 1.0 and mious == sorted(mious, reverse=True)
