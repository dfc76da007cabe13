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
from collections.abc import Iterator

import torch

__all__ = ["MAX_CONCURRENT", "THREADS_ALONE", "THREADS_PER_REQUEST", "configure", "heavy",
           "log"]


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

_slots = threading.BoundedSemaphore(MAX_CONCURRENT) if MAX_CONCURRENT else None
_held = threading.local()  # how deep this thread is inside heavy() blocks
_running = [0]  # heavy computations admitted and not finished, all threads
_running_lock = threading.Lock()


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


@contextlib.contextmanager
def heavy() -> Iterator[None]:
    """Run a block of heavy computation once one of ``SEGLAB_MAX_CONCURRENT`` slots is free.

    Only pure computation belongs inside: a thread that holds a slot must not wait for a
    Streamlit cache lock, because the thread holding that lock may be waiting for a slot.
    Nested blocks in one thread take one slot. Inside, torch uses ``SEGLAB_THREADS_ALONE``
    threads if no other heavy block was running when this one was admitted, else
    ``SEGLAB_THREADS_PER_REQUEST``; the thread gets the per-request cap back afterwards.

    Example:
        >>> with heavy():
        ...     _ = torch.ones(3).sum()
    """
    depth = getattr(_held, "depth", 0)
    if depth:  # already inside: same slot, same threads
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth = depth
        return
    with _slots if _slots is not None else contextlib.nullcontext():
        with _running_lock:
            _running[0] += 1
            alone = _running[0] == 1
        _held.depth = 1
        if THREADS_PER_REQUEST:
            torch.set_num_threads(THREADS_ALONE if alone else THREADS_PER_REQUEST)
        try:
            yield
        finally:
            _held.depth = 0
            with _running_lock:
                _running[0] -= 1
            if THREADS_PER_REQUEST:
                torch.set_num_threads(THREADS_PER_REQUEST)
