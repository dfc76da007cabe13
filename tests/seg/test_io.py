"""seg.io against awkward files made on the fly: every picture is built in memory here."""

from __future__ import annotations

import doctest
import hashlib
import io
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features

import seg.io
from seg.io import ImageError, MAX_BYTES, fit_within, image_hash, load_depth, load_image, load_mask

RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)  # (H, W, 3)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR is patched to claim another size (CRC fixed up)."""
    data = bytearray(encode(Image.new("RGB", (4, 4)), "PNG"))
    # Signature (8) + IHDR length (4) + b"IHDR" (4), then width and height.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def refused(call, *args, **kwargs) -> str:
    """Assert ``call`` raises ImageError with a student-readable sentence; return it."""
    with pytest.raises(ImageError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert message[0].isupper() and message.endswith("."), message
    for jargon in ("Traceback", "PIL", "Error", "errno", "\n"):
        assert jargon not in message, message
    return message


def as_array(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def test_docstring_examples_run():
    assert doctest.testmod(seg.io).failed == 0


# --- pictures that must load ------------------------------------------------------------

@pytest.mark.parametrize("fmt, options", [
    ("PNG", {}), ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}),
    pytest.param("WEBP", {"lossless": True},
                 marks=pytest.mark.skipif(not features.check("webp"), reason="no WebP")),
])
def test_lossless_formats_round_trip_exactly(fmt, options):
    image = load_image(encode(Image.fromarray(NOISE), fmt, **options))
    np.testing.assert_array_equal(np.asarray(image), NOISE)


def test_jpeg_decodes_close_to_the_original():
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[:, 24:] = (200, 60, 20)
    image = load_image(encode(Image.fromarray(smooth), "JPEG", quality=95))
    assert image.size == (48, 32)
    assert np.abs(as_array(image) - smooth).mean() < 3


def test_sources_bytes_path_and_file_objects_agree(tmp_path):
    data = encode(Image.fromarray(NOISE), "PNG")
    path = tmp_path / "street.png"
    path.write_bytes(data)

    class UploadedFile(io.BytesIO):  # Streamlit's is a BytesIO subclass with a name
        name = "street.png"

    upload = UploadedFile(data)
    upload.read()  # another widget already consumed it: getvalue() still sees it all
    sources = [data, bytearray(data), memoryview(data), str(path), path, upload,
               open(path, "rb")]
    try:
        for source in sources:
            np.testing.assert_array_equal(np.asarray(load_image(source)), NOISE)
    finally:
        sources[-1].close()


def test_unsupported_source_types_are_programming_errors():
    with pytest.raises(TypeError):
        load_image(NOISE)
    with pytest.raises(TypeError):
        load_image(io.StringIO("text mode"))


def test_exif_orientation_6_turns_the_picture_upright():
    stored = np.zeros((40, 60, 3), np.uint8)  # (H, W, 3): a landscape buffer
    stored[:20, :30] = (255, 0, 0)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = load_image(encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes()))
    assert image.size == (40, 60)  # width and height swapped
    upright = np.rot90(stored, k=-1)  # numpy reference: clockwise quarter turn
    assert np.abs(as_array(image) - upright).mean() < 3
    assert image.getpixel((35, 5))[0] > 200  # stored top-left lands top-right
    assert image.getpixel((5, 5))[0] < 50


def test_16_bit_greyscale_is_stretched_by_its_actual_range():
    values = np.linspace(1000, 3000, 64 * 8).reshape(8, 64).astype(np.uint16)  # 12-bit-ish
    reference = np.round((values - 1000.0) / 2000.0 * 255.0)
    for array in (values, values.astype(">u2")):  # I;16 and I;16B
        image = load_image(encode(Image.fromarray(array), "TIFF"))
        rgb = as_array(image)
        np.testing.assert_allclose(rgb[..., 0], reference, atol=1)
        assert (rgb[..., 0] == rgb[..., 2]).all()
        assert rgb.min() == 0 and rgb.max() == 255  # not 4..12 (÷257) nor clipped
    image = load_image(encode(Image.fromarray(values), "PNG"))
    np.testing.assert_allclose(as_array(image)[..., 1], reference, atol=1)


def test_32_bit_and_float_greyscale_are_stretched_too():
    floats = np.array([[-1.5, 0.0], [0.5, np.nan]], dtype=np.float32)
    rgb = as_array(load_image(encode(Image.fromarray(floats), "TIFF")))
    np.testing.assert_array_equal(rgb[..., 0], [[0, 191], [255, 0]])  # NaN -> black
    ints = np.array([[-70000, 70000]], dtype=np.int32)
    rgb = as_array(load_image(encode(Image.fromarray(ints), "TIFF")))
    np.testing.assert_array_equal(rgb[..., 0], [[0, 255]])


def test_constant_16_bit_image_becomes_black():
    rgb = as_array(load_image(encode(Image.fromarray(np.full((4, 4), 777, np.uint16)), "PNG")))
    assert (rgb == 0).all()


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # no cyan, full magenta + yellow
    image = load_image(encode(cmyk, "JPEG", quality=95))
    assert np.abs(as_array(image) - (255, 0, 0)).max() < 12


def test_transparency_is_composited_on_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # invisible
    rgba[0, 2] = (0, 0, 255, 128)  # half-transparent blue
    rgb = as_array(load_image(encode(Image.fromarray(rgba), "PNG")))
    alpha = rgba[..., 3:] / 255.0
    reference = rgba[..., :3] * alpha + 255 * (1 - alpha)  # "over" on white
    np.testing.assert_allclose(rgb, reference, atol=1)

    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8))  # (1, 2, 2): grey + alpha
    assert la.mode == "LA"
    assert as_array(load_image(encode(la, "PNG"))).tolist() == [[[255] * 3, [0] * 3]]


def test_palette_with_transparent_index_is_composited_on_white():
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).convert("P")
    palette.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    data = encode(palette, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    rgb = as_array(load_image(data))
    assert rgb.tolist() == [[[255] * 3, [200, 0, 0]], [[200, 0, 0], [255] * 3]]


def test_greyscale_and_one_bit_become_grey_rgb():
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    rgb = as_array(load_image(encode(Image.fromarray(grey), "PNG")))
    np.testing.assert_array_equal(rgb, np.repeat(grey[..., None], 3, axis=2))
    bits = Image.fromarray(grey > 100)
    assert bits.mode == "1"
    rgb = as_array(load_image(encode(bits, "PNG")))
    np.testing.assert_array_equal(rgb[..., 1], np.where(grey > 100, 255, 0))


ANIMATED = [("GIF", {}), ("PNG", {}),
            pytest.param("WEBP", {"lossless": True},
                         marks=pytest.mark.skipif(not features.check("webp"), reason="no WebP"))]


@pytest.mark.parametrize("fmt, options", ANIMATED)
def test_animations_give_their_first_frame(fmt, options):
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    frames = [Image.new("RGB", (16, 12), c) for c in colours]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    image = load_image(data)
    assert image.size == (16, 12)
    assert np.abs(as_array(image) - colours[0]).max() <= 2


@pytest.mark.parametrize("size", [(1, 1), (1, 4000), (4000, 1)])
def test_tiny_and_extremely_thin_pictures_are_fine(size):
    array = RNG.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = load_image(encode(Image.fromarray(array), "PNG"))
    np.testing.assert_array_equal(np.asarray(image), array)


def test_large_picture_below_the_limit_loads_and_fits_for_inference():
    large = Image.new("RGB", (6000, 4000), (30, 90, 150))
    image = load_image(encode(large, "PNG", compress_level=1))
    assert image.size == (6000, 4000) and image.getpixel((5999, 3999)) == (30, 90, 150)
    small = fit_within(image, 1024)
    assert small.size == (1024, 683)
    assert np.abs(as_array(small) - (30, 90, 150)).max() <= 1


# --- fit_within ---------------------------------------------------------------------------

def test_fit_within_returns_small_images_untouched():
    image = Image.fromarray(NOISE)
    assert fit_within(image, 64) is image
    assert fit_within(image, 1000) is image


@pytest.mark.parametrize("size, max_side, expected", [
    ((1, 4000), 512, (1, 512)), ((4000, 3), 100, (100, 1)), ((300, 200), 150, (150, 100)),
    ((201, 300), 100, (67, 100)),
])
def test_fit_within_keeps_the_aspect_ratio(size, max_side, expected):
    assert fit_within(Image.new("RGB", size), max_side).size == expected


def test_fit_within_averages_instead_of_sampling():
    stripes = np.zeros((64, 64), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes alias to black or white if sampled
    small = np.asarray(fit_within(Image.fromarray(stripes), 8)).astype(int)
    assert np.abs(small - 127.5).max() < 8


def test_fit_within_rejects_a_nonsense_side():
    with pytest.raises(ValueError):
        fit_within(Image.new("RGB", (4, 4)), 0)


# --- large pictures: shrunk while they are decoded, refused from their header -------------

def pictures_of_every_mode() -> dict[str, Image.Image]:
    """613×409 pictures in the colour modes that a student's file decodes to."""
    rgb = RNG.integers(0, 256, size=(409, 613, 3), dtype=np.uint8)  # (H, W, 3)
    alpha = RNG.integers(0, 256, size=(409, 613), dtype=np.uint8)  # (H, W)
    palette = Image.fromarray(rgb).quantize(16)
    palette.info["transparency"] = 3
    return {
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray(np.dstack([rgb, alpha])),
        "LA": Image.fromarray(np.dstack([rgb[..., 0], alpha])),
        "P": palette,
        "L": Image.fromarray(alpha),
        "I;16": Image.fromarray(alpha.astype(np.uint16) * 40 + 1000),
    }


@pytest.mark.parametrize("mode", list(pictures_of_every_mode()))
def test_max_side_gives_exactly_what_fit_within_gives(mode, monkeypatch):
    data = encode(pictures_of_every_mode()[mode], "PNG")
    reference = np.asarray(fit_within(load_image(data), 64))  # (43, 64, 3)
    # Bands of a few rows, so that the picture is converted in many of them.
    monkeypatch.setattr(seg.io, "_BAND_BYTES", 4 * 613 * 3 * 5)
    shrunk = load_image(data, max_side=64)
    assert shrunk.mode == "RGB" and shrunk.size == (64, 43)
    np.testing.assert_array_equal(np.asarray(shrunk), reference)


def smooth_photo(width: int, height: int) -> Image.Image:
    """A photo-like picture: a coarse random pattern enlarged smoothly."""
    coarse = RNG.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.BICUBIC)


def test_max_side_on_a_jpeg_decodes_at_reduced_scale_then_turns_it_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(smooth_photo(1600, 1200), "JPEG", quality=95, exif=exif.tobytes())
    reference = as_array(fit_within(load_image(data), 300))  # (300, 225, 3)
    shrunk = load_image(data, max_side=300)
    assert shrunk.size == (225, 300)
    assert np.abs(as_array(shrunk) - reference).mean() < 2


def test_max_side_must_be_a_size():
    with pytest.raises(ValueError):
        load_image(encode(Image.fromarray(NOISE), "PNG"), max_side=0)


def test_check_size_sees_the_header_before_a_pixel_is_decoded():
    seen = []

    def refuse_strips(size):
        seen.append(size)
        raise ImageError("This picture is a strip.")

    data = png_claiming(40_000, 1250)  # only a 4×4 picture's pixels follow the header
    assert refused(load_image, data, check_size=refuse_strips) == "This picture is a strip."
    assert seen == [(40_000, 1250)]
    # Let through, the same file is decoded and found to end early: the check came first.
    assert "incomplete" in refused(load_image, data, check_size=seen.append)


def test_masks_and_depths_of_another_size_are_refused_from_the_header():
    data = png_claiming(7000, 7000)  # decoding it would find it incomplete
    for load, options in ((load_mask, {"num_classes": 8}), (load_depth, {})):
        assert "is 7000×7000 but the image is 16×12" in refused(load, data, size=(16, 12),
                                                                **options)


def png_of_rows(width: int, height: int, row: bytes, *, colour_type: int,
                bit_depth: int = 8) -> bytes:
    """A PNG of ``height`` copies of the raw pixel row ``row``, compressed row by row: a
    small file with a large picture in it, made without ever holding its pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    deflate = zlib.compressobj(1)
    line = b"\x00" + row  # filter type 0: the row as it is
    pixels = b"".join(deflate.compress(line) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


# Run in a fresh interpreter: each step's peak resident memory (ru_maxrss, which sees
# Pillow's buffers, unlike tracemalloc) is compared with the peak before it.
PEAK_MEMORY = """
import io, json, resource, sys
from PIL import Image
import seg.io
from seg.io import ImageError

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux

def refuse_strips(size):
    if max(size) > 8 * min(size):
        raise ImageError("This picture is a strip.")

tiny = io.BytesIO()
Image.new("RGB", (4, 4)).save(tiny, "PNG")
seg.io.load_image(tiny.getvalue())  # Pillow's plugins are imported before measuring
strip, depth, sticker = (open(path, "rb").read() for path in sys.argv[1:])
costs = {}
for name, call in [
    ("strip", lambda: seg.io.load_image(strip, check_size=refuse_strips)),
    ("depth", lambda: seg.io.load_depth(depth, size=(1024, 768))),
    ("sticker", lambda: seg.io.load_image(sticker, max_side=1024)),
]:
    before = peak()
    try:
        call()
    except ImageError:
        pass
    costs[name] = peak() - before
print(json.dumps(costs))
"""


def test_peak_memory_of_large_and_of_refused_pictures(tmp_path):
    files = {
        "strip": png_of_rows(40_000, 1250, bytes(3 * 40_000), colour_type=2),  # 50 MP RGB
        "depth": png_of_rows(7000, 7000, np.full(7000, 1500, ">u2").tobytes(),
                             colour_type=0, bit_depth=16),  # 16-bit millimetres
        "sticker": png_of_rows(7000, 7000, bytes([200, 30, 30, 128]) * 7000,
                               colour_type=6),  # RGBA, half transparent
    }
    paths = []
    for name, data in files.items():
        assert len(data) < 2_000_000, name  # small files, large pictures
        paths.append(tmp_path / f"{name}.png")
        paths[-1].write_bytes(data)
    run = subprocess.run([sys.executable, "-c", PEAK_MEMORY, *map(str, paths)], check=True,
                         capture_output=True, text=True, cwd=Path(seg.io.__file__).parents[1])
    costs = json.loads(run.stdout)
    assert costs["strip"] < 50e6 and costs["depth"] < 50e6, costs  # refused from the header
    decoded = 7000 * 7000 * 4  # RGBA: 196 MB
    assert costs["sticker"] <= 2 * decoded, costs


# --- files that must be refused ------------------------------------------------------------

SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
HTML = b"<!DOCTYPE html>\n<html><head><title>cat.jpg</title></head><body></body></html>"


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    ("Hello, this is my homework. Ünïcödé too.\n".encode(), "text file"),
    (HTML, "web page"),
    (SVG, "SVG drawing"),
    (b"\xef\xbb\xbf  <svg></svg>", "SVG drawing"),
    (b"<note><to>Tove</to></note>", "XML"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
    (bytes(range(256)) * 4, "not a picture"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "damaged"),
])
def test_non_pictures_are_refused_with_a_sentence(data, words):
    assert words in refused(load_image, data)


def test_html_named_jpg_is_recognised_by_content(tmp_path):
    path = tmp_path / "cat.jpg"
    path.write_bytes(HTML)
    assert "web page" in refused(load_image, path)


def test_svg_message_tells_what_to_do():
    message = refused(load_image, SVG)
    assert message == ("This file is not a picture SegLab can read (it looks like an SVG "
                       "drawing). Please upload a PNG, JPEG, WebP, BMP, GIF or TIFF photo.")


def test_formats_outside_the_list_are_refused():
    assert "not a picture" in refused(load_image, encode(Image.fromarray(NOISE), "PPM"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
@pytest.mark.parametrize("pad_silently", [False, True])
def test_truncated_files_are_refused_even_if_pillow_would_pad_them(fmt, pad_silently,
                                                                   monkeypatch):
    # Another library may have switched this global on; load_image must not depend on it.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", pad_silently)
    data = encode(Image.fromarray(NOISE), fmt)
    for cut in (len(data) // 2, len(data) - 20):  # both inside the pixel data
        message = refused(load_image, data[:cut])
        assert "incomplete" in message or "damaged" in message


def test_truncated_webp_is_refused():
    data = encode(Image.fromarray(NOISE), "WEBP")
    assert "damaged" in refused(load_image, data[: len(data) // 2])


@pytest.mark.parametrize("width, height", [(0, 4), (4, 0)])
def test_zero_sized_pictures_are_refused(width, height):
    assert "damaged" in refused(load_image, png_claiming(width, height))


@pytest.mark.parametrize("width, height, shown", [
    (100_000, 100_000, "more pixels than"),  # Pillow's own bomb error (> 2 × its limit)
    (10_000, 10_000, "10000×10000 pixels"),  # Pillow's bomb warning range
    (8_000, 8_000, "8000×8000 pixels (64 megapixels)"),  # only SegLab's 50 MP limit
])
def test_decompression_bombs_are_refused_before_decoding(width, height, shown):
    data = png_claiming(width, height)
    assert len(data) < 100
    start = time.perf_counter()
    message = refused(load_image, data)
    assert time.perf_counter() - start < 0.5  # decoding 64+ MP would take far longer
    assert shown in message and "50 megapixels" in message


def test_oversized_files_are_refused_before_parsing(tmp_path):
    message = refused(load_image, b"\x89PNG" + bytes(MAX_BYTES))
    assert "50.0 MB" in message
    path = tmp_path / "huge.png"
    with open(path, "wb") as file:
        file.truncate(MAX_BYTES + 1)  # sparse: nothing is written or read
    assert "limit" in refused(load_image, path)


# --- masks -------------------------------------------------------------------------------------

LABELS = RNG.integers(0, 8, size=(12, 16)).astype(np.uint8)  # (H, W)
LABELS[0, :4] = 255  # ignored pixels


def test_good_masks_load_as_int64_labels():
    for image in (Image.fromarray(LABELS), Image.fromarray(LABELS.astype(np.uint16))):
        mask = load_mask(encode(image, "PNG"), size=(16, 12), num_classes=8)
        assert mask.dtype == np.int64 and mask.shape == (12, 16)
        np.testing.assert_array_equal(mask, LABELS)


def test_palette_masks_use_indices_not_colours():
    palette = Image.fromarray(LABELS).convert("P")
    palette.putpalette(list(RNG.integers(0, 256, 768)))  # any colours at all
    mask = load_mask(encode(palette, "PNG"), size=(16, 12), num_classes=8)
    np.testing.assert_array_equal(mask, LABELS)


def test_grey_mask_saved_as_rgb_is_accepted():
    rgb = Image.fromarray(np.repeat(LABELS[..., None], 3, axis=2))
    np.testing.assert_array_equal(load_mask(encode(rgb, "PNG"), size=(16, 12), num_classes=8),
                                  LABELS)


def test_binary_mask_is_accepted():
    bits = Image.fromarray(LABELS > 3)
    mask = load_mask(encode(bits, "PNG"), size=(16, 12), num_classes=2)
    np.testing.assert_array_equal(mask, (LABELS > 3).astype(np.int64))


def test_mask_of_another_size_is_refused():
    data = encode(Image.new("L", (640, 480)), "PNG")
    message = refused(load_mask, data, size=(512, 512), num_classes=8)
    assert message.startswith("The mask is 640×480 but the image is 512×512.")


def test_out_of_range_labels_are_named():
    labels = LABELS.copy()
    labels[5, 5], labels[6, 6] = 9, 12
    message = refused(load_mask, encode(Image.fromarray(labels), "PNG"), size=(16, 12),
                      num_classes=8)
    assert "9 and 12" in message and "0 to 7" in message
    many = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    assert "more" in refused(load_mask, encode(Image.fromarray(many), "PNG"), size=(16, 12),
                             num_classes=8)


def test_colour_masks_are_refused_with_an_explanation():
    colours = np.array([[70, 130, 180], [128, 64, 128]], np.uint8)[LABELS % 2]  # (H, W, 3)
    message = refused(load_mask, encode(Image.fromarray(colours), "PNG"), size=(16, 12),
                      num_classes=8)
    assert "class indices" in message and "not colours" in message


def test_jpeg_masks_and_depths_are_refused():
    data = encode(Image.fromarray(LABELS), "JPEG")
    assert "PNG" in refused(load_mask, data, size=(16, 12), num_classes=8)
    assert "PNG" in refused(load_depth, data, size=(16, 12))


def test_mask_refuses_non_images_like_pictures_do():
    assert "not a mask" in refused(load_mask, SVG, size=(10, 10), num_classes=8)


# --- depth ---------------------------------------------------------------------------------------

MILLIMETRES = RNG.integers(0, 10_000, size=(12, 16)).astype(np.uint16)  # (H, W)


def test_16_bit_depth_is_millimetres():
    depth = load_depth(encode(Image.fromarray(MILLIMETRES), "PNG"), size=(16, 12))
    assert depth.dtype == np.float32 and depth.shape == (12, 16)
    np.testing.assert_allclose(depth, MILLIMETRES / 1000.0, rtol=1e-6)


def test_8_bit_depth_is_relative():
    grey = (MILLIMETRES // 40).astype(np.uint8)
    depth = load_depth(encode(Image.fromarray(grey), "PNG"), size=(16, 12))
    np.testing.assert_allclose(depth, grey / 255.0, rtol=1e-6)


def test_npy_and_float_tiff_depth_are_metres():
    metres = RNG.uniform(0.5, 80.0, size=(12, 16)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, metres)
    np.testing.assert_array_equal(load_depth(buffer.getvalue(), size=(16, 12)), metres)
    tiff = encode(Image.fromarray(metres), "TIFF")
    np.testing.assert_array_equal(load_depth(tiff, size=(16, 12)), metres)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("data, words", [
    (npy(np.zeros((11, 16), np.float32)), "16×11 but the image is 16×12"),
    (npy(np.zeros((12, 16, 3), np.float32)), "2-D array"),
    (npy(np.array([[None]], dtype=object), allow_pickle=True), "Python objects"),
    (npy(np.full((12, 16), -1.0)), "negative"),
    (npy(np.full((12, 16), np.nan)), "NaN"),
    (npy(np.full((12, 16), np.inf)), "infinite"),
    (encode(Image.fromarray(np.full((12, 16), -5, np.int32)), "TIFF"), "negative"),
    (encode(Image.fromarray(NOISE[:12, :16]), "PNG"), "colour"),
    (encode(Image.fromarray(MILLIMETRES).resize((8, 6)), "PNG"), "8×6"),
    (b"depth,metres\n1.0,2.0\n", "text file"),
    (npy(np.full((12, 16), 1e300)), "infinite"),  # finite in float64, not in float32
    (npy(np.zeros((12, 16), np.complex64)), "complex64"),
    (npy(np.zeros((12, 16), np.float32))[:-8], "incomplete"),
    (b"\x93NUMPY", "damaged"),
    (encode(Image.new("1", (16, 12)), "PNG"), "black and white"),
    (encode(Image.new("LA", (16, 12)), "PNG"), "transparency"),
])
def test_bad_depth_maps_are_refused(data, words):
    assert words in refused(load_depth, data, size=(16, 12))


def npy_claiming(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A .npy file whose header announces ``shape`` and ``descr``, followed by 32 zero bytes."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"  # numpy aligns the data to 64 bytes
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(32)


@pytest.mark.parametrize("shape, descr, size, words", [
    ((100_000, 100_000), "<f8", (2, 2), "100000×100000 pixels"),
    ((10**9, 10**9), "<f8", (2, 2), "more than SegLab's limit"),
    ((2**64, 2**64), "<f8", (2, 2), "more than SegLab's limit"),  # overflows int64
    ((2**70, 0), "<f8", (2, 2), "empty array"),  # no values, yet numpy cannot make it
    ((0, 5), "<f8", (5, 0), "empty array"),
    ((3000, 3000), "<f8", (3000, 3000), "incomplete"),
    ((3000, 3000), "<f8", (2, 2), "3000×3000 but the image is 2×2"),  # before the data
    ((-2, -2), "<f8", (2, 2), "damaged"),
    ((2,), "<f8", (2, 2), "2-D array"),
    ((1,) * 1000, "<f8", (2, 2), "1000 dimensions"),
    ((2, 2), "|O", (2, 2), "Python objects"),
    ((2, 2), "<U8", (2, 2), "2-D array"),
    ((2, 2), "<M8[s]", (2, 2), "2-D array"),
])
def test_npy_header_is_checked_before_anything_is_allocated(shape, descr, size, words):
    # np.load would first allocate what the header announces (80 GB for the first one).
    assert words in refused(load_depth, npy_claiming(shape, descr), size=size)


def test_fortran_ordered_big_endian_npy_is_read_as_stored():
    metres = np.arange(12, dtype=">f4").reshape(3, 4)
    depth = load_depth(npy(np.asfortranarray(metres)), size=(4, 3))
    np.testing.assert_array_equal(depth, metres)


# --- image_hash ----------------------------------------------------------------------------------

def test_image_hash_is_sha1_of_size_and_rgb_bytes():
    image = Image.fromarray(NOISE)
    reference = hashlib.sha1(b"64x48:" + NOISE.tobytes()).hexdigest()[:16]
    assert image_hash(image) == reference == image_hash(NOISE)
    assert image_hash(load_image(encode(image, "PNG"))) == reference  # pixels, not file


def test_image_hash_changes_with_one_pixel_and_with_shape():
    changed = NOISE.copy()
    changed[0, 0, 0] ^= 1
    assert image_hash(changed) != image_hash(NOISE)
    flat = NOISE.reshape(1, -1, 3)  # same bytes, other size
    assert image_hash(flat) != image_hash(NOISE)


def test_image_hash_converts_other_modes_and_rejects_other_arrays():
    grey = Image.fromarray(NOISE[..., 0])
    assert image_hash(grey) == image_hash(grey.convert("RGB"))
    with pytest.raises(ValueError):
        image_hash(NOISE.astype(np.float32))
