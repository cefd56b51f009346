"""An LFS transfer of many objects starts no thread per request: the watchdog fires every deadline.

Every batch, upload, verify and download request has an overall deadline
(lfsreg/lfs/deadline.py). A timer thread per request was costly and, under coverage, could kill
a thread that started at the same moment; the deadlines now share lfsreg.watchdog's one thread.
Threads are counted by who starts them (``threading.Thread.start`` patched in-process): the
fault server's connection threads and the transfer's worker pool are not lfsreg's own starts.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest
from fault_lfs import FaultLfsServer
from lfsclient import lfs_store, stage

OBJECTS = 24


@pytest.fixture
def starts(monkeypatch) -> list[str]:
    """The module that started each thread started from lfsreg's own code while the test runs."""
    seen: list[str] = []
    lock = threading.Lock()
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        module = sys._getframe(1).f_globals.get("__name__", "")
        if module.startswith("lfsreg"):
            with lock:
                seen.append(module)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return seen


def test_uploading_and_downloading_many_objects_starts_at_most_the_watchdog_thread(tmp_path, starts):
    blobs = [os.urandom(1000 + i) for i in range(OBJECTS)]
    with FaultLfsServer() as server:
        store = lfs_store(server, tmp_path / "up", jobs=4)
        objects = [stage(store, data) for data in blobs]
        store.upload(objects)
        fresh = lfs_store(server, tmp_path / "down", jobs=4)
        fresh.fetch([obj for obj, _ in objects])
        requests = len(server.requests)
        assert all(server.read_object(obj.oid) == data for (obj, _), data in zip(objects, blobs, strict=True))
    assert all(fresh.cache.valid(obj) for obj, _ in objects)  # downloaded and verified
    assert requests >= 2 * OBJECTS  # an upload and a download each, at least: each one with a deadline
    assert [m for m in starts if m != "lfsreg.watchdog"] == []
    assert len(starts) <= 1  # the watchdog's thread, unless an earlier test started it already
