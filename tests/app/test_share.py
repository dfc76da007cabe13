"""Shareable settings: a link opens a lesson in the state its controls had, and a hand-edited
link is clamped or ignored with a notice, never an exception, and its text is quoted as plain
text, never drawn as markdown. Presenter mode comes by link too."""

from __future__ import annotations

import re

import pytest
from google.protobuf.json_format import MessageToDict
from streamlit.testing.v1 import AppTest

from app import share
from tests.app.conftest import ROOT, TIMEOUT, no_exception


def open_link(file: str, **params: str) -> AppTest:
    """Open lessons/`file` as the page of a link carrying `params` (router included)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if file != "00_world.py":
        at.switch_page(f"lessons/{file}")
        at.run()
    return at


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption] + [c.value for c in at.sidebar.caption]


def test_a_link_sets_the_controls_it_names():
    at = open_link("00_world.py", world_seed="42", image_source="Sample photo",
                   image_photo="coffee.jpg")
    no_exception(at)
    assert at.slider(key="world_seed").value == 42
    assert at.sidebar.radio(key="image_source").value == "Sample photo"
    assert at.sidebar.selectbox(key="image_photo").value == "coffee.jpg"
    assert not any("🔗" in c for c in captions(at))


def test_moving_a_control_writes_it_into_the_link():
    at = open_link("00_world.py")
    at.slider(key="world_seed").set_value(123).run()
    no_exception(at)
    assert at.query_params["world_seed"] == "123"


@pytest.mark.parametrize("value, expected, words", [
    ("5000", 999, "out of range: using 999"),
    ("-3", 0, "out of range: using 0"),
    ("seven", 7, "not a number: ignored"),
    ("nan", 7, "not a number: ignored"),
])
def test_a_hand_edited_number_is_clamped_or_ignored_with_a_notice(value, expected, words):
    at = open_link("00_world.py", world_seed=value)
    no_exception(at)
    assert at.slider(key="world_seed").value == expected
    assert any(words in c for c in captions(at)), captions(at)


def test_an_option_that_does_not_exist_is_ignored_with_a_notice():
    at = open_link("00_world.py", image_source="Telescope", present="maybe")
    no_exception(at)
    assert at.sidebar.radio(key="image_source").value == "Synthetic scene"
    assert at.sidebar.toggle(key="present").value is False
    notices = " ".join(captions(at))
    assert "not a choice" in notices and "not on/off" in notices


def test_a_model_can_be_chosen_by_its_name_or_its_title():
    by_name = open_link("01_what_is_segmentation.py", segmentation_model="segnet")
    no_exception(by_name)
    assert by_name.selectbox(key="segmentation_model").value == "segnet"


def test_presenter_mode_by_link_folds_the_paragraphs_and_enlarges_the_text():
    at = open_link("00_world.py", present="true")
    no_exception(at)
    assert at.sidebar.toggle(key="present").value is True
    styles = [element.proto.body for element in at.get("html")]
    assert any("font-size" in body and "display: none" in body for body in styles), styles
    plain = open_link("00_world.py")
    assert not [e for e in plain.get("html") if "display: none" in e.proto.body]


def test_repeated_choices_in_a_link_are_kept_once_in_their_order():
    at = open_link("02_compare_models.py", compare_models="fcn8s,fcn8s")
    no_exception(at)
    assert at.multiselect(key="compare_models").value == ["fcn8s"]
    assert at.query_params["compare_models"] == "fcn8s"
    assert any("at least two" in info.value for info in at.info)
    assert not any("🔗" in c for c in captions(at))  # nothing was wrong with the link


def test_a_link_naming_more_choices_than_allowed_keeps_the_first_ones():
    at = open_link("02_compare_models.py",
                   compare_models="segnet,fcn8s,segnet,fcn32s,renet,fcn16s,fcn8s")
    assert at.multiselect(key="compare_models").value == ["segnet", "fcn8s", "fcn32s", "renet"]
    assert any("names more than 4" in c and "using the first 4" in c for c in captions(at))


HOSTILE = {"present": "[click](https://example.com)",
           "image_source": "![x](https://example.com/a.png)",
           "world_seed": "<img src=https://example.com/b.png> *7*"}
# A markdown link or picture that Streamlit would draw: "](" or "![" not escaped with "\",
# an address it would link by itself, or HTML.
LIVE = re.compile(r"(?<!\\)\]\(|(?<!\\)!\[|https?://example|www\.example|(?<!\\)<img")


def texts(value) -> list[str]:
    """Every string in an element's message (as a dict, from MessageToDict), nested included."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [s for item in items for s in texts(item)]


def elements(node):
    """Every element under an AppTest node (blocks opened)."""
    children = getattr(node, "children", None)
    if children is None:
        return [node]
    return [e for child in children.values() for e in elements(child)]


def test_a_hostile_link_is_quoted_as_plain_text_never_drawn():
    at = open_link("00_world.py", **HOSTILE)
    no_exception(at)
    notices = {c for c in captions(at) if c.startswith("🔗")}
    assert len(notices) == 3, notices
    assert any(r"“\[click\]\(https\:\/\/example\.com\)”" in n for n in notices), notices
    strings = [s for e in elements(at._tree) if hasattr(e, "proto")
               for s in texts(MessageToDict(e.proto)) if "example" in s]
    assert strings and not [s for s in strings if LIVE.search(s)], strings


def test_plain_text_shows_as_typed_and_stays_on_one_line():
    assert share.plain("cat_1.jpg") == r"cat\_1\.jpg"
    assert share.plain("a\n\n# b") == r"a \# b"
    assert share.plain(r"\*") == r"\\\*"
