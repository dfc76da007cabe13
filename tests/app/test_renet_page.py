"""The ReNet page: the sweep stepper, the receptive fields and the two segmenters' scores it
shows, checked against direct computations with the same (cached) networks."""

import base64
import json

import numpy as np
import pytest
import torch
from PIL import Image

import seg
from app import resources
from seg.models.segmenter import to_tensor
from tests.app.conftest import encoded, no_exception, open_page, upload

PAGE = "12_renet.py"


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


def chart(at, key: str) -> dict:
    """The plotly figure drawn with `key`."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key) or key in element.proto.id:
            return json.loads(element.proto.spec)
    raise LookupError(key)


def array(value) -> np.ndarray:
    """A plotly data array: a list, or plotly's typed array {dtype, bdata, shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value, dtype=float)


def state_maps(figure: dict) -> list[np.ndarray]:
    """The four ‖state‖ maps of the stepper (not the grey sheets under them), NaN = not yet."""
    return [array(t["z"]).astype(float) for t in figure["data"]
            if t["type"] == "heatmap" and t.get("hoverinfo") != "skip"]


def markdown(at, start: str) -> str:
    return next(m.value for m in at.markdown if m.value.startswith(start))


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def work_copy(image: np.ndarray, size=(128, 128)) -> np.ndarray:
    """The page's working copy of a 256 × 256 scene."""
    return np.array(Image.fromarray(image).resize(size, Image.BILINEAR))


def test_stepper_shows_the_states_computed_so_far(page):
    assert page.title[0].value.startswith("ReNet")
    assert markdown(page, "32 × 32 patches").startswith("32 × 32 patches, each a vector of 3 · 4²")
    assert markdown(page, "**Step").startswith(
        "**Step 16 of 128:** sweep 1 of 4, ↓ top→bottom, has just read row 15")
    z = state_maps(chart(page, "renet_states"))
    assert (~np.isnan(z[0])).sum(axis=1).tolist() == [32] * 16 + [0] * 16
    assert all(np.isnan(m).all() for m in z[1:])
    # the values are ‖h↓‖ of SegLab's ReNet (the page's cached instance) on the 128 px copy
    module = resources.segmenter("renet", resources.device()).module
    with torch.inference_mode():
        down = module.sweeps(to_tensor(work_copy(seg.synthetic.scene(7).image)))["down"]
    np.testing.assert_allclose(z[0][:16], down[0].norm(dim=0)[:16].numpy(), rtol=1e-4)


def test_stepping_into_the_last_sweep():
    at = open_page(PAGE)
    at.slider(key="renet_step_4").set_value(100).run()
    no_exception(at)
    assert markdown(at, "**Step").startswith(
        "**Step 100 of 128:** sweep 4 of 4, ← right→left, has just read column 28")
    states = state_maps(chart(at, "renet_states"))
    assert all(not np.isnan(m).any() for m in states[:3])
    assert (~np.isnan(states[3])).sum(axis=0).tolist() == [0] * 28 + [32] * 4
    grid = chart(at, "renet_grid")
    assert grid["layout"]["title"]["text"].startswith("What the horizontal sweeps read")
    assert grid["layout"]["shapes"][0]["x0"] == 28 * 4 - 0.5  # the column just read


def test_other_patch_sizes_use_a_fresh_layer_and_say_so():
    at = open_page(PAGE)
    at.select_slider(key="renet_patch").set_value(16).run()
    no_exception(at)
    assert markdown(at, "8 × 8 patches").startswith(
        "8 × 8 patches, each a vector of 3 · 16² = **768**")
    assert any("fresh ReNet layer with random weights" in w.value for w in at.warning)
    assert at.slider(key="renet_step_16").max == 32


def test_receptive_field_whole_image_vs_a_3x3_convolution(page):
    assert metric(page, "Pixels that ReNet sees") == "100.0%"
    assert metric(page, "Pixels that FCN-8s sees") == "0.1%"  # 9 of 16384 pixels
    fcn = resources.segmenter("fcn8s", resources.device()).module
    first = seg.receptive_field.theoretical(fcn, (128, 128))[0]
    assert first.size == (3, 3)
    text = markdown(page, "FCN-8s's theoretical field")
    assert "at conv1_1 is **3 × 3** pixels" in text
    assert "the gradient's box here is 3 × 3" in text
    assert "ReNet's box is 128 × 128 of the 128 × 128 picture" in text
    # directly: one unit of one ReNet layer depends on every pixel of the image
    module = resources.segmenter("renet", resources.device()).module
    grad = seg.receptive_field.empirical(module, to_tensor(work_copy(seg.synthetic.scene(7).image)),
                                         16, 16, output_key="horizontal")
    assert (grad > 0).all()


def test_receptive_field_after_the_vertical_sweep_and_deeper_convolutions():
    at = open_page(PAGE)
    at.radio(key="renet_rf_output").set_value("vertical").run()
    at.select_slider(key="renet_rf_depth").set_value("pool3 (7 convs)").run()
    no_exception(at)
    text = markdown(at, "FCN-8s's theoretical field")
    assert "ReNet's box is 128 × 4 of the 128 × 128 picture" in text  # one column of patches
    assert metric(at, "Pixels that ReNet sees") == "3.1%"  # 4 of 128 columns
    fcn = resources.segmenter("fcn8s", resources.device()).module
    pool3 = next(lr for lr in seg.receptive_field.theoretical(fcn, (128, 128))
                 if lr.name == "encoder.2.pool")
    assert f"at pool3 is **{pool3.size[0]} × {pool3.size[1]}** pixels" in text
    assert pool3.size == (44, 44)


def test_segmenters_scores_and_provenance(page):
    scene = seg.synthetic.scene(7)
    for name, model in (("ReNet", "renet"), ("FCN-8s", "fcn8s")):
        segmenter = resources.segmenter(model, resources.device())
        labels = segmenter.predict(scene.image).labels
        assert metric(page, f"mIoU: {name}") == f"{seg.metrics.miou(labels, scene.labels, 8):.1%}"
        assert metric(page, f"Pixel accuracy: {name}") == (
            f"{seg.metrics.pixel_accuracy(labels, scene.labels, 8):.1%}")
    notes = [w.value for w in page.warning] + [c.value for c in page.caption]
    for title in ("ReNet segmenter (SegLab)", "FCN-8s (SegLab)"):
        assert any(title in note and ("random weights" in note or "SegLab's own weights" in note)
                   for note in notes)


def test_uploads_work_and_bad_files_are_refused(photo):
    at = open_page(PAGE)
    for name, fmt, mime in (("cat.png", "PNG", "image/png"), ("cat.jpg", "JPEG", "image/jpeg")):
        upload(at, name, encoded(photo, fmt), mime)
        no_exception(at)
        assert any(c.value == f"On a 128 × 96 copy of {name}." for c in at.caption)
        assert any("mIoU needs true labels" in i.value for i in at.info)
    upload(at, "notes.png", b"not a picture at all")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
    assert metric(at, "Pixels that ReNet sees") == "100.0%"  # back on the default scene
