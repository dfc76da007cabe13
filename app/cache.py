"""The app's two caches: results by bytes, shared resources by count, each computed once.

Streamlit's own caches bound entries, not bytes, and wait for an identical computation
another session started while holding nothing back, which deadlocks against the admission
gate (a thread holding one of its places waits for a thread that waits for a place). These
two are small and do what a class needs:

* :func:`memo` keeps each result *pickled*: every caller gets its own copy (a page can never
  change another student's result), and the size of an entry is known exactly. All memoised
  results of the process share one budget, ``SEGLAB_CACHE_MB`` (default 1024 MB); the least
  recently used go first. An entry larger than a quarter of the budget is not kept.
* :func:`shared` keeps one object for everybody (a model): callers must never change it
  (``seg.models.sharing_weights`` makes a private copy), and each function keeps at most
  `max_entries` of them.

Both compute a missing value once: the second student asking for it waits for the first
one's run (their place in the gate given back meanwhile) instead of running it again. With
`gate`, the computation runs inside ``serving.heavy``: queued behind the class's
other heavy work, then shown with a spinner that says what runs. Arguments whose name starts
with ``_`` are not part of the key (pass the picture's hash beside it), as with Streamlit.

Example:
    >>> @memo(gate="Adding…")
    ... def add(a: int, b: int) -> int:
    ...     return a + b
    >>> add(1, 2), add(1, 2)
    (3, 3)
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from app import serving

__all__ = ["BUDGET", "Store", "clear_all", "memo", "shared", "store"]

T = TypeVar("T")
_MISSING = object()  # what a lookup returns for a key it does not hold (None is a value)

BUDGET = serving._setting("SEGLAB_CACHE_MB", 1024) * 1_000_000


class _Flight:
    """One computation under way: who runs it, and an event set when it ends."""

    def __init__(self):
        self.owner = threading.get_ident()
        self.done = threading.Event()


class Store:
    """Pickled results under one byte budget, least recently used evicted first."""

    def __init__(self, budget: int):
        self.budget = budget
        self.bytes = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._flights: dict[tuple, _Flight] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        if len(data) > self.budget // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= len(old)
            self._entries[key] = data
            self.bytes += len(data)
            while self.bytes > self.budget:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= len(evicted)

    def clear(self, prefix: tuple = ()) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[:len(prefix)] == prefix]:
                self.bytes -= len(self._entries.pop(key))

    def compute_once(self, key: tuple, run: Callable[[], T], lookup: Callable[[], Any],
                     save: Callable[[T], None]) -> T:
        """`lookup()`, else `run()` and `save()` it, with one run at a time per key: a caller
        that finds the key under way waits for it (its gate place given back), then looks
        again (and runs it itself if that run failed or was interrupted)."""
        while True:
            found = lookup()
            if found is not _MISSING:
                self.hits += 1
                return found
            with self._lock:
                flight = self._flights.get(key)
                mine = flight is None
                if mine:
                    flight = self._flights[key] = _Flight()
            if mine:
                self.misses += 1
                try:
                    value = run()
                    save(value)
                    return value
                finally:
                    with self._lock:
                        del self._flights[key]
                    flight.done.set()
            if flight.owner == threading.get_ident():  # a recursive call for its own key
                return run()
            with serving.released(), _waiting_spinner():
                flight.done.wait()


#: Every memoised result of the process.
store = Store(BUDGET)


def _waiting_spinner():
    return serving._spinner("Another student asked for the same computation a moment ago; "
                            "waiting for its result…")


def _key(function: Callable, signature: inspect.Signature, args, kwargs) -> tuple:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    kept = tuple((name, value) for name, value in bound.arguments.items()
                 if not name.startswith("_"))
    digest = hashlib.blake2b(pickle.dumps(kept, protocol=5), digest_size=16).hexdigest()
    return (_identity(function), digest)


def _identity(function: Callable) -> tuple:
    # A page's functions are made anew at every rerun: their file and line name them.
    code = function.__code__
    return (code.co_filename, function.__qualname__, code.co_firstlineno)


def memo(function: Callable | None = None, *, gate: str | bool = False):
    """Cache a function's pickled results under the process's byte budget (see module doc).

    `gate`: run a missing value inside ``serving.heavy``: True for work that shows its own
    progress, or the text of the spinner that says what runs. The decorated function gets
    ``.clear()``.
    """
    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs) -> T:
            key = _key(function, signature, args, kwargs)

            def run() -> T:
                if not gate:
                    return function(*args, **kwargs)
                with serving.heavy(gate if isinstance(gate, str) else None):
                    return function(*args, **kwargs)

            pickled: list[bytes] = []

            def lookup():
                data = store.get(key)
                return _MISSING if data is None else pickle.loads(data)

            def save(value) -> None:
                pickled.append(pickle.dumps(value, protocol=5))
                store.put(key, pickled[0])

            value = store.compute_once(key, run, lookup, save)
            # The caller gets a copy, never the object the cache keeps or another caller got.
            return pickle.loads(pickled[0]) if pickled else value

        wrapper.clear = lambda: store.clear((_identity(function),))
        return wrapper

    return decorate(function) if function is not None else decorate


class _Shared:
    """One function's shared objects, at most `max_entries`, oldest use evicted first."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.values: OrderedDict[tuple, Any] = OrderedDict()
        self.lock = threading.Lock()


_shared_tables: dict[tuple, _Shared] = {}
_shared_lock = threading.Lock()
_resources = Store(0)  # only its one-run-per-key bookkeeping


def shared(function: Callable | None = None, *, max_entries: int = 8,
           gate: str | bool = False):
    """Keep one object per argument set for every session (a model): never to be changed by
    a caller. `gate` as for :func:`memo`. The decorated function gets ``.clear()``."""
    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(function)
        identity = _identity(function)
        with _shared_lock:
            table = _shared_tables.setdefault(identity, _Shared(max_entries))

        @functools.wraps(function)
        def wrapper(*args, **kwargs) -> T:
            key = _key(function, signature, args, kwargs)

            def run() -> T:
                if not gate:
                    return function(*args, **kwargs)
                with serving.heavy(gate if isinstance(gate, str) else None):
                    return function(*args, **kwargs)

            def lookup():
                with table.lock:
                    if key in table.values:
                        table.values.move_to_end(key)
                        return table.values[key]
                return _MISSING

            def save(value) -> None:
                with table.lock:
                    table.values[key] = value
                    while len(table.values) > table.max_entries:
                        table.values.popitem(last=False)

            return _resources.compute_once(key, run, lookup, save)

        def clear() -> None:
            with table.lock:
                table.values.clear()

        wrapper.clear = clear
        return wrapper

    return decorate(function) if function is not None else decorate


def clear_all() -> None:
    """Forget every memoised result and shared object of the process (tests, a weights change)."""
    store.clear()
    with _shared_lock:
        tables = list(_shared_tables.values())
    for table in tables:
        with table.lock:
            table.values.clear()
