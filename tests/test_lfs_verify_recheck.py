"""A failed verify is retried through a fresh batch call (the object may exist by then).

Several uploaders of one object race on giftless: while one writes it, another's verify
answers 422. git-lfs then asks the batch API again, which reports the object present (or
hands out new actions); lfsreg's queue does the same, in its one retry loop.
"""

from __future__ import annotations

import random

import pytest
from fault_lfs import Fault, FaultLfsServer
from lfsclient import lfs_store, stage

from lfsreg.lfs.retry import RetryPolicy

SLEEPS: list[float] = []
POLICY = RetryPolicy(max_retries=3, sleep=SLEEPS.append)


@pytest.fixture
def server():
    SLEEPS.clear()
    with FaultLfsServer() as srv:
        yield srv


def test_verify_422_then_batch_reports_the_object_present(server, tmp_path):
    store = lfs_store(server, tmp_path, policy=POLICY, jobs=2)
    obj, path = stage(store, random.Random(1).randbytes(3000))
    server.script(obj.oid, "verify", [Fault.status(422, message="object is being written")])
    store.upload([(obj, path)])
    # One upload, the refused verify, then a fresh batch call that finds the object stored
    # (and the upload's own check that the server holds it).
    assert server.attempts(obj.oid, "upload") == 1
    assert server.attempts(obj.oid, "verify") == 1
    assert server.batch_calls == 3
    assert server.has_object(obj.oid)
