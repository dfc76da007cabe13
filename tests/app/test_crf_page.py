"""Page "Conditional random fields": the chain's Z, Viterbi and learning; the dense CRF's iterations."""

import base64
import json
import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import seg
from app import resources
from app.image_input import DEFAULT_SEED
from seg.crf import dense_crf, experiments
from tests.app.conftest import ROOT, encoded, no_exception, pictures, upload

PAGE = "30_crf.py"
MODEL = "deeplab_v1_largefov"
#: The first run segments the picture and runs the CRF; slow on a busy 2-core machine.
TIMEOUT = 600


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The lattice is much slower with two threads on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def open_crf_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(f"lessons/{PAGE}")
    at.run()
    no_exception(at)
    return at


@pytest.fixture(scope="module")
def page():
    return open_crf_page()


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def metric_starting(at, start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(start))


def chart(at, key: str) -> dict:
    """The plotly figure drawn with `key`."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key):
            return json.loads(element.proto.spec)
    raise LookupError(key)


def values(trace: dict, axis: str = "y") -> np.ndarray:
    """A trace's data: a list, or plotly's typed array {dtype, bdata}."""
    data = trace[axis]
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.asarray(data, dtype=float)


def shown_prediction():
    """The prediction the page drew: the same cached entry (an untrained model is random)."""
    device = str(seg.devices.default_device())
    scene = seg.synthetic.scene(DEFAULT_SEED)
    return resources.predict(MODEL, device, f"scene-{DEFAULT_SEED}-256x256", scene.image), scene


def shown_row(at, prediction, scene):
    """The row the page built, rebuilt from its controls."""
    return experiments.noisy_row(
        scene.image, prediction.probs, at.slider(key="crf_row").value, truth=scene.labels,
        classes=prediction.classes, noise=at.slider(key="crf_noise").value,
        seed=at.slider(key="crf_row").value, scores_from=at.radio(key="crf_scores_from").value)


def test_brute_force_z_equals_the_forward_z_shown_and_a_direct_computation(page):
    assert page.title[0].value == "Conditional random fields"
    assert any("DeepLab v1 LargeFOV" in c.value for c in [*page.caption, *page.warning])
    forward = metric_starting(page, "log Z, forward algorithm (")
    brute = metric_starting(page, "log Z, brute force (")
    assert forward == brute
    prediction, scene = shown_prediction()
    row = shown_row(page, prediction, scene)
    stay = page.slider(key="crf_stay").value
    start, length = page.slider(key="crf_segment_start").value, page.slider(
        key="crf_segment_length").value
    summary = experiments.decode_row(experiments.chain_crf(stay * torch.eye(row.num_labels)), row,
                                     segment=(start, length))
    assert brute == f"{summary.segment_log_z_brute_force:.10f}"
    assert metric(page, "log Z(x) of the whole row") == f"{summary.log_z:.4f}"
    assert metric_starting(page, "Viterbi agrees") == f"{summary.viterbi_accuracy:.1%}"
    assert metric_starting(page, "Argmax agrees") == f"{summary.argmax_accuracy:.1%}"
    # The longest segment enumerates 4^8 labellings and still agrees.
    page.slider(key="crf_segment_length").set_value(8).run()
    no_exception(page)
    assert metric_starting(page, "log Z, brute force (") == metric_starting(
        page, "log Z, forward algorithm (")
    assert any(m.label == f"log Z, brute force ({row.num_labels ** 8:,} labellings)"
               for m in page.metric)


def test_transition_weight_changes_z_and_the_viterbi_strip(page):
    z_before = metric(page, "log Z(x) of the whole row")
    strips_before = chart(page, "crf_strips")
    page.slider(key="crf_stay").set_value(0.0).run()
    no_exception(page)
    assert metric(page, "log Z(x) of the whole row") != z_before
    assert chart(page, "crf_strips") != strips_before
    # With no transition weights the chain decides every pixel alone, like the argmax.
    assert metric_starting(page, "Viterbi agrees") == metric_starting(page, "Argmax agrees")
    page.slider(key="crf_stay").set_value(2.0).run()


def test_ten_gradient_steps_make_the_log_likelihood_climb(page):
    before = float(metric(page, "log p(y | x) now"))
    page.button(key="crf_ten_steps").click().run()
    no_exception(page)
    assert page.slider(key="crf_steps").value == 10
    curve = values(chart(page, "crf_ll_curve")["data"][0])
    assert len(curve) == 11 and np.all(np.diff(curve) >= 0) and curve[0] == pytest.approx(before,
                                                                                           abs=0.01)
    assert float(metric(page, "log p(y | x) now")) > before
    assert metric(page, "log p(y | x) now") == f"{curve[-1]:.2f}"


def test_iteration_scrubber_and_parameters_rerender_with_matching_numbers(page):
    changed_at_10 = metric(page, "Pixels changed")
    pictures_at_10 = pictures(page)
    captions = [caption for caption, _ in pictures_at_10]
    assert captions[0] == "Labels after 10 iterations"
    assert captions[1].endswith("pixels changed since iteration 0")
    assert captions[2] == "Confidence max Q(l) at iteration 10"
    page.slider(key="crf_iteration").set_value(0).run()
    no_exception(page)
    assert metric(page, "Pixels changed") == "0.00%"
    assert pictures(page)[0][0] == "The network's labels"
    assert pictures(page)[1][0] == "0 pixels changed since iteration 0"
    assert [url for _, url in pictures(page)] != [url for _, url in pictures_at_10]
    page.slider(key="crf_iteration").set_value(10).run()
    assert metric(page, "Pixels changed") == changed_at_10

    # The mIoU shown before and after equals a direct computation with dense_crf.
    prediction, scene = shown_prediction()
    params = {p: page.slider(key=f"crf_{p}").value for p in
              ("w1", "theta_alpha", "theta_beta", "w2", "theta_gamma")}
    refined = dense_crf(scene.image, prediction.probs, iterations=10, **params).argmax(0)
    miou = seg.metrics.miou(refined, scene.labels, 8)
    assert metric(page, "mIoU on this scene") == f"{miou:.1%}"
    assert metric(page, "Pixels changed") == f"{(refined != prediction.labels).double().mean():.2%}"

    page.slider(key="crf_w1").set_value(10.0).run()
    no_exception(page)
    assert metric(page, "Pixels changed") != changed_at_10
    params["w1"] = 10.0
    run = experiments.crf_on_prediction(scene.image, prediction.probs, iterations=10, **params)
    assert metric(page, "Free energy F(Q) per pixel") == f"{run.free_energy[-1]:.4f}"
    # The curves: one marker per iteration and a ring on the slider's, which follows it.
    curves = curve_pictures(page)
    assert list(curves) == ["Free energy F(Q) per pixel", "KL(Q_t ‖ Q_t−1) per pixel",
                            "mIoU on this scene"]
    energy = curves["Free energy F(Q) per pixel"]
    assert energy.count("<circle") == 11 + 1
    page.slider(key="crf_iteration").set_value(2).run()
    moved = curve_pictures(page)["Free energy F(Q) per pixel"]
    assert moved.count("<circle") == 12 and ring(moved) != ring(energy)
    assert ring(moved)[0] == pytest.approx(ring(energy)[0] - 8 * (ring(energy)[0] - 62) / 10,
                                           abs=0.2)
    page.slider(key="crf_iteration").set_value(10).run()


def curve_pictures(at) -> dict[str, str]:
    """The SVG curves on the page by title (their first <text>)."""
    out = {}
    for _, url in pictures(at):
        if url.startswith("data:image/svg+xml;base64,"):
            svg = base64.b64decode(url.split(",", 1)[1]).decode()
            out[re.search(r"<text[^>]*>([^<]*)</text>", svg).group(1)] = svg
    return out


def ring(svg: str) -> tuple[float, float]:
    """Centre of the ringed marker (the slider's iteration) in an SVG curve."""
    x, y = re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="6"', svg).groups()
    return float(x), float(y)


def test_search_grid_preset_snaps_the_sliders_to_the_papers_grid(page):
    page.radio(key="crf_preset").set_value("DeepLab v1 (ICLR 2015)").run()
    no_exception(page)
    assert page.slider(key="crf_w1").value == 5.0
    assert page.slider(key="crf_theta_alpha").value == 100.0
    assert page.slider(key="crf_theta_beta").value == 5.0
    assert page.slider(key="crf_theta_alpha").proto.max == 100.0
    page.radio(key="crf_preset").set_value("DeepLab-LargeFOV's released values").run()
    assert page.slider(key="crf_theta_alpha").value == 121.0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_uploaded_photo_uses_the_networks_answer_as_the_target(photo, fmt):
    at = open_crf_page()
    upload(at, f"cat.{fmt.lower()}", encoded(photo, fmt))
    no_exception(at)
    assert not at.error
    assert not [r for r in at.radio if r.key == "crf_scores_from"]  # no true labels to use
    assert any("network's own clean answer" in m.value for m in at.markdown)
    assert metric_starting(at, "log Z, brute force (") == metric_starting(
        at, "log Z, forward algorithm (")
    assert metric(at, "mIoU on this scene") == "–"
    upload(at, "notes.png", b"not a picture at all")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
