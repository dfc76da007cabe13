"""The home page: SegLab's street world, the sidebar picker and the device badge."""

from app import serving
from tests.app.conftest import encoded, no_exception, open_page, upload


def test_world_page_shows_a_scene_its_labels_and_depth():
    at = open_page()
    no_exception(at)
    assert at.title[0].value == "SegLab's street world"
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(charts) == 4  # image, labels, depth, class shares
    assert any("CPU" in m.value or "GPU" in m.value for m in at.sidebar.markdown)
    if "CPU" in " ".join(m.value for m in at.sidebar.markdown) and serving.THREADS_PER_REQUEST:
        assert f"Torch threads: {serving.THREADS_PER_REQUEST} per student while others compute " \
               f"too, {serving.THREADS_ALONE} for a computation that runs alone." in \
               [c.value for c in at.sidebar.caption]


def test_seed_slider_changes_the_scene():
    at = open_page()
    before = at.get("plotly_chart")[0].proto.spec
    at.slider(key="world_seed").set_value(3).run()
    no_exception(at)
    assert at.get("plotly_chart")[0].proto.spec != before


def test_use_this_scene_sets_the_picker():
    at = open_page()
    at.slider(key="world_seed").set_value(42).run()
    at.button[0].click().run()
    assert at.sidebar.number_input(key="image_seed").value == 42


def test_bad_upload_shows_a_sentence_and_the_page_keeps_working(photo):
    at = open_page()
    upload(at, "notes.png", b"this is a text file, not a picture")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.sidebar.error)
    upload(at, "cat.png", encoded(photo))
    no_exception(at)
    assert not at.error
