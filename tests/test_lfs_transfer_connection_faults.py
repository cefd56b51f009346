"""Connection refused, reset and timed out on each transfer request (lfsreg/lfs/transfer.py).

The fault server (tests/fault_lfs/) hands out real hrefs; a closed port refuses, a scripted
cut resets, a scripted delay outlasts the client's socket timeout. Each failure of one attempt
must be retried (uploads and verifies through a fresh batch call, as git-lfs does); one that
persists must end in a retriable error naming the object, with nothing half-done left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest
from fault_lfs import Fault, FaultLfsServer
from lfsclient import NO_WAIT, lfs_store, stage

from lfsreg.errors import RetriableError
from lfsreg.formats.lfs_pointer import LfsObject

DATA = os.urandom(200_000)
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))
POLICY = NO_WAIT
# The socket timeout of the timeout tests, and a delay far past it: every other answer of a
# local server comes well within SHORT even on a loaded machine, a SLOW one never does.
SHORT, SLOW = 2.0, 12.0


@pytest.fixture
def server():
    # Answers written by hand below carry no action tokens: the storage routes take any request.
    with FaultLfsServer(action_auth=False) as srv:
        yield srv


@pytest.fixture
def closed_port() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (bound, then closed): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the closed port answered"
    return f"http://127.0.0.1:{port}"


def _answer(server: FaultLfsServer, actions: dict[str, dict[str, str]], times: int = 1) -> None:
    body = json.dumps({"objects": [{"oid": OBJ.oid, "size": OBJ.size, "actions": actions}]}).encode()
    server.script_batch([Fault.raw(200, body, content_type="application/vnd.git-lfs+json")] * times)


# -- refused ----------------------------------------------------------------------------------------
def test_download_refused_every_time_is_a_retriable_error_naming_the_object(server, tmp_path, closed_port):
    server.add_object(DATA)
    _answer(server, {"download": {"href": f"{closed_port}/storage/{OBJ.oid}"}})
    store = lfs_store(server, tmp_path)
    with pytest.raises(RetriableError) as info:
        store.fetch([OBJ])
    assert OBJ.oid in str(info.value) and "connection refused" in str(info.value)
    assert "127.0.0.1" in str(info.value)  # the href, without its query
    assert server.batch_calls == 1  # a download retries the same href
    assert server.attempts(OBJ.oid, "download") == 0
    assert not os.path.exists(store.cache.path(OBJ))


def test_upload_refused_asks_the_batch_api_again_and_lands(server, tmp_path, closed_port):
    _answer(server, {"upload": {"href": f"{closed_port}/storage/{OBJ.oid}"}})
    store = lfs_store(server, tmp_path)
    store.upload([stage(store, DATA)])
    assert server.batch_calls == 3  # the refused href was replaced by the server's own; then the upload's check
    assert server.attempts(OBJ.oid, "upload") == 1
    assert server.read_object(OBJ.oid) == DATA


def test_upload_refused_every_time_is_a_retriable_error(server, tmp_path, closed_port):
    _answer(server, {"upload": {"href": f"{closed_port}/storage/{OBJ.oid}"}}, times=POLICY.max_retries + 1)
    store = lfs_store(server, tmp_path)
    with pytest.raises(RetriableError) as info:
        store.upload([stage(store, DATA)])
    assert f"upload of sha256:{OBJ.oid}" in str(info.value) and "connection refused" in str(info.value)
    assert server.batch_calls == POLICY.max_retries + 1
    assert not server.has_object(OBJ.oid)


def test_verify_refused_is_settled_by_a_fresh_batch_call(server, tmp_path, closed_port):
    _answer(server, {"upload": {"href": server.storage_url(OBJ.oid)}, "verify": {"href": f"{closed_port}/verify"}})
    store = lfs_store(server, tmp_path)
    store.upload([stage(store, DATA)])
    assert server.read_object(OBJ.oid) == DATA
    assert server.attempts(OBJ.oid, "upload") == 1  # the second batch call found it stored: no second upload
    assert server.batch_calls == 3  # the upload, the fresh one after the refused verify, the upload's check


# -- reset -------------------------------------------------------------------------------------------
def test_upload_reset_mid_body_is_uploaded_again(server, tmp_path):
    store = lfs_store(server, tmp_path)
    server.script(OBJ.oid, "upload", [Fault.cut(50_000)])
    store.upload([stage(store, DATA)])
    assert server.attempts(OBJ.oid, "upload") == 2
    assert server.read_object(OBJ.oid) == DATA


def test_verify_reset_is_settled_by_a_fresh_batch_call(server, tmp_path):
    store = lfs_store(server, tmp_path)
    server.script(OBJ.oid, "verify", [Fault.cut()])
    store.upload([stage(store, DATA)])
    assert server.attempts(OBJ.oid, "verify") == 1 and server.attempts(OBJ.oid, "upload") == 1
    assert server.batch_calls == 3  # the upload, the fresh one after the cut verify, the upload's check
    assert server.read_object(OBJ.oid) == DATA


def test_download_reset_before_any_byte_is_fetched_again(server, tmp_path):
    server.add_object(DATA)
    server.script(OBJ.oid, "download", [Fault.cut(0)])
    store = lfs_store(server, tmp_path)
    store.fetch([OBJ])
    assert server.attempts(OBJ.oid, "download") == 2
    with store.open(OBJ) as f:
        assert f.read() == DATA


# -- timed out -----------------------------------------------------------------------------------
@pytest.mark.parametrize("operation", ["upload", "verify"])
def test_an_upload_side_request_that_times_out_is_retried(server, tmp_path, operation):
    store = lfs_store(server, tmp_path, timeout=SHORT)
    server.script(OBJ.oid, operation, [Fault.slow(SLOW)])
    store.upload([stage(store, DATA)])
    assert server.attempts(OBJ.oid, operation) == (2 if operation == "upload" else 1)
    assert server.read_object(OBJ.oid) == DATA


def test_a_download_that_times_out_before_its_headers_is_retried(server, tmp_path):
    server.add_object(DATA)
    server.script(OBJ.oid, "download", [Fault.slow(SLOW)])
    store = lfs_store(server, tmp_path, timeout=SHORT)
    store.fetch([OBJ])
    assert server.attempts(OBJ.oid, "download") == 2
    with store.open(OBJ) as f:
        assert f.read() == DATA


def test_a_download_that_times_out_every_time_gives_up_naming_the_timeout(server, tmp_path):
    server.add_object(DATA)
    server.script(OBJ.oid, "download", [Fault.slow(SLOW)] * (POLICY.max_retries + 1))
    store = lfs_store(server, tmp_path, timeout=SHORT)
    with pytest.raises(RetriableError, match=f"sent nothing for {SHORT:g} s") as info:
        store.fetch([OBJ])
    assert OBJ.oid in str(info.value)
    assert not os.path.exists(store.cache.path(OBJ))
