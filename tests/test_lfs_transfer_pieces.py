"""LFS transfers move bodies in large pieces: each piece costs a progress event, a hash update and a write.

Issue 8 asks for benchmarks no worse than before its redesign, whose progress events and
deadline checks cost more per piece: an upload body read 16 KiB at a time (urllib3's block
size for a file-like body) made a 256 MiB HTTP push 1.1-1.3x slower in CPU. Uploads are sent
in pieces of ``UPLOAD_CHUNK`` (256 KiB), and a download that arrives in small pieces (giftless
answers with a chunked body of a few KiB per chunk) is written and reported 1 MiB at a time.
Counted here by progress events, which follow the pieces one for one.
"""

from __future__ import annotations

import hashlib
import random

from fault_lfs import Fault, FaultLfsServer

from lfsreg.credentials import Credential
from lfsreg.digest import CHUNK
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.progress import ProgressEvent

SIZE = 3 << 20
LARGE = 256 << 10  # lfsreg.lfs.transfer.UPLOAD_CHUNK


def _data(n: int) -> bytes:
    return random.Random(8).randbytes(n)


def _moves(events: list[ProgressEvent], action: str) -> list[int]:
    return [e.delta for e in events if e.action == action and e.delta > 0]


def _upload(store: HttpLfsStore, data: bytes) -> tuple[LfsObject, list[ProgressEvent]]:
    with store.staging() as (out, path):
        out.write(data)
    obj = LfsObject(hashlib.sha256(data).hexdigest(), len(data))
    events: list[ProgressEvent] = []
    store.upload([(obj, path)], events.append)
    return obj, events


def test_upload_body_goes_in_large_pieces(tmp_path):
    data = _data(SIZE)
    with FaultLfsServer() as server:
        store = HttpLfsStore(server.endpoint(), [], ObjectCache(str(tmp_path / "cache")), HttpSettings(timeout=10))
        obj, events = _upload(store, data)
        assert server.has_object(obj.oid)
    moves = _moves(events, "upload")
    assert sum(moves) == SIZE
    assert len(moves) <= SIZE // LARGE + 1, f"{len(moves)} pieces for {SIZE} bytes"


def test_upload_cut_and_retried_still_sends_every_byte(tmp_path):
    """A retried upload reads its file again from the start, in the same pieces."""
    data = _data(SIZE)
    with FaultLfsServer() as server:
        store = HttpLfsStore(server.endpoint(), [], ObjectCache(str(tmp_path / "cache")), HttpSettings(timeout=10))
        server.script(hashlib.sha256(data).hexdigest(), "upload", [Fault.status(503)])
        obj, events = _upload(store, data)
        assert server.has_object(obj.oid)
    assert sum(e.delta for e in events if e.action == "upload") == SIZE  # the failed attempt's bytes taken back


def test_download_of_a_chunked_body_is_written_in_large_pieces(tmp_path, git_http_server, git_http_repo):
    """Through nginx, giftless's downloads arrive as a chunked body of a few KiB per chunk."""
    data = _data(SIZE)
    creds = [Credential(git_http_server.user, git_http_server.password, "test")]
    up = HttpLfsStore(git_http_repo.lfs_url, creds, ObjectCache(str(tmp_path / "up")), HttpSettings(timeout=10))
    obj, _ = _upload(up, data)
    down = HttpLfsStore(git_http_repo.lfs_url, creds, ObjectCache(str(tmp_path / "down")), HttpSettings(timeout=10))
    events: list[ProgressEvent] = []
    down.fetch([obj], events.append)
    with down.open(obj) as f:
        assert f.read() == data
    moves = _moves(events, "download")
    assert sum(moves) == SIZE
    assert len(moves) <= SIZE // CHUNK + 2, f"{len(moves)} pieces for {SIZE} bytes"
