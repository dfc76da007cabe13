"""The upsampling page: what it shows is checked against PyTorch's own layers."""

import base64
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seg
from seg import upsampling
from tests.app.conftest import encoded, no_exception, open_page, upload

PAGE = "21_upsampling.py"


@pytest.fixture(autouse=True)
def one_thread():
    # The page's networks run in this process: one thread avoids oversubscribing a shared CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


def chart(at, key: str) -> dict:
    """The plotly figure (as a dict) the page drew under `key`."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    raise KeyError(f"no chart with key {key!r}")


def array(value) -> np.ndarray:
    """A plotly data array: a list, or the typed-array dict {dtype, bdata, shape} of plotly 6+."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).copy()
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return data.reshape(shape) if shape else data
    return np.asarray(value, dtype=np.float64)


def z(at, key: str) -> np.ndarray:
    return array(chart(at, key)["data"][0]["z"])


def table(at, column: str):
    """The first dataframe on the page with a column called `column` (pandas)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_worked_example_writes_each_step_in_the_cells(page):
    example = upsampling.numeric_example()
    for key, name in [("upsampling_ex_input", "input"), ("upsampling_ex_pooled", "pooled"),
                      ("upsampling_ex_unpooled", "unpooled"),
                      ("upsampling_ex_transposed", "transposed"),
                      ("upsampling_ex_overlaps", "overlaps"), ("upsampling_ex_bilinear",
                                                               "bilinear")]:
        np.testing.assert_allclose(z(page, key), example[name])
    cells = chart(page, "upsampling_ex_unpooled")["data"][0]["text"]
    assert cells == [["0", "0", "0", "0"], ["4", "0", "0", "5"], ["0", "0", "0", "0"],
                     ["6", "0", "7", "0"]]
    assert chart(page, "upsampling_ex_indices")["data"][0]["text"][0] == ["4 = (1, 0)",
                                                                           "7 = (1, 3)"]
    titles = [chart(page, k)["layout"]["title"]["text"] for k in
              ("upsampling_ex_input", "upsampling_ex_pooled", "upsampling_ex_unpooled")]
    assert titles[0].startswith("Input 4×4") and "output 2×2" in titles[1]
    assert "4×4" in titles[2]


def test_unpooling_puts_each_maximum_back_and_zeros_elsewhere_as_max_unpool2d(page):
    feature = torch.from_numpy(z(page, "upsampling_feature")).float()[None, None]  # (1,1,H,W)
    pooled, indices = F.max_pool2d(feature, 2, return_indices=True)
    expected = torch.nn.MaxUnpool2d(2)(pooled, indices, output_size=feature.shape[-2:])[0, 0]
    shown = torch.from_numpy(z(page, "upsampling_unpooled")).float()
    torch.testing.assert_close(shown, expected)
    torch.testing.assert_close(torch.from_numpy(z(page, "upsampling_pooled")).float(),
                               pooled[0, 0])
    # The sparse map: at most one non-zero per 2×2 window, equal to that window's maximum.
    windows = shown.reshape(shown.shape[0] // 2, 2, shown.shape[1] // 2, 2)
    assert ((windows != 0).sum(dim=(1, 3)) <= 1).all()
    assert metric(page, "Difference from torch.nn.MaxUnpool2d") == "0"
    h, w = feature.shape[-2:]
    assert metric(page, "Positions written by unpooling") == f"{h * w // 4:,} of {h * w:,}"
    # SegNet's stage-3 map of the 256×256 default scene, before its pool.
    assert (h, w) == (64, 64)


def test_the_feature_map_is_the_real_encoders(page):
    segmenter = seg.models.load("segnet", device="cpu")
    maps = upsampling.encoder_features(segmenter, seg.synthetic.scene(7).image, 3).numpy()
    channel = page.number_input(key="upsampling_channel_segnet_3").value
    assert channel == int(maps.reshape(len(maps), -1).std(1).argmax())
    np.testing.assert_allclose(z(page, "upsampling_feature"), maps[channel], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("k, s, checkerboard", [(3, 2, "yes"), (4, 2, "no"), (5, 3, "yes"),
                                                 (6, 3, "no")])
def test_overlap_counts_are_the_transposed_convolution_of_ones(page, k, s, checkerboard):
    page.slider(key="upsampling_kernel").set_value(k)
    page.slider(key="upsampling_stride").set_value(s).run()
    no_exception(page)
    counts = z(page, "upsampling_counts")
    ones = F.conv_transpose2d(torch.ones(1, 1, 6, 6), torch.ones(1, 1, k, k), stride=s)[0, 0]
    np.testing.assert_array_equal(counts, ones.numpy())
    assert metric(page, "Checkerboard") == checkerboard
    low, high = (k // s) ** 2, math.ceil(k / s) ** 2
    assert metric(page, "Stamps per interior pixel") == f"{low} to {high}"
    # The three upsamplings of the pooled real map have the factor's size.
    pooled = z(page, "upsampling_pooled")
    for key in ("upsampling_out_transposed", "upsampling_out_bilinear", "upsampling_out_resize"):
        assert z(page, key).shape == (pooled.shape[0] * s, pooled.shape[1] * s)


def test_segnet_vs_fcn8s_numbers(page):
    rows = table(page, "mIoU on this scene")
    scene = seg.synthetic.scene(7)
    for _, row in rows.iterrows():
        name = "segnet" if row["model"].startswith("SegNet") else "fcn8s"
        segmenter = seg.models.load(name, device="cpu")
        assert row["parameters"] == f"{segmenter.num_parameters:,}"
        labels = segmenter.predict(scene.image).labels
        assert row["mIoU on this scene"] == pytest.approx(
            seg.metrics.miou(labels, scene.labels, 8), abs=1e-9)
    memory = seg.models.load("segnet", device="cpu").module.decoder_memory((256, 256))
    bars = chart(page, "upsampling_memory")["data"][0]
    shown = dict(zip(bars["y"], array(bars["x"])))
    assert shown["SegNet: max-pooling indices, as PyTorch stores them (int64)"] == \
        pytest.approx(memory["indices_bytes"] / 1024)
    assert shown["SegNet: the same indices at 2 bits per window (the paper)"] == \
        pytest.approx(memory["indices_2bit_bytes"] / 1024)
    fcn = seg.models.load("fcn8s", device="cpu").module
    assert shown["FCN-8s: pool3 and pool4 feature maps (float32)"] == pytest.approx(
        sum(r["bytes"] for r in upsampling.fcn_skip_memory(fcn, (256, 256))) / 1024)


def test_an_uploaded_photo_of_any_size_works(photo):
    at = open_page(PAGE)
    upload(at, "cat.jpg", encoded(photo, "JPEG"), "image/jpeg")
    no_exception(at)
    # 150×100 is padded to 160×128 for the encoder: stage 3 is 40×32.
    assert z(at, "upsampling_feature").shape == (32, 40)
    assert metric(at, "Difference from torch.nn.MaxUnpool2d") == "0"
    assert any("no true labels" in c.value for c in at.caption)
    upload(at, "cat.png", encoded(photo[:60, :70]), "image/png")
    no_exception(at)
    assert z(at, "upsampling_feature").shape == (16, 24)


def test_a_bad_upload_keeps_the_page_working():
    at = open_page(PAGE)
    upload(at, "notes.png", b"not a picture at all")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
    assert metric(at, "Difference from torch.nn.MaxUnpool2d") == "0"
