"""The deadline watchdog (lfsreg/watchdog.py): one lazy daemon thread, calls at their time, once; cancel works."""

from __future__ import annotations

import os
import threading
import time

from lfsreg.watchdog import Watchdog


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_no_thread_until_something_is_scheduled():
    Watchdog("wd-lazy")
    assert _threads("wd-lazy") == []


def test_a_call_runs_once_at_its_time_on_a_daemon_thread():
    dog = Watchdog("wd-once")
    calls: list[tuple[float, str]] = []
    done = threading.Event()
    start = time.monotonic()

    def fire() -> None:
        calls.append((time.monotonic(), threading.current_thread().name))
        done.set()

    watch = dog.schedule(start + 0.3, fire)
    assert watch.pending
    assert done.wait(5)
    time.sleep(0.3)  # a second call would come now
    assert len(calls) == 1
    at, thread = calls[0]
    assert at >= start + 0.3 and thread == "wd-once"
    assert not watch.pending and dog.pending() == 0
    assert all(t.daemon for t in _threads("wd-once"))


def test_calls_run_in_time_order_and_an_earlier_one_wakes_the_sleeping_thread():
    dog = Watchdog("wd-order")
    order: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    dog.schedule(now + 30, lambda: order.append("late"))  # the thread sleeps until then...
    time.sleep(0.1)
    dog.schedule(now + 0.4, lambda: (order.append("second"), done.set()))
    dog.schedule(now + 0.2, lambda: order.append("first"))  # ...and is woken for these
    assert done.wait(5)
    assert order == ["first", "second"]
    assert dog.pending() == 1


def test_a_cancelled_call_never_runs():
    dog = Watchdog("wd-cancel")
    fired: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    watch = dog.schedule(now + 0.2, lambda: fired.append("cancelled"))
    dog.schedule(now + 0.4, done.set)
    watch.cancel()
    watch.cancel()  # twice: no effect
    assert not watch.pending and dog.pending() == 1
    assert done.wait(5)
    assert fired == []


def test_a_call_that_raises_does_not_stop_the_others(caplog):
    dog = Watchdog("wd-raise")
    done = threading.Event()
    now = time.monotonic()

    def broken() -> None:
        raise RuntimeError("boom")

    dog.schedule(now + 0.1, broken)
    dog.schedule(now + 0.2, done.set)
    assert done.wait(5)
    assert "a scheduled call failed" in caplog.text


def test_many_deadlines_one_thread_and_cancelled_ones_do_not_pile_up():
    dog = Watchdog("wd-many")
    before = len(threading.enumerate())
    now = time.monotonic()
    watches = [dog.schedule(now + 60 + i / 1000, lambda: None) for i in range(2000)]
    assert len(_threads("wd-many")) == 1
    assert len(threading.enumerate()) == before + 1
    for watch in watches:
        watch.cancel()  # finished requests: their entries are dropped without waiting 60 s
    assert dog.pending() == 0
    assert len(dog._due) < 64  # compacted: a long-lived process does not keep every finished request's entry


def test_due_calls_all_run_on_the_one_thread():
    dog = Watchdog("wd-burst")
    threads: set[str] = set()
    count = 0
    lock = threading.Lock()
    done = threading.Event()

    def fire() -> None:
        nonlocal count
        with lock:
            threads.add(threading.current_thread().name)
            count += 1
            if count == 500:
                done.set()

    now = time.monotonic()
    for i in range(500):
        dog.schedule(now + 0.05 + i / 10000, fire)
    assert done.wait(10)
    assert threads == {"wd-burst"} and len(_threads("wd-burst")) == 1


def test_a_forked_child_gets_its_own_thread():
    dog = Watchdog("wd-fork")
    dog.schedule(time.monotonic() + 60, lambda: None)  # the parent's thread runs
    pid = os.fork()
    if pid == 0:  # the child has no watchdog thread: its first call starts one
        done = threading.Event()
        dog.schedule(time.monotonic() + 0.05, done.set)
        os._exit(0 if done.wait(5) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
