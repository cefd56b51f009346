"""An upload is checked before a ref may point at it (lfsreg/lfs/store.py CachedLfsStore.upload).

giftless's local storage writes an object in place: while a second pusher of the same layer
uploads, the first pusher's verified copy reads as missing (seen as a flaky
"LFS objects missing after upload" with four concurrent pushers). Here the fault server says
so, deterministically: the object's entry in the batch answer after the upload is a 404.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fault_lfs import Fault, FaultLfsServer
from lfsclient import lfs_store, stage

from lfsreg.errors import BlobNotFound
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.http import HttpLfsStore

DATA = os.urandom(50_000)
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))


@pytest.fixture
def server():
    with FaultLfsServer() as srv:
        yield srv


def _upload(server: FaultLfsServer, tmp_path: Path) -> HttpLfsStore:
    store = lfs_store(server, tmp_path)
    store.upload([stage(store, DATA)])
    return store


def test_an_object_missing_right_after_its_upload_is_sent_again(server, tmp_path):
    # batch entries: the upload's (normal), the check's (missing), then normal ones: the second
    # upload finds the object there (nothing to send) and the second check confirms it
    server.script(OBJ.oid, "batch", [Fault.ok(), Fault.object_error(404)])
    store = _upload(server, tmp_path)
    assert server.read_object(OBJ.oid) == DATA
    assert len(server.requests_for(OBJ.oid, "batch")) >= 3  # upload, check (missing), upload again, check
    with store.open(OBJ) as f:
        assert f.read() == DATA


def test_an_object_still_missing_after_the_second_upload_is_an_error(server, tmp_path):
    server.script(OBJ.oid, "batch", [Fault.ok(), Fault.object_error(404), Fault.ok(), Fault.object_error(404)])
    with pytest.raises(BlobNotFound, match="missing after upload"):
        _upload(server, tmp_path)
