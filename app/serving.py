"""Serving a whole class from one process: CPU threads per request and heavy work at once.

Streamlit runs every session's script in a thread of its own, a new one for each run. Torch
spreads an operation over an OpenMP team whose size is a per-thread setting: a new thread
takes it, at its first parallel operation, from the process-wide value that
``torch.set_num_threads`` last stored, and keeps it. By default that value is one thread per
core, so forty students' script threads would each start a team as large as the machine, and
OpenMP's workers spin while they wait for work: on 2 cores that made forward passes 15-100x
slower. :func:`configure` stores the cap once per script run, before any model runs, so that
every script thread (also the fragment reruns, which skip the router) gets a team of at most
``SEGLAB_THREADS_PER_REQUEST`` threads; :func:`heavy` admits at most
``SEGLAB_MAX_CONCURRENT`` heavy computations (model loads, predictions) at once and queues
the others, so that forty requests do not each hold a share of the CPU and of the memory
for their activations at the same time. A heavy computation that starts while no other one
runs (an instructor alone with the app, a quiet moment in class) takes
``SEGLAB_THREADS_ALONE`` threads instead: on 2 cores that halves a slider's wait when nobody
else needs the second core.

Settings (environment variables of `streamlit run`, read at import):

* ``SEGLAB_THREADS_PER_REQUEST``: torch threads for each script thread (default 1; 0 keeps
  torch's default, one per core).
* ``SEGLAB_MAX_CONCURRENT``: heavy computations running at once (default: the number of
  cores this process may use, divided by the threads per request; 0 means no limit).
* ``SEGLAB_THREADS_ALONE``: torch threads for a heavy computation that starts alone (default:
  the number of cores; ignored when ``SEGLAB_THREADS_PER_REQUEST`` is 0).

``bench/load.py`` measures a class of 40 students with and without these settings. On the
2-core development machine all three settings it tried gave the same throughput (the work, not
the contention, was the limit); the caps bound what one request can take, not the total.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator

import torch

__all__ = ["MAX_CONCURRENT", "THREADS_ALONE", "THREADS_PER_REQUEST", "Gate", "configure", "gate",
           "heavy", "log", "released"]


def _setting(name: str, default: int) -> int:
    """A non-negative integer from the environment (`default` when unset or empty)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number ≥ 0 (0 = no limit), got {text!r}")
    return int(text)


CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
THREADS_PER_REQUEST = _setting("SEGLAB_THREADS_PER_REQUEST", 1)
MAX_CONCURRENT = _setting("SEGLAB_MAX_CONCURRENT", max(1, CORES // max(1, THREADS_PER_REQUEST)))
THREADS_ALONE = _setting("SEGLAB_THREADS_ALONE", CORES) or CORES

#: SegLab's server log ("SegLab: loaded fcn8s on cpu"); :func:`configure` sends it to stderr.
log = logging.getLogger("seglab")

_held = threading.local()  # how deep this thread is inside heavy() blocks


class Gate:
    """First come, first served admission of at most `slots` heavy computations at once.

    A waiting computation knows its place in the queue (`position`), so that the page can say
    "2 computations ahead of yours"; a thread that waits for another one's result gives its
    slot back meanwhile (`released`), so that a slot is never held by a thread that waits for
    a thread that waits for a slot.
    """

    def __init__(self, slots: int):
        self.slots = slots  # 0: no limit
        self.running = 0  # admitted and not finished, every thread
        self.waiting: list[object] = []  # tickets in order of arrival
        self.admitted = 0  # since the process started (the load test reads it)
        self._condition = threading.Condition()

    def _free(self, ticket: object) -> bool:
        return (not self.slots or self.running < self.slots) and self.waiting[0] is ticket

    def acquire(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.25) -> bool:
        """Wait for a slot; `on_wait(ahead)` is called while waiting (and may raise, e.g.
        Streamlit's rerun exception, which takes the ticket out of the queue). Returns True
        when the computation starts alone (no other heavy computation running)."""
        ticket = object()
        with self._condition:
            self.waiting.append(ticket)
            try:
                while not self._free(ticket):
                    if on_wait is not None:
                        ahead = self.waiting.index(ticket) + self.running
                        self._condition.release()
                        try:
                            on_wait(ahead)
                        finally:
                            self._condition.acquire()
                    self._condition.wait(poll)
            finally:
                self.waiting.remove(ticket)
                self._condition.notify_all()
            self.running += 1
            self.admitted += 1
            return self.running == 1

    def release(self) -> None:
        with self._condition:
            self.running -= 1
            self._condition.notify_all()

    def position(self) -> tuple[int, int]:
        """(running, waiting) right now."""
        with self._condition:
            return self.running, len(self.waiting)


gate = Gate(MAX_CONCURRENT)


def configure() -> None:
    """Apply the thread cap and route SegLab's log to the server's output (every run; cheap).

    The router calls this at the top of every script run. The call stores the cap where
    every later script thread's first parallel operation reads it, and applies it to this
    thread at once.

    Example:
        >>> configure()  # doctest: +SKIP
    """
    if THREADS_PER_REQUEST:
        torch.set_num_threads(THREADS_PER_REQUEST)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # Streamlit's own handlers would print every line twice


def _notice() -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """What a Streamlit script thread shows while its computation waits for a slot: a line
    that says how many computations are ahead of it; (None, no-op) outside a script run."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # the library alone, e.g. a notebook
        return None, lambda: None
    if get_script_run_ctx(suppress_warning=True) is None:
        return None, lambda: None
    import streamlit as st

    placeholder = []

    def on_wait(ahead: int) -> None:
        if not placeholder:
            placeholder.append(st.empty())
        text = "computation is" if ahead == 1 else "computations are"
        placeholder[0].info(f"⏳ Queued: the server is busy with the class's work; {ahead} "
                            f"{text} running or waiting before yours. Yours starts as soon as a "
                            "place is free.")

    return on_wait, lambda: placeholder[0].empty() if placeholder else None


def _spinner(text: str | None):
    """A spinner that says what runs, in a script thread; nothing elsewhere."""
    if not text:
        return contextlib.nullcontext()
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:
        return contextlib.nullcontext()
    if get_script_run_ctx(suppress_warning=True) is None:
        return contextlib.nullcontext()
    import streamlit as st

    return st.spinner(text)


@contextlib.contextmanager
def heavy(text: str | None = None) -> Iterator[None]:
    """Run a block of heavy computation once one of ``SEGLAB_MAX_CONCURRENT`` places is free.

    Every heavy computation of the app goes through here: model loads, predictions, live
    training, clips, held-out tables, CRFs, decoding of large uploads. Places are given in
    order of arrival; while a student's computation waits, the page says how many are ahead
    of it, and then shows a spinner with `text` while it runs. Nested blocks in one thread
    take one place. Inside, torch uses ``SEGLAB_THREADS_ALONE`` threads if no other heavy
    block was running when this one was admitted, else ``SEGLAB_THREADS_PER_REQUEST``; the
    thread gets the per-request cap back afterwards. A block that must wait for another
    thread's result (the same computation, started first by another student) waits inside
    :func:`released`.

    Example:
        >>> with heavy():
        ...     _ = torch.ones(3).sum()
    """
    depth = getattr(_held, "depth", 0)
    if depth:  # already inside: same place, same threads
        _held.depth = depth + 1
        try:
            with _spinner(text):
                yield
        finally:
            _held.depth = depth
        return
    on_wait, clear = _notice()
    try:
        alone = gate.acquire(on_wait)
    finally:
        clear()
    _held.depth = 1
    if THREADS_PER_REQUEST:
        torch.set_num_threads(THREADS_ALONE if alone else THREADS_PER_REQUEST)
    try:
        with _spinner(text):
            yield
    finally:
        _held.depth = 0
        gate.release()
        if THREADS_PER_REQUEST:
            torch.set_num_threads(THREADS_PER_REQUEST)


@contextlib.contextmanager
def released() -> Iterator[None]:
    """Give this thread's place back for the duration of a wait (for another thread's
    result), and take a place again afterwards; nothing outside a heavy block."""
    depth = getattr(_held, "depth", 0)
    if not depth:
        yield
        return
    _held.depth = 0
    gate.release()
    try:
        yield
    finally:
        gate.acquire()
        _held.depth = depth
