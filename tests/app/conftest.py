"""AppTest helpers: run the real router on a chosen page, with the real models."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
#: Model loading and first predictions take seconds on a 2-core CPU.
TIMEOUT = 120


def open_page(file: str | None = None) -> AppTest:
    """Run streamlit_app.py, then switch to lessons/`file` (None: the default page)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    if file is not None:
        at.switch_page(f"lessons/{file}")
        at.run()
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    """Choose "Upload" in the sidebar picker and upload `data` as file `name`."""
    at.sidebar.radio(key="image_source").set_value("Upload").run()
    at.sidebar.file_uploader(key="image_upload").upload(name, data, mime).run()
    return at


def encoded(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """`array` encoded as an image file."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def no_exception(at: AppTest) -> None:
    """Fail with the page's exceptions, if any."""
    assert not at.exception, [e.message for e in at.exception]


@pytest.fixture
def photo() -> np.ndarray:
    """A small real-looking RGB photo: a sample from the gallery, downscaled."""
    image = Image.open(ROOT / "app" / "samples" / "chelsea.jpg").convert("RGB")
    return np.asarray(image.resize((150, 100)))


def chart(at, key: str) -> dict:
    """The plotly figure (as a dict) the page drew under `key`."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    raise KeyError(f"no chart with key {key!r}")


def pictures(at) -> list[tuple[str, str]]:
    """(caption, media URL) of every `st.image` picture on the page, in order; the URL names
    the picture's content, so a changed picture has a new one."""
    return [(image.caption, image.url) for element in at.get("image")
            for image in element.proto.imgs]


def array(value) -> np.ndarray:
    """A plotly data array: a list, or the typed-array dict {dtype, bdata, shape} of plotly 6+."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).copy()
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return data.reshape(shape) if shape else data


def pixels(trace: dict) -> np.ndarray:
    """The (H, W, 3) pixels of a plotly image trace: its PNG `source`, or its `z`."""
    if "source" in trace:
        encoded_png = trace["source"].split(",", 1)[1]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded_png))).convert("RGB"))
    return array(trace["z"])
