"""bench/load.py in small: a few students speak Streamlit's websocket protocol to a real
`streamlit run` SegLab, upload their own photos and move sliders, with no error and every model
loaded once. The 40-student run is `python bench/load.py` (README, Benchmarks)."""

from __future__ import annotations

import importlib.util
import sys

from tests.browser import server


def _load_bench():
    """bench/load.py as a module (bench/ is no package); its dataclasses need it registered."""
    spec = importlib.util.spec_from_file_location("seglab_bench_load",
                                                  server.ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_small_class_gets_answers_and_shares_each_model(app_url):
    # app_url: only so that this runs where the browser tests run (it starts its own server).
    load = _load_bench()
    outcome = load.run_setting("small class", {}, ["crf", "dilated"], load.SLIDERS, students=4,
                               moves=2, think=0.2, ramp=1.0, timeout=180, seconds=240)
    assert outcome.errors == []
    assert outcome.finished == 4
    assert outcome.loads and max(outcome.loads.values()) == 1, outcome.loads
    actions = {s.action for s in outcome.samples}
    assert actions == set(load.ACTIONS)
    assert outcome.peak_rss_mb > 0
