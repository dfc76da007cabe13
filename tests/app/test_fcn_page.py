"""The FCN page: FC → conv with real weights, the coarse map, and FCN-32s/16s/8s by stride."""

import base64
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seg
from seg import convolutionalize
from seg.models.classifiers import alexnet_small
from tests.app.conftest import array, chart, encoded, no_exception, open_page, pixels, upload

PAGE = "20_fcn.py"


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


    return np.asarray(value)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_fc_layers_become_convolutions_with_the_same_weights(page):
    shapes = table(page, "as a convolution (out × C × k × k)")
    _, layers = convolutionalize.convolutionalize(alexnet_small(in_size=32))
    assert list(shapes["layer"]) == ["fc6", "fc7", "fc8"]
    assert list(shapes["FC weight (out × in)"]) == [
        " × ".join(map(str, layer.linear_shape)) for layer in layers]
    assert list(shapes["as a convolution (out × C × k × k)"]) == [
        " × ".join(map(str, layer.conv_shape)) for layer in layers]
    # The numerical check on the page: FC and conv agree on the classifier's own size.
    assert float(metric(page, "Largest |FC − conv|")) < 1e-4
    # torchvision's shapes are shown without their weights.
    imagenet = table(page, "network")
    vgg_fc6 = imagenet[(imagenet["network"] == "VGG-16") & (imagenet["layer"] == "fc6")]
    assert vgg_fc6["as a convolution (out × C × k × k)"].item() == "4096 × 512 × 7 × 7"


def test_the_coarse_map_and_its_resolution(page):
    assert metric(page, "Input") == "128×128 px"
    assert metric(page, "Resolution") == "1 score per 16×16 px"
    h = w = int(metric(page, "Output").split("×")[0])
    # What the converted small AlexNet gives on a 128×128 picture, whatever its weights.
    net, _ = convolutionalize.convolutionalize(alexnet_small(in_size=32))
    reference = convolutionalize.coarse_map(net, np.zeros((128, 128, 3), np.uint8))
    assert (h, w) == tuple(reference.probs.shape[1:])
    probs = array(chart(page, "fcn_heat")["data"][1]["z"]).astype(float)
    assert probs.shape == (h, w) and 0 <= probs.min() and probs.max() <= 1
    labels = pixels(chart(page, "fcn_coarse_labels")["data"][0])
    assert labels.shape[:2] == (h, w)
    caption = next(c.value for c in page.caption if "against the scene's true labels" in c.value)
    assert "mIoU" in caption


def test_fcn_32s_16s_8s_score_maps_at_each_stride(page):
    for name, strides in (("fcn32s", [32]), ("fcn16s", [32, 16]), ("fcn8s", [32, 16, 8])):
        for stride in strides:
            shown = pixels(chart(page, f"fcn_{name}_{stride}")["data"][0])
            assert shown.shape[:2] == (256 // stride, 256 // stride)
        for stride in {32, 16, 8} - set(strides):
            with pytest.raises(KeyError):
                chart(page, f"fcn_{name}_{stride}")
        assert pixels(chart(page, f"fcn_{name}_out")["data"][0]).shape[:2] == (256, 256)


def test_miou_table_matches_the_models(page):
    rows = table(page, "held-out mIoU (model card)").set_index("model")
    scene = seg.synthetic.scene(7)
    for name, title in (("fcn32s", "FCN-32s"), ("fcn16s", "FCN-16s"), ("fcn8s", "FCN-8s")):
        segmenter = seg.models.load(name, device="cpu")
        prediction = segmenter.predict(scene.image, extras=True)
        row = rows.loc[title]
        assert row["output"] == pytest.approx(seg.metrics.miou(prediction.labels, scene.labels, 8))
        for key, stride in (("score_pool5", 32), ("score_pool4", 16), ("score_pool3", 8)):
            if key not in prediction.extras:
                assert row[f"stride {stride}"] is None or math.isnan(row[f"stride {stride}"])
                continue
            up = F.interpolate(prediction.extras[key][None], size=(256, 256), mode="bilinear")
            assert row[f"stride {stride}"] == pytest.approx(
                seg.metrics.miou(up[0].argmax(0), scene.labels, 8))
        held_out = segmenter.card.get("evaluation", {}).get("miou")
        assert (row["held-out mIoU (model card)"] == pytest.approx(held_out) if held_out
                else row["held-out mIoU (model card)"] is None
                or math.isnan(row["held-out mIoU (model card)"]))
        assert row["parameters"] == f"{segmenter.num_parameters:,}"
    # FCN-32s' output is its stride-32 scores interpolated: the same mIoU.
    assert rows.loc["FCN-32s"]["stride 32"] == pytest.approx(rows.loc["FCN-32s"]["output"])
    # The ceiling row: perfect scores at each stride; no network beats it by much.
    ceiling = rows.loc["Perfect scores at that stride (the ceiling)"]
    for stride in (32, 16, 8):
        best = seg.metrics.stride_ceiling(scene.labels, stride, 8)
        assert ceiling[f"stride {stride}"] == pytest.approx(
            seg.metrics.miou(best, scene.labels, 8))
    assert ceiling["stride 32"] < ceiling["stride 16"] < ceiling["stride 8"]
    assert rows.loc["FCN-8s"]["output"] < ceiling["stride 8"] + 0.05


def test_an_uploaded_photo_and_a_bad_file(photo):
    at = open_page(PAGE)
    upload(at, "cat.jpg", encoded(photo, "JPEG"), "image/jpeg")
    no_exception(at)
    assert metric(at, "Input") == "128×85 px"  # 150×100 resized to 128 on its long side
    assert any("no true labels" in c.value for c in at.caption)
    assert pixels(chart(at, "fcn_fcn8s_out")["data"][0]).shape[:2] == (100, 150)
    upload(at, "notes.png", b"not a picture")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
