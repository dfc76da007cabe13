"""The ResNet lesson: gradient norms at initialisation and the plain vs residual race."""

from tests.seg.test_pretrained import stand_in  # noqa: E402
import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

from seg import live
from seg.models import pretrained
from tests.app.conftest import ROOT, encoded, no_exception, upload

#: The page trains four small networks on first run; a loaded 2-core CPU needs minutes.
TIMEOUT = 900


def open_resnet() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("lessons/11_resnet.py")
    return at.run()


@pytest.fixture(scope="module")
def page() -> AppTest:
    return open_resnet()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_the_formula_and_the_gradient_norms_match_a_direct_computation(page):
    no_exception(page)
    assert any("F(x) + x" in latex.value for latex in page.latex)
    plain = live.gradient_norms(32, residual=False, seed=0)
    residual = live.gradient_norms(32, residual=True, seed=0)
    assert metric(page, "Layer 1, plain") == f"{plain[0]:.3g}"
    assert metric(page, "Layer 1, residual") == f"{residual[0]:.3g}"
    assert metric(page, "Largest ÷ smallest, plain") == f"{plain.max() / plain.min():.0f}×"
    spread = residual.max() / residual.min()
    assert metric(page, "Largest ÷ smallest, residual") == f"{spread:.0f}×"
    # The measured fact the page teaches: with batch norm the plain net's gradients do not
    # vanish; they are uneven.
    assert plain[0] > residual[0]
    assert plain.max() / plain.min() > residual.max() / residual.min()
    chart = next(c for c in page.get("plotly_chart")
                 if "Gradient norm of each layer" in c.proto.spec)
    assert '"plain"' in chart.proto.spec and '"residual"' in chart.proto.spec


def test_depth_slider_changes_the_number_of_layers(page):
    page.slider(key="resnet_grad_depth").set_value(50).run()
    no_exception(page)
    plain = live.gradient_norms(50, residual=False, seed=0)
    assert metric(page, "Largest ÷ smallest, plain") == f"{plain.max() / plain.min():.0f}×"
    page.slider(key="resnet_grad_depth").set_value(32).run()


def test_deeper_plain_trains_worse_and_deeper_residual_does_not(page):
    values = {label: float(metric(page, f"{label}: training loss"))
              for label in ("Plain-8", "Plain-20", "Residual-8", "Residual-20")}
    assert values["Plain-20"] > values["Plain-8"] + 0.1  # degradation, visibly
    assert values["Residual-20"] <= values["Residual-8"]
    assert any("That is the degradation problem" in m.value for m in page.markdown)
    # The numbers shown are those of the experiment itself, rerun here from the same seed.
    race = live.depth_race((8, 20), seed=0)
    for (kind, depth), loss in race.train_loss.items():
        assert values[f"{kind.capitalize()}-{depth}"] == pytest.approx(loss, abs=5e-4)


def test_missing_resnet_weights_are_explained(page):
    if pretrained.is_cached("resnet18"):
        pytest.skip("ResNet-18's weights are cached here")
    assert any("not on this computer" in i.value and "python -m seg weights download resnet18"
               in i.value for i in page.info)


def test_with_weights_the_feature_maps_of_the_photo_are_shown(tmp_path, monkeypatch, photo):
    # Random weights stand in for the ImageNet file: the page only needs a loadable file.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    stand_in("resnet18", torchvision.models.resnet18().state_dict(), monkeypatch)
    at = open_resnet()
    upload(at, "cat.png", encoded(photo))
    no_exception(at)
    captions = [c.value for c in at.caption]
    # 150×100 photo → short side 224 → 336×224; ResNet-18 divides by 4, 8, 16, 32.
    for expected in ("layer1: 64 channels of 56×84", "layer4: 512 channels of 7×11"):
        assert expected in captions
    assert len(at.get("image")) == 4


def test_bad_upload_keeps_the_page_working():
    at = open_resnet()
    upload(at, "notes.png", b"not a picture")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
