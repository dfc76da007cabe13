"""Start SegLab with `streamlit run` on loopback and drive Debian's chromium against it.

Used by the browser tests (tests/browser/conftest.py), by shoot.py (screenshots) and by
bench/pages.py (timings), so that all three see the app exactly as a student's browser does.

    with serve() as url:                       # http://127.0.0.1:<free port>
        with browser() as chromium:
            page = new_page(chromium)
            page.goto(url + "/world")
            wait_for_page(page)

Chromium is the system's (/usr/bin/chromium), never a downloaded one, and it is kept on
loopback: host names other than localhost do not resolve and every request that leaves
127.0.0.1 is recorded on the page (`outside_requests(page)`) so that tests can fail on it.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
ROUTER = ROOT / "streamlit_app.py"
CHROMIUM = Path(os.environ.get("SEGLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    # Only loopback: any other host name fails to resolve instead of reaching the network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    # WebGL on the CPU, so plotly's 3-D point clouds (depth lesson) render without a GPU.
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    # A webcam without a camera: Chromium's own test pattern, permission granted without a
    # prompt, so the sidebar's "Webcam" source takes a real photo through getUserMedia.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
#: Seconds the app gets to answer its health check after `streamlit run` starts.
START_TIMEOUT = 60.0
#: Seconds a page gets to finish its script and draw its figures (SEGLAB_PAGE_TIMEOUT
#: overrides it). Cold model loads, first predictions and live training take seconds to tens
#: of seconds on the shared 2-core CPU.
PAGE_TIMEOUT = float(os.environ.get("SEGLAB_PAGE_TIMEOUT", "240"))


def python() -> str:
    """The repository's virtual-environment Python (falls back to the running one)."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether Streamlit at `url` answers its health check with "ok"."""
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Server(str):
    """The base URL of a running app (a str), with its process and log file attached."""

    process: subprocess.Popen
    log: Path
    launched: float  # time.perf_counter() when the process started
    #: Seconds from process start until the health check answered (the app's cold start).
    started_in: float | None = None

    def log_text(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> float:
        """Block until /_stcore/health answers; return the cold start in seconds."""
        deadline = self.launched + timeout
        while self.started_in is None:
            if healthy(self):
                self.started_in = time.perf_counter() - self.launched
            elif self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.process.returncode}:\n"
                                   + self.log_text()[-3000:])
            elif time.perf_counter() > deadline:
                raise TimeoutError(f"streamlit did not answer {self}/_stcore/health within "
                                   f"{timeout:.0f} s:\n" + self.log_text()[-3000:])
            else:
                time.sleep(0.05)
        return self.started_in


@contextlib.contextmanager
def serve(port: int | None = None, *, log: Path | None = None, wait: bool = True,
          timeout: float = START_TIMEOUT) -> Iterator[Server]:
    """Run `streamlit run streamlit_app.py` on 127.0.0.1 and yield its base URL.

    The process gets its own process group so that stopping it also stops anything it
    started. Its output goes to `log` (a temporary file by default) and is shown in the
    error if the app does not become healthy within `timeout` seconds.

    Args:
        port: the port to listen on; None picks a free one.
        log: file receiving the server's stdout and stderr.
        wait: wait for the health check before yielding; False yields at once (start the
            browser meanwhile, then call `url.wait_healthy()`).
        timeout: seconds to wait for /_stcore/health.

    Example:
        >>> with serve() as url:                      # doctest: +SKIP
        ...     print(url, url.started_in)
        http://127.0.0.1:40213 4.1
    """
    port = port or free_port()
    own_log = log is None
    if own_log:
        handle, name = tempfile.mkstemp(prefix="seglab-streamlit-", suffix=".log")
        os.close(handle)
        log = Path(name)
    command = [python(), "-m", "streamlit", "run", ROUTER.name,
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               # Other engineers edit files while tests run: a file watcher would put a
               # "source changed" prompt in the status area and cost CPU.
               "--server.fileWatcherType", "none"]
    server = Server(f"http://127.0.0.1:{port}")
    server.log = log
    server.launched = time.perf_counter()
    with open(log, "wb") as out:
        server.process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True,
            preexec_fn=_die_with_parent)
    try:
        if wait:
            server.wait_healthy(timeout)
        yield server
    finally:
        _stop(server.process)
        if own_log:
            log.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the parent dies.

    A test run killed by `timeout` (SIGTERM or SIGKILL) runs no `finally`; without this its
    server would keep running, holding memory and CPU on a shared machine.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def sections() -> list[tuple[str, str, str, str]]:
    """The router's pages as (file, title, icon, url path), read from SECTIONS with `ast`.

    The router is not imported: importing it would run Streamlit commands.
    """
    tree = ast.parse(ROUTER.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "SECTIONS" for t in targets):
            table = ast.literal_eval(node.value)
            return [tuple(entry) for entries in table.values() for entry in entries]
    raise LookupError(f"no SECTIONS table in {ROUTER}")


def default_url_path() -> str:
    """The url path of the router's default page (Streamlit serves that page at "/").

    Read from the router's `st.Page(..., default=(url == "world"))`; without such a marker
    Streamlit's default is the first page.
    """
    for node in ast.walk(ast.parse(ROUTER.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "default" and \
                isinstance(node.value, ast.Compare) and len(node.value.comparators) == 1 and \
                isinstance(node.value.comparators[0], ast.Constant):
            return node.value.comparators[0].value
    return existing_pages()[0][3]


def page_url(base: str, url_path: str) -> str:
    """The address of page `url_path` ("" or "/" for the default page)."""
    url_path = url_path.strip("/")
    return base + "/" + ("" if url_path == default_url_path() else url_path)


def existing_pages() -> list[tuple[str, str, str, str]]:
    """The router's pages whose file exists in lessons/ (those the app shows)."""
    return [entry for entry in sections() if (ROOT / "lessons" / entry[0]).is_file()]


def missing_browser() -> str | None:
    """Why the browser cannot run here (a sentence), or None when it can."""
    if not CHROMIUM.exists() and not shutil.which(str(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install playwright)"
    return None


@contextlib.contextmanager
def browser() -> Iterator:
    """Launch Debian's chromium headless through Playwright, with a throw-away profile.

    Example:
        >>> with browser() as chromium:                # doctest: +SKIP
        ...     page = new_page(chromium)
    """
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="seglab-chromium-") as profile, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 900}, service_workers="block",
            accept_downloads=False, permissions=["camera"])
        try:
            yield context
        finally:
            context.close()


#: Installed in every page before Streamlit's scripts: counts script runs (the stApp element's
#: data-test-script-state turning to "running"), so a test can wait for the rerun its action
#: caused rather than mistake the idle page before the rerun for the result; and notes when
#: the last run started and ended (performance.now(), for bench/pages.py).
_RUN_COUNTER = """
window.__seglabRuns = 0;
new MutationObserver(records => {
  for (const r of records) {
    const state = r.target.getAttribute('data-test-script-state');
    if (state === 'running') {
      window.__seglabRuns++;
      window.__seglabRunStartedAt = performance.now();
    } else if (state === 'notRunning') {
      window.__seglabRunEndedAt = performance.now();
    }
  }
}).observe(document, {subtree: true, attributes: true,
                      attributeFilter: ['data-test-script-state']});
"""

#: True when the app is connected, no script runs, nothing is stale, loading or spinning, the
#: main block has content, every plotly chart has drawn its SVG and every picture (also inside
#: custom components' iframes, e.g. streamlit-image-coordinates) has loaded.
_IDLE = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"], '
      + '[data-testid="stAppSkeleton"], [data-testid="stSkeleton"], '
      + '[data-testid="stSpinner"], [data-stale="true"]')) return false;
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  if (!main || !main.querySelector('[data-testid="stElementContainer"]')) return false;
  for (const chart of main.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (!chart.querySelector('.main-svg')) return false;
  }
  const loaded = root => [...root.querySelectorAll('img')].every(i => i.complete);
  if (!loaded(document)) return false;
  for (const frame of document.querySelectorAll('iframe')) {  // custom components
    let inner;
    try { inner = frame.contentDocument; } catch (e) { continue; }  // cross-origin: unknowable
    if (!inner || inner.readyState !== 'complete' || !loaded(inner)) return false;
  }
  return true;
}
"""


def new_page(context, *, width: int = 1400, height: int = 900):
    """A page that records requests leaving loopback and counts Streamlit's script runs."""
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.add_init_script(_RUN_COUNTER)
    page._seglab_outside = []  # noqa: SLF001 - the record outside_requests() reads

    def record(request) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and \
                host not in ("127.0.0.1", "localhost"):
            page._seglab_outside.append(request.url)  # noqa: SLF001

    page.on("request", record)
    return page


def outside_requests(page) -> list[str]:
    """URLs the page tried to fetch from anywhere but 127.0.0.1."""
    return list(page._seglab_outside)  # noqa: SLF001


def runs(page) -> int:
    """How many script runs (full or fragment) the page has seen start."""
    return page.evaluate("window.__seglabRuns || 0")


def wait_for_page(page, *, timeout: float = PAGE_TIMEOUT, after_runs: int | None = None,
                  settle: float = 0.25) -> float:
    """Wait until Streamlit has finished running the page and drawn it.

    Returns the seconds from the call until the page became idle (the `settle` time after
    that is not counted).

    "Finished" is: connected, script state "notRunning", no running indicator, skeleton,
    spinner or stale element, the main block has at least one element and every plotly chart
    has rendered. The state must hold for `settle` seconds, because a rerun may start a moment
    after an idle frame (widget values are sent debounced).

    Args:
        page: a Playwright page opened with `new_page`.
        timeout: seconds before a TimeoutError that names what was still pending.
        after_runs: wait for at least one script run beyond this count first (pass
            `runs(page)` taken before an action, so the idle page before the rerun does not
            count as its result).
        settle: seconds the idle state must last.

    Example:
        >>> before = runs(page)                              # doctest: +SKIP
        >>> page.keyboard.press("ArrowRight")                # doctest: +SKIP
        >>> wait_for_page(page, after_runs=before)           # doctest: +SKIP
    """
    started = time.perf_counter()
    deadline = started + timeout
    ms = lambda: max(1.0, (deadline - time.perf_counter()) * 1000)  # noqa: E731
    try:
        if after_runs is not None:
            page.wait_for_function(f"(window.__seglabRuns || 0) > {after_runs}", timeout=ms())
        idle_since = None
        while True:
            page.wait_for_function(_IDLE, timeout=ms(), polling="raf")
            idle_since = idle_since or time.perf_counter()
            if time.perf_counter() - idle_since >= settle:
                break
            page.wait_for_timeout(50)
            if not page.evaluate(_IDLE):
                idle_since = None
    except Exception as error:  # Playwright's TimeoutError: say what was still pending
        if "Timeout" not in type(error).__name__:
            raise
        raise TimeoutError(f"page {page.url} not idle after {timeout:.0f} s: "
                           f"{pending(page)}") from None
    return idle_since - started


def pending(page) -> str:
    """What keeps the page from being idle, in words (for timeout messages)."""
    return page.evaluate("""() => {
      const app = document.querySelector('[data-testid="stApp"]');
      if (!app) return 'no stApp element (page not loaded)';
      const out = [`connection ${app.getAttribute('data-test-connection-state')}`,
                   `script ${app.getAttribute('data-test-script-state')}`];
      for (const id of ['stStatusWidgetRunningIcon', 'stAppSkeleton', 'stSkeleton', 'stSpinner'])
        if (document.querySelector(`[data-testid="${id}"]`)) out.push(id);
      const stale = document.querySelectorAll('[data-stale="true"]').length;
      if (stale) out.push(`${stale} stale elements`);
      const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
      const undrawn = charts.filter(c => !c.querySelector('.main-svg')).length;
      if (undrawn) out.push(`${undrawn} of ${charts.length} plotly charts not drawn`);
      const images = [...document.querySelectorAll('img')].filter(i => !i.complete).length;
      if (images) out.push(`${images} pictures loading`);
      for (const f of document.querySelectorAll('iframe')) {
        try { if (f.contentDocument.readyState !== 'complete') out.push(`iframe ${f.title} loading`); }
        catch (e) {}
      }
      return out.join(', ');
    }""")


def choose_source(page, source: str) -> None:
    """Pick `source` in the sidebar's image-source radio and wait for the rerun."""
    option = (page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]')
              .locator('[data-testid="stRadioOption"]')
              .filter(has_text=re.compile(rf"^\s*{re.escape(source)}\s*$")))
    before = runs(page)
    option.click()
    wait_for_page(page, after_runs=before)


def upload(page, path, *, chooser: bool = True) -> float:
    """Upload `path` through the sidebar uploader; wait for the rerun.

    With `chooser` the file goes through the real file chooser (the first upload of a session:
    the "Browse files" button); without, it is set on the uploader's file input, as a drop
    does, which also works once a file is already there.

    Returns the seconds from choosing the file until the page was drawn for it.
    """
    uploader = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"]')
    before = runs(page)
    if chooser:
        with page.expect_file_chooser() as opened:
            uploader.locator("button").first.click()
        started = time.perf_counter()
        opened.value.set_files(str(path))
    else:
        started = time.perf_counter()
        uploader.locator('input[type="file"]').set_input_files(str(path))
    return time.perf_counter() - started + wait_for_page(page, after_runs=before)


def exceptions(page) -> list[str]:
    """The text of every exception box ([data-testid="stException"]) on the page."""
    return [e.inner_text() for e in page.locator('[data-testid="stException"]').all()]


def goto(page, base: str, url_path: str, *, timeout: float = PAGE_TIMEOUT) -> float:
    """Open page `url_path` of the app at `base`, wait until it is drawn.

    Returns the seconds from navigation start until the page was idle.

    Raises LookupError when Streamlit answers "Page not found" (it then runs the main page,
    which would otherwise pass for the page asked for).
    """
    started = time.perf_counter()
    page.goto(page_url(base, url_path), wait_until="commit", timeout=timeout * 1000)
    navigated = time.perf_counter() - started
    idle = navigated + wait_for_page(page, timeout=timeout - navigated)
    if page.locator('[data-testid="stDialog"]').filter(has_text="Page not found").count():
        known = ", ".join(entry[3] for entry in existing_pages())
        raise LookupError(f"no page {url_path!r} in the app (pages: {known})")
    return idle


#: The height the app would need to show everything without scrolling. Streamlit scrolls
#: inside <main data-testid="stMain"> (and the sidebar), not the document, so Playwright's
#: own full_page capture would stop at the viewport.
_CONTENT_HEIGHT = """
() => Math.max(...['[data-testid="stMain"]', '[data-testid="stSidebarContent"]']
  .map(s => document.querySelector(s)).filter(Boolean)
  .map(e => e.scrollHeight + e.getBoundingClientRect().top))
"""


def screenshot(page, path: Path | str, *, full_page: bool = True) -> Path:
    """Write a PNG of the page; `full_page` grows the window to the content's height first.

    Example:
        >>> screenshot(page, "/tmp/world.png")              # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    if full_page:
        for _ in range(3):  # a taller window can reflow the page; settle on its height
            height = max(viewport["height"], int(page.evaluate(_CONTENT_HEIGHT)) + 1)
            if height == page.viewport_size["height"]:
                break
            page.set_viewport_size({"width": viewport["width"], "height": height})
            page.wait_for_timeout(300)  # let plotly and the layout react to the new size
    try:
        page.screenshot(path=str(path), animations="disabled", caret="hide")
    finally:
        if page.viewport_size != viewport:
            page.set_viewport_size(viewport)
    return path
