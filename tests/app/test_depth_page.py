"""The depth page: grey levels, the 3-D point cloud, an uploaded depth map and the measured gain."""

import base64
import io
import json

import numpy as np
from PIL import Image

import seg
from seg import depth
from app import figures
from tests.app.conftest import encoded, no_exception, open_page, pictures, upload


def figures_of(at, kind: str) -> list[dict]:
    """The plotly figures on the page whose first trace is of this type."""
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return [s for s in specs if s["data"] and s["data"][0].get("type") == kind]


def values(field) -> np.ndarray:
    """A plotly data field as numpy (plain list, or plotly's typed-array encoding)."""
    if isinstance(field, dict) and "bdata" in field:
        array = np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
        shape = [int(n) for n in str(field.get("shape", len(array))).split(",")]  # "256, 256"
        return array.reshape(shape)
    return np.asarray(field)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def depth_png(metres: np.ndarray) -> bytes:
    """A 16-bit PNG in millimetres, as Kinect and NYU Depth v2 store depth."""
    buffer = io.BytesIO()
    Image.fromarray(np.rint(np.clip(metres, 0, 65) * 1000).astype(np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


def depth_picture_url(at) -> str:
    return next(url for caption, url in pictures(at) if caption.startswith("Its depth, grey"))


def test_grey_depth_and_point_cloud_of_the_default_scene():
    at = open_page("24_depth.py")
    no_exception(at)
    assert at.title[0].value == "Depth maps"
    scene = seg.synthetic.scene(7)
    captions = [caption for caption, _ in pictures(at)]
    assert "Its depth, grey levels linear in inverse depth 1/Z" in captions
    # The picture the page draws: the grey levels, and a bar from white (near) to black.
    picture = figures.depth_picture(scene.depth, near=2, far=200, inverse=True)
    grey = depth.to_grey(scene.depth, near=2, far=200, inverse=True)
    assert (picture[:, :256] == grey[..., None]).all()
    bar = picture[:, 256 + 8]  # (256, 3) a column through the bar
    assert bar[0].tolist() == [255] * 3 and bar[-1].tolist() == [0] * 3
    assert grey[-1].mean() > grey[scene.labels.shape[0] // 2].mean()  # near ground brighter

    cloud = figures_of(at, "scatter3d")[0]["data"][0]
    kept = scene.depth[::3, ::3]
    expected = int(((kept > 0) & (kept <= 120)).sum())
    assert len(values(cloud["x"])) == len(cloud["marker"]["color"]) == expected
    assert metric(at, "Points") == f"{expected:,}"
    assert cloud["marker"]["color"][0].startswith("rgb(")

    at.slider(key="depth_step").set_value(2).run()
    at.slider(key="depth_max").set_value(60).run()
    no_exception(at)
    kept = scene.depth[::2, ::2]
    cloud = figures_of(at, "scatter3d")[0]["data"][0]
    assert len(values(cloud["x"])) == int(((kept > 0) & (kept <= 60)).sum())


def test_linear_convention_and_the_range_change_the_grey_levels():
    at = open_page("24_depth.py")
    inverse = depth_picture_url(at)
    at.radio(key="depth_convention").set_value("depth Z").run()
    no_exception(at)
    assert "Its depth, grey levels linear in depth Z" in [c for c, _ in pictures(at)]
    linear = depth_picture_url(at)
    assert linear != inverse
    at.select_slider(key="depth_range").set_value((5, 100)).run()
    no_exception(at)
    assert depth_picture_url(at) not in (inverse, linear)
    scene = seg.synthetic.scene(7)
    a = figures.depth_picture(scene.depth, near=2, far=200, inverse=False)[:, :256, 0]
    b = figures.depth_picture(scene.depth, near=2, far=200, inverse=True)[:, :256, 0]
    np.testing.assert_array_equal(a, depth.to_grey(scene.depth, near=2, far=200, inverse=False))
    assert (a != b).mean() > 0.5


def test_depth_picture_labels_the_bar_in_distances():
    z = np.linspace(1, 50, 64 * 64).reshape(64, 64)
    with_labels = figures.depth_picture(z, near=1, far=50, inverse=True, unit="m")
    short = figures.depth_picture(z, near=1, far=50, inverse=True, unit="")
    assert with_labels.shape[0] == 64 and with_labels.shape[1] > short.shape[1] > 64
    # Text was written beside the bar: dark pixels right of it.
    assert (with_labels[:, 64 + 18:] < 128).any()


def test_depth_adds_to_colour_in_the_measurement():
    at = open_page("24_depth.py")
    colour = float(metric(at, "mIoU · colour"))
    with_depth = float(metric(at, "mIoU · colour + depth"))
    assert with_depth > colour + 0.05
    assert any("Depth adds" in m.value for m in at.markdown)


def test_uploaded_depth_of_the_synthetic_scene_is_lifted_into_3d():
    at = open_page("24_depth.py")
    scene = seg.synthetic.scene(7)
    at.file_uploader(key="depth_upload").upload("depth.png", depth_png(scene.depth), "image/png").run()
    no_exception(at)
    assert not at.error
    assert any("Read 256×256 depths" in s.value for s in at.success)
    clouds = figures_of(at, "scatter3d")
    assert len(clouds) == 2
    kept = np.clip(scene.depth, 0, 65)[::2, ::2]  # 256 px shown one point in 2
    assert len(values(clouds[1]["data"][0]["x"])) == int((kept > 0).sum())


def test_photo_upload_png_and_jpeg_with_a_npy_depth(photo):
    for fmt in ("PNG", "JPEG"):
        at = open_page("24_depth.py")
        upload(at, f"cat.{fmt.lower()}", encoded(photo, fmt), f"image/{fmt.lower()}")
        no_exception(at)
        height, width = photo.shape[:2]
        metres = np.tile(np.linspace(1, 5, width, dtype=np.float32), (height, 1))
        buffer = io.BytesIO()
        np.save(buffer, metres)
        at.file_uploader(key="depth_upload").upload("cat.npy", buffer.getvalue(),
                                                    "application/octet-stream").run()
        no_exception(at)
        assert not at.error
        assert any(f"Read {width}×{height} depths from 1 to 5 m" in s.value for s in at.success)
        cloud = figures_of(at, "scatter3d")[1]["data"][0]
        assert len(values(cloud["x"])) == width * height  # 150 px: one point per pixel


def test_bad_depth_maps_are_refused_with_a_sentence():
    at = open_page("24_depth.py")
    scene = seg.synthetic.scene(7)
    cases = [("small.png", depth_png(scene.depth[:100, :100]), "same width and height"),
             ("colour.jpg", encoded(scene.image, "JPEG"), "JPEG"),
             ("notes.png", b"not a depth map at all", "depth map")]
    for name, data, words in cases:
        at.file_uploader(key="depth_upload").upload(name, data, "image/png").run()
        no_exception(at)
        assert len(at.error) == 1 and name in at.error[0].value and words in at.error[0].value, \
            at.error[0].value
        assert len(figures_of(at, "scatter3d")) == 1  # the scene's cloud still works
