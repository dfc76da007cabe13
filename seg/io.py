"""Reading pictures, ground-truth masks and depth maps that students bring.

Everything here takes *untrusted* input (an upload, a file on disk, raw bytes) and either
returns something SegLab can compute with or raises :class:`ImageError`, whose message is
a plain sentence for the student: what is wrong with the file and what to do about it.

The checks happen in the order that keeps the machine safe:

1. the file size is compared with :data:`MAX_BYTES` before anything is parsed;
2. ``Image.open`` reads only the header, so the pixel count is compared with
   :data:`MAX_PIXELS` before a single pixel is decoded (a 100 kB PNG can claim to be
   100000×100000 pixels: a "decompression bomb");
3. the pixels are decoded, and a file that ends before its pixels do is refused even if
   some other code switched on ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` (which would
   otherwise pad the missing part with grey without telling anyone).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def _decode(data: bytes, what: str) -> Image.Image:
    """Open, size-check and fully decode ``data`` (first frame), with EXIF orientation applied.

    The returned image keeps its original mode (``L``, ``P``, ``I;16``, ``RGBA`` ...);
    callers decide how to interpret it. ``what`` ("picture", "mask", "depth map") words
    the error messages; masks and depth maps must also be lossless (no JPEG).
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

    with image:
        if what != "picture" and image.format in _LOSSY_FORMATS:
            raise ImageError(
                f"This {what} is a JPEG, whose compression blurs exact values (labels or "
                f"distances). Please save the {what} as PNG instead."
            )
        width, height = image.size
        bomb = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
        # Only the header has been read so far: refuse before allocating any pixels.
        if bomb or width * height > MAX_PIXELS:
            raise _too_many_pixels(what, image.size)
        fp.ran_out = False
        try:
            image.load()
        except _DECODE_ERRORS as err:
            truncated = fp.ran_out or "truncated" in str(err)
            raise (_truncated(what) if truncated else _damaged(what)) from err
        if fp.ran_out:
            raise _truncated(what)
        try:
            return ImageOps.exif_transpose(image)
        except _DECODE_ERRORS:
            # A broken EXIF block is common in phone photos and says nothing about the
            # pixels: keep the picture as stored rather than refuse it.
            return image.copy()


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


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    """Map a 16/32-bit or float greyscale image onto 0..255 by its actual value range.

    A 12-bit camera frame stored in a 16-bit PNG uses 0..4095; dividing by 257 (the
    16-to-8-bit rule) would make it nearly black, and clipping would make it white.
    Stretching min..max to 0..255 shows what is there. A constant image becomes black;
    NaN and infinite values (possible in float TIFFs) become black too.
    """
    values = np.asarray(image, dtype=np.float32)  # (H, W)
    finite = np.isfinite(values)
    grey = np.zeros(values.shape, dtype=np.uint8)  # (H, W)
    if finite.any():
        low, high = values[finite].min(), values[finite].max()
        if high > low:
            scaled = (values[finite] - low) * (255.0 / (high - low))
            grey[finite] = np.round(scaled).astype(np.uint8)
    return Image.fromarray(grey)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _HIGH_DEPTH_MODES:
        image = _stretch_to_8bit(image)
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


def load_image(source: Source) -> Image.Image:
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

    Large pictures are accepted up to :data:`MAX_PIXELS`; use :func:`fit_within` to shrink
    them for inference. Very thin ones (1×4000) are fine.

    Args:
        source: the file's bytes, a path (``str`` or ``Path``), or a binary file object.
            For objects with ``getvalue()`` (``io.BytesIO``, Streamlit's ``UploadedFile``)
            the whole content is used whatever the current position; other file objects
            are read from their current position.

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
    return _to_rgb(_decode(_read_bytes(source, "picture"), "picture"))


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
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side:
        return image
    scale = max_side / longest
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)


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
    image = _decode(_read_bytes(source, "mask"), "mask")
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


def _load_npy(data: bytes) -> np.ndarray:
    """The 2-D numeric array in a ``.npy`` file, checked from its header before any allocation.

    ``np.load`` allocates the array its header declares before reading a byte of it, so a
    200-byte file claiming shape (100000, 100000) would ask for 80 GB: the ``.npy`` kind of
    decompression bomb. The header is read first and the data is then viewed in place.
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
    except ValueError as err:
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
        raise ImageError(
            f"This .npy file holds an array of {dtype} values with shape {shape}, but a depth "
            "map is a 2-D array (height, width) of distances in metres. "
            "Please save a float array of shape (height, width)."
        )
    height, width = shape
    if height * width > MAX_PIXELS:
        raise _too_many_pixels("depth map", (width, height))
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
        depth = _load_npy(data).astype(np.float64)  # (H, W) metres
        actual = (depth.shape[1], depth.shape[0])
    else:
        image = _decode(data, "depth map")
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
