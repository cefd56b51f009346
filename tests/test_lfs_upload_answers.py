"""What an upload does with each kind of batch answer (lfsreg/lfs/queue.py, transfer.py).

Answers git-lfs servers really give, sent by the fault server (tests/fault_lfs/): an upload
action without a verify action (the verify step is skipped), only a download action for an
object the server already holds (nothing is sent), an object error in the batch answer that
follows a failed upload (the upload ends with that error, by oid). The server's storage and
request log show what was sent.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from fault_lfs import Fault, FaultLfsServer
from lfsclient import NO_WAIT, lfs_store, stage

from lfsreg.errors import LfsregError, NotFoundError
from lfsreg.formats.lfs_pointer import LfsObject

DATA = os.urandom(50_000)
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))
POLICY = NO_WAIT


@pytest.fixture
def server():
    # Answers written by hand below carry no action tokens: the storage routes take any request.
    with FaultLfsServer(action_auth=False) as srv:
        yield srv


def _answer(server: FaultLfsServer, actions: dict) -> None:
    body = json.dumps({"objects": [{"oid": OBJ.oid, "size": OBJ.size, "actions": actions}]}).encode()
    server.script_batch([Fault.raw(200, body, content_type="application/vnd.git-lfs+json")], operation="upload")


def test_an_upload_without_a_verify_action_is_not_verified(server, tmp_path):
    _answer(server, {"upload": {"href": server.storage_url(OBJ.oid)}})
    store = lfs_store(server, tmp_path)
    store.upload([stage(store, DATA)])
    assert server.read_object(OBJ.oid) == DATA
    assert server.attempts(OBJ.oid, "upload") == 1
    assert server.attempts(OBJ.oid, "verify") == 0
    with store.open(OBJ) as f:  # and the uploaded file is kept in the cache
        assert f.read() == DATA


def test_only_a_download_action_means_the_server_holds_it(server, tmp_path):
    server.add_object(DATA)
    _answer(server, {"download": {"href": server.storage_url(OBJ.oid)}})
    store = lfs_store(server, tmp_path)
    assert store.missing([OBJ]) == []
    _answer(server, {"download": {"href": server.storage_url(OBJ.oid)}})
    store.upload([stage(store, DATA)])
    assert server.attempts(OBJ.oid, "upload") == 0
    assert server.attempts(OBJ.oid, "download") == 0


def test_an_object_error_after_a_failed_upload_ends_the_upload(server, tmp_path):
    store = lfs_store(server, tmp_path)
    server.script(OBJ.oid, "upload", [Fault.status(500)])
    server.script(OBJ.oid, "batch", [Fault.ok(), Fault.object_error(507, "quota exceeded")])
    with pytest.raises(LfsregError) as info:
        store.upload([stage(store, DATA)])
    assert OBJ.oid in str(info.value) and "quota exceeded (code 507)" in str(info.value)
    assert server.attempts(OBJ.oid, "upload") == 1  # no second upload into a full quota
    assert not server.has_object(OBJ.oid)


def test_a_cache_entry_of_the_wrong_size_is_fetched_again(server, tmp_path):
    server.add_object(DATA)
    store = lfs_store(server, tmp_path)
    store.fetch([OBJ])
    path = store.cache.path(OBJ)
    with open(path, "r+b") as f:
        f.truncate(OBJ.size // 2)  # e.g. a disk that filled while another tool copied it
    store.fetch([OBJ])
    assert server.attempts(OBJ.oid, "download") == 2
    with store.open(OBJ) as f:
        assert f.read() == DATA


@pytest.mark.parametrize("body", [b"[1, 2]", b'"just text"', b"\xff\xfe"], ids=["list", "string", "bytes"])
def test_an_error_status_whose_body_is_no_message_keeps_its_class(server, tmp_path, body):
    server.add_object(DATA)
    server.script_batch([Fault.raw(404, body, content_type="application/vnd.git-lfs+json")])
    store = lfs_store(server, tmp_path)
    with pytest.raises(NotFoundError) as info:
        store.fetch([OBJ])
    assert str(info.value).endswith("HTTP 404")  # the class from the status; no message to add
    assert server.attempts(OBJ.oid, "download") == 0
