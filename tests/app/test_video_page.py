"""The video page: a synthetic clip segmented frame by frame, J and F of a followed object, the
flicker and its smoothing, and uploaded clips (accepted and refused)."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import encoded, no_exception, open_page


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def gif(frames, fmt="GIF") -> bytes:
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], duration=120)
    return buffer.getvalue()


def panning(photo: np.ndarray, n: int) -> list[np.ndarray]:
    """n frames of a camera panning across a real photo (64×96 crops moving right)."""
    return [np.ascontiguousarray(photo[10:74, 4 * t:4 * t + 96]) for t in range(n)]


@pytest.fixture(scope="module")
def page():
    at = open_page("25_video.py")
    no_exception(at)
    return at


def test_page_explains_davis_and_segments_the_default_clip(page):
    assert page.title[0].value == "Video segmentation (DAVIS)"
    assert len(page.latex) >= 2  # J and F, the smoothing
    notes = [c.value for c in page.caption] + [w.value for w in page.warning]
    assert any("FCN-8s" in n for n in notes)  # which network ran, and its weights' origin
    assert any("12 frames in" in n for n in notes)


def test_j_is_the_iou_of_the_followed_and_true_masks(page):
    table = page.dataframe[0].value
    assert len(table) == 12
    union = table["true pixels"] + table["predicted pixels"] - table["overlap"]
    np.testing.assert_allclose(table["J"], (table["overlap"] / union).round(4), atol=1e-4)
    assert float(metric(page, "J mean")) == pytest.approx(table["J"].mean(), abs=1e-3)
    j, f = float(metric(page, "J mean")), float(metric(page, "F mean"))
    assert float(metric(page, "J&F mean")) == pytest.approx((j + f) / 2, abs=1e-3)


def test_smoothing_reduces_flicker_on_the_default_clip(page):
    before = percent(metric(page, "Flicker before"))
    after = percent(metric(page, "Flicker after smoothing"))
    assert after < before
    assert float(metric(page, "Clip mIoU after smoothing")) >= 0
    table = page.table[0].value
    assert list(table["flicker added"]) == [metric(page, "Flicker before"),
                                            metric(page, "Flicker after smoothing")]
    page.slider(key="video_momentum").set_value(0.0).run()
    no_exception(page)
    assert metric(page, "Flicker after smoothing") == metric(page, "Flicker before")


def test_frame_scrubber_and_object_choice(page):
    page.slider(key="video_frame").set_value(5).run()
    no_exception(page)
    options = page.selectbox(key="video_object").options
    assert options and all(" — visible in " in o for o in options)


def test_uploaded_gif_and_apng_clips_are_segmented(photo):
    at = open_page("25_video.py")
    for name, fmt in (("pan.gif", "GIF"), ("pan.png", "PNG")):
        at.file_uploader(key="video_upload").upload(name, gif(panning(photo, 6), fmt),
                                                   "image/gif").run()
        no_exception(at)
        assert not at.error
        assert metric(at, "Frames") == "6 × 96×64"
        assert percent(metric(at, "Your clip's flicker after smoothing (m = 0.30)")) < \
            percent(metric(at, "Your clip's flicker"))


def test_too_long_clip_video_and_single_photos_are_refused(photo):
    at = open_page("25_video.py")
    cases = [("long.gif", gif(panning(photo, 14) * 4), "56 frames; SegLab segments at most 48"),
             ("drive.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(256), "FFmpeg"),
             ("cat.jpg", encoded(photo, "JPEG"), "single JPEG picture, not a clip"),
             ("cat.png", encoded(photo, "PNG"), "single picture"),
             ("notes.gif", b"GIF89a but not really", "not an animated GIF")]
    for name, data, words in cases:
        at.file_uploader(key="video_upload").upload(name, data, "image/gif").run()
        no_exception(at)
        assert len(at.error) == 1 and name in at.error[0].value and words in at.error[0].value, \
            at.error[0].value
        assert page_still_scores(at)


def page_still_scores(at) -> bool:
    """The synthetic clip's scores are still on the page after a refused upload."""
    return any(m.label == "J mean" for m in at.metric)
