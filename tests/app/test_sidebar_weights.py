"""The sidebar's weights panel: a Download button only where the server allows it
(SEGLAB_ALLOW_DOWNLOADS), the command line otherwise; a download disturbs nobody else.

The torch hub cache is a temporary folder (TORCH_HOME) and the "published" file a stand-in in a
file:// folder (see tests/seg/test_pretrained.py), so the real download runs without the
network."""

from __future__ import annotations

import shutil

import pytest
import torch.hub

from app import resources
from seg.models import pretrained
from tests.app.conftest import no_exception, open_page
from tests.seg.test_pretrained import fresh, stand_in


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No torchvision weights on this machine; the cached set is read again before and after."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    resources.cached_torchvision.clear()
    yield tmp_path
    resources.cached_torchvision.clear()
    shutil.rmtree(tmp_path, ignore_errors=True)


def codes(at) -> str:
    return "\n".join(block.value for block in at.sidebar.code)


@pytest.mark.parametrize("value", ["0", "false", "off", "no", "nonsense"])
def test_a_class_server_shows_the_command_line_not_a_button(empty_hub, monkeypatch, value):
    monkeypatch.setenv("SEGLAB_ALLOW_DOWNLOADS", value)
    at = open_page()
    no_exception(at)
    assert not [b for b in at.sidebar.button if b.key == "weights_download"]
    commands = codes(at)
    assert "python -m seg weights download vgg16" in commands and "# 528 MB" in commands
    assert "# all 8, 1,254 MB" in commands
    assert any("SEGLAB_ALLOW_DOWNLOADS" in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize("value", [None, "", "1", "true", "on"])
def test_a_student_alone_gets_the_download_button(empty_hub, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("SEGLAB_ALLOW_DOWNLOADS", raising=False)
    else:
        monkeypatch.setenv("SEGLAB_ALLOW_DOWNLOADS", value)
    at = open_page()
    no_exception(at)
    assert at.sidebar.button(key="weights_download")
    assert "vgg16 (528 MB)" in at.sidebar.selectbox(key="weights_choice").options
    assert not codes(at)


def test_a_download_leaves_other_students_pages_and_choices_alone(empty_hub, tmp_path,
                                                                 monkeypatch):
    monkeypatch.delenv("SEGLAB_ALLOW_DOWNLOADS", raising=False)
    name = "lraspp_mobilenet_v3_large"
    stand_in(name, fresh(name).state_dict(), monkeypatch, tmp_path / "mirror",
             base=(tmp_path / "mirror").as_uri() + "/")
    other = open_page("01_what_is_segmentation.py")
    other.selectbox(key="segmentation_model").set_value("segnet").run()
    title = resources.title(name)
    assert title not in other.selectbox(key="segmentation_model").options

    student = open_page()
    student.sidebar.selectbox(key="weights_choice").set_value(name).run()
    student.sidebar.button(key="weights_download").click().run()
    no_exception(student)
    assert pretrained.is_cached(name)
    assert not [o for o in student.sidebar.selectbox(key="weights_choice").options
                if o.startswith(name)]

    other.run()  # the other student's next rerun (a slider, a click)
    no_exception(other)
    picker = other.selectbox(key="segmentation_model")  # still on its page
    assert picker.value == "segnet" and title in picker.options  # a new option, same choice
    assert other.query_params["segmentation_model"] == "segnet"
