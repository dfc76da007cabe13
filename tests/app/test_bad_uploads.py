"""Every uploader on every page, fed every awkward file a class of students can produce.

Each file either gets a sentence naming it (refused) or a correct result (accepted), never an
exception, and the page keeps working afterwards: a good photo uploaded after the sweep is
shown without a complaint. The corpus is made here, in memory.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import image_input
from tests.app.conftest import ROOT, encoded, no_exception, open_page, upload
from tests.browser.server import existing_pages
from tests.seg.test_io import encode as save, npy_claiming, png_claiming

RNG = np.random.default_rng(3)
STREET = np.asarray(Image.open(ROOT / "app" / "samples" / "chelsea.jpg").convert("RGB")
                    .resize((48, 32)))  # (32, 48, 3): a real photo, small


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return save(Image.fromarray(STREET), "JPEG", exif=exif.tobytes())


def animated() -> bytes:
    frames = [Image.fromarray(np.roll(STREET, 4 * i, axis=1)) for i in range(3)]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def big_photo() -> bytes:
    """6000×4000: 24 million pixels, a phone camera's size, accepted and shrunk."""
    return save(Image.fromarray(STREET).resize((6000, 4000), Image.NEAREST), "JPEG", quality=40)


#: (file name, bytes, accepted?) — what students upload by accident or on purpose.
PICTURES = [
    ("truncated.png", encoded(STREET)[:200], False),
    ("empty.png", b"", False),
    ("notes.png", b"These are my lecture notes.\n" * 20, False),
    ("drawing.png", b"<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>", False),
    ("page.jpg", b"<!DOCTYPE html><html><body>not a photo</body></html>", False),
    ("bomb.png", png_claiming(100_000, 100_000), False),
    ("zero.png", png_claiming(0, 0), False),
    ("depth16.png", save(Image.fromarray((RNG.random((32, 48)) * 60000).astype(np.uint16)),
                         "PNG"), True),
    ("print.jpg", save(Image.fromarray(STREET).convert("CMYK"), "JPEG"), True),
    ("sticker.png", save(Image.fromarray(STREET).convert("RGBA"), "PNG"), True),
    ("palette.png", save(Image.fromarray(STREET).convert("P"), "PNG"), True),
    ("animated.gif", animated(), True),
    ("rotated.jpg", exif_rotated(), True),
    ("dot.png", save(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), False),
    ("line.png", save(Image.fromarray(STREET).resize((4000, 1)), "PNG"), False),
    ("column.png", save(Image.fromarray(STREET).resize((1, 4000)), "PNG"), False),
    ("panorama.jpg", save(Image.fromarray(STREET).resize((1600, 200)), "JPEG"), True),
    ("tiny.png", save(Image.fromarray(STREET).resize((40, 32)), "PNG"), True),
    ("camera.jpg", big_photo(), True),
]
PAGES = [(file, url) for file, _, _, url in existing_pages()]


def sidebar_errors(at: AppTest) -> list[str]:
    return [e.value for e in at.sidebar.error]


def check(at: AppTest, name: str, accepted: bool, errors: list[str]) -> None:
    no_exception(at)
    if accepted:
        assert not errors, f"{name} should be accepted, the page said {errors}"
    else:
        assert any(name in e for e in errors), f"{name} was not refused by name: {errors}"


@pytest.mark.parametrize("file", [f for f, _ in PAGES], ids=[u for _, u in PAGES])
def test_the_image_uploader_on_every_page(file):
    at = open_page(file)
    at.sidebar.radio(key="image_source").set_value("Upload").run()
    uploader = lambda: at.sidebar.file_uploader(key="image_upload")  # noqa: E731
    for name, data, accepted in PICTURES:
        uploader().upload(name, data, "application/octet-stream").run()
        check(at, name, accepted, sidebar_errors(at))
    uploader().upload("cat.png", encoded(STREET), "image/png").run()
    no_exception(at)
    assert not sidebar_errors(at) and not at.error, "the page did not recover"


def test_an_upload_is_decoded_once_however_often_the_page_reruns():
    # Fresh pixels, so that no earlier test's cache entry answers for them.
    fresh = np.random.default_rng().integers(0, 256, size=(40, 400, 3), dtype=np.uint8)
    strip, picture = encoded(fresh), encoded(fresh[:, :60])  # 400×40 is refused, 60×40 is not
    at = open_page()
    runs = image_input.decodes()
    upload(at, "strip.png", strip)
    refusal = sidebar_errors(at)
    assert len(refusal) == 1 and "strip.png" in refusal[0] and "10 times longer" in refusal[0]
    assert any("strip.png" in e for e in [e.value for e in at.error])  # and on the page
    at.run().run()
    no_exception(at)
    assert sidebar_errors(at) == refusal  # the cached refusal, shown again
    assert image_input.decodes() == runs + 1  # decoded by the first run only
    at.sidebar.file_uploader(key="image_upload").upload("cat.png", picture, "image/png").run()
    at.run()
    no_exception(at)
    assert not sidebar_errors(at) and image_input.decodes() == runs + 2


def mask_corpus(width: int, height: int) -> list[tuple[str, bytes, bool]]:
    labels = RNG.integers(0, 8, (height, width)).astype(np.uint8)
    return [
        ("mask.png", encoded(labels), True),
        ("small_mask.png", encoded(labels[: height // 2]), False),
        ("too_many_classes.png", encoded(np.full((height, width), 99, np.uint8)), False),
        ("colour_mask.png", encoded(np.dstack([labels * 30] * 3).astype(np.uint8)), False),
        ("empty_mask.png", b"", False),
        ("truncated_mask.png", encoded(labels)[:100], False),
    ]


def test_the_ground_truth_mask_uploader():
    at = open_page("02_compare_models.py")
    for name, data, accepted in mask_corpus(256, 256):
        at.file_uploader(key="compare_mask").upload(name, data, "image/png").run()
        check(at, name, accepted, [e.value for e in at.error])


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_the_depth_map_uploader():
    at = open_page("24_depth.py")
    metres = (RNG.random((256, 256)) * 50 + 1).astype(np.float32)
    corpus = [
        ("depth.npy", npy(metres), True),
        ("kinect.png", encoded((metres * 1000).astype(np.uint16)), True),
        ("wrong_size.npy", npy(metres[:100]), False),
        ("holes.npy", npy(np.where(metres > 25, np.nan, metres)), False),
        ("photo.jpg", save(Image.fromarray(STREET).resize((256, 256)), "JPEG"), False),
        ("cube.npy", npy(np.zeros((4, 4, 4), np.float32)), False),
        ("empty.npy", b"", False),
        ("bomb.png", png_claiming(100_000, 100_000), False),
        ("large.png", png_claiming(7000, 7000), False),  # another size, seen in the header
        ("no_values.npy", npy_claiming((2**70, 0)), False),  # numpy cannot even make it
        ("many_dims.npy", npy_claiming((1,) * 1000), False),
    ]
    for name, data, accepted in corpus:
        at.file_uploader(key="depth_upload").upload(name, data, "application/octet-stream").run()
        check(at, name, accepted, [e.value for e in at.error])


def test_the_video_uploader():
    at = open_page("25_video.py")
    corpus = [
        ("clip.gif", animated(), True),
        ("still.jpg", save(Image.fromarray(STREET), "JPEG"), False),
        ("movie.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(64), False),
        ("truncated.gif", animated()[:120], False),
        ("empty.gif", b"", False),
    ]
    for name, data, accepted in corpus:
        at.file_uploader(key="video_upload").upload(name, data, "application/octet-stream").run()
        check(at, name, accepted, [e.value for e in at.error])
