"""The dilated-convolution page: receptive fields, gridding and a network changed live."""

from tests.seg.test_pretrained import stand_in  # noqa: E402
import base64
import copy
import json

import numpy as np
import pytest
import streamlit as st
import torch
from torchvision.models import resnet50, segmentation

import seg
from app import resources
from seg.models import pretrained
from tests.app.conftest import (array, chart, encoded, no_exception, open_page, pictures,
                                upload)

PAGE = "22_dilated.py"


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


    return np.asarray(value, dtype=object)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def layout(at):
    return next(t.value for t in at.table if "dilation" in t.value.columns)


def fields(at) -> list[str]:
    table = next(d.value for d in at.dataframe if "receptive field" in d.value.columns)
    return list(table["receptive field"])


def test_rates_1_2_4_give_fields_3_7_15(page):
    assert fields(page) == ["3×3", "7×7", "15×15"]
    assert any("15×15" in m.value for m in page.markdown)
    caption = next(c.value for c in page.caption if "pixels of its field are read" in c.value)
    assert caption.startswith("225 of the 225")  # 1, 2, 4: no holes


@pytest.mark.parametrize("text, expected", [("1, 1, 1", ["3×3", "5×5", "7×7"]),
                                            ("2", ["5×5"]), ("1,2,4,8", ["3×3", "7×7", "15×15",
                                                                          "31×31"])])
def test_typed_rates_give_the_recurrence(page, text, expected):
    page.text_input(key="dilated_rates").set_value(text).run()
    no_exception(page)
    assert fields(page) == expected


def test_bad_rates_are_refused_with_a_sentence(page):
    page.text_input(key="dilated_rates").set_value("one, two").run()
    no_exception(page)
    assert any("not a list of whole numbers" in e.value for e in page.error)
    page.text_input(key="dilated_rates").set_value("1, 99").run()
    assert any("from 1 to 16" in e.value for e in page.error)
    page.text_input(key="dilated_rates").set_value("1, 2, 4").run()
    assert not page.error


@pytest.mark.parametrize("r", [1, 3])
def test_kernel_at_rate_r_spreads_nine_weights_over_2r_plus_1_squared(page, r):
    page.slider(key="dilated_rate_kernel").set_value(r).run()
    side = 2 * r + 1
    assert metric(page, "Pixels covered") == f"{side}×{side} = {side * side}"
    assert metric(page, "Pixels skipped inside the square") == str(side * side - 9)
    text = np.array(chart(page, "dilated_kernel")["data"][0]["text"], dtype=object)
    rows, cols = np.nonzero(text != "")
    assert len(rows) == 9 and set(rows) == set(cols) == {0, r, 2 * r}


def test_two_layers_at_rate_r_read_25_pixels_of_their_field(page):
    page.slider(key="dilated_rate_grid").set_value(3).run()
    assert metric(page, "Pixels read inside the field") == "25 of 169"
    z = array(chart(page, "dilated_grid_pattern")["data"][0]["z"])
    read = np.argwhere(np.array([[v is not None and v == v for v in row] for row in z]))
    centre = len(z) // 2
    assert len(read) == 25 and ((read - centre) % 3 == 0).all()


def test_changing_the_dilation_changes_the_prediction_and_not_the_shared_model(page):
    assert metric(page, "Pixels that changed class") == "0.0%"
    before = dict(pictures(page))
    assert "Now: rate 12, stride 8" in before
    page.slider(key="dilated_live_rate").set_value(1).run()
    no_exception(page)
    after = dict(pictures(page))
    assert after["Now: rate 1, stride 8"] != before["Now: rate 12, stride 8"]
    assert after["As trained: rate 12, stride 8"] == before["As trained: rate 12, stride 8"]
    # The page's number is what seg computes with fc6 at rate 1.
    device = resources.device()
    shared = resources.segmenter("deeplab_v1_largefov", device)
    mine = copy.deepcopy(shared)
    mine.module.set_fc6_dilation(1)
    image = seg.synthetic.scene(7).image
    changed = (mine.predict(image).labels != shared.predict(image).labels).float().mean()
    assert changed > 0
    assert metric(page, "Pixels that changed class") == f"{float(changed):.1%}"
    # The copy was changed, never the model every student shares.
    assert shared.module.fc.fc6.dilation == (12, 12) and shared.module.output_stride == 8
    assert layout(page).set_index("layer").loc["fc6"]["dilation"] == "1"


def test_output_stride_sets_the_score_map(page):
    page.select_slider(key="dilated_live_stride").set_value(16).run()
    no_exception(page)
    assert metric(page, "Score map") == "16×16"
    rows = layout(page).set_index("layer")
    assert (rows.loc["pool4"]["stride"], rows.loc["pool5"]["stride"]) == (2, 1)
    assert rows.loc["conv5 (3 layers)"]["dilation"] == "1, 1, 1"
    page.select_slider(key="dilated_live_stride").set_value(8).run()
    assert metric(page, "Score map") == "32×32"


def test_gradient_at_the_chosen_pixel(page):
    page.number_input(key="dilated_probe_x").set_value(40)
    page.number_input(key="dilated_probe_y").set_value(200).run()
    no_exception(page)
    caption, _ = next(p for p in pictures(page) if p[0].startswith("|∂ "))
    assert "score at (40, 200) / ∂ image|" in caption
    assert int(metric(page, "Theoretical field").split()[0]) > 100
    assert metric(page, "Half of the gradient within").endswith("px")


def test_a_photo_upload_and_a_bad_file(photo):
    at = open_page(PAGE)
    upload(at, "cat.jpg", encoded(photo, "JPEG"), "image/jpeg")
    no_exception(at)
    assert metric(at, "mIoU") == "—"
    assert metric(at, "Score map") == "19×13"  # 150×100 at output stride 8
    upload(at, "broken.png", b"\x89PNG\r\n\x1a\n broken")
    no_exception(at)
    assert any("broken.png" in e.value for e in at.error)


@pytest.fixture
def deeplabv3_cached(tmp_path, monkeypatch):
    """torchvision's DeepLabV3 ResNet-50 "cached" with random weights in a private torch hub.

    The random weights exercise the page's torchvision branch (rates and strides are attributes
    of the layers, whatever their values); the file never enters the real cache. Caches filled
    with it are cleared afterwards.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    module = segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                             num_classes=21, aux_loss=True)
    stand_in("deeplabv3_resnet50", module.state_dict(), monkeypatch)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def assert_resnet_layout(at, replace_stride_with_dilation):
    """The page's table of layer3/layer4 matches torchvision's own ResNet built that way."""
    reference = resnet50(weights=None, replace_stride_with_dilation=replace_stride_with_dilation)
    rows = layout(at).set_index("layer")
    for stage, blocks in (("layer3", reference.layer3), ("layer4", reference.layer4)):
        row = rows.loc[f"{stage} ({len(blocks)} blocks)"]
        assert row["stride"] == blocks[0].conv2.stride[0], stage
        assert row["dilation"] == ", ".join(str(b.conv2.dilation[0]) for b in blocks), stage


def test_torchvision_deeplabv3_rates_and_strides_when_its_weights_are_cached(deeplabv3_cached,
                                                                              photo):
    at = open_page(PAGE)
    upload(at, "small.png", encoded(photo[:64, :64]), "image/png")
    no_exception(at)
    assert any("DeepLabV3 ResNet-50" in i.value for i in at.info)
    assert metric(at, "ASPP rates") == "12, 24, 36"
    assert_resnet_layout(at, [False, True, True])  # torchvision's DeepLabV3: output stride 8
    at.slider(key="dilated_live_rate").set_value(3)
    at.select_slider(key="dilated_live_stride").set_value(16).run()
    no_exception(at)
    assert metric(at, "ASPP rates") == "3, 6, 9"
    assert metric(at, "Score map") == "4×4"
    assert_resnet_layout(at, [False, False, True])
    assert layout(at).set_index("layer").loc["ASPP (3 branches)"]["dilation"] == "3, 6, 9"
    at.select_slider(key="dilated_live_stride").set_value(32).run()
    no_exception(at)
    assert_resnet_layout(at, [False, False, False])
    # Only the page's copies changed: the model every student shares is as torchvision made it.
    shared = resources.segmenter("deeplabv3_resnet50", resources.device())
    assert shared.module.classifier[0].convs[1][0].dilation == (12, 12)
    assert shared.module.backbone.layer3[0].conv2.stride == (1, 1)
