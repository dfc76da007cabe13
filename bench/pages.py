"""How fast SegLab's pages feel in a real browser: first render and slider response.

    python bench/pages.py [--pages world crf ...] [--repeats 5] [--cold-repeats 1]
                          [--slider world="Scene seed" ...] [--upload 512 1024] [--json out.json]

For each page, in Debian's chromium against `streamlit run` on loopback:

* cold first render: a fresh server, this page visited first (imports, model loads, first
  predictions all included), from navigation start until the page is idle: script finished,
  nothing stale, every figure and picture drawn. One fresh server per sample.
* warm first render: a reload of the same page once the server's caches are warm (a new
  Streamlit session, as a student opening the page after others did).
* slider response: from the key press (ArrowRight on the slider's thumb, measured inside the
  page) until the rerun it causes has finished and a figure or picture on the page has
  changed. The slider is the page's first one, or the one named with --slider page=label.
  "(script)" is the part of it the rerun's script took (from the browser's view); the rest
  is the slider's debounce and the websocket before it, and drawing after it.

* with --upload SIDE: a synthetic street scene of SIDE × 3/4 SIDE pixels (a new one each
  time, so no cache helps) uploaded through the sidebar's real file chooser, from choosing
  the file until the page is drawn for it ("upload render"), then the slider moves on it.

Also the app's cold start: process start until /_stcore/health answers, one sample per fresh
server. Prints p50 and p95 per measure (with few samples p95 is close to the maximum).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))

import server  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

#: A cheap fingerprint of everything visual in the main block: plotly images and SVGs,
#: pictures (also in custom components' iframes). Long strings (data URLs, SVG markup) are
#: sampled at 256 places, with their length; the SVGs' text (titles, tick labels) is kept
#: whole, since a title that changes by one character is a change that sampling can miss.
_SIGNATURE = """
() => {
  const sample = s => s ? `${s.length}:${[...Array(256).keys()]
      .map(i => s.charCodeAt(Math.floor(i * s.length / 256))).join('.')}` : '';
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return '';
  const parts = [];
  for (const chart of main.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    for (const image of chart.querySelectorAll('.imagelayer image'))
      parts.push(sample(image.getAttribute('href')));
    for (const svg of chart.querySelectorAll('.main-svg'))
      parts.push(sample(svg.innerHTML), svg.textContent);
  }
  for (const img of main.querySelectorAll('img')) parts.push(sample(img.src));
  for (const frame of main.querySelectorAll('iframe')) {
    try {
      for (const img of frame.contentDocument.querySelectorAll('img')) parts.push(sample(img.src));
    } catch (e) {}
  }
  return parts.join('|');
}
"""

#: Records when a key went down (performance.now(), in the page), for the slider timing, and
#: installs the idle test and the fingerprint as page functions polled at every frame.
_KEY_CLOCK = (
    "window.__seglabIdle = " + server._IDLE + ";\n"  # noqa: SLF001 - the same idle test
    "window.__seglabSignature = " + _SIGNATURE + ";\n"
    "document.addEventListener('keydown', () => { window.__seglabKeyAt = performance.now(); },"
    " {capture: true});\n")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation) of `values`; nan when there are none."""
    return float(np.percentile(values, q)) if values else float("nan")


def slider_state(page, label: str | None) -> dict | None:
    """The slider to move: its label, value, min and max; None when the page has none."""
    return page.evaluate("""label => {
      const sliders = [...document.querySelectorAll(
          '[data-testid="stMain"] [data-testid="stSlider"]')];
      const slider = label === null ? sliders[0]
          : sliders.find(s => s.querySelector('[data-testid="stWidgetLabel"]')
                                ?.innerText.trim() === label);
      if (!slider) return null;
      const thumb = slider.querySelector('[role="slider"], input[type="range"]');
      const value = slider.querySelector('[data-testid="stSliderThumbValue"]');
      return {label: slider.querySelector('[data-testid="stWidgetLabel"]')?.innerText.trim(),
              value: value ? value.innerText : null,
              min: thumb.getAttribute('aria-valuemin') ?? thumb.min,
              max: thumb.getAttribute('aria-valuemax') ?? thumb.max,
              now: thumb.getAttribute('aria-valuenow') ?? thumb.value};
    }""", label)


def move_slider(page, label: str, *,
                timeout: float = server.PAGE_TIMEOUT) -> tuple[float, float]:
    """Press an arrow key on slider `label`.

    Returns (seconds until the page is idle and changed, seconds the rerun's script ran as
    the browser saw it: from "running" to "notRunning"). The rest of the response is the
    widget's debounce and the websocket before the run, and drawing after it.
    """
    slider = page.locator('[data-testid="stMain"] [data-testid="stSlider"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=label)).first
    state = slider_state(page, label)
    at_max = state["now"] is not None and state["max"] is not None and \
        float(state["now"]) >= float(state["max"])
    thumb = slider.locator('[role="slider"], input[type="range"]').first
    before_runs = server.runs(page)
    before = page.evaluate(_SIGNATURE)
    # A key press can be lost (seen twice in a hundred: the thumb redrawn as it got the focus);
    # then no run starts, and the key is pressed again, and timed from the new press.
    for attempt in range(3):
        thumb.focus()
        page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
        try:
            page.wait_for_function("runs => (window.__seglabRuns || 0) > runs", arg=before_runs,
                                   timeout=10_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    page.wait_for_function(
        """([runs, before]) => {
          if ((window.__seglabRuns || 0) <= runs) return false;
          if (!window.__seglabIdle() || window.__seglabSignature() === before) return false;
          window.__seglabDoneAt = window.__seglabDoneAt || performance.now();
          return true;
        }""", arg=[before_runs, before], polling="raf", timeout=timeout * 1000)
    times = page.evaluate("""() => {
      const t = [window.__seglabKeyAt, window.__seglabRunStartedAt, window.__seglabRunEndedAt,
                 window.__seglabDoneAt].map(x => x / 1000);
      window.__seglabDoneAt = undefined;
      return t;
    }""")
    key, run_started, run_ended, done = times
    server.wait_for_page(page, timeout=timeout)  # let any follow-up rerun finish
    return done - key, run_ended - run_started


def scene_file(side: int, index: int, folder: Path) -> Path:
    """A synthetic street scene of side × 3/4 side pixels saved as a PNG (a photo stand-in)."""
    import seg.synthetic
    from PIL import Image

    path = folder / f"scene_{side}_{index}.png"
    picture = seg.synthetic.scene(1000 + index, height=side * 3 // 4, width=side).image
    Image.fromarray(picture).save(path)
    return path


def measure_sliders(page, result: dict, label: str | None, repeats: int) -> None:
    """Move the page's slider `repeats` times; append the response and script times."""
    state = slider_state(page, label)
    if state is None:
        return
    result["slider_label"] = state["label"]
    for _ in range(repeats):
        response, script = move_slider(page, state["label"])
        result["slider"].append(response)
        result["slider_script"].append(script)


def bench_page(url_path: str, *, repeats: int, cold_repeats: int, slider: str | None,
               width: int, upload: int | None = None) -> dict:
    """All the measures of one page; see the module docstring."""
    result = {"page": url_path, "cold_start": [], "cold": [], "warm": [], "slider": [],
              "slider_script": [], "slider_label": None, "errors": [], "upload": upload,
              "upload_render": []}
    with server.browser() as context:
        for sample in range(cold_repeats):
            with server.serve() as base:
                result["cold_start"].append(base.started_in)
                page = server.new_page(context, width=width)
                page.add_init_script(_KEY_CLOCK)
                result["cold"].append(server.goto(page, base, url_path))
                result["errors"] += server.exceptions(page)
                if sample < cold_repeats - 1:
                    page.close()
                    continue
                for _ in range(repeats):
                    started = time.perf_counter()
                    page.reload(wait_until="commit")
                    navigated = time.perf_counter() - started
                    result["warm"].append(navigated + server.wait_for_page(page))
                if upload:
                    import tempfile

                    server.choose_source(page, "Upload")
                    with tempfile.TemporaryDirectory() as folder:
                        for i in range(repeats):
                            path = scene_file(upload, i, Path(folder))
                            result["upload_render"].append(
                                server.upload(page, path, chooser=i == 0))
                measure_sliders(page, result, slider, repeats)
                result["errors"] += server.exceptions(page)
                result["errors"] += [f"left loopback: {u}" for u in server.outside_requests(page)]
                page.close()
    return result


def table(results: list[dict]) -> str:
    """The results as a fixed-width text table (seconds)."""
    def cell(values: list[float]) -> str:
        if not values:
            return "—"
        return f"{percentile(values, 50):6.2f} / {percentile(values, 95):6.2f}"

    head = (f"{'page':14} {'picture':>9} {'cold first render':>17} {'warm first p50/p95':>19} "
            f"{'upload render p50/p95':>22} {'slider p50/p95':>17} {'(script p50)':>12}  slider")
    rows = [head, "-" * len(head)]
    for r in results:
        cold = f"{statistics.median(r['cold']):17.2f}" if r["cold"] else f"{'—':>17}"
        script = (f"{percentile(r['slider_script'], 50):12.2f}" if r["slider_script"]
                  else f"{'—':>12}")
        picture = f"{r['upload']}×{r['upload'] * 3 // 4}" if r.get("upload") else "256×256"
        rows.append(f"{r['page']:14} {picture:>9} {cold} {cell(r['warm']):>19} "
                    f"{cell(r.get('upload_render', [])):>22} {cell(r['slider']):>17} "
                    f"{script}  {r['slider_label'] or '—'}")
    starts = [s for r in results for s in r["cold_start"]]
    rows.append(f"app cold start (process → health OK): p50 {percentile(starts, 50):.2f} s, "
                f"p95 {percentile(starts, 95):.2f} s over {len(starts)} starts")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status (1 when a page showed an error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", nargs="+", metavar="URL_PATH",
                        help="url paths to measure (default: every existing page)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="warm renders and slider moves per page")
    parser.add_argument("--cold-repeats", type=int, default=1,
                        help="fresh servers per page for the cold first render")
    parser.add_argument("--slider", action="append", default=[], metavar="PAGE=LABEL",
                        help='the slider to move on a page, e.g. world="Scene seed"')
    parser.add_argument("--width", type=int, default=1400, help="browser width in pixels")
    parser.add_argument("--upload", type=int, nargs="+", default=[], metavar="SIDE",
                        help="also measure each page at an uploaded picture SIDE px wide")
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    args = parser.parse_args(argv)
    if missing := server.missing_browser():
        print(f"cannot run the browser benchmark: {missing}", file=sys.stderr)
        return 2
    known = [entry[3] for entry in server.existing_pages()]
    pages = args.pages or known
    if unknown := [p for p in pages if p not in known]:
        parser.error(f"no such page(s) {unknown}; the app has {known}")
    sliders = dict(item.split("=", 1) for item in args.slider)

    results = []
    for url_path in pages:
        for side in [None, *args.upload]:
            try:
                result = bench_page(url_path, repeats=args.repeats,
                                    cold_repeats=args.cold_repeats,
                                    slider=sliders.get(url_path), width=args.width, upload=side)
            except PlaywrightError as error:  # one page's failure does not lose the others
                result = {"page": url_path, "upload": side, "cold_start": [], "cold": [],
                          "warm": [], "slider": [], "slider_script": [], "slider_label": None,
                          "upload_render": [], "errors": [f"{type(error).__name__}: {error}"]}
            results.append(result)
            print(f"{url_path} ({side or 'scene'}): cold {result['cold']}, "
                  f"warm {np.round(result['warm'], 2).tolist()}, "
                  f"upload {np.round(result['upload_render'], 2).tolist()}, "
                  f"slider {np.round(result['slider'], 3).tolist()}", file=sys.stderr, flush=True)
            for error in result["errors"]:
                print(f"{url_path}: ERROR {error[:300]}", file=sys.stderr)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
