"""SegLab in a real browser: every page loads cleanly, uploads go through the file chooser,
sliders change the pictures. Screenshots of every page land in screenshots/<url_path>.png."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.browser import server

SCREENSHOTS = server.ROOT / "screenshots"
PAGES = server.existing_pages()


def _street_photo(width: int = 160, height: int = 120) -> np.ndarray:
    """A small photo-like RGB picture: sky gradient, grey road, a green tree, a red car."""
    y = np.linspace(0, 1, height)[:, None, None]  # (H, 1, 1)
    picture = np.broadcast_to(np.array([120, 170, 230]) * (1 - 0.4 * y), (height, width, 3)).copy()
    picture[height // 2:] = (105, 105, 110)  # road
    yy, xx = np.mgrid[0:height, 0:width]
    picture[(yy - height // 3) ** 2 + (xx - width // 5) ** 2 < (height // 5) ** 2] = (40, 120, 40)
    picture[height * 3 // 5:height * 4 // 5, width // 2:width * 3 // 4] = (190, 30, 30)
    noise = np.random.default_rng(0).normal(0, 6, picture.shape)
    return np.clip(picture + noise, 0, 255).astype(np.uint8)  # (H, W, 3)


def _decode(data_url: str) -> np.ndarray:
    """The picture in a data: URL as uint8 (H, W, 3)."""
    _, payload = data_url.split(",", 1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))


def _words(text: str) -> set[str]:
    """The words of `text`, lower case, punctuation dropped ("227×227" stays one word)."""
    return set(re.findall(r"\w[\w×-]*", text.lower()))


def _first_plotly_image(page) -> str:
    """The data URL plotly drew for the first image trace on the page."""
    return page.locator('[data-testid="stPlotlyChart"] .imagelayer image').first.get_attribute(
        "href")


@pytest.mark.parametrize("file,title,url_path", [(f, t, u) for f, t, _, u in PAGES],
                         ids=[u for *_, u in PAGES])
def test_page_loads(page, app_url, file, title, url_path):
    """The page renders with no exception box, shows its title, and is screenshotted."""
    try:
        server.goto(page, app_url, url_path)
    finally:  # a page that timed out is shot as it was: the picture shows what hung
        server.screenshot(page, SCREENSHOTS / f"{url_path}.png")
    assert server.exceptions(page) == []
    headings = [" ".join(h.split()) for h in
                page.locator('[data-testid="stMainBlockContainer"] h1').all_inner_texts()]
    # The h1 may say more than the navigation's short title ("AlexNet: ReLU, dropout and the
    # 227×227 network" for "AlexNet: ReLU, dropout, 227×227"), but every word of it.
    assert any(_words(title) <= _words(h) for h in headings), \
        f"{file}: the words of title {title!r} are not all in the page's h1 {headings}"


def test_upload_makes_overlay(page, app_url, tmp_path):
    """A PNG uploaded through the file chooser is segmented: its overlay appears at its size."""
    if not (server.ROOT / "lessons" / "01_what_is_segmentation.py").is_file():
        pytest.skip("lessons/01_what_is_segmentation.py does not exist yet")
    photo = _street_photo()
    path = tmp_path / "street.png"
    Image.fromarray(photo).save(path)

    server.goto(page, app_url, "segmentation")
    server.choose_source(page, "Upload")
    server.upload(page, path)

    assert server.exceptions(page) == []
    sidebar_alerts = page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]')
    assert sidebar_alerts.count() == 0, sidebar_alerts.all_inner_texts()
    # The overlay is the clickable picture (streamlit-image-coordinates, in an iframe).
    frame = page.frame_locator('iframe[title^="streamlit_image_coordinates"]').first
    overlay = _decode(frame.locator("img").first.get_attribute("src"))
    assert overlay.shape == photo.shape, "the overlay is not of the uploaded picture"
    changed = (np.abs(overlay.astype(int) - photo.astype(int)).max(axis=2) > 12).mean()
    assert changed > 0.5, f"only {changed:.0%} of the pixels carry class colours"
    server.screenshot(page, SCREENSHOTS / "segmentation_upload.png")


def test_bad_upload_shows_its_sentence(page, app_url, tmp_path):
    """A text file named .png is refused with a sentence in the sidebar; the page carries on."""
    path = tmp_path / "notes.png"
    path.write_text("These are my lecture notes, not a picture.\n")
    server.goto(page, app_url, "world")
    server.choose_source(page, "Upload")
    server.upload(page, path)

    assert server.exceptions(page) == []
    alerts = page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]').all_inner_texts()
    assert any("notes.png" in a for a in alerts), alerts
    assert page.locator('[data-testid="stPlotlyChart"]').count() > 0


def test_slider_changes_picture(page, app_url):
    """Moving the world page's "Scene seed" slider by one draws a different scene."""
    server.goto(page, app_url, "world")
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Scene seed")
    before_image = _first_plotly_image(page)
    before_value = slider.locator('[data-testid="stSliderThumbValue"]').inner_text()

    slider.get_by_role("slider").focus()
    runs = server.runs(page)
    page.keyboard.press("ArrowRight")
    server.wait_for_page(page, after_runs=runs)

    assert slider.locator('[data-testid="stSliderThumbValue"]').inner_text() == str(
        int(before_value) + 1)
    assert server.exceptions(page) == []
    after_image = _first_plotly_image(page)
    assert after_image and after_image != before_image, "the scene did not change"


def _open_from_menu(page, title: str) -> None:
    """Go to another lesson through the sidebar menu (the session, and its photo, stay)."""
    before = server.runs(page)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    server.wait_for_page(page, after_runs=before)


def test_webcam_photo_is_used_by_the_building_block_lessons(page, app_url):
    """Chromium's fake camera takes a photo; AlexNet, ResNet, ReNet and the generative lesson
    run on it (no exception, no refusal) and say which picture they use."""
    server.goto(page, app_url, "world")
    server.choose_source(page, "Webcam")
    camera = page.locator('[data-testid="stSidebar"] [data-testid="stCameraInput"]')
    shoot = camera.get_by_role("button", name=re.compile("take photo", re.I))
    shoot.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # the fake stream's first frames
    before = server.runs(page)
    shoot.click()
    server.wait_for_page(page, after_runs=before)
    sidebar_alerts = page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]')
    assert sidebar_alerts.count() == 0, sidebar_alerts.all_inner_texts()
    for _, title, _, url_path in PAGES:
        if url_path not in ("alexnet", "resnet", "renet", "generative"):
            continue
        _open_from_menu(page, title)
        assert server.exceptions(page) == [], url_path
        assert page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]').count() == 0
        server.screenshot(page, SCREENSHOTS / f"{url_path}_webcam.png")
