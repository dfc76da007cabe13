"""app.cache and app.serving's gate with real threads standing in for students: each result
computed once, every caller its own copy, the byte budget kept, places given in order of
arrival, and no deadlock between the gate and a computation another student started."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import torch

import seg
from app import cache, resources, serving


def run_all(targets, timeout: float = 60) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a student is still waiting: deadlock"


def test_forty_students_asking_for_the_same_result_compute_it_once_and_get_own_copies():
    calls = []

    @cache.memo(gate="Adding up…")
    def slow(n: int) -> list[int]:
        calls.append(n)
        time.sleep(0.2)
        return list(range(n))

    got = []
    run_all([lambda: got.append(slow(5)) for _ in range(40)])
    assert calls == [5] and len(got) == 40 and all(g == [0, 1, 2, 3, 4] for g in got)
    got[0].append("changed by one student")
    assert slow(5) == [0, 1, 2, 3, 4] and got[1] == [0, 1, 2, 3, 4]
    slow.clear()


def test_none_is_a_result_and_underscored_arguments_are_not_part_of_the_key():
    calls = []

    @cache.memo
    def nothing(key: str, _array) -> None:
        calls.append(key)

    nothing("a", np.zeros(3)), nothing("a", np.ones(3)), nothing("b", None)
    assert calls == ["a", "b"]


def test_the_store_keeps_its_byte_budget_least_recently_used_first():
    store = cache.Store(budget=4_000)
    for i in range(10):
        store.put(("k", i), bytes(900))
        store.get(("k", 0))  # the first one keeps being used
    assert store.bytes <= 4_000 and len(store) == 4
    assert store.get(("k", 0)) is not None and store.get(("k", 1)) is None
    store.put(("big",), bytes(1_001))  # over a quarter of the budget: not kept
    assert store.get(("big",)) is None


def test_places_are_given_in_order_of_arrival_and_waiters_know_how_many_are_ahead():
    gate = serving.Gate(1)
    gate.acquire()
    order, seen = [], {}

    def student(i: int) -> None:
        def on_wait(ahead: int) -> None:
            seen.setdefault(i, ahead)

        gate.acquire(on_wait, poll=0.01)
        order.append(i)
        gate.release()

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=student, args=(i,)))
        threads[-1].start()
        time.sleep(0.05)  # arrive one after the other
    time.sleep(0.1)
    gate.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert seen == {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}  # the running one, then those queued first


def test_students_holding_every_place_while_waiting_for_another_ones_result_do_not_deadlock():
    started = threading.Event()

    @cache.memo(gate=True)
    def shared_result() -> int:
        started.set()
        time.sleep(0.3)
        return 42

    got = []

    def holder() -> None:
        started.wait(5)
        with serving.heavy():  # every place taken by a student who then needs the result
            got.append(shared_result())

    def first() -> None:
        got.append(shared_result())

    # The first student's computation is admitted; the holders then fill every place and
    # wait for it. A waiter gives its place back, so a place is always there for the owner.
    run_all([first] + [holder] * (2 * max(1, serving.MAX_CONCURRENT)), timeout=20)
    assert got == [42] * (1 + 2 * max(1, serving.MAX_CONCURRENT))


def test_students_predicting_at_once_each_get_their_own_pictures_result_on_a_real_model():
    device = "cpu"
    pictures = {f"scene-{s}": seg.synthetic.scene(s, height=64, width=64).image
                for s in range(6)}
    serial = {key: seg.models.load("fcn8s").predict(image).labels for key, image in
              pictures.items()}
    resources.predict.clear()
    loads_before = cache._resources.misses
    results: dict[str, list] = {key: [] for key in pictures}

    def student(key: str) -> None:
        for _ in range(3):
            results[key].append(resources.predict("fcn8s", device, key, pictures[key]).labels)

    run_all([lambda k=k: student(k) for k in pictures] * 2)
    for key, labels in results.items():
        assert len(labels) == 6 and all(torch.equal(lab, serial[key]) for lab in labels), key
    assert cache._resources.misses - loads_before <= 1  # the model is loaded once, if at all
    assert len(pickle.dumps(resources.predict("fcn8s", device, "scene-0", pictures["scene-0"]))) \
        < 64 * 64 * 8 * 4  # compact: smaller than its float32 probabilities alone
