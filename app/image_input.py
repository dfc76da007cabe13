"""The image every page works on: a synthetic scene, a sample photo, an upload or the webcam.

The picker lives in the sidebar and is drawn by the router on every page, so the chosen image
stays chosen when a student moves to another lesson. Every file goes through
`seg.io.load_image`; a refused file shows its sentence and the page carries on with the default
scene.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

import seg
from app import share
from seg.io import ImageError

SAMPLES = Path(__file__).parent / "samples"
PHOTOS = {
    "astronaut.jpg": "Astronaut (NASA, public domain)",
    "chelsea.jpg": "Cat (CC0)",
    "coffee.jpg": "Coffee (CC0)",
    "rocket.jpg": "Rocket launch (SpaceX, public domain)",
}
SOURCES = ("Synthetic scene", "Sample photo", "Upload", "Webcam")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
DEFAULT_SEED = 7
#: Pictures larger than this are reduced once on arrival, while they are decoded: every model
#: downsizes anyway, and it keeps caches, plots and the CRF quick.
WORKING_SIDE = 1024
#: The lessons' networks pool a picture down 8 to 32 times and draw it next to its maps: a
#: strip thinner than this, or longer than this many times its width, cannot be shown or
#: segmented sensibly, so it is refused with a sentence instead.
MIN_SIDE = 32
MAX_ASPECT = 8


@dataclass(frozen=True)
class ChosenImage:
    """The picture a page works on, with its ground truth when it is a synthetic scene."""

    array: np.ndarray  # uint8 (H, W, 3)
    name: str
    key: str  # stable hash, the cache key of everything computed from the picture
    scene: seg.synthetic.Scene | None = None
    error: str | None = None  # the sentence explaining why an upload was refused

    @property
    def is_synthetic(self) -> bool:
        """Whether exact labels and depth are known."""
        return self.scene is not None


# A 256² scene is about 1 MB (uint8 image, int64 labels, float32 depth): at most ~64 MB here.
@st.cache_data(max_entries=64, show_spinner=False)
def synthetic(seed: int, size: int = 256) -> seg.synthetic.Scene:
    """A synthetic scene, cached (pages redraw often)."""
    return seg.synthetic.scene(seed, height=size, width=size)


#: How many decoded uploads the server keeps for all sessions together. Each entry is a working
#: picture of at most WORKING_SIDE² × 3 bytes (3.1 MB) with its 16-character hash, or a
#: refusal sentence of a few hundred bytes, so the cache holds at most 48 × 3.1 MB ≈ 151 MB
#: in the worst case. 48 leaves room for a class of 40 students' own uploads and the 4
#: sample photos: with fewer, their reruns would evict each other and decode again and again.
DECODE_ENTRIES = 48

_decodes = 0
_decodes_lock = threading.Lock()


def decodes() -> int:
    """How many times `decode` really decoded a file (its cache misses), since start-up."""
    return _decodes


def _check_shape(size: tuple[int, int]) -> None:
    """Refuse, from the file's header, a picture the lessons cannot show or segment."""
    width, height = size
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT * short:
        raise ImageError(
            f"This picture is {width}×{height} pixels, a strip {long // max(short, 1)} times "
            f"longer than it is wide; the lessons need a picture at most {MAX_ASPECT} times "
            "longer than wide. Please crop a part of it and upload that.")
    if min(seg.io.fitted_size(size, WORKING_SIDE)) < MIN_SIDE:
        raise ImageError(
            f"This picture is only {width}×{height} pixels; the networks need at least "
            f"{MIN_SIDE} pixels in each direction. Please upload a larger picture.")


@st.cache_data(max_entries=DECODE_ENTRIES, show_spinner=False)
def decode(data: bytes) -> tuple[np.ndarray, str] | str:
    """Uploaded bytes as (uint8 working array, hash), or the sentence that refuses them.

    A refusal is returned rather than raised so that it is cached like a picture: a page
    rerun with a refused upload decodes nothing again. Every size rule is checked from the
    file's header, before a pixel is decoded.
    """
    global _decodes
    with _decodes_lock:
        _decodes += 1
    try:
        image = seg.io.load_image(data, max_side=WORKING_SIDE, check_size=_check_shape)
    except ImageError as error:
        return str(error)
    return np.asarray(image), seg.io.image_hash(image)


def _from_scene(seed: int) -> ChosenImage:
    s = synthetic(int(seed))
    return ChosenImage(s.image, f"Synthetic scene #{seed}", f"scene-{seed}", s)


def picker() -> None:
    """Draw the image picker (sidebar) and remember the choice in the session."""
    st.sidebar.subheader("Image")
    source = share.widget(st.sidebar.radio, "Image source", SOURCES, key="image_source",
                          label_visibility="collapsed")
    chosen: ChosenImage
    if source == "Synthetic scene":
        seed = share.widget(st.sidebar.number_input,
                            "Scene seed", 0, 99_999, DEFAULT_SEED, key="image_seed",
                            help="Each seed draws a different street with exact labels.")
        chosen = _from_scene(int(seed))
    elif source == "Sample photo":
        name = share.widget(st.sidebar.selectbox, "Photo", list(PHOTOS), format_func=PHOTOS.get,
                            key="image_photo")
        array, key = decode((SAMPLES / name).read_bytes())
        chosen = ChosenImage(array, PHOTOS[name], key)
    else:
        if source == "Upload":
            file = st.sidebar.file_uploader("Your photo", type=UPLOAD_TYPES, key="image_upload")
        else:
            file = st.sidebar.camera_input("Take a photo", key="image_camera")
        chosen = _from_file(file)
        if chosen.error:
            st.sidebar.error(chosen.error, icon="🚫")
    st.session_state["seglab_image"] = chosen


def _from_file(file) -> ChosenImage:
    fallback = _from_scene(DEFAULT_SEED)
    if file is None:
        return fallback
    decoded = decode(file.getvalue())
    if isinstance(decoded, str):
        return ChosenImage(fallback.array, fallback.name, fallback.key, fallback.scene,
                           error=f"“{file.name}”: {decoded}")
    array, key = decoded
    return ChosenImage(array, file.name, key)


def current() -> ChosenImage:
    """The chosen image; shows the refusal of a bad upload on the page.

    Pages call this once at the top. Without a picker (a page run on its own) it is the
    default synthetic scene.
    """
    chosen = st.session_state.get("seglab_image") or _from_scene(DEFAULT_SEED)
    if chosen.error:
        st.error(f"{chosen.error} Showing {chosen.name} instead.", icon="🚫")
    return chosen
