"""Page "What is semantic segmentation?": overlay, pixel probe, confidence maps, error map."""

import json

import pytest

import seg
from app import resources
from app.image_input import DEFAULT_SEED
from tests.app.conftest import encoded, no_exception, open_page, upload

PAGE = "01_what_is_segmentation.py"


def shown_prediction(name: str = "fcn8s"):
    """The prediction the page drew: the same cached entry (untrained models are random)."""
    device = str(seg.devices.default_device())
    scene = seg.synthetic.scene(DEFAULT_SEED)
    return resources.predict(name, device, f"scene-{DEFAULT_SEED}", scene.image), scene


def bars(at):
    """(class names, probabilities) of the pixel probe's bar chart."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return spec["data"][0]["y"], spec["data"][0]["x"]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


def test_default_scene_shows_overlay_maps_and_an_error_map_whose_numbers_are_right(page):
    assert page.title[0].value == "What is semantic segmentation?"
    assert len(page.get("plotly_chart")) == 3  # probe bars, confidence, entropy
    prediction, scene = shown_prediction()
    assert any("FCN-8s" in c.value for c in [*page.caption, *page.warning])  # provenance
    labels = prediction.labels.numpy()
    accuracy = seg.metrics.pixel_accuracy(labels, scene.labels, len(seg.synthetic.CLASSES))
    miou = seg.metrics.miou(labels, scene.labels, len(seg.synthetic.CLASSES))
    assert metric(page, "Pixel accuracy") == f"{accuracy:.1%}"
    assert metric(page, "mIoU") == f"{miou:.1%}"
    error_image = page.get("image")[-1]
    wrong = (labels != scene.labels).mean()
    assert error_image.captions[0].startswith(f"Errors: the {wrong:.1%}")


def test_pixel_probe_shows_the_probabilities_of_the_chosen_pixel(page):
    page.number_input(key="segmentation_probe_x").set_value(30)
    page.number_input(key="segmentation_probe_y").set_value(200).run()
    no_exception(page)
    names, probs = bars(page)
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    prediction, _ = shown_prediction()
    expected = dict(zip(prediction.classes, prediction.probs[:, 200, 30].tolist()))
    assert dict(zip(names, probs)) == pytest.approx(expected, abs=1e-6)
    assert any("(x 30, y 200)" in m.value for m in page.markdown)


def test_opacity_slider_keeps_the_probe(page):
    before = bars(page)
    page.slider(key="segmentation_opacity").set_value(0.9).run()
    no_exception(page)
    assert bars(page) == before


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_upload_of_a_real_photo_is_segmented(photo, fmt):
    at = open_page(PAGE)
    upload(at, f"cat.{fmt.lower()}", encoded(photo, fmt), f"image/{fmt.lower()}")
    no_exception(at)
    assert not at.error
    names, probs = bars(at)
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    assert at.number_input(key="segmentation_probe_x").max == photo.shape[1] - 1
    assert any("(x 75, y 50)" in m.value for m in at.markdown)  # the probe starts at the centre
    assert any("synthetic scenes" in i.value for i in at.info)  # no ground truth for a photo


@pytest.mark.parametrize("name, data", [
    ("truncated.png", encoded(seg.synthetic.scene(1, height=64, width=64).image)[:200]),
    ("notes.png", b"this is a text file, not a picture"),
])
def test_a_bad_upload_shows_a_message_and_the_page_keeps_working(name, data):
    at = open_page(PAGE)
    upload(at, name, data)
    no_exception(at)
    assert any(name in e.value for e in at.error)
    assert metric(at, "Pixel accuracy")  # the default scene is shown instead
