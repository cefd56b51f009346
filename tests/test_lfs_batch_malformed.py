"""Malformed batch API answers (lfsreg/lfs/batch.py), one per field, from a real HTTP server.

Each answer is sent by the fault server (tests/fault_lfs/) as the body of a 200 to a real
batch call made by lfsreg's store. The client must refuse it with a :class:`ProtocolError`
naming what is wrong, without retrying a server that answers nonsense, and without moving a
byte: nothing is uploaded, nothing lands in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

import pytest
from fault_lfs import Fault, FaultLfsServer
from lfsclient import NO_WAIT, lfs_store

from lfsreg.errors import ProtocolError, RetriableError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings

DATA = b"a layer for malformed batch answers\n" * 40
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))
OTHER = "b" * 64
POLICY = NO_WAIT


@pytest.fixture
def server():
    # Hand-written answers carry no action tokens: the storage routes take any request.
    with FaultLfsServer(action_auth=False) as srv:
        yield srv


def _answer(server: FaultLfsServer, body: Any, times: int = 1) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    server.script_batch([Fault.raw(200, raw, content_type="application/vnd.git-lfs+json")] * times)


def _entry(server: FaultLfsServer, **fields: Any) -> dict[str, Any]:
    href = server.storage_url(OBJ.oid)
    return {"oid": OBJ.oid, "size": OBJ.size, "actions": {"download": {"href": href}}, **fields}


def _download_refused(server: FaultLfsServer, tmp_path: Path, body: Any, *needles: str) -> ProtocolError:
    server.add_object(DATA)
    _answer(server, body)
    store = lfs_store(server, tmp_path)
    with pytest.raises(ProtocolError) as info:
        store.fetch([OBJ])
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert server.batch_calls == 1  # nonsense is not retried
    assert server.attempts(OBJ.oid, "download") == 0  # and no href it named was used
    assert not os.path.exists(store.cache.path(OBJ))
    return info.value


def _upload_refused(server: FaultLfsServer, tmp_path: Path, body: Any, *needles: str) -> ProtocolError:
    _answer(server, body)
    store = lfs_store(server, tmp_path)
    with store.staging() as (f, path):
        f.write(DATA)
    with pytest.raises(ProtocolError) as info:
        store.upload([(OBJ, path)])
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert server.batch_calls == 1
    assert server.attempts(OBJ.oid, "upload") == 0
    assert not server.has_object(OBJ.oid)
    return info.value


# -- the response as a whole --------------------------------------------------------------------
@pytest.mark.parametrize("body", [{}, {"objects": {}}, [], {"objects": None}], ids=["empty", "map", "list", "null"])
def test_a_response_without_an_objects_list_is_refused(server, tmp_path, body):
    _download_refused(server, tmp_path, body, "no 'objects' list")


def test_a_transfer_adapter_other_than_basic_is_refused(server, tmp_path):
    _download_refused(server, tmp_path, {"transfer": "tus", "objects": [_entry(server)]}, "transfer adapter 'tus'", "only 'basic'")


def test_a_transfer_adapter_that_is_not_a_string_is_named_by_type(server, tmp_path):
    _download_refused(server, tmp_path, {"transfer": ["basic"], "objects": [_entry(server)]}, "transfer adapter list")


def test_a_hash_algorithm_other_than_sha256_is_refused(server, tmp_path):
    _upload_refused(server, tmp_path, {"hash_algo": "sha512", "objects": []}, "hash algorithm 'sha512'", "not sha256")


def test_an_explicit_basic_adapter_and_sha256_are_accepted(server, tmp_path):
    server.add_object(DATA)
    _answer(server, {"transfer": "basic", "hash_algo": "sha256", "objects": [_entry(server)]})
    store = lfs_store(server, tmp_path)
    store.fetch([OBJ])
    with store.open(OBJ) as f:
        assert f.read() == DATA


def test_a_body_that_is_not_json_is_refused(server, tmp_path):
    _download_refused(server, tmp_path, b"<html>login</html>", "not JSON")


def test_nesting_too_deep_for_the_parser_is_refused(server, tmp_path):
    _download_refused(server, tmp_path, b"[" * 100_000 + b"]" * 100_000, "not JSON")


class _CuttingBatchServer(socketserver.ThreadingTCPServer):
    """Answers batch calls without a length, closing the connection after ``cuts[i]`` bytes.

    The ``i``-th call gets the first ``cuts[i]`` bytes of ``body`` (``None``: all of it), then
    the connection closes: a response with no length to check it against, cut short.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, body: bytes, cuts: list[int | None]) -> None:
        super().__init__(("127.0.0.1", 0), _CuttingHandler)
        self.body, self.cuts, self.calls = body, cuts, 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}/repo/info/lfs"


class _CuttingHandler(socketserver.StreamRequestHandler):
    server: _CuttingBatchServer

    def handle(self) -> None:
        length = 0
        self.rfile.readline()
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        self.rfile.read(length)
        cut = self.server.cuts[self.server.calls]
        self.server.calls += 1
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.git-lfs+json\r\nConnection: close\r\n\r\n"
        self.wfile.write(head + self.server.body[:cut])


@pytest.mark.parametrize("where", ["inside-a-string", "between-tokens", "before-the-body"])
def test_a_body_cut_short_without_a_length_is_retried(server, tmp_path, where):
    server.add_object(DATA)
    body = json.dumps({"objects": [_entry(server)]}).encode()
    cut = {"inside-a-string": body.index(b"/storage/") + 3, "between-tokens": body.index(b'"size"'), "before-the-body": 0}[where]
    batch = _CuttingBatchServer(body, [cut, None])
    threading.Thread(target=batch.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        store = HttpLfsStore(batch.url, [], ObjectCache(str(tmp_path / "cache")), HttpSettings(policy=POLICY, timeout=10))
        store.fetch([OBJ])
    finally:
        batch.shutdown()
        batch.server_close()
    assert batch.calls == 2  # the cut answer was asked for again, not taken for a broken server
    with store.open(OBJ) as f:
        assert f.read() == DATA


def test_a_body_that_keeps_stopping_short_gives_up_retriably(server, tmp_path):
    _answer(server, b'{"objects": [', times=POLICY.max_retries + 1)
    store = lfs_store(server, tmp_path)
    with pytest.raises(RetriableError, match="ended early"):
        store.fetch([OBJ])
    assert server.batch_calls == POLICY.max_retries + 1
    assert not os.path.exists(store.cache.path(OBJ))


# -- the objects ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry",
    [{"size": 1}, {"oid": 7}, {"oid": "A" * 64}, {"oid": "ab" * 31}, "just a string"],
    ids=["no-oid", "int-oid", "uppercase-oid", "short-oid", "not-a-map"],
)
def test_an_object_without_a_well_formed_oid_is_refused(server, tmp_path, entry):
    _download_refused(server, tmp_path, {"objects": [entry]}, "objects[0]", "malformed oid")


def test_an_answer_for_an_object_that_was_not_requested_is_refused(server, tmp_path):
    entry = {**_entry(server), "oid": OTHER}
    _download_refused(server, tmp_path, {"objects": [entry]}, "objects[0]", "not requested")


def test_a_requested_object_left_unanswered_is_refused(server, tmp_path):
    err = _download_refused(server, tmp_path, {"objects": []}, "did not answer for 1 object")
    assert OBJ.oid in str(err)


@pytest.mark.parametrize("error", [{"code": "404"}, {"code": True}, ["404"]], ids=["string-code", "bool-code", "list"])
def test_an_object_error_without_an_integer_code_is_refused(server, tmp_path, error):
    _download_refused(server, tmp_path, {"objects": [{"oid": OBJ.oid, "size": OBJ.size, "error": error}]}, "malformed error")


def test_an_object_error_without_a_message_still_names_the_object(server, tmp_path):
    server.add_object(DATA)
    _answer(server, {"objects": [{"oid": OBJ.oid, "size": OBJ.size, "error": {"code": 404, "message": 42}}]})
    store = lfs_store(server, tmp_path)
    with pytest.raises(Exception) as info:
        store.fetch([OBJ])
    assert type(info.value).__name__ == "BlobNotFound"
    assert OBJ.oid in str(info.value) and "code 404" in str(info.value)
    assert server.attempts(OBJ.oid, "download") == 0


def test_an_object_error_code_outside_http_statuses_is_a_protocol_error(server, tmp_path):
    server.add_object(DATA)
    _answer(server, {"objects": [{"oid": OBJ.oid, "size": OBJ.size, "error": {"code": 7, "message": "odd"}}]})
    store = lfs_store(server, tmp_path)
    with pytest.raises(ProtocolError, match=r"odd \(code 7\)"):
        store.fetch([OBJ])


def test_actions_that_are_not_a_map_are_refused(server, tmp_path):
    _download_refused(server, tmp_path, {"objects": [_entry(server, actions=["download"])]}, "'actions' is not an object")


def test_a_download_answer_with_neither_action_nor_error_is_refused(server, tmp_path):
    _download_refused(server, tmp_path, {"objects": [_entry(server, actions={"upload": {"href": "http://x/"}})]}, "neither a download")


def test_unknown_actions_are_ignored(server, tmp_path):
    server.add_object(DATA)
    entry = _entry(server)
    entry["actions"]["teleport"] = "not even an action"
    _answer(server, {"objects": [entry]})
    store = lfs_store(server, tmp_path)
    store.fetch([OBJ])
    assert server.attempts(OBJ.oid, "download") == 1


# -- one action ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "needle"),
    [
        ("a string", "without an href"),
        ({"header": {}}, "without an href"),
        ({"href": 42}, "without an href"),
        ({"href": "ftp://127.0.0.1/x"}, "not an http(s) URL"),
        ({"href": "http://[::1/x"}, "not an http(s) URL"),
        ({"href": "http://127.0.0.1/a b"}, "not an http(s) URL"),
        ({"href": "http://127.0.0.1/x", "header": ["Authorization"]}, "not a map of strings"),
        ({"href": "http://127.0.0.1/x", "header": {"X-Count": 3}}, "not a map of strings"),
        ({"href": "http://127.0.0.1/x", "header": {"Bad Name": "v"}}, "malformed name or value"),
        ({"href": "http://127.0.0.1/x", "header": {"X-Split": "a\r\nInjected: 1"}}, "malformed name or value"),
        ({"href": "http://127.0.0.1/x", "expires_at": "next tuesday"}, "bad expires_at"),
    ],
    ids=["string", "no-href", "int-href", "ftp", "bad-ipv6", "space", "header-list", "header-int", "header-name", "header-crlf", "expires"],
)
def test_a_malformed_download_action_is_refused_naming_the_field(server, tmp_path, action, needle):
    _download_refused(server, tmp_path, {"objects": [_entry(server, actions={"download": action})]}, "objects[0] download", needle)


def test_a_malformed_upload_action_is_refused_before_any_upload(server, tmp_path):
    action = {"href": server.storage_url(OBJ.oid), "header": {"Authorization": "x\n"}}
    _upload_refused(server, tmp_path, {"objects": [{"oid": OBJ.oid, "size": OBJ.size, "actions": {"upload": action}}]}, "upload")


def test_a_malformed_verify_action_is_refused_before_any_upload(server, tmp_path):
    actions = {"upload": {"href": server.storage_url(OBJ.oid)}, "verify": {"href": "file:///etc/passwd"}}
    _upload_refused(server, tmp_path, {"objects": [{"oid": OBJ.oid, "size": OBJ.size, "actions": actions}]}, "verify", "http(s)")


def test_an_expires_at_in_the_past_is_requested_again(server, tmp_path):
    server.add_object(DATA)
    stale = _entry(server)
    stale["actions"]["download"]["expires_at"] = "2001-01-01T00:00:00Z"
    _answer(server, {"objects": [stale]})  # then the server's own (fresh) answer
    store = lfs_store(server, tmp_path)
    store.fetch([OBJ])
    assert server.batch_calls == 2
    assert server.attempts(OBJ.oid, "download") == 1  # the stale href was never used
