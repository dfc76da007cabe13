"""seg.video: reading clips, per-frame segmentation, following an object, J/F, flicker and
smoothing, each checked against a direct reference (numpy counts, loops, per-frame predict)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

import seg
from seg import video
from seg.io import ImageError


def animation(frames, fmt="GIF", **params) -> bytes:
    """Frames (uint8 arrays) saved as one animated file."""
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], **params)
    return buffer.getvalue()


def solid_frames(n, size=(12, 16)):
    """n frames of flat, distinct colours (exact in a GIF palette)."""
    return [np.full((*size, 3), (10 * i, 255 - 10 * i, 40), np.uint8) for i in range(n)]


# --- reading clips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, params", [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_read_clip_decodes_every_frame(fmt, params):
    frames = solid_frames(5)
    clip = video.read_clip(animation(frames, fmt, **params))
    assert clip.shape == (5, 12, 16, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip, np.stack(frames))


def test_read_clip_shrinks_to_fit_side():
    clip = video.read_clip(animation(solid_frames(3, size=(60, 100))), fit_side=50)
    assert clip.shape == (3, 30, 50, 3)


def test_too_long_clip_is_refused_with_the_bound():
    with pytest.raises(ImageError, match="60 frames; SegLab segments at most 48"):
        video.read_clip(animation(solid_frames(60)))


def test_single_picture_video_container_and_garbage_are_refused_with_sentences():
    single = io.BytesIO()
    Image.fromarray(solid_frames(1)[0]).save(single, "PNG")
    with pytest.raises(ImageError, match="single picture"):
        video.read_clip(single.getvalue())
    mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
    with pytest.raises(ImageError, match="MP4.*FFmpeg"):
        video.read_clip(mp4)
    with pytest.raises(ImageError, match="not an animated GIF"):
        video.read_clip(b"hello, this is text")
    with pytest.raises(ImageError, match="empty"):
        video.read_clip(b"")


def test_too_large_frames_are_refused():
    with pytest.raises(ImageError, match="1100×20 pixels"):
        video.read_clip(animation(solid_frames(2, size=(20, 1100))))
    data = bytearray(animation(solid_frames(2)))
    data[6:10] = (30000).to_bytes(2, "little") * 2  # the header claims 30000 × 30000
    with pytest.raises(ImageError, match="too large|30000×30000"):
        video.read_clip(bytes(data))


def test_truncated_clip_is_refused_as_damaged():
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(4)]
    data = animation(frames)
    with pytest.raises(ImageError, match="damaged|not an animated"):
        video.read_clip(data[: len(data) * 2 // 3])


# --- segmentation, smoothing, flicker ----------------------------------------------------------


def test_segment_clip_equals_predicting_each_frame_and_reports_progress():
    clip = seg.synthetic.clip(3, frames=2, height=64, width=64)
    segmenter = seg.models.load("fcn8s", device="cpu")
    calls = []
    result = video.segment_clip(segmenter, clip.frames, callback=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 2), (2, 2)]
    assert result.probs.shape == (2, 8, 64, 64) and len(result.seconds) == 2
    for t in range(2):
        torch.testing.assert_close(result.probs[t], segmenter.predict(clip.frames[t]).probs)
    torch.testing.assert_close(result.labels, result.probs.argmax(dim=1))


def test_smooth_ema_matches_a_loop():
    p = torch.rand(5, 3, 4, 4)
    m = 0.7
    expected = [p[0].numpy()]
    for t in range(1, 5):
        expected.append(m * expected[-1] + (1 - m) * p[t].numpy())
    np.testing.assert_allclose(video.smooth_ema(p, m).numpy(), np.stack(expected), rtol=1e-6)
    torch.testing.assert_close(video.smooth_ema(p, 0.0), p)
    with pytest.raises(ValueError):
        video.smooth_ema(p, 1.0)


def test_flicker_counts_changed_pixels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(4, 5, 6))
    expected = [sum(labels[t + 1, y, x] != labels[t, y, x] for y in range(5) for x in range(6)) / 30
                for t in range(3)]
    np.testing.assert_allclose(video.flicker(labels), expected)
    assert (video.flicker(np.zeros((3, 2, 2), int)) == 0).all()


def test_smoothing_reduces_flicker_of_a_noisy_segmentation():
    rng = np.random.default_rng(1)
    truth = np.zeros((10, 16, 16), int)
    truth[:, 4:12, 4:12] = 1
    probs = np.stack([np.where(truth == c, 0.6, 0.4) for c in (0, 1)], axis=1)  # (T, 2, H, W)
    probs = probs + rng.normal(0, 0.15, probs.shape)  # per-frame noise flips some pixels
    raw, smooth = probs.argmax(1), video.smooth_ema(probs, 0.7).argmax(1).numpy()
    assert video.flicker(smooth).mean() < video.flicker(raw).mean() / 2
    assert (smooth == truth).mean() > (raw == truth).mean()


# --- following an object, J and F --------------------------------------------------------------


def test_region_similarity_is_the_iou_of_the_masks():
    rng = np.random.default_rng(2)
    for _ in range(5):
        a, b = rng.random((20, 20)) < 0.3, rng.random((20, 20)) < 0.3
        assert seg.metrics.region_similarity(a, b) == pytest.approx((a & b).sum() / (a | b).sum())
    j, _ = video.j_and_f(a[None], b[None])
    assert j[0] == pytest.approx((a & b).sum() / (a | b).sum())


def test_identical_masks_score_j_and_f_of_one():
    masks = np.zeros((3, 32, 32), bool)
    masks[0, 5:20, 8:14] = True
    masks[1, 6:21, 9:15] = True  # frame 2 empty: the object has left, correctly reported absent
    j, f = video.j_and_f(masks, masks)
    assert (j == 1).all() and (f == 1).all()


def test_follow_object_tracks_a_moving_square_and_ignores_a_distant_twin():
    labels = np.zeros((6, 40, 40), int)
    truth = np.zeros(labels.shape, bool)
    for t in range(6):
        truth[t, 5 + 2 * t:13 + 2 * t, 5 + 3 * t:13 + 3 * t] = True
    labels[truth] = 6
    labels[:, 30:38, 2:8] = 6  # another car, far from ours
    labels[3][truth[3]] = 0  # the network misses it in frame 3 ...
    masks = video.follow_object(labels, truth[0], 6)
    j, _ = video.j_and_f(masks, truth)
    np.testing.assert_allclose(j[[0, 1, 2, 4, 5]], 1.0)  # ... and finds it again in frame 4
    assert not masks[3].any() and not masks[:, 30:38, 2:8].any()


def test_object_ids_and_classes_of_a_synthetic_clip():
    clip = seg.synthetic.clip(7, frames=3, height=64, width=64)
    rows = video.object_ids(clip.objects)
    assert rows and sorted(r[0] for r in rows) == sorted(set(np.unique(clip.objects).tolist()) - {0})
    keys = [(-visible, -area) for _, visible, area in rows]
    assert keys == sorted(keys)
    for object_id, visible, _ in rows:
        present = (clip.objects == object_id).reshape(3, -1).any(axis=1)
        assert visible == present.sum()
        assert video.object_class(clip.labels, clip.objects, object_id) in (seg.synthetic.CAR,
                                                                          seg.synthetic.PERSON)


def test_change_errors_split_the_added_flicker_into_noise_and_lag():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, size=(5, 6, 7))
    pred = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(0, 3, truth.shape))
    spurious, missed = video.change_errors(pred, truth)
    for t in range(4):
        p, g = pred[t + 1] != pred[t], truth[t + 1] != truth[t]
        assert spurious[t] == pytest.approx(np.mean(p & ~g))
        assert missed[t] == pytest.approx(np.mean(g & ~p))
    np.testing.assert_allclose(video.flicker(pred) - video.flicker(truth), spurious - missed)
