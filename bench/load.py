"""A whole class at once: many students' clients against one `streamlit run` SegLab.

    python bench/load.py [--students 40] [--seconds 300] [--moves 3]
                         [--pages segmentation crf dilated] [--slider crf=crf_w2,crf_iteration]
                         [--setting "LABEL:VAR=VALUE,VAR=VALUE" ...] [--json out.json]

Every student is a websocket client that speaks Streamlit's own protocol, as the browser's
frontend does: it fetches /_stcore/health for the XSRF cookie, opens /_stcore/stream with the
"streamlit" subprotocol and the cookie's token, and sends BackMsg protobufs: `rerun_script` with
a ClientState (page name, page script hash, widget states, fragment id), `file_urls_request`
before an upload. It reads the ForwardMsgs the server sends back: the new session (its id and
page hash), the deltas (widgets, to learn their ids, and any exception or error box) and
`script_finished`. Uploads go by HTTP PUT to the URL the server hands out, with the XSRF token
in the X-Xsrftoken header, exactly as Streamlit's file uploader does.

Students arrive over --ramp seconds; page i % len(pages) is student i's. Each one:

* open page: the page's first script run (with the default synthetic scene);
* choose Upload: the sidebar's "Image source" radio set to Upload;
* upload: the student's own small JPEG (different for every student: no cache hit), from the
  `file_urls_request` BackMsg through the HTTP PUT to the end of the script run it causes;
* slider move (--moves times): one step of the page's sliders in turn (by widget key; sliders
  inside an `st.fragment` rerun only their fragment, as in the browser).

Between actions a student thinks for --think seconds (0.5x to 1.5x, seeded). Every action is
timed from sending its first BackMsg until the `script_finished` ForwardMsg of the run it caused.

Each --setting runs on a fresh server with those environment variables (e.g. SegLab's thread
cap, see app/serving.py); the settings are printed side by side. Also reported per setting:
errors (exception or error boxes, compile errors, disconnects, timeouts: must be 0), how often
each model was loaded (the "SegLab: loaded <name> on <device>" lines in the server's log: must
be once) and the server's peak resident memory (VmRSS of its process and children, sampled).
Exit status 1 when there were errors or a model was loaded twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import requests
from PIL import Image, ImageDraw
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import (
    DoubleArray,
    FileUploaderState,
    FileURLs,
    UploadedFileInfo,
)
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))

import server  # noqa: E402

#: Pages with a model prediction, and the slider keys each student moves there in turn. The
#: first of each list reruns the whole page (a new CRF, a new dilation rate); the segmentation
#: page's opacity and the CRF's iteration scrubber rerun only their fragment.
SLIDERS = {
    "segmentation": ["segmentation_opacity"],
    "crf": ["crf_theta_alpha", "crf_w2", "crf_iteration"],
    "dilated": ["dilated_live_rate", "dilated_rate_grid"],
}
ACTIONS = ("open page", "choose Upload", "upload", "slider move")
#: The line app/resources.py logs when a model is loaded into the shared cache.
LOADED = re.compile(r"SegLab: loaded (\S+) on (\S+)")
XSRF_COOKIE = "_streamlit_xsrf"


@dataclass
class Sample:
    """One timed action of one student."""

    student: int
    page: str
    action: str
    seconds: float


@dataclass
class Outcome:
    """What one setting's run produced."""

    label: str
    environment: dict[str, str]
    students: int
    finished: int = 0
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loads: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    wall: float = 0.0
    cold_start: float = 0.0


class StudentError(Exception):
    """Something a student saw that a student must never see (already worded for the report)."""


def student_image(index: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A small JPEG, different for every student: a sky, a road and a few seeded boxes."""
    rng = np.random.default_rng(1000 + index)
    width, height = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(90, 200, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height * 2 // 3, width, height], fill=(128, 64, 128))
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        box = [x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 90))]
        draw.rectangle(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


class Student:
    """One student's browser tab, reduced to Streamlit's protocol.

    Args:
        index: the student's number (picks the JPEG and the think times).
        base: the app's base URL, http://127.0.0.1:<port>.
        page: url path of the page the student works on.
        sliders: widget keys of the sliders to move, in turn.
        moves: how many slider moves.
        think: mean seconds between two actions.
        timeout: seconds an action may take before it counts as an error.
    """

    def __init__(self, index: int, base: str, page: str, sliders: list[str], *, moves: int,
                 think: float, timeout: float) -> None:
        self.index, self.base, self.page = index, base, page
        self.sliders, self.moves, self.think, self.timeout = sliders, moves, think, timeout
        self.rng = np.random.default_rng(index)
        self.samples: list[Sample] = []
        self.finished = False
        self.error: str | None = None
        self.xsrf = ""
        self.ws = None
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: no proxy from the environment
        self.inbox: asyncio.Queue[tuple[float, ForwardMsg | None]] = asyncio.Queue()
        self.session_id = ""
        self.page_hash = ""
        self.widgets: dict[str, tuple[str, object, str]] = {}  # key -> (kind, proto, fragment)
        self.states: dict[str, WidgetState] = {}  # widget id -> the value this tab sends

    async def run(self) -> None:
        """Open the page, upload, move sliders; raises StudentError on anything wrong."""
        health = await asyncio.to_thread(self.http.get, self.base + "/_stcore/health",
                                         timeout=self.timeout)
        health.raise_for_status()
        xsrf = self.http.cookies.get(XSRF_COOKIE)
        if not xsrf:
            raise StudentError(f"no {XSRF_COOKIE} cookie from /_stcore/health")
        self.xsrf = xsrf
        async with connect(
                self.base.replace("http", "ws", 1) + "/_stcore/stream",
                subprotocols=["streamlit", xsrf], origin=self.base,
                additional_headers={"Cookie": f"{XSRF_COOKIE}={xsrf}"},
                # A browser neither pings nor caps message size; Streamlit's own frontend
                # offers per-message deflate, which the websockets default also does.
                ping_interval=None, max_size=None, proxy=None,
                open_timeout=self.timeout) as ws:
            self.ws = ws
            reader = asyncio.create_task(self._read())
            try:
                await self._rerun("open page")
                await self._pause()
                await self._set_widget("image_source", string_value="Upload")
                await self._rerun("choose Upload")
                await self._pause()
                await self._upload()
                for move in range(self.moves):
                    await self._pause()
                    await self._move_slider(self.sliders[move % len(self.sliders)])
                self.finished = True
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        self.http.close()

    async def _read(self) -> None:
        """Parse every ForwardMsg as it arrives; None in the inbox says the socket closed."""
        try:
            async for raw in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self.inbox.put_nowait((time.perf_counter(), msg))
        except ConnectionClosed:
            pass
        self.inbox.put_nowait((time.perf_counter(), None))

    async def _pause(self) -> None:
        await asyncio.sleep(self.think * float(self.rng.uniform(0.5, 1.5)))

    async def _send(self, msg: BackMsg) -> float:
        started = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        return started

    def _client_state(self, msg: BackMsg, fragment_id: str = "") -> None:
        """Fill msg.rerun_script as the frontend does: page, its hash, every widget's value."""
        state = msg.rerun_script
        state.page_name = self.page
        state.page_script_hash = self.page_hash
        state.widget_states.widgets.extend(self.states.values())
        if fragment_id:
            state.fragment_id = fragment_id

    async def _rerun(self, action: str, fragment_id: str = "") -> None:
        msg = BackMsg()
        self._client_state(msg, fragment_id)
        started = await self._send(msg)
        await self._until(action, started, lambda m: self._finished(m, action))

    async def _until(self, action: str, started: float, done) -> ForwardMsg:
        """Handle ForwardMsgs until `done(msg)` is true; time the action from `started`."""
        deadline = started + self.timeout
        while True:
            try:
                at, msg = await asyncio.wait_for(self.inbox.get(),
                                                 max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                raise StudentError(f"timeout: {action} on {self.page} took over "
                                   f"{self.timeout:.0f} s") from None
            if msg is None:
                raise StudentError(f"disconnected during {action} on {self.page}")
            self._handle(msg, action)
            if done(msg):
                if action in ACTIONS:
                    self.samples.append(Sample(self.index, self.page, action, at - started))
                return msg

    def _finished(self, msg: ForwardMsg, action: str) -> bool:
        if msg.WhichOneof("type") != "script_finished":
            return False
        if msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            raise StudentError(f"compile error during {action} on {self.page}")
        # A run stopped early for a rerun is followed by the run that counts.
        return msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN

    def _handle(self, msg: ForwardMsg, action: str) -> None:
        """Learn the session, page hash and widgets; raise on exceptions and error boxes."""
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            if msg.new_session.initialize.session_id:
                self.session_id = msg.new_session.initialize.session_id
        elif kind == "navigation":
            # With st.navigation the page that ran is named here (new_session names the
            # router); the frontend sends this hash back, or every rerun lands on the default
            # page.
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "page_not_found":
            raise StudentError(f"page not found: {self.page}")
        elif kind == "session_event" and \
                msg.session_event.WhichOneof("type") == "script_compilation_exception":
            raise StudentError(f"script compilation exception during {action} on {self.page}")
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            etype = element.WhichOneof("type")
            if etype == "exception":
                e = element.exception
                raise StudentError(f"exception during {action} on {self.page}: {e.type}: "
                                   f"{e.message[:300]}")
            if etype == "alert" and element.alert.format == element.alert.ERROR:
                raise StudentError(f"error box during {action} on {self.page}: "
                                   f"{element.alert.body[:300]}")
            proto = getattr(element, etype) if etype else None
            widget_id = getattr(proto, "id", "")
            if widget_id.startswith("$$ID-"):
                key = widget_id.split("-", 2)[2]  # "$$ID-<hash>-<user key>"
                self.widgets[key] = (etype, proto, msg.delta.fragment_id)

    def _widget(self, key: str, kind: str) -> tuple[object, str]:
        found = self.widgets.get(key)
        if found is None or found[0] != kind:
            known = ", ".join(f"{k} ({v[0]})" for k, v in sorted(self.widgets.items()))
            raise StudentError(f"no {kind} with key {key!r} on {self.page} (widgets: {known})")
        return found[1], found[2]

    async def _set_widget(self, key: str, **value) -> str:
        """Remember a widget's new value (sent with every rerun); return its fragment id."""
        proto, fragment_id = self._widget(key, "radio" if "string_value" in value else "slider")
        self.states[proto.id] = WidgetState(id=proto.id, **value)
        return fragment_id

    async def _upload(self) -> None:
        """Ask for an upload URL, PUT the JPEG there, rerun with the file uploader's state."""
        uploader, _ = self._widget("image_upload", "file_uploader")
        name = f"student-{self.index:02d}.jpg"
        data = student_image(self.index)
        msg = BackMsg()
        request_id = uuid.uuid4().hex
        msg.file_urls_request.request_id = request_id
        msg.file_urls_request.file_names.append(name)
        msg.file_urls_request.session_id = self.session_id
        started = await self._send(msg)
        answer = await self._until("file URLs", started, lambda m: (
            m.WhichOneof("type") == "file_urls_response"
            and m.file_urls_response.response_id == request_id))
        if answer.file_urls_response.error_msg:
            raise StudentError(f"upload refused: {answer.file_urls_response.error_msg}")
        urls = answer.file_urls_response.file_urls[0]
        put = await asyncio.to_thread(
            self.http.put, self.base + urls.upload_url, timeout=self.timeout,
            files={"file": (name, data, "image/jpeg")}, headers={"X-Xsrftoken": self.xsrf})
        if put.status_code != 204:
            raise StudentError(f"upload PUT answered {put.status_code}: {put.text[:200]}")
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id,
                                file_urls=FileURLs(file_id=urls.file_id,
                                                   upload_url=urls.upload_url,
                                                   delete_url=urls.delete_url))
        self.states[uploader.id] = WidgetState(
            id=uploader.id, file_uploader_state_value=FileUploaderState(uploaded_file_info=[info]))
        rerun = BackMsg()
        self._client_state(rerun)
        await self._send(rerun)
        await self._until("upload", started, lambda m: self._finished(m, "upload"))

    async def _move_slider(self, key: str) -> None:
        """One step right (left at the maximum), as an arrow key on the thumb does."""
        slider, fragment_id = self._widget(key, "slider")
        sent = self.states.get(slider.id)
        values = (list(sent.double_array_value.data) if sent else
                  list(slider.value) if slider.set_value else list(slider.default))
        value = values[0] + slider.step
        if value > slider.max + 1e-9:
            value = values[0] - slider.step
        self.states[slider.id] = WidgetState(id=slider.id,
                                             double_array_value=DoubleArray(data=[value]))
        await self._rerun("slider move", fragment_id)


class MemorySampler(threading.Thread):
    """Samples VmRSS of a process and all its descendants until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in _tree(self.pid)))
            self.halt.wait(self.interval)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in children.read_text().split()]
    return found


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the server started inside the block, then restore them."""
    before = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _class(base: str, pages: list[str], sliders: dict[str, list[str]], *, students: int,
                 moves: int, think: float, ramp: float, timeout: float,
                 seconds: float) -> list[Student]:
    """Run every student, each arriving at its share of `ramp`, all stopped after `seconds`."""
    class_ = [Student(i, base, pages[i % len(pages)], sliders[pages[i % len(pages)]],
                      moves=moves, think=think, timeout=timeout) for i in range(students)]

    async def attend(student: Student) -> None:
        await asyncio.sleep(ramp * student.index / max(1, students))
        await student.run()

    tasks = [asyncio.create_task(attend(s)) for s in class_]
    done, cut = await asyncio.wait(tasks, timeout=seconds)
    for task in cut:  # the time limit: students close their sockets and leave
        task.cancel()
    await asyncio.gather(*cut, return_exceptions=True)
    for student, task in zip(class_, tasks):
        if task in done and task.exception() is not None:
            error = task.exception()
            student.error = (str(error) if isinstance(error, StudentError)
                             else f"student {student.index}: {type(error).__name__}: {error}")
    return class_


def run_setting(label: str, overrides: dict[str, str], pages: list[str],
                sliders: dict[str, list[str]], *, students: int, moves: int, think: float,
                ramp: float, timeout: float, seconds: float) -> Outcome:
    """One fresh server with `overrides` in its environment, one class against it.

    Args:
        label: the setting's name in the table.
        overrides: environment variables for the server (e.g. SEGLAB_THREADS_PER_REQUEST).
        pages: url paths the students are spread over.
        sliders: slider keys to move, per page.
        students: how many students.
        moves: slider moves per student.
        think: mean seconds between a student's actions.
        ramp: seconds over which the students arrive.
        timeout: seconds one action may take.
        seconds: the time limit of the whole class.

    Returns:
        An :class:`Outcome`.

    Example:
        >>> run_setting("default", {}, ["crf"], SLIDERS, students=3, moves=2,   # doctest: +SKIP
        ...             think=0.5, ramp=1, timeout=120, seconds=120).errors
        []
    """
    outcome = Outcome(label, overrides, students)
    with environment(overrides), server.serve() as base:
        outcome.cold_start = base.started_in
        sampler = MemorySampler(base.process.pid)
        sampler.start()
        started = time.perf_counter()
        try:
            class_ = asyncio.run(_class(base, pages, sliders, students=students, moves=moves,
                                        think=think, ramp=ramp, timeout=timeout,
                                        seconds=seconds))
        finally:
            outcome.wall = time.perf_counter() - started
            sampler.halt.set()
            sampler.join()
        log = base.log_text()
    outcome.peak_rss_mb = sampler.peak_kb / 1024
    outcome.finished = sum(s.finished for s in class_)
    outcome.samples = [sample for s in class_ for sample in s.samples]
    outcome.errors = [s.error for s in class_ if s.error]
    outcome.loads = dict(Counter(f"{m[1]} on {m[2]}" for m in LOADED.finditer(log)))
    if "Traceback (most recent call last)" in log:
        outcome.errors.append("the server printed a traceback:\n" + log[-3000:])
    return outcome


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation) of `values`; nan when there are none."""
    return float(np.percentile(values, q)) if values else float("nan")


def table(outcomes: list[Outcome]) -> str:
    """The settings side by side: p50/p95 seconds per action (all pages, then per page)."""
    width = 20

    def cell(values: list[float]) -> str:
        if not values:
            return f"{'—':>{width}}"
        return f"{percentile(values, 50):7.2f} / {percentile(values, 95):6.2f} s".rjust(width)

    pages = sorted({s.page for o in outcomes for s in o.samples})
    head = f"{'p50 / p95':26}" + "".join(f" {o.label[:width - 1]:>{width - 1}}" for o in outcomes)
    rows = [head, "-" * len(head)]
    for action in ACTIONS:
        rows.append(f"{action:26}" + "".join(
            cell([s.seconds for s in o.samples if s.action == action]) for o in outcomes))
        for page in pages if action in ("upload", "slider move") else []:
            rows.append(f"{'  on ' + page:26}" + "".join(
                cell([s.seconds for s in o.samples if s.action == action and s.page == page])
                for o in outcomes))
    rows.append("-" * len(head))

    def line(name: str, text) -> None:
        rows.append(f"{name:26}" + "".join(f"{text(o):>{width}}" for o in outcomes))

    line("students finished", lambda o: f"{o.finished} of {o.students}")
    line("errors", lambda o: str(len(o.errors)))
    line("model loads (max/model)", lambda o: f"{sum(o.loads.values())} "
         f"({max(o.loads.values(), default=0)}x)")
    line("server peak RSS", lambda o: f"{o.peak_rss_mb:,.0f} MB")
    line("wall time", lambda o: f"{o.wall:.0f} s")
    for o in outcomes:
        env = ", ".join(f"{k}={v}" for k, v in o.environment.items()) or "server's defaults"
        rows.append(f"{o.label}: {env}; loaded {dict(sorted(o.loads.items()))}")
    return "\n".join(rows)


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    """'LABEL:VAR=VALUE,VAR=VALUE' -> (label, {VAR: VALUE}); 'LABEL:' has no overrides."""
    label, _, assignments = text.partition(":")
    pairs = [a.split("=", 1) for a in assignments.split(",") if a.strip()]
    if not label or any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected LABEL:VAR=VALUE,VAR=VALUE, got {text!r}")
    return label, {name.strip(): value.strip() for name, value in pairs}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status (1 on errors or a repeated load)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40, help="concurrent students")
    parser.add_argument("--seconds", type=float, default=300,
                        help="time limit of each class; students still working then leave")
    parser.add_argument("--moves", type=int, default=3, help="slider moves per student")
    parser.add_argument("--pages", nargs="+", default=list(SLIDERS), choices=list(SLIDERS),
                        help="pages the students are spread over")
    parser.add_argument("--slider", action="append", default=[], metavar="PAGE=KEY,KEY",
                        help="slider keys to move on a page, in turn")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds a student waits between actions")
    parser.add_argument("--ramp", type=float, default=5.0,
                        help="seconds over which the students arrive")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds one action may take before it counts as an error")
    parser.add_argument("--setting", action="append", type=parse_setting, default=[],
                        metavar="LABEL:VAR=VALUE,...",
                        help="a server environment to measure (repeat to compare; "
                             "default: one run with the current environment)")
    parser.add_argument("--json", type=Path, help="also write every sample and error here")
    args = parser.parse_args(argv)
    sliders = dict(SLIDERS)
    for item in args.slider:
        page, _, keys = item.partition("=")
        if page not in sliders or not keys:
            parser.error(f"--slider wants PAGE=KEY,KEY with PAGE in {list(sliders)}")
        sliders[page] = keys.split(",")

    outcomes = []
    for label, overrides in args.setting or [("default", {})]:
        outcome = run_setting(label, overrides, args.pages, sliders, students=args.students,
                              moves=args.moves, think=args.think, ramp=args.ramp,
                              timeout=args.timeout, seconds=args.seconds)
        outcomes.append(outcome)
        print(f"{label}: {len(outcome.samples)} actions, {outcome.finished} of {args.students} "
              f"students finished in {outcome.wall:.0f} s, {len(outcome.errors)} errors",
              file=sys.stderr, flush=True)
        for error in outcome.errors:
            print(f"{label}: ERROR {error[:400]}", file=sys.stderr)
    print(table(outcomes))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    repeated = any(n > 1 for o in outcomes for n in o.loads.values())
    return 1 if repeated or any(o.errors for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
