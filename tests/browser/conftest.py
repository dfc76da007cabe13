"""Fixtures for the real-browser tests: one `streamlit run` server per session, one chromium.

Every test here is marked `browser` (select with `-m browser`, leave out with
`-m "not browser"`). Without chromium or Playwright the tests skip with the reason, unless
SEGLAB_REQUIRE_BROWSER=1 (CI sets it), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser import server

HERE = Path(__file__).resolve().parent
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `browser`, and keep them on one xdist worker (one server,
    one chromium: two of each would starve a 2-core machine)."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))


def _require_browser() -> None:
    """Skip (or, with SEGLAB_REQUIRE_BROWSER=1, fail) when chromium or Playwright is missing."""
    reason = server.missing_browser()
    if reason is None:
        return
    if os.environ.get("SEGLAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SEGLAB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def app_url() -> server.Server:
    """The base URL of SegLab started once with `streamlit run` on a free loopback port."""
    _require_browser()
    with server.serve() as url:
        yield url


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian chromium (Playwright persistent context, throw-away profile)."""
    _require_browser()
    with server.browser() as context:
        yield context


@pytest.fixture
def page(chromium, app_url):
    """A fresh tab (a new Streamlit session) that must stay on loopback and cause no traceback.

    After the test it fails if the page tried to reach anything but 127.0.0.1 or the server
    printed a traceback while the test ran.
    """
    log_start = len(app_url.log_text())
    tab = server.new_page(chromium)
    try:
        yield tab
    finally:
        tab.close()
    outside = server.outside_requests(tab)
    assert not outside, f"the page tried to leave loopback: {outside}"
    new_log = app_url.log_text()[log_start:]
    assert not _TRACEBACK.search(new_log), f"the server printed a traceback:\n{new_log[-4000:]}"

