"""Page "Compare models": overlays, blend and disagreement, the table, ground-truth masks."""

import numpy as np
import pytest

import seg
from app import compare, resources
from app.image_input import DEFAULT_SEED
from tests.app.conftest import encoded, no_exception, open_page, upload

PAGE = "02_compare_models.py"
MODELS = ["fcn32s", "fcn8s", "segnet", "deeplab_v1_largefov"]
NUM_CLASSES = len(seg.synthetic.CLASSES)
SCENE = seg.synthetic.scene(DEFAULT_SEED)


def shown_labels(name: str) -> np.ndarray:
    """The labels the page drew for `name`: the same cached prediction."""
    device = str(seg.devices.default_device())
    return resources.predict(name, device, f"scene-{DEFAULT_SEED}", SCENE.image).labels.numpy()


def percent(score: float) -> str:
    """A score as the table writes it."""
    return f"{100 * score:.1f}"


def table(at):
    return at.dataframe[0].value


def upload_mask(at, data: bytes, name: str = "mask.png"):
    at.file_uploader(key="compare_mask").upload(name, data, "image/png").run()
    no_exception(at)
    return at


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


def test_four_models_side_by_side_scored_on_the_scene(page):
    assert page.multiselect(key="compare_models").value == MODELS
    captions = [c for image in page.get("image") for c in image.captions]
    assert [resources.title(n) for n in MODELS] == captions[:4]
    rows = table(page)
    assert len(rows) == 4 and (rows["latency (ms)"] > 0).all()
    for name, (_, row) in zip(MODELS, rows.iterrows()):
        labels = shown_labels(name)
        assert row["mIoU here (%)"] == percent(seg.metrics.miou(labels, SCENE.labels, NUM_CLASSES))
        assert row["pixel acc. here (%)"] == percent(
            seg.metrics.pixel_accuracy(labels, SCENE.labels, NUM_CLASSES))
        card = seg.models.checkpoints.read_card(name)
        if "evaluation" in card:
            assert row["published"].startswith(f"mIoU {100 * card['evaluation']['miou']:.1f}%")
        else:
            assert row["published"] == "— (random weights)"
        assert row["parameters (M)"] * 1e6 == pytest.approx(
            sum(p.numel() for p in seg.models.build(name).parameters()))


def test_disagreement_is_zero_for_the_same_model_and_exact_otherwise(page):
    page.selectbox(key="compare_blend_a").set_value("fcn8s")
    page.selectbox(key="compare_blend_b").set_value("fcn8s").run()
    no_exception(page)
    assert page.metric[0].value == "0.0%"
    page.selectbox(key="compare_blend_b").set_value("segnet").run()
    expected = (shown_labels("fcn8s") != shown_labels("segnet")).mean()
    assert page.metric[0].value == f"{expected:.1%}"
    page.slider(key="compare_blend_t").set_value(0.8).run()
    no_exception(page)
    assert "80% SegNet" in page.get("image")[-2].captions[0]


@pytest.mark.parametrize("name, mask, sentence", [
    ("small.png", np.zeros((100, 120), np.uint8), "is 120×100 but the image is 256×256"),
    ("range.png", np.full((256, 256), 9, np.uint8), "contains the value 9"),
    ("colour.png", seg.viz.colorize(SCENE.labels, seg.synthetic.PALETTE), "colour picture"),
])
def test_a_wrong_mask_is_refused_with_its_sentence(page, name, mask, sentence):
    upload_mask(page, encoded(mask), name)
    message = " ".join(e.value for e in page.error)
    assert name in message and sentence in message
    assert len(table(page)) == 4  # the page keeps working, scored on the scene again


def test_a_good_mask_scores_every_model_against_it(page):
    other = seg.synthetic.scene(DEFAULT_SEED + 1).labels  # a mask that is not the scene's own
    upload_mask(page, encoded(other.astype(np.uint8)))
    assert not page.error
    assert any("your mask" in s.value for s in page.success)
    for name, (_, row) in zip(MODELS, table(page).iterrows()):
        labels = shown_labels(name)
        assert row["mIoU here (%)"] == percent(seg.metrics.miou(labels, other, NUM_CLASSES))
        assert row["pixel acc. here (%)"] == percent(
            seg.metrics.pixel_accuracy(labels, other, NUM_CLASSES))


def test_the_downloaded_mask_reads_back_as_the_models_labels():
    labels = shown_labels("segnet")
    data = compare.mask_png(labels, seg.synthetic.PALETTE)
    assert np.array_equal(seg.io.load_mask(data, size=(256, 256), num_classes=NUM_CLASSES),
                          labels)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_upload_of_a_real_photo_is_compared_without_ground_truth(photo, fmt):
    at = open_page(PAGE)
    upload(at, f"cat.{fmt.lower()}", encoded(photo, fmt), f"image/{fmt.lower()}")
    no_exception(at)
    assert not at.error
    rows = table(at)
    assert len(rows) == 4 and (rows["mIoU here (%)"] == "—").all()
    assert at.get("image")[0].captions[0] == resources.title(MODELS[0])


@pytest.mark.parametrize("name, data", [
    ("truncated.png", encoded(SCENE.image)[:300]),
    ("notes.png", b"this is a text file, not a picture"),
])
def test_a_bad_upload_shows_a_message_and_the_page_keeps_working(name, data):
    at = open_page(PAGE)
    upload(at, name, data)
    no_exception(at)
    assert any(name in e.value for e in at.error)
    assert len(table(at)) == 4
