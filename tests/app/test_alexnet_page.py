"""The AlexNet lesson: activations, the ReLU/tanh race, regularisation and the 227×227 table."""

from tests.seg.test_pretrained import stand_in  # noqa: E402
import json

import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

from seg.models import pretrained
from tests.app.conftest import ROOT, encoded, no_exception, upload

#: The page trains six small networks on first run; a loaded 2-core CPU needs minutes.
TIMEOUT = 900


def open_alexnet() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("lessons/10_alexnet.py")
    return at.run()


@pytest.fixture(scope="module")
def page() -> AppTest:
    return open_alexnet()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_activations_are_plotted_with_their_saturating_regions(page):
    no_exception(page)
    # 3 activations, 2 race curves, the error gap, the weights (+ filters and top-5 with weights)
    assert len(page.get("plotly_chart")) >= 7
    tanh = json.loads(next(c.proto.spec for c in page.get("plotly_chart")
                           if "tanh: slope" in c.proto.spec))
    shapes = tanh["layout"]["shapes"]
    assert len(shapes) == 2  # both tails of tanh
    assert shapes[1]["x0"] == pytest.approx(1.82, abs=0.02)


def test_relu_reaches_the_target_error_in_fewer_steps_than_tanh(page):
    relu = metric(page, "Steps to 50% error, ReLU")
    tanh = metric(page, "Steps to 50% error, tanh")
    relu_steps = int(relu)
    tanh_steps = int(tanh.lstrip("> "))
    assert relu_steps < tanh_steps
    assert metric(page, "AlexNet's") == "≈ 6×"
    speedup = metric(page, "ReLU's speed-up measured here")
    assert float(speedup.lstrip("≥ ").rstrip("×")) == pytest.approx(tanh_steps / relu_steps,
                                                                      abs=0.05)
    # The slider moves the target without retraining; a looser target is reached sooner.
    page.slider(key="alexnet_race_target").set_value(0.6).run()
    no_exception(page)
    assert int(metric(page, "Steps to 60% error, ReLU")) < relu_steps


def test_regularisation_table_shows_the_gap_and_sparse_l1_weights(page):
    table = page.dataframe[0].value
    assert list(table["regularisation"]) == ["none", "dropout 0.5", "L1 0.001", "L2 0.03"]
    gaps = table.set_index("regularisation")["gap"]
    near_zero = table.set_index("regularisation")["weights |w| < 0.001"]
    rms = table.set_index("regularisation")["RMS of weights"]
    assert (table["gap"] == table["validation error"] - table["training error"]).all()
    assert near_zero["L1 0.001"] > 3 * near_zero["none"]  # L1: sparse
    assert rms["L2 0.03"] < 0.7 * rms["none"]  # L2: small
    assert gaps["none"] > 0.2  # 256 patches are learnt by heart


def test_the_227_table_gives_55x55x96_for_the_paper_and_64_filters_for_torchvision(page):
    assert metric(page, "conv1 output for 227×227") == "55×55×96"
    tables = [d.value for d in page.dataframe[1:3]]
    paper, tv = tables
    assert paper["output"][0] == "55×55×96"
    assert tv["output"][0] == "56×56×64"  # torchvision pads conv1 by 2
    assert paper["parameters"].iloc[-1] == 60_965_224
    parameters = sum(p.numel() for p in torchvision.models.alexnet().parameters())
    assert tv["parameters"].iloc[-1] == parameters
    page.radio(key="alexnet_input_size").set_value(224).run()
    no_exception(page)
    tv = page.dataframe[2].value
    assert tv["output"][0] == "55×55×64"
    assert any("fc6 (9216 → 4096) cannot run: it expects 9216 inputs and gets 6400" in e.value
               for e in page.warning)


def test_missing_imagenet_weights_are_explained(page):
    if pretrained.is_cached("alexnet"):
        pytest.skip("AlexNet's weights are cached here")
    assert any("not on this computer" in i.value and "python -m seg weights download alexnet"
               in i.value for i in page.info)


def test_with_weights_the_filters_and_a_top5_are_shown(tmp_path, monkeypatch, photo):
    # Random weights stand in for the ImageNet file: the page only needs a loadable file.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    stand_in("alexnet", torchvision.models.alexnet().state_dict(), monkeypatch)
    at = open_alexnet()
    upload(at, "cat.jpg", encoded(photo, "JPEG"), "image/jpeg")
    no_exception(at)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("conv1's 64 filters" in s for s in specs)
    assert any("Top-5 for cat.jpg" in s for s in specs)


def test_bad_upload_keeps_the_page_working(photo):
    at = open_alexnet()
    upload(at, "notes.png", b"not a picture")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
    upload(at, "cat.png", encoded(photo))
    no_exception(at)
    assert metric(at, "conv1 output for 227×227") == "55×55×96"
