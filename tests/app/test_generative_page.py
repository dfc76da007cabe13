"""The generative vs discriminative page: boundaries, accuracies and pixel scores it shows,
checked against direct computations."""

import base64
import json

import numpy as np
import pytest
import torch

import seg
from seg import generative
from tests.app.conftest import encoded, no_exception, open_page, upload

PAGE = "13_generative_discriminative.py"


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE)
    no_exception(at)
    return at


def charts(at) -> dict[str, dict]:
    """Plotly figures on the page by their title."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def array(value) -> np.ndarray:
    """A plotly data array: a list, or plotly's typed array {dtype, bdata, shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value, dtype=float)


def metric(at, label_start: str) -> float:
    """The value of the st.metric whose label starts with `label_start`, as a fraction."""
    values = [m.value for m in at.metric if m.label.startswith(label_start)]
    assert len(values) == 1, [m.label for m in at.metric]
    return float(values[0].rstrip("%")) / 100


def lda_direct(x, y, reg=1e-3):
    """LDA's boundary from the class means and the pooled covariance, by hand."""
    m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
    d = np.concatenate([x[y == 0] - m0, x[y == 1] - m1])
    sigma = d.T @ d / len(x) + reg * x.var(0).mean() * np.eye(2)
    w = np.linalg.solve(sigma, m1 - m0)
    b = -0.5 * (m1 @ np.linalg.solve(sigma, m1) - m0 @ np.linalg.solve(sigma, m0))
    return w, b + np.log((y == 1).mean() / (y == 0).mean())


def logistic_direct(x, y, l2=1e-4):
    """Penalised logistic regression on standardised x, minimised by torch's L-BFGS, with its
    boundary mapped back to the original units."""
    mean, std = x.mean(0), x.std(0)
    z = torch.from_numpy((x - mean) / std)
    target = torch.from_numpy(y)
    w = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=300, tolerance_grad=1e-11,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w.T + b, target) + 0.5 * l2 * (w ** 2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    w, b = w.detach().numpy(), b.detach().numpy()
    slope = (w[1] - w[0]) / std
    return slope, b[1] - b[0] - slope @ mean


def test_boundaries_match_a_direct_computation(page):
    assert page.title[0].value == "Generative vs discriminative"
    x, y = generative.make_data(40, separation=2.0, seed=0)  # the page's defaults
    table = page.dataframe[0].value.set_index("model")
    for model, (w, b) in (("LDA", lda_direct(x, y)),
                          ("logistic regression", logistic_direct(x, y))):
        shown = table.loc[model]
        np.testing.assert_allclose([shown["w₁"], shown["w₂"], shown["b"]], [*w, b],
                                   rtol=1e-4, atol=1e-5)
        train = ((x @ w + b > 0) == (y == 1)).mean()
        assert shown["train accuracy"] == pytest.approx(train)
    x_test, y_test = generative.make_data(2000, separation=2.0, seed=1_000_003)
    w, b = lda_direct(x, y)
    assert metric(page, "Test accuracy: LDA") == pytest.approx(
        ((x_test @ w + b > 0) == (y_test == 1)).mean(), abs=6e-4)


def test_planes_show_density_contours_and_the_two_boundaries(page):
    figures = charts(page)
    gen = next(f for t, f in figures.items() if t.startswith("Generative: LDA"))
    dis = next(f for t, f in figures.items() if t.startswith("Discriminative:"))
    names = [t.get("name") for t in gen["data"]]
    assert {"P(x | y=0): 1, 2, 3 σ", "P(x | y=1): 1, 2, 3 σ", "LDA boundary",
            "best possible boundary"} <= set(names)
    boundary = next(t for t in gen["data"] if t.get("name") == "LDA boundary")
    assert boundary["contours"]["start"] == boundary["contours"]["end"] == 0.5
    heat = next(t for t in dis["data"] if t["type"] == "heatmap")
    z = array(heat["z"])
    assert 0 <= z.min() < 0.05 and 0.95 < z.max() <= 1  # P(y=1|x) across the plane


def test_learning_curve_shows_the_generative_model_ahead_with_few_points(page):
    curve = next(f for t, f in charts(page).items() if t.startswith("Test accuracy, mean"))
    series = {t["name"]: t for t in curve["data"]}
    five = list(array(series["LDA"]["x"])).index(5)
    assert array(series["LDA"]["y"])[five] > array(series["logistic regression"]["y"])[five]
    text = next(m.value for m in page.markdown if m.value.startswith("**What happens here:**"))
    assert "the generative model is ahead" in text


def test_outliers_hurt_the_gaussians_more_than_logistic_regression():
    at = open_page(PAGE)
    at.slider(key="generative_outliers").set_value(0.2).run()
    no_exception(at)
    assert metric(at, "Test accuracy: logistic regression") > metric(at, "Test accuracy: LDA")
    text = next(m.value for m in at.markdown if m.value.startswith("**What happens here:**"))
    assert "logistic regression ends ahead" in text


def test_quadratic_pair_on_different_covariances():
    at = open_page(PAGE)
    at.radio(key="generative_covariance").set_value("different").run()
    at.radio(key="generative_family").set_value("quadratic: QDA vs logistic on x and x²").run()
    no_exception(at)
    table = at.dataframe[0].value
    assert table["model"].tolist() == ["QDA", "logistic regression on x, x²"]
    assert "w₁" not in table.columns
    assert any(t.startswith("Generative: QDA") for t in charts(at))


def test_samples_come_from_the_fitted_gaussians(page):
    figure = next(f for t, f in charts(page).items() if t.startswith("200 points drawn"))
    drawn = [t for t in figure["data"] if t.get("name", "").startswith("drawn")]
    assert len(drawn) == 2
    x, y = generative.make_data(40, separation=2.0, seed=0)
    expected_x, expected_y = generative.fit_gaussians(x, y).sample(200, seed=0)
    for k, trace in enumerate(drawn):
        np.testing.assert_allclose(array(trace["x"]), expected_x[expected_y == k, 0])


def test_pixel_scores_are_those_of_the_two_classifiers(page):
    scene = seg.synthetic.scene(7)
    expected = generative.compare_on_pixels(scene.image, scene.labels, 8, fraction=0.01)
    for name, label in (("generative", "colour Gaussians"),
                        ("discriminative", "logistic regression")):
        assert metric(page, f"Pixel accuracy: {label}") == pytest.approx(
            expected.scores[name]["pixel_accuracy"], abs=6e-4)
        assert metric(page, f"mIoU: {label}") == pytest.approx(
            expected.scores[name]["miou"], abs=6e-4)


def test_a_photo_falls_back_to_a_scene_for_pixels_and_bad_files_are_refused(photo):
    at = open_page(PAGE)
    for name, fmt, mime in (("cat.png", "PNG", "image/png"), ("cat.jpg", "JPEG", "image/jpeg")):
        upload(at, name, encoded(photo, fmt), mime)
        no_exception(at)
        assert any("has no labels" in i.value for i in at.info)
        assert not at.error
    upload(at, "notes.png", b"not a picture at all")
    no_exception(at)
    assert any("notes.png" in e.value for e in at.error)
    assert len(at.metric) == 7  # the page carried on with the default scene
