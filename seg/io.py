"""Reading pictures, ground-truth masks and depth maps that students bring.

Everything here takes *untrusted* input (an upload, a file on disk, raw bytes) and either
returns something SegLab can compute with or raises :class:`ImageError`, whose message is
a plain sentence for the student: what is wrong with the file and what to do about it.

The checks happen in the order that keeps the machine safe:

1. the file size is compared with :data:`MAX_BYTES` before anything is parsed;
2. ``Image.open`` (or numpy's ``.npy`` header reader) reads only the header, so every size
   rule is checked before a single pixel is decoded: the pixel count against
   :data:`MAX_PIXELS` (a 100 kB PNG can claim to be 100000×100000 pixels: a
   "decompression bomb"), a mask's or depth map's size against its picture's, and the
   caller's own rules (``load_image(check_size=...)``);
3. the pixels are decoded, and a file that ends before its pixels do is refused even if
   some other code switched on ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` (which would
   otherwise pad the missing part with grey without telling anyone);
4. a picture meant for inference (``load_image(max_side=...)``) is shrunk while it is
   converted to RGB, so that at peak it costs little more than its decoded pixels.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

Source = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]

MAX_BYTES = 50_000_000
"""Largest file SegLab reads (50 MB); bigger uploads are refused before parsing."""

MAX_PIXELS = 50_000_000
"""Largest width × height SegLab decodes (50 megapixels, e.g. 8660×5773)."""

# The formats a student is told about. Restricting Image.open to these also keeps
# Pillow's rarer (and less battle-tested) parsers away from uploaded bytes. JPEG covers
# the multi-picture MPO files that many phone cameras write.
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")

_HINTS = {
    "picture": "Please upload a PNG, JPEG, WebP, BMP, GIF or TIFF photo.",
    "mask": "Please upload the mask as a PNG whose pixel values are class indices.",
    "depth map": (
        "Please upload a 16-bit PNG in millimetres, an 8-bit greyscale PNG "
        "or a .npy array in metres."
    ),
}

# File signatures of the formats in _FORMATS: a file that starts like one of them but that
# Pillow cannot open is damaged, not "some other kind of file".
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}

# What Pillow raises on malformed input besides UnidentifiedImageError: its parsers are
# documented to let low-level errors through on crafted files.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError,
                  TypeError, struct.error)

# Colour modes that cannot be a single-channel map of indices or distances.
_COLOUR_MODES = {"RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}

# Masks and depth maps must come back exactly as saved; JPEG's compression would turn
# class indices into wrong labels and shift distances.
_LOSSY_FORMATS = {"JPEG", "MPO"}

_IGNORE_INDEX = 255

# Shrinking first box-averages blocks of pixels down to within this factor of the target
# size, then Lanczos does the rest: fast, and without aliasing.
_REDUCING_GAP = 3.0
# A large picture is converted to RGB in bands of about this many bytes (as RGB), so that no
# full-size copy of it is made besides the decoded pixels and their reduced version.
_BAND_BYTES = 8_000_000


class ImageError(ValueError):
    """A file SegLab cannot use; ``str()`` is a sentence meant for the student.

    It is a ``ValueError`` so that library code can treat it like any bad argument, while
    the app shows the message as it is (it never contains a traceback or a library name).

    Example:
        >>> try:
        ...     load_image(b"")
        ... except ImageError as err:
        ...     print(err)
        This file is empty (0 bytes), so there is no picture in it. Please upload the picture again.
    """


class _WatchedBytes(io.BytesIO):
    """In-memory file that remembers whether a decoder asked for bytes past its end.

    A complete file never makes Pillow read beyond its last byte, because the decoder
    stops at its end-of-image marker. A truncated one does: that read is the evidence
    of truncation, whatever ``ImageFile.LOAD_TRUNCATED_IMAGES`` says.
    """

    ran_out = False

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if size is not None and size > 0 and not data:
            self.ran_out = True
        return data


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def _read_bytes(source: Source, what: str) -> bytes:
    """The raw bytes of ``source``, refusing empty and oversized files before parsing."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        n_bytes = path.stat().st_size
        if n_bytes > MAX_BYTES:
            raise _too_big(what, n_bytes)
        data = path.read_bytes()
    elif hasattr(source, "getvalue"):
        # BytesIO and Streamlit's UploadedFile: the whole upload, even if someone
        # already read part of it and left the position at the end.
        data = source.getvalue()
    elif hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
    else:
        raise TypeError(
            f"expected bytes, a path or a binary file object, got {type(source).__name__}"
        )
    if not isinstance(data, bytes):
        raise TypeError(f"expected binary data, got {type(data).__name__}; open files with 'rb'")
    if len(data) > MAX_BYTES:
        raise _too_big(what, len(data))
    if not data:
        raise ImageError(
            f"This file is empty (0 bytes), so there is no {what} in it. "
            f"Please upload the {what} again."
        )
    return data


def _too_big(what: str, n_bytes: int) -> ImageError:
    return ImageError(
        f"This file is {_megabytes(n_bytes)}, more than SegLab's limit of "
        f"{_megabytes(MAX_BYTES)} for a {what}. "
        "Please upload a smaller file (exporting a photo as JPEG usually shrinks it a lot)."
    )


def _too_many_pixels(what: str, size: tuple[int, int] | None) -> ImageError:
    limit = f"SegLab's limit of {MAX_PIXELS / 1e6:.0f} megapixels"
    if size is None:
        claim = f"This {what} claims to have more pixels than {limit}"
    else:
        width, height = size
        claim = (
            f"This {what} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), "
            f"more than {limit}"
        )
    return ImageError(
        f"{claim}. Please shrink it (for example to 4000 pixels on the longest side) "
        "and upload it again."
    )


def _what_else_it_is(data: bytes) -> str:
    """A student-readable guess at what a non-image file is, e.g. "an SVG drawing"."""
    head = data[:4096]
    for signature, format_name in _SIGNATURES.items():
        if head.startswith(signature):
            return f"damaged: it starts like a {format_name} file but its header is broken"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "damaged: it starts like a WebP file but cannot be decoded"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"mif1", b"msf1"):
            return "an iPhone HEIC photo"
        if brand in (b"avif", b"avis"):
            return "an AVIF picture"
        return "a video"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<"):
        if b"<svg" in text:
            return "an SVG drawing"
        if b"<html" in text or b"<!doctype html" in text:
            return "a web page (HTML), perhaps saved instead of the picture it showed"
        return "an XML document"
    decoded = head.decode("utf-8", errors="replace")
    # A multi-byte character cut at the 4096-byte boundary decodes to a few U+FFFD.
    if decoded.count("\ufffd") <= 3 and all(
        ch.isprintable() or ch in "\t\r\n\f\ufffd" for ch in decoded
    ):
        return "a text file"
    return "some other kind of file"


def _refuse_unreadable(data: bytes, what: str) -> ImageError:
    kind = _what_else_it_is(data)
    if kind.startswith("damaged"):
        return ImageError(
            f"This {what} is {kind}. Please export or download it again and upload the new copy."
        )
    return ImageError(
        f"This file is not a {what} SegLab can read (it looks like {kind}). {_HINTS[what]}"
    )


def _open(data: bytes, what: str) -> tuple[Image.Image, _WatchedBytes]:
    """Parse ``data``'s header only and refuse, before any pixel is decoded, what it announces.

    Returns the lazily opened image and its watched file, for :func:`_load_pixels`. ``what``
    ("picture", "mask", "depth map") words the error messages; masks and depth maps must
    also be lossless (no JPEG).
    """
    fp = _WatchedBytes(data)
    try:
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises above it. The
        # warning is recorded rather than raised so that the refusal can quote the size.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=_FORMATS)
    except Image.DecompressionBombError as err:
        raise _too_many_pixels(what, None) from err
    except UnidentifiedImageError as err:
        raise _refuse_unreadable(data, what) from err
    except _DECODE_ERRORS as err:
        raise _damaged(what) from err
    if what != "picture" and image.format in _LOSSY_FORMATS:
        raise ImageError(
            f"This {what} is a JPEG, whose compression blurs exact values (labels or "
            f"distances). Please save the {what} as PNG instead."
        )
    width, height = image.size
    bomb = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    if bomb or width * height > MAX_PIXELS:
        raise _too_many_pixels(what, image.size)
    return image, fp


def _load_pixels(image: Image.Image, fp: _WatchedBytes, what: str) -> None:
    """Decode the pixels of an image from :func:`_open`, refusing a truncated or broken file.

    A file that ends before its pixels do is refused even if some other code switched on
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` (which would pad the missing part with grey).
    """
    fp.ran_out = False
    try:
        image.load()
    except _DECODE_ERRORS as err:
        truncated = fp.ran_out or "truncated" in str(err)
        raise (_truncated(what) if truncated else _damaged(what)) from err
    if fp.ran_out:
        raise _truncated(what)


# EXIF orientation -> the turn that makes the picture upright, as in ImageOps.exif_transpose;
# kept here so that a large picture is turned after it is shrunk, not at full size.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright_turn(image: Image.Image) -> Image.Transpose | None:
    """The transposition that EXIF orientation asks for (phones store portraits sideways)."""
    try:
        return _UPRIGHT.get(image.getexif().get(0x0112))  # 0x0112: Orientation
    except _DECODE_ERRORS:
        # A broken EXIF block is common in phone photos and says nothing about the
        # pixels: keep the picture as stored rather than refuse it.
        return None


def _decode(data: bytes, what: str, size: tuple[int, int]) -> Image.Image:
    """Open, size-check and fully decode a mask or depth map (first frame), turned upright.

    The returned image keeps its original mode (``L``, ``P``, ``I;16`` ...); callers decide
    how to interpret it. A file whose header announces another size than ``size`` (either
    way round, as EXIF may still turn it) is refused before its pixels are decoded, so a
    small file claiming 7000×7000 costs nothing; callers check the upright size afterwards.
    """
    image, fp = _open(data, what)
    if sorted(image.size) != sorted(size):
        _check_size(what, image.size, size)
    _load_pixels(image, fp, what)
    turn = _upright_turn(image)
    return image if turn is None else image.transpose(turn)


def _truncated(what: str) -> ImageError:
    return ImageError(
        f"This {what} is incomplete: the file ends before all of its pixels "
        "(it was probably cut off while downloading or copying). "
        "Please download or export it again and upload the new copy."
    )


def _damaged(what: str) -> ImageError:
    return ImageError(
        f"This {what} is damaged and its pixels cannot be decoded. "
        "Please export or download it again and upload the new copy."
    )


def _value_range(bands) -> tuple[np.float32, np.float32] | None:
    """The finite minimum and maximum over the bands of a 16/32-bit or float greyscale image."""
    low = high = None
    for band in bands:
        values = np.asarray(band, dtype=np.float32)  # (rows, W)
        values = values[np.isfinite(values)]
        if values.size:
            low = values.min() if low is None else min(low, values.min())
            high = values.max() if high is None else max(high, values.max())
    return None if low is None else (low, high)


def _stretch_to_8bit(image: Image.Image, value_range) -> Image.Image:
    """Map a 16/32-bit or float greyscale image onto 0..255 by its actual value range.

    A 12-bit camera frame stored in a 16-bit PNG uses 0..4095; dividing by 257 (the
    16-to-8-bit rule) would make it nearly black, and clipping would make it white.
    Stretching min..max to 0..255 shows what is there. A constant image becomes black;
    NaN and infinite values (possible in float TIFFs) become black too. ``value_range`` is
    the whole picture's (from :func:`_value_range`), so that a band of it is mapped alike.
    """
    values = np.asarray(image, dtype=np.float32)  # (H, W)
    finite = np.isfinite(values)
    grey = np.zeros(values.shape, dtype=np.uint8)  # (H, W)
    if value_range is not None and value_range[1] > value_range[0]:
        low, high = value_range
        scaled = (values[finite] - low) * (255.0 / (high - low))
        grey[finite] = np.round(scaled).astype(np.uint8)
    return Image.fromarray(grey)


def _to_rgb(image: Image.Image, value_range=None) -> Image.Image:
    if image.mode in _HIGH_DEPTH_MODES:
        image = _stretch_to_8bit(image, value_range)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise ImageError(
            f"This picture uses a colour format SegLab cannot convert ({image.mode}). "
            "Please save it as an ordinary PNG or JPEG and upload it again."
        ) from err


def _bands(image: Image.Image, rows: int):
    """``image`` cut into horizontal bands of ``rows`` rows (each a small copy)."""
    width, height = image.size
    for top in range(0, height, rows):
        yield top, image.crop((0, top, width, min(height, top + rows)))


def _rgb_of_size(image: Image.Image, size: tuple[int, int],
                 box: tuple[float, float, float, float]) -> Image.Image:
    """The loaded ``image`` (any mode) as RGB, its region ``box`` resampled to ``size``.

    This is ``fit_within(_to_rgb(image), …)`` without the full-size RGB copy and the three
    full-size RGBA intermediates of compositing: the picture is converted band by band and
    each band is box-reduced at once (Pillow's ``reducing_gap`` step, whose blocks never
    cross a band), so the peak is the decoded picture plus its reduced copy. Compositing on
    white is linear in the premultiplied colours, so reducing after it blends edges right.
    """
    if image.mode == "RGB" and "transparency" not in image.info:
        if size == image.size and box == (0, 0, *size):
            return image
        return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)
    width, height = image.size
    # Pillow's own rule for the integer box-reduction that precedes Lanczos.
    factor_x = int((box[2] - box[0]) / size[0] / _REDUCING_GAP) or 1
    factor_y = int((box[3] - box[1]) / size[1] / _REDUCING_GAP) or 1
    rows = factor_y * max(1, _BAND_BYTES // (4 * width * factor_y))
    value_range = None
    if image.mode in _HIGH_DEPTH_MODES:
        value_range = _value_range(band for _, band in _bands(image, rows))
    reduced = Image.new("RGB", (-(-width // factor_x), -(-height // factor_y)))
    for top, band in _bands(image, rows):
        band = _to_rgb(band, value_range)
        if (factor_x, factor_y) != (1, 1):
            band = band.reduce((factor_x, factor_y))
        reduced.paste(band, (0, top // factor_y))
    if reduced.size == size and box == (0, 0, *size):
        return reduced
    box = (box[0] / factor_x, box[1] / factor_y, box[2] / factor_x, box[3] / factor_y)
    return reduced.resize(size, Image.Resampling.LANCZOS, box=box)


def _picture(data: bytes, max_side: int | None, check_size) -> Image.Image:
    """Decode a picture to upright RGB, shrunk to ``max_side`` on the way (see load_image)."""
    image, fp = _open(data, "picture")
    if check_size is not None:
        check_size(image.size)
    size = image.size if max_side is None else fitted_size(image.size, max_side)
    box = (0.0, 0.0, *image.size)
    if size != image.size and image.format in _LOSSY_FORMATS:
        # JPEG decodes at 1/2, 1/4 or 1/8 scale for free (scaled inverse DCT): never below
        # the target size, so Lanczos still has the last word on aliasing.
        drafted = image.draft(None, size)
        if drafted is not None:
            box = drafted[1]
    _load_pixels(image, fp, "picture")
    turn = _upright_turn(image)
    rgb = _rgb_of_size(image, size, box)
    if rgb is not image:
        image.close()  # frees the full-size pixels before the turn
    return rgb if turn is None else rgb.transpose(turn)


def load_image(source: Source, *, max_side: int | None = None,
               check_size: Callable[[tuple[int, int]], None] | None = None) -> Image.Image:
    """Read a picture from bytes, a path or a file object into a fully loaded RGB image.

    This is the one entrance for every picture a student brings. The result is always
    8-bit RGB, turned upright according to its EXIF orientation (phones store portraits
    sideways and record the rotation in EXIF), and fully decoded, so nothing is read
    lazily later. Formats and colour modes are normalised as follows:

    - greyscale (``L``) and 1-bit (``1``) pictures become grey RGB;
    - 16-bit (``I;16``), 32-bit (``I``) and float (``F``) greyscale are stretched from their
      actual minimum..maximum onto 0..255 (not clipped, not divided by 257);
    - CMYK (print) pictures are converted to RGB;
    - transparency (``RGBA``, ``LA``, palette or greyscale with a transparent colour) is
      composited on a **white** background, as a browser shows it on a white page;
    - animated GIF, WebP and PNG (APNG) give their first frame.

    Large pictures are accepted up to :data:`MAX_PIXELS`; very thin ones (1×4000) are fine.
    A picture meant for inference should be read with ``max_side``: the result is then
    what ``fit_within(load_image(source), max_side)`` gives, but made without full-size
    copies (a JPEG is even decoded at reduced scale), so that a picture costs little more
    than its decoded pixels at peak instead of several times that.

    Args:
        source: the file's bytes, a path (``str`` or ``Path``), or a binary file object.
            For objects with ``getvalue()`` (``io.BytesIO``, Streamlit's ``UploadedFile``)
            the whole content is used whatever the current position; other file objects
            are read from their current position.
        max_side: if given, the longest side of the result (larger pictures are shrunk,
            keeping their shape; smaller ones are kept as they are).
        check_size: if given, called with the ``(width, height)`` that the file's header
            announces, before any pixel is decoded; it refuses a picture by raising
            :class:`ImageError`. The size is as stored, before EXIF orientation turns it,
            so a rule should not care which side is the width.

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``RGB``.

    Raises:
        ImageError: the file is empty, larger than :data:`MAX_BYTES`, not a picture (text,
            HTML, SVG, PDF ...), damaged or truncated, or has more than :data:`MAX_PIXELS`
            pixels. The message is a sentence for the student.
        OSError: a path that cannot be read (missing file, no permission).
        TypeError: ``source`` is none of the accepted kinds.

    Example:
        >>> buffer = io.BytesIO()
        >>> Image.new("LA", (4, 2), (0, 0)).save(buffer, "PNG")  # transparent black
        >>> image = load_image(buffer.getvalue())
        >>> image.mode, image.size, image.getpixel((0, 0))
        ('RGB', (4, 2), (255, 255, 255))
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    return _picture(_read_bytes(source, "picture"), max_side, check_size)


def fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The ``(width, height)`` that :func:`fit_within` gives a picture of ``size``.

    Example:
        >>> fitted_size((6000, 4000), 1024)
        (1024, 683)
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return (width, height)
    scale = max_side / longest
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink ``image`` so that its longest side is at most ``max_side``, keeping its shape.

    Networks run on a downscaled copy of a large photo (a 6000×4000 picture has 24
    million pixels; 1024×683 is plenty to segment it), and their output is scaled back.
    Downscaling uses a box filter for the bulk of the reduction and Lanczos for the last
    factor of about 3 (Pillow's ``reducing_gap``), which is fast and avoids aliasing.
    An image that already fits is returned as it is (the same object, not a copy).

    Args:
        image: any PIL image.
        max_side: the largest allowed width or height, in pixels (at least 1).

    Returns:
        ``image`` itself, or a resized copy whose longest side equals ``max_side``; the
        short side is rounded and never below 1 pixel.

    Example:
        >>> fit_within(Image.new("RGB", (6000, 4000)), 1024).size
        (1024, 683)
        >>> fit_within(Image.new("RGB", (1, 4000)), 512).size
        (1, 512)
    """
    new_size = fitted_size(image.size, max_side)
    if new_size == image.size:
        return image
    return image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)


def _check_size(what: str, actual: tuple[int, int], expected: tuple[int, int]) -> None:
    if tuple(actual) != tuple(expected):
        raise ImageError(
            f"The {what} is {actual[0]}×{actual[1]} but the image is "
            f"{expected[0]}×{expected[1]}. Please upload the {what} that belongs to this "
            "picture (both must have the same width and height)."
        )


def _grey_channel(image: Image.Image) -> np.ndarray | None:
    """The single channel of an RGB image whose three channels are equal, else None.

    Many tools save a greyscale index or depth map as RGB with R = G = B; that is still a
    single-channel map, unlike a coloured visualisation.
    """
    if image.mode != "RGB":
        return None
    rgb = np.asarray(image)  # (H, W, 3)
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
        return rgb[..., 0]
    return None


def _format_values(values: np.ndarray, limit: int = 5) -> str:
    shown = [str(v) for v in values[:limit]]
    if len(values) > limit:
        shown.append(f"{len(values) - limit} more")
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def load_mask(source: Source, *, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """Read a ground-truth mask: a PNG whose pixel values are class indices.

    A mask stores, for every pixel, the index of its class (0, 1, 2 ...), with 255 meaning
    "ignore this pixel" (unlabelled or ambiguous), as in Pascal VOC and Cityscapes. It is
    not the coloured picture one looks at: for a palette (``P``) PNG, the palette indices
    are the labels and the colours are ignored, which is exactly how VOC ships its masks.
    Accepted modes: ``L`` and ``P`` (8-bit), ``I;16`` (16-bit), ``I``, ``1`` (0/1), and RGB
    whose three channels are equal (a grey map saved as RGB).

    Args:
        source: bytes, a path or a binary file object, as for :func:`load_image`.
        size: ``(width, height)`` of the image the mask belongs to (``image.size``).
        num_classes: how many classes the labels index; valid values are
            ``0 .. num_classes - 1`` and 255.

    Returns:
        ``np.ndarray`` of ``int64``, shape ``(height, width)``.

    Raises:
        ImageError: the file is not a readable mask, is a coloured picture, is a JPEG,
            differs in size from the image, or holds values that are not class indices.

    Example:
        >>> labels = np.array([[0, 1, 255], [2, 2, 1]], dtype=np.uint8)
        >>> buffer = io.BytesIO()
        >>> Image.fromarray(labels).save(buffer, "PNG")
        >>> load_mask(buffer.getvalue(), size=(3, 2), num_classes=3)
        array([[  0,   1, 255],
               [  2,   2,   1]])
    """
    image = _decode(_read_bytes(source, "mask"), "mask", size)
    grey = _grey_channel(image)
    if grey is not None:
        labels = grey
    elif image.mode in _COLOUR_MODES:
        raise ImageError(
            f"This mask is a colour picture ({image.mode}), but a mask is a PNG whose pixel "
            "values are class indices (0, 1, 2 …, 255 = ignore), not colours. "
            "Please upload the label file rather than its coloured preview."
        )
    elif image.mode in {"1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"}:
        labels = np.asarray(image)
    else:
        raise ImageError(
            f"This mask has a kind of pixel SegLab does not read as labels ({image.mode}); "
            "a mask must be a single-channel PNG of whole-number class indices. "
            "Please save it as an 8-bit greyscale or palette PNG."
        )
    _check_size("mask", image.size, size)
    labels = labels.astype(np.int64)  # (H, W)
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != _IGNORE_INDEX)]
    if bad.size:
        noun = "value" if bad.size == 1 else "values"
        raise ImageError(
            f"The mask contains the {noun} {_format_values(bad)}, but its pixels must be class "
            f"indices from 0 to {num_classes - 1} (or 255 to ignore a pixel). "
            f"Please check that the mask was made for these {num_classes} classes."
        )
    return labels


def _load_npy(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The 2-D numeric array of ``size`` in a ``.npy`` file, checked from its header first.

    ``np.load`` allocates the array its header declares before reading a byte of it, so a
    200-byte file claiming shape (100000, 100000) would ask for 80 GB: the ``.npy`` kind of
    decompression bomb. The header is read and checked first (dimensions, type, number of
    values, size against the picture's) and the data is then viewed in place.
    """
    fp = io.BytesIO(data)
    # numpy.save writes format 1.0, or 2.0 for headers over 64 kB; 3.0 only for structured
    # dtypes with non-Latin-1 field names, which are not depth maps either.
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    damaged = ImageError(
        "This .npy file is damaged: its header cannot be read. "
        "Please save the depth again with numpy.save(path, depth.astype('float32'))."
    )
    try:
        reader = readers.get(np.lib.format.read_magic(fp))
        if reader is None:
            raise damaged
        shape, fortran_order, dtype = reader(fp)
    except _DECODE_ERRORS as err:
        raise damaged from err
    # numpy checks that the shape holds integers, not that they are sizes.
    if any(n < 0 for n in shape):
        raise damaged
    if dtype.hasobject:
        raise ImageError(
            "This .npy file holds Python objects, not a plain array of numbers. "
            "Please save the depth with numpy.save(path, depth.astype('float32'))."
        )
    if len(shape) != 2 or dtype.kind not in "fiu":
        # A crafted header may list thousands of dimensions: name the shape only if short.
        shaped = f"shape {shape}" if len(shape) <= 4 else f"{len(shape)} dimensions"
        raise ImageError(
            f"This .npy file holds an array of {dtype} values with {shaped}, but a depth "
            "map is a 2-D array (height, width) of distances in metres. "
            "Please save a float array of shape (height, width)."
        )
    height, width = shape
    if height == 0 or width == 0:
        raise ImageError(
            f"This .npy file holds an empty array (shape {shape}), with no distance in it. "
            "Please save the depth map of the picture, an array of shape (height, width)."
        )
    if height * width > MAX_PIXELS:
        raise _too_many_pixels("depth map", (width, height))
    _check_size("depth map", (width, height), size)
    if len(data) - fp.tell() < height * width * dtype.itemsize:
        raise ImageError(
            f"This .npy file is incomplete: its header announces a {height}×{width} array but "
            "the file ends before all of its values (it was probably cut off while copying). "
            "Please save or copy it again and upload the new copy."
        )
    flat = np.frombuffer(data, dtype=dtype, count=height * width, offset=fp.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")  # (H, W)


def _depth_mode_problem(mode: str) -> str:
    """Why pixels of ``mode`` cannot be distances, as the end of "This depth map ..."."""
    if mode == "1":
        return "is black and white (one bit per pixel), which cannot store distances"
    if mode in _ALPHA_MODES:
        return (f"has a transparency channel ({mode}), so it is a picture to look at, "
                "not a map of distances")
    return (f"is a colour picture ({mode}), probably a coloured visualisation, which does not "
            "store distances")


def load_depth(source: Source, *, size: tuple[int, int]) -> np.ndarray:
    """Read a depth map into metres (float32), from a PNG, a TIFF or a ``.npy`` array.

    Depth sensors and datasets disagree on units, so the file type decides:

    - **16-bit PNG** (``I;16``) or 32-bit integer image: **millimetres**, the Kinect and
      NYU Depth v2 convention (value 1500 = 1.5 m); divided by 1000. A value of 0 is where
      the sensor measured nothing; it stays 0.
    - **8-bit greyscale** (``L``, or RGB with equal channels): *relative* depth only,
      mapped to 0..1 (value / 255), because 256 levels cannot carry metres. Results are
      then in "fractions of the farthest depth", not metres.
    - **float TIFF** (``F``) and **.npy** arrays (``numpy.save``): already metres.

    Args:
        source: bytes, a path or a binary file object, as for :func:`load_image`.
        size: ``(width, height)`` of the image the depth belongs to (``image.size``).

    Returns:
        ``np.ndarray`` of ``float32``, shape ``(height, width)``, finite and ≥ 0.

    Raises:
        ImageError: unreadable file, colour or JPEG picture, size different from the
            image, or negative / NaN / infinite values.

    Example:
        >>> millimetres = np.array([[1000, 2500]], dtype=np.uint16)
        >>> buffer = io.BytesIO()
        >>> Image.fromarray(millimetres).save(buffer, "PNG")
        >>> load_depth(buffer.getvalue(), size=(2, 1))
        array([[1. , 2.5]], dtype=float32)
    """
    data = _read_bytes(source, "depth map")
    if data.startswith(b"\x93NUMPY"):
        depth = _load_npy(data, size).astype(np.float64)  # (H, W) metres
        actual = (depth.shape[1], depth.shape[0])
    else:
        image = _decode(data, "depth map", size)
        grey = _grey_channel(image)
        if image.mode in {"I", "I;16", "I;16L", "I;16B", "I;16N"}:
            depth = np.asarray(image, dtype=np.float64) / 1000.0  # (H, W) mm -> m
        elif image.mode == "F":
            depth = np.asarray(image, dtype=np.float64)  # (H, W) metres
        elif image.mode == "L" or grey is not None:
            depth = (np.asarray(image) if grey is None else grey) / 255.0  # (H, W) relative
        else:
            raise ImageError(
                f"This depth map {_depth_mode_problem(image.mode)}. {_HINTS['depth map']}"
            )
        actual = image.size
    _check_size("depth map", actual, size)
    # Cast before checking: a float64 beyond float32's range (1e300 m) would become infinite.
    with np.errstate(over="ignore"):
        depth = depth.astype(np.float32)
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise ImageError(
            "The depth map contains negative, infinite or missing (NaN) values, but every "
            "pixel must be a distance of 0 metres or more. "
            "Please replace missing values with 0 and upload it again."
        )
    return depth


def image_hash(image: Image.Image | np.ndarray) -> str:
    """A short, stable fingerprint of a picture's pixels, for cache keys.

    It is the SHA-1 of the size and the RGB bytes, shortened to 16 hex digits (64 bits:
    collisions are not a concern for a cache). It depends only on the pixels, not on the
    file name or format, and a uint8 ``(H, W, 3)`` array gives the same hash as the PIL
    image made from it. Non-RGB PIL images are converted to RGB first.

    Args:
        image: a PIL image, or a uint8 numpy array of shape ``(H, W, 3)``.

    Returns:
        16 lowercase hex characters.

    Example:
        >>> picture = Image.new("RGB", (2, 1), (255, 0, 0))
        >>> image_hash(picture) == image_hash(np.asarray(picture))
        True
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        pixels = np.ascontiguousarray(image).tobytes()
    else:
        width, height = image.size
        pixels = (image if image.mode == "RGB" else image.convert("RGB")).tobytes()
    digest = hashlib.sha1(f"{width}x{height}:".encode())
    digest.update(pixels)
    return digest.hexdigest()[:16]
