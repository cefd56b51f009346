"""lfsreg's Git LFS client against the fault-injecting server (tests/fault_lfs/).

The real LFS servers (giftless, dulwich) are exercised end to end elsewhere; this file pins
down the client's behaviour under each failure the batch/basic-transfer specs describe.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random

import pytest
from fault_lfs import Fault, FaultLfsServer
from lfsclient import lfs_store, stage

from lfsreg.credentials import Credential
from lfsreg.errors import BlobNotFound, LfsregError, NotFoundError, RetriableError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.retry import RetryPolicy

SLEEPS: list[float] = []
POLICY = RetryPolicy(max_retries=4, sleep=SLEEPS.append)
_store = functools.partial(lfs_store, policy=POLICY, jobs=4)


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _obj(data: bytes) -> LfsObject:
    return LfsObject(hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def server():
    SLEEPS.clear()
    with FaultLfsServer() as srv:
        yield srv


def test_upload_download_roundtrip_many_objects_batched(server, tmp_path):
    store = _store(server, tmp_path)
    blobs = [_data(1000 + i, seed=i) for i in range(130)]
    items = [stage(store, b) for b in blobs]
    assert len(store.missing([o for o, _ in items])) == 130
    store.upload(items)
    assert all(server.has_object(o.oid) for o, _ in items)
    assert store.missing([o for o, _ in items]) == []
    bodies = [b for b in server.batch_bodies if isinstance(b, dict)]
    assert max(len(b["objects"]) for b in bodies) == 100  # batches of at most 100
    first = bodies[0]
    assert first["transfers"] == ["basic"] and first["hash_algo"] == "sha256" and first["ref"] == {"name": "refs/heads/main"}
    # a fresh cache downloads everything back, verified
    other = _store(server, tmp_path / "other")
    objs = [o for o, _ in items]
    other.fetch(objs)
    for obj, data in zip(objs, blobs, strict=True):
        with other.open(obj) as f:
            assert f.read() == data


def test_already_present_objects_are_not_uploaded(server, tmp_path):
    data = _data(5000)
    server.add_object(data)
    store = _store(server, tmp_path)
    obj, path = stage(store, data)
    store.upload([(obj, path)])
    assert server.requests_for(oid=obj.oid, operation="upload") == []


@pytest.mark.parametrize("code", [500, 502, 503])
def test_download_retries_5xx(server, tmp_path, code):
    data = _data(20000)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.status(code), Fault.status(code)])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    assert server.attempts(oid, "download") == 3
    assert SLEEPS[:2] == [0.25, 0.5]  # exponential backoff from 250 ms


def test_batch_retries_and_retry_after_on_429(server, tmp_path):
    data = _data(3000)
    server.add_object(data)
    server.script_batch([Fault.status(429, retry_after=2), Fault.status(503)])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    assert SLEEPS[0] == 2.0  # Retry-After honoured
    assert server.batch_calls == 3


def test_upload_retry_after_http_date(server, tmp_path):
    from datetime import datetime, timedelta, timezone

    store = _store(server, tmp_path)
    obj, path = stage(store, _data(4000))
    server.script(obj.oid, "upload", [Fault.status(429, retry_after=datetime.now(timezone.utc) + timedelta(seconds=3))])
    store.upload([(obj, path)])
    assert server.has_object(obj.oid)
    assert 0 < SLEEPS[0] <= 3.5


def test_resume_after_connection_cut(server, tmp_path):
    data = _data(3_000_000)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.cut(1_500_000)])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    offsets = server.resume_offsets(oid)
    assert len(offsets) == 1 and 0 < offsets[0] <= 1_500_000
    with store.open(_obj(data)) as f:
        assert hashlib.sha256(f.read()).hexdigest() == oid


@pytest.mark.parametrize("fault", [Fault.ignore_range(), Fault.range_not_satisfiable()])
def test_resume_falls_back_to_full_download(server, tmp_path, fault):
    data = _data(2_000_000)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.cut(1_000_000), fault])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    with store.open(_obj(data)) as f:
        assert f.read() == data


def test_corrupt_download_is_rejected_and_fetched_again(server, tmp_path):
    data = _data(50000)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.corrupt()])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    assert server.attempts(oid, "download") == 2
    with store.open(_obj(data)) as f:
        assert f.read() == data


def test_corrupt_cache_entry_is_detected_and_refetched(server, tmp_path):
    data = _data(40000)
    oid = server.add_object(data)
    store = _store(server, tmp_path)
    obj = _obj(data)
    store.fetch([obj])
    store.fetch([obj])
    assert server.attempts(oid, "download") == 1  # the second fetch is free
    path = store.cache.path(obj)
    with open(path, "r+b") as f:
        f.write(b"\x00")
    store.fetch([obj])
    assert server.attempts(oid, "download") == 2
    with store.open(obj) as f:
        assert f.read() == data


@pytest.mark.parametrize("style", ["expires_at", "hidden"])
def test_expired_actions_are_requested_again(server, tmp_path, style):
    data = _data(8000)
    oid = server.add_object(data)
    server.script(oid, "batch", [Fault.expired(style)])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    assert server.attempts(oid, "batch") == 2


def test_negative_expires_in_is_requested_again_before_use(server, tmp_path):
    data = _data(8000)
    oid = server.add_object(data)
    server.script(oid, "batch", [Fault.expired("expires_in", expires_in=-5)])
    store = _store(server, tmp_path)
    store.fetch([_obj(data)])
    assert server.attempts(oid, "batch") == 2
    assert server.attempts(oid, "download") == 1  # the stale href was never used


def test_401_then_next_credential_source(tmp_path):
    with FaultLfsServer(credentials=("ci", "s3cret"), action_auth=True) as server:
        data = _data(6000)
        server.add_object(data)
        creds = [Credential("ci", "wrong", "netrc"), Credential("ci", "s3cret", "environment")]
        store = _store(server, tmp_path, creds)
        store.fetch([_obj(data)])
        storage = [r for r in server.requests if r.operation == "download"]
        assert storage and all(r.auth_scheme != "Basic" for r in storage)  # Basic never sent to storage
        basic = FaultLfsServer.redacted_basic("ci", "s3cret")
        assert all(r.header("authorization") != basic for r in storage)


def test_401_without_credentials_is_a_clear_error(tmp_path):
    with FaultLfsServer(credentials=("ci", "s3cret")) as server:
        data = _data(600)
        server.add_object(data)
        store = _store(server, tmp_path)
        with pytest.raises(LfsregError) as info:
            store.fetch([_obj(data)])
        assert "401" in str(info.value) and "s3cret" not in str(info.value)
        assert info.value.hint and "LFSREG_USERNAME" in info.value.hint


def test_403_on_push_reported(tmp_path):
    with FaultLfsServer() as server:
        server.set_read_only("repo", "batch")
        store = _store(server, tmp_path)
        obj, path = stage(store, _data(700))
        with pytest.raises(LfsregError) as info:
            store.upload([(obj, path)])
        assert "403" in str(info.value)


def test_per_object_error_reported_by_oid(server, tmp_path):
    data = _data(900)
    oid = server.add_object(data)
    server.script(oid, "batch", [Fault.object_error(410, "removed by the owner")])
    store = _store(server, tmp_path)
    with pytest.raises(BlobNotFound) as info:
        store.fetch([_obj(data)])
    assert oid in str(info.value) and "removed by the owner" in str(info.value)
    assert set(info.value.failures) == {oid}


def test_retries_give_up(server, tmp_path):
    data = _data(900)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.status(500)] * 10)
    store = _store(server, tmp_path)
    with pytest.raises(RetriableError) as info:
        store.fetch([_obj(data)])
    assert info.value.status == 500
    assert server.attempts(oid, "download") == POLICY.max_retries + 1
    assert not os.path.exists(store.cache.path(_obj(data)))


def test_verify_action_called_after_upload(server, tmp_path):
    store = _store(server, tmp_path)
    obj, path = stage(store, _data(1234))
    server.script(obj.oid, "verify", [Fault.status(500)])
    store.upload([(obj, path)])
    # The failed verify is followed by a fresh batch call, which finds the object stored; the
    # third is the upload's check that the server holds it.
    assert server.attempts(obj.oid, "verify") == 1 and server.batch_calls == 3


def test_404_on_a_transfer_href_is_reported_by_oid(server, tmp_path):
    data = _data(700)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.status(404, message="gone from storage")])
    store = _store(server, tmp_path)
    with pytest.raises(NotFoundError) as info:
        store.fetch([_obj(data)])
    assert oid in str(info.value) and "404" in str(info.value)
