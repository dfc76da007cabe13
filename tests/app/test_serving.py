"""app.serving: the thread cap and the admission of heavy work, with real threads."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from app import serving


def test_heavy_admits_at_most_max_concurrent_blocks_at_once():
    inside, most, lock = 0, 0, threading.Lock()

    def work():
        nonlocal inside, most
        with serving.heavy():
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with lock:
                inside -= 1

    assert serving.MAX_CONCURRENT >= 1  # the default: one slot per core at one thread each
    threads = [threading.Thread(target=work) for _ in range(4 * serving.MAX_CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert 1 <= most <= serving.MAX_CONCURRENT


def test_nested_heavy_blocks_in_one_thread_take_one_slot():
    done = threading.Event()

    def nested(depth: int) -> None:
        if depth == 0:
            done.set()
            return
        with serving.heavy():
            nested(depth - 1)

    # More levels than there are slots: a second acquire per level would deadlock.
    thread = threading.Thread(target=nested, args=(serving.MAX_CONCURRENT + 2,))
    thread.start()
    thread.join(5)
    assert done.is_set()


def test_configure_caps_torch_threads_for_script_threads():
    before = torch.get_num_threads()
    try:
        serving.configure()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        if serving.THREADS_PER_REQUEST:
            assert torch.get_num_threads() == serving.THREADS_PER_REQUEST
            assert seen == [serving.THREADS_PER_REQUEST]
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not serving.THREADS_PER_REQUEST, reason="torch's own thread count")
def test_a_computation_alone_takes_every_core_and_one_beside_another_its_cap():
    seen = {}
    first_inside, second_done = threading.Event(), threading.Event()

    def first():
        with serving.heavy():
            seen["alone"] = torch.get_num_threads()
            first_inside.set()
            second_done.wait(5)
        seen["first after"] = torch.get_num_threads()

    def second():
        first_inside.wait(5)
        with serving.heavy():
            seen["beside"] = torch.get_num_threads()
            with serving.heavy():  # nested: the same threads
                seen["nested"] = torch.get_num_threads()
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    if serving.MAX_CONCURRENT == 1:  # one slot: the second waits, then runs alone
        threads[1] = threading.Thread(target=lambda: (first_inside.wait(5), second_done.set()))
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["alone"] == serving.THREADS_ALONE
    assert seen["first after"] == serving.THREADS_PER_REQUEST
    if serving.MAX_CONCURRENT > 1:
        assert seen["beside"] == seen["nested"] == serving.THREADS_PER_REQUEST


@pytest.mark.parametrize("text, expected", [("", 3), ("  ", 3), ("2", 2), ("0", 0)])
def test_settings_read_whole_numbers(monkeypatch, text, expected):
    monkeypatch.setenv("SEGLAB_TEST_SETTING", text)
    assert serving._setting("SEGLAB_TEST_SETTING", 3) == expected


@pytest.mark.parametrize("text", ["-1", "two", "1.5"])
def test_settings_refuse_anything_else_with_the_variable_named(monkeypatch, text):
    monkeypatch.setenv("SEGLAB_TEST_SETTING", text)
    with pytest.raises(ValueError, match="SEGLAB_TEST_SETTING"):
        serving._setting("SEGLAB_TEST_SETTING", 3)
