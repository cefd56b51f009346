"""The fault-injecting LFS server (tests/fault_lfs/) does what its scripts say.

These tests drive the server with plain ``requests`` -- never with lfsreg's client -- so that
lfsreg's own client tests can trust it; three more show that stock ``git-lfs`` accepts it as a
Git LFS server (push and pull, a resumed download after a scripted cut, expired actions).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import http.client
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from fault_lfs import LFS_MEDIA_TYPE, Fault, FaultKind, FaultLfsServer
from gitenv import isolated_git_env, run_git

LFS_HEADERS = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
CREDS = ("alice", "s3cret-pw")
TIMEOUT = 10


def blob(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic, non-repeating-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def batch(
    server: FaultLfsServer,
    operation: str,
    objects: list[dict[str, Any]],
    *,
    auth: tuple[str, str] | None = None,
    repo: str = "repo",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    body = {"operation": operation, "transfers": ["basic"], "objects": objects, "hash_algo": "sha256", **(extra or {})}
    return requests.post(server.batch_url(repo), data=json.dumps(body), headers=headers or LFS_HEADERS, auth=auth, timeout=timeout)


def action(server: FaultLfsServer, operation: str, data: bytes, name: str | None = None, **kw: Any) -> dict[str, Any]:
    """The ``name`` action (default: the operation's own) for ``data`` from a fresh batch call."""
    res = batch(server, operation, [{"oid": oid_of(data), "size": len(data)}], **kw)
    assert res.status_code == 200, res.text
    return res.json()["objects"][0]["actions"][name or operation]


def download(act: dict[str, Any], **headers: str) -> requests.Response:
    return requests.get(act["href"], headers={**act["header"], **headers}, timeout=TIMEOUT)


def upload(act: dict[str, Any], data: Any) -> requests.Response:
    headers = {**act["header"], "Content-Type": "application/octet-stream"}
    return requests.put(act["href"], data=data, headers=headers, timeout=TIMEOUT)


def verify(act: dict[str, Any], data: bytes) -> requests.Response:
    body = json.dumps({"oid": oid_of(data), "size": len(data)})
    return requests.post(act["href"], data=body, headers={**act["header"], **LFS_HEADERS}, timeout=TIMEOUT)


@pytest.fixture
def server():
    with FaultLfsServer() as srv:
        yield srv


@pytest.fixture
def auth_server():
    with FaultLfsServer(credentials=CREDS) as srv:
        yield srv


# -- the happy path, to the letter of batch.md / basic-transfers.md ------------------------------
def test_download_batch_response_shape(server):
    data = blob(3000)
    oid = server.add_object(data)
    missing = oid_of(b"not stored")
    res = batch(server, "download", [{"oid": oid, "size": len(data)}, {"oid": missing, "size": 10}])
    assert res.status_code == 200
    assert res.headers["Content-Type"] == LFS_MEDIA_TYPE
    doc = res.json()
    assert doc["transfer"] == "basic" and doc["hash_algo"] == "sha256"
    found, absent = doc["objects"]
    assert found["oid"] == oid and found["size"] == len(data) and found["authenticated"] is True
    act = found["actions"]["download"]
    assert act["href"] == server.storage_url(oid)
    assert act["header"]["Authorization"].startswith("RemoteAuth ")
    assert act["expires_in"] == server.action_expires_in
    assert "error" not in found
    assert absent == {"oid": missing, "size": 10, "error": {"code": 404, "message": "Object does not exist"}}

    got = download(act)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Length"] == str(len(data))
    assert server.attempts(oid, "batch") == 1 and server.attempts(oid, "download") == 1
    assert server.ranges(oid) == [None]


def test_upload_verify_round_trip_and_already_stored(server):
    data = blob(5000, seed=1)
    oid = oid_of(data)
    res = batch(server, "upload", [{"oid": oid, "size": len(data)}], extra={"ref": {"name": "refs/heads/main"}})
    entry = res.json()["objects"][0]
    assert set(entry["actions"]) == {"upload", "verify"}
    assert entry["actions"]["verify"]["href"] == server.verify_url
    # the verify token is not an upload token, and the object is not there yet
    assert verify({**entry["actions"]["verify"], "header": entry["actions"]["upload"]["header"]}, data).status_code == 401
    assert verify(entry["actions"]["verify"], data).status_code == 404

    assert upload(entry["actions"]["upload"], data).status_code == 200
    assert server.has_object(oid) and server.read_object(oid) == data
    assert verify(entry["actions"]["verify"], data).status_code == 200

    # already stored: the object comes back without actions at all
    again = batch(server, "upload", [{"oid": oid, "size": len(data)}]).json()["objects"][0]
    assert again == {"oid": oid, "size": len(data), "authenticated": True}
    assert server.attempts(oid, "batch") == 2
    assert server.attempts(oid, "upload") == 1 and server.attempts(oid, "verify") == 3


def test_upload_is_checked_and_streamed(server):
    data = blob(3 * 1024 * 1024 + 17, seed=2)
    act = action(server, "upload", data)
    # wrong bytes, right length: refused, nothing stored
    assert upload(act, b"\0" * len(data)).status_code == 422
    assert not server.has_object(oid_of(data))
    # a chunked (generator) body is accepted and stored byte-exact
    chunks = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    assert upload(act, chunks).status_code == 200
    assert server.read_object(oid_of(data)) == data
    rec = server.requests_for(oid_of(data), "upload")[-1]
    assert rec.header("Transfer-Encoding") == "chunked" and rec.bytes_received == len(data)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 422),
        (json.dumps({"operation": "delete", "objects": []}).encode(), 422),
        (json.dumps({"operation": "download"}).encode(), 422),
        (json.dumps({"operation": "download", "objects": ["x"]}).encode(), 422),
        (json.dumps({"operation": "download", "transfers": ["tus"], "objects": []}).encode(), 422),
        (json.dumps({"operation": "download", "objects": [], "ref": None}).encode(), 200),
        (json.dumps({"operation": "download", "objects": []}).encode(), 200),  # transfers omitted => basic
    ],
)
def test_batch_request_validation(server, body, status):
    res = requests.post(server.batch_url(), data=body, headers=LFS_HEADERS, timeout=TIMEOUT)
    assert res.status_code == status, res.text
    assert res.headers["Content-Type"] == LFS_MEDIA_TYPE
    if status != 200:
        assert "objects" not in res.json() and res.json()["message"]


def test_batch_per_object_validation_and_media_types(server):
    good = oid_of(b"x")
    res = batch(server, "download", [{"oid": "XYZ", "size": 1}, {"oid": good, "size": -1}, {"oid": good, "size": True}])
    assert [o["error"]["code"] for o in res.json()["objects"]] == [422, 422, 422]
    res = batch(server, "download", [{"oid": good, "size": 1}], extra={"hash_algo": "sha512"})
    assert res.json()["objects"][0]["error"]["code"] == 409
    # media types: charset is fine, others are refused
    ok = batch(server, "download", [], headers={"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE + "; charset=utf-8"})
    assert ok.status_code == 200
    assert batch(server, "download", [], headers={"Accept": "application/json", "Content-Type": LFS_MEDIA_TYPE}).status_code == 406
    assert batch(server, "download", [], headers={"Accept": LFS_MEDIA_TYPE, "Content-Type": "application/json"}).status_code == 415


def test_range_requests(server):
    data = blob(1000, seed=3)
    oid = server.add_object(data)
    act = action(server, "download", data)
    res = download(act, Range="bytes=100-")
    assert res.status_code == 206 and res.content == data[100:]
    assert res.headers["Content-Range"] == "bytes 100-999/1000"
    res = download(act, Range="bytes=100-199")  # git-lfs asks for an explicit end
    assert res.status_code == 206 and res.content == data[100:200]
    assert res.headers["Content-Range"] == "bytes 100-199/1000"
    res = download(act, Range="bytes=1000-")
    assert res.status_code == 416 and res.headers["Content-Range"] == "bytes */1000"
    assert server.ranges(oid) == ["bytes=100-", "bytes=100-199", "bytes=1000-"]
    assert server.resume_offsets(oid) == [100, 100, 1000]


# -- HTTP status faults ----------------------------------------------------------------------------
def test_batch_status_faults_in_call_order(server):
    data = blob(10)
    oid = server.add_object(data)
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    server.script_batch([Fault.status(500), Fault.status(503, retry_after=1), Fault.status(429, retry_after=when), Fault.status(502)])
    server.script_batch([Fault.status(401)], operation="upload")
    objects = [{"oid": oid, "size": len(data)}]

    got = [batch(server, "download", objects) for _ in range(5)]
    assert [r.status_code for r in got] == [500, 503, 429, 502, 200]
    assert got[1].headers["Retry-After"] == "1"
    assert email.utils.parsedate_to_datetime(got[2].headers["Retry-After"]) == when
    assert "Retry-After" not in got[0].headers
    for res in got[:4]:
        assert res.headers["Content-Type"] == LFS_MEDIA_TYPE
        assert set(res.json()) >= {"message", "request_id"} and "objects" not in res.json()
    # the upload-only script was not touched by download calls
    res = batch(server, "upload", objects)
    assert res.status_code == 401 and res.headers["LFS-Authenticate"] == 'Basic realm="Git LFS"'
    assert server.pending() == []
    assert server.batch_calls == 6
    # per-object entries are only produced (and counted) for calls that reached them
    assert server.attempts(oid, "batch") == 1


@pytest.mark.parametrize("operation", ["download", "upload", "verify"])
def test_transfer_status_faults_then_success(server, operation):
    data = blob(2000, seed=4)
    oid = oid_of(data)
    if operation == "download":
        server.add_object(data)
        act = action(server, "download", data)
        send = lambda: download(act)  # noqa: E731
    elif operation == "upload":
        act = action(server, "upload", data)
        send = lambda: upload(act, data)  # noqa: E731
    else:
        act = action(server, "upload", data, name="verify")
        server.add_object(data)
        send = lambda: verify(act, data)  # noqa: E731
    faults = [Fault.status(500), Fault.status(502), Fault.status(503, retry_after="0"), Fault.status(429, retry_after=1)]
    server.script(oid, operation, faults)
    codes = []
    for _ in range(5):
        res = send()
        codes.append(res.status_code)
        if res.status_code != 200:
            assert res.json()["message"]
    assert codes == [500, 502, 503, 429, 200]
    assert server.attempts(oid, operation) == 5
    recs = server.requests_for(oid, operation)
    assert [r.status for r in recs] == codes
    assert [r.fault for r in recs] == [FaultKind.STATUS] * 4 + [None]
    assert server.pending(oid) == []
    if operation == "upload":
        assert server.read_object(oid) == data


# -- broken downloads ----------------------------------------------------------------------------------
def test_cut_mid_download_then_resume_with_range(server):
    data = blob(200_000, seed=5)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.cut(70_000), Fault.cut(1000)])
    act = action(server, "download", data)

    # exactly: the full Content-Length is announced, 70000 bytes arrive, then EOF
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request("GET", urlsplit(act["href"]).path, headers=act["header"])
    raw = conn.getresponse()
    assert raw.status == 200 and raw.getheader("Content-Length") == str(len(data))
    with pytest.raises(http.client.IncompleteRead) as cut:
        raw.read()
    assert cut.value.partial == data[:70_000] and cut.value.expected == len(data) - 70_000
    conn.close()
    rec = server.requests_for(oid, "download")[0]
    assert rec.cut and rec.fault is FaultKind.CUT and rec.bytes_sent == 70_000 and rec.status == 200

    # as a requests client sees it: ChunkedEncodingError after a prefix, then a ranged resume
    res = requests.get(act["href"], headers=act["header"], stream=True, timeout=TIMEOUT)
    part = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in res.iter_content(256):
            part += chunk
    assert 0 < len(part) <= 1000 and data.startswith(part)
    rest = download(act, Range=f"bytes={len(part)}-")
    assert rest.status_code == 206 and rest.headers["Content-Range"] == f"bytes {len(part)}-199999/{len(data)}"
    assert bytes(part) + rest.content == data
    assert server.ranges(oid) == [None, None, f"bytes={len(part)}-"] and server.resume_offsets(oid) == [len(part)]
    assert server.attempts(oid, "download") == 3


def test_cut_on_a_ranged_download_counts_from_the_range_start(server):
    data = blob(10_000, seed=6)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.cut(100)])
    act = action(server, "download", data)
    res = requests.get(act["href"], headers={**act["header"], "Range": "bytes=5000-"}, stream=True, timeout=TIMEOUT)
    assert res.status_code == 206 and res.headers["Content-Length"] == "5000"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        res.content  # noqa: B018
    assert server.requests_for(oid, "download")[0].bytes_sent == 100


def test_ignore_range_and_416_faults(server):
    data = blob(4000, seed=7)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.ignore_range(), Fault.range_not_satisfiable()])
    act = action(server, "download", data)
    res = download(act, Range="bytes=1000-")
    assert res.status_code == 200 and res.content == data and "Content-Range" not in res.headers
    res = download(act, Range="bytes=1000-")
    assert res.status_code == 416 and res.headers["Content-Range"] == f"bytes */{len(data)}"
    res = download(act, Range="bytes=1000-")
    assert res.status_code == 206 and res.content == data[1000:]
    assert [r.fault for r in server.requests_for(oid, "download")] == [
        FaultKind.IGNORE_RANGE,
        FaultKind.RANGE_NOT_SATISFIABLE,
        None,
    ]


def test_corrupt_download_once_then_correct(server):
    data = blob(3000, seed=8)
    oid = server.add_object(data)
    server.script(oid, "download", [Fault.corrupt()])
    act = action(server, "download", data)
    bad = download(act)
    assert bad.status_code == 200 and len(bad.content) == len(data)
    assert bad.content != data and oid_of(bad.content) != oid
    good = download(act)
    assert good.content == data
    assert server.read_object(oid) == data  # the stored copy is untouched


def test_slow_and_stalled_responses_trip_client_timeouts(server):
    """A pause longer than the client's read timeout trips it; a shorter one is only slow.

    The margins are wide (pauses of 5 s against a 0.5 s read timeout), and the body's short
    timeout is set only once the headers are in: a loaded machine's scheduling cannot trip a
    timeout where none is expected (a 0.15 s deadline on the headers could).
    """
    data = blob(50_000, seed=9)
    oid = server.add_object(data)
    server.script_batch([Fault.slow(5)])
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        batch(server, "download", [{"oid": oid, "size": len(data)}], timeout=(TIMEOUT, 0.5))
    assert time.monotonic() - t0 < 5, "the server answered: the client's timeout did not trip"
    act = action(server, "download", data)

    server.script(oid, "download", [Fault.stall(0, 5), Fault.stall(1000, 0.2)])
    res = requests.get(act["href"], headers=act["header"], stream=True, timeout=TIMEOUT)
    assert res.status_code == 200
    res.raw.connection.sock.settimeout(0.5)  # the short read timeout, for the body only
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):  # urllib3 ReadTimeoutError mid-body
        res.content  # noqa: B018
    assert time.monotonic() - t0 < 5, "the stall ended: the client's timeout did not trip"
    # a pause shorter than the read timeout is just slow
    t0 = time.monotonic()
    res = requests.get(act["href"], headers=act["header"], timeout=2)
    assert res.content == data and time.monotonic() - t0 >= 0.2


# -- expired actions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["expires_in", "expires_at", "hidden"])
def test_expired_download_action_until_re_requested(server, how):
    data = blob(500, seed=10)
    oid = server.add_object(data)
    server.script(oid, "batch", [Fault.expired(how)])
    stale = action(server, "download", data)
    if how == "expires_in":
        assert stale["expires_in"] == 0 and "expires_at" not in stale
    elif how == "expires_at":
        assert "expires_in" not in stale
        at = datetime.strptime(stale["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert at < datetime.now(timezone.utc)
    else:
        assert stale["expires_in"] == server.action_expires_in
    res = download(stale)
    assert res.status_code == 401 and "expired" in res.json()["message"]

    fresh = action(server, "download", data)
    assert fresh["header"] != stale["header"] and fresh["expires_in"] == server.action_expires_in
    assert download(fresh).content == data
    assert download(stale).status_code == 401  # the old token stays dead
    assert server.attempts(oid, "batch") == 2


def test_expired_upload_actions_403_and_revocation(server):
    data = blob(700, seed=11)
    oid = oid_of(data)
    server.script(oid, "batch", [Fault.expired("expires_in", expires_in=-10, reject_status=403)])
    res = batch(server, "upload", [{"oid": oid, "size": len(data)}]).json()["objects"][0]["actions"]
    assert res["upload"]["expires_in"] == -10 and res["verify"]["expires_in"] == -10
    assert upload(res["upload"], data).status_code == 403
    assert not server.has_object(oid)

    fresh = action(server, "upload", data)
    assert server.expire_actions(oid) >= 1  # server-side revocation of everything handed out
    assert upload(fresh, data).status_code == 401
    assert upload(action(server, "upload", data), data).status_code == 200


# -- authentication ------------------------------------------------------------------------------------
def test_batch_requires_basic_credentials(auth_server):
    data = blob(100, seed=12)
    oid = auth_server.add_object(data)
    objects = [{"oid": oid, "size": len(data)}]
    anon = batch(auth_server, "download", objects)
    assert anon.status_code == 401 and anon.headers["LFS-Authenticate"] == 'Basic realm="Git LFS"'
    assert anon.json()["message"] == "Credentials needed"
    assert batch(auth_server, "download", objects, auth=("alice", "wrong")).status_code == 401
    assert auth_server.attempts(oid, "batch") == 0  # rejected calls never reach the objects
    ok = batch(auth_server, "download", objects, auth=CREDS)
    assert ok.status_code == 200 and auth_server.attempts(oid, "batch") == 1
    assert auth_server.batch_calls == 3


def test_transfer_hrefs_take_the_action_header_not_basic(auth_server):
    data = blob(100, seed=13)
    auth_server.add_object(data)
    act = action(auth_server, "download", data, auth=CREDS)
    # a client that sends its Basic credentials to the href instead of the action header
    assert requests.get(act["href"], auth=CREDS, timeout=TIMEOUT).status_code == 401
    assert requests.get(act["href"], timeout=TIMEOUT).status_code == 401
    assert download(act).content == data

    recs = auth_server.requests
    basic = FaultLfsServer.redacted_basic(*CREDS)
    assert [(r.operation, r.auth_scheme, r.status) for r in recs] == [
        ("batch", "Basic", 200),
        ("download", "Basic", 401),
        ("download", None, 401),
        ("download", "RemoteAuth", 200),
    ]
    assert recs[0].header("Authorization") == basic
    assert recs[3].header("Authorization") == FaultLfsServer.redact_authorization(act["header"]["Authorization"])
    # the log never holds a secret
    log = repr(recs)
    assert CREDS[1] not in log and base64.b64encode(f"{CREDS[0]}:{CREDS[1]}".encode()).decode() not in log
    assert act["header"]["Authorization"].split()[1] not in log


def test_action_auth_can_be_relaxed():
    data = blob(100, seed=14)
    with FaultLfsServer(action_auth=False) as srv:
        srv.add_object(data)
        assert requests.get(srv.storage_url(oid_of(data)), timeout=TIMEOUT).content == data


# -- read-only repositories and per-object errors -----------------------------------------------------
def test_read_only_repo_refuses_uploads(server):
    data = blob(100, seed=15)
    stored = server.add_object(blob(50, seed=16))
    objects = [{"oid": oid_of(data), "size": len(data)}]
    server.set_read_only("team/ro.git")
    res = batch(server, "upload", objects, repo="team/ro.git")
    assert res.status_code == 403 and "write access" in res.json()["message"]
    assert batch(server, "download", [{"oid": stored, "size": 50}], repo="team/ro.git").status_code == 200
    assert batch(server, "upload", objects, repo="team/rw.git").status_code == 200

    server.set_read_only("team/ro.git", "object")
    entry = batch(server, "upload", objects, repo="team/ro.git").json()["objects"][0]
    assert entry["error"]["code"] == 403 and "actions" not in entry

    server.set_read_only("team/ro.git", None)
    act = action(server, "upload", data, repo="team/ro.git")
    server.set_read_only("team/ro.git")  # tokens issued before are refused too
    assert upload(act, data).status_code == 403


def test_scripted_per_object_errors(server):
    data = blob(100, seed=17)
    oid = server.add_object(data)
    other = server.add_object(blob(10, seed=18))
    server.script(oid, "batch", [Fault.object_error(404, "no such object"), Fault.object_error(410, "removed by owner")])
    server.script(oid, "batch", [Fault.object_error(422, "bad"), Fault.ok()])
    objects = [{"oid": oid, "size": len(data)}, {"oid": other, "size": 10}]
    for code, message in [(404, "no such object"), (410, "removed by owner"), (422, "bad")]:
        res = batch(server, "download", objects)
        assert res.status_code == 200
        first, second = res.json()["objects"]
        assert first["error"] == {"code": code, "message": message} and "actions" not in first
        assert "download" in second["actions"]
    assert "download" in batch(server, "download", objects).json()["objects"][0]["actions"]
    assert server.attempts(oid, "batch") == 4 and server.attempts(other, "batch") == 4


# -- other connection faults and misuse -------------------------------------------------------------
def test_cut_upload_batch_and_verify(server):
    data = blob(300_000, seed=19)
    oid = oid_of(data)
    server.script_batch([Fault.cut()])
    with pytest.raises(requests.exceptions.ConnectionError):
        batch(server, "upload", [{"oid": oid, "size": len(data)}])
    acts = batch(server, "upload", [{"oid": oid, "size": len(data)}]).json()["objects"][0]["actions"]

    server.script(oid, "upload", [Fault.cut(1000)])
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(acts["upload"], data)
    assert not server.has_object(oid)
    rec = server.requests_for(oid, "upload")[0]
    assert rec.cut and rec.status is None and rec.bytes_received >= 1000
    assert upload(acts["upload"], data).status_code == 200

    server.script(oid, "verify", [Fault.cut()])
    with pytest.raises(requests.exceptions.ConnectionError):
        verify(acts["verify"], data)
    assert verify(acts["verify"], data).status_code == 200
    assert server.attempts(oid, "upload") == 2 and server.attempts(oid, "verify") == 2


def test_raw_fault_and_locks_endpoint(server):
    server.script_batch([Fault.raw(200, b"<html>proxy error</html>", content_type="text/html")])
    res = batch(server, "download", [])
    assert res.status_code == 200 and res.headers["Content-Type"] == "text/html" and res.content.startswith(b"<html>")
    locks = requests.post(server.endpoint() + "/locks/verify", data="{}", headers=LFS_HEADERS, timeout=TIMEOUT)
    assert locks.json() == {"ours": [], "theirs": []}


def test_script_rejects_faults_that_do_not_apply(server):
    with pytest.raises(ValueError, match="does not apply"):
        server.script("a" * 64, "upload", [Fault.corrupt()])
    with pytest.raises(ValueError, match="does not apply"):
        server.script("a" * 64, "batch", [Fault.status(500)])
    with pytest.raises(ValueError, match="does not apply"):
        server.script_batch([Fault.expired()])
    with pytest.raises(ValueError, match="operation"):
        server.script("a" * 64, "delete", [Fault.ok()])


def test_stop_wakes_delayed_handlers_and_removes_storage():
    srv = FaultLfsServer().start()
    storage = srv.storage
    srv.script_batch([Fault.slow(30)])
    url = srv.batch_url()

    # A valid batch request: "{}" was answered 422 at once, before the delay, so the old test
    # stopped a server that had no request in flight and passed without testing anything.
    body = json.dumps({"operation": "download", "objects": [{"oid": "a" * 64, "size": 1}]})

    def call() -> None:  # the client would wait far longer than the test allows the stop
        with contextlib.suppress(requests.RequestException):
            requests.post(url, data=body, headers=LFS_HEADERS, timeout=60)

    thread = threading.Thread(target=call)
    thread.start()
    # The precondition: the request is in the server, held by its delay (a fixed sleep could
    # stop the server before the request arrived, and the test would then test nothing).
    deadline = time.monotonic() + 30
    while srv.batch_calls == 0 or srv.pending():
        assert time.monotonic() < deadline and thread.is_alive(), "the request never reached the delayed handler"
        time.sleep(0.01)
    assert thread.is_alive()
    t0 = time.monotonic()
    srv.stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - t0 < 10, "stop did not end the delayed request"
    assert not storage.exists()


# -- stock git-lfs against the server -------------------------------------------------------------
def _git_lfs_repos(tmp_path: Path, server: FaultLfsServer, data: bytes) -> tuple[Path, Path, dict[str, str]]:
    """A work repo that pushed ``big.bin`` (LFS) through ``server``, and a pointer-only clone."""
    env = isolated_git_env(tmp_path)
    url = server.endpoint("team/repo.git", userinfo=f"{CREDS[0]}:{CREDS[1]}")
    run_git(["init", "--bare", "remote.git"], cwd=tmp_path, env=env)
    work = tmp_path / "work"
    run_git(["init", "work"], cwd=tmp_path, env=env)
    run_git(["config", "lfs.url", url], cwd=work, env=env)
    run_git(["remote", "add", "origin", str(tmp_path / "remote.git")], cwd=work, env=env)
    run_git(["lfs", "track", "*.bin"], cwd=work, env=env)
    (work / "big.bin").write_bytes(data)
    run_git(["add", ".gitattributes", "big.bin"], cwd=work, env=env)
    run_git(["commit", "-m", "add big.bin"], cwd=work, env=env)
    run_git(["push", "origin", "main"], cwd=work, env=env)

    clone_env = {**env, "GIT_LFS_SKIP_SMUDGE": "1"}
    run_git(["clone", str(tmp_path / "remote.git"), "clone"], cwd=tmp_path, env=clone_env)
    clone = tmp_path / "clone"
    run_git(["config", "lfs.url", url], cwd=clone, env=env)
    assert (clone / "big.bin").read_bytes().startswith(b"version https://git-lfs.github.com/spec/v1")
    return work, clone, env


@pytest.mark.interop
def test_stock_git_lfs_push_and_pull(tmp_path):
    data = blob(300_000, seed=20)
    oid = oid_of(data)
    with FaultLfsServer(credentials=CREDS) as server:
        _, clone, env = _git_lfs_repos(tmp_path, server, data)
        assert server.read_object(oid) == data
        assert server.attempts(oid, "upload") == 1 and server.attempts(oid, "verify") == 1
        upload_batch = next(b for b in server.batch_bodies if b["operation"] == "upload")
        assert upload_batch["objects"] == [{"oid": oid, "size": len(data)}]

        run_git(["lfs", "pull"], cwd=clone, env=env)
        assert (clone / "big.bin").read_bytes() == data
        assert server.attempts(oid, "download") == 1

        recs = server.requests
        ok_batches = [r for r in recs if r.operation == "batch" and r.status == 200]
        assert ok_batches and all(r.header("Authorization") == server.redacted_basic(*CREDS) for r in ok_batches)
        for rec in recs:
            assert (rec.header("User-Agent") or "").startswith("git-lfs/")
            if rec.operation in ("download", "upload", "verify"):
                assert rec.auth_scheme == "RemoteAuth" and rec.status == 200, rec
        assert all(r.header("Accept") == LFS_MEDIA_TYPE for r in ok_batches)


@pytest.mark.interop
def test_stock_git_lfs_resumes_a_cut_download_with_range(tmp_path):
    data = blob(300_000, seed=21)
    oid = oid_of(data)
    with FaultLfsServer(credentials=CREDS) as server:
        _, clone, env = _git_lfs_repos(tmp_path, server, data)
        server.script(oid, "download", [Fault.cut(100_000), Fault.status(503, retry_after=0)])
        run_git(["lfs", "pull"], cwd=clone, env={**env, "GIT_TRACE": "0"})
        assert (clone / "big.bin").read_bytes() == data
        assert server.ranges(oid)[0] is None
        # git-lfs kept the 100000 bytes it had and asked for the rest (bytes=N-<size-1>)
        assert f"bytes=100000-{len(data) - 1}" in server.ranges(oid)
        assert server.requests_for(oid, "download")[-1].status == 206
        assert server.pending(oid) == []


@pytest.mark.interop
def test_stock_git_lfs_and_expired_actions(tmp_path):
    """git-lfs re-requests an action it sees as expired; ``expires_in: 0`` it does not (Go
    zero value = unset), so it uses the href, gets the server's 401 "expired", and recovers."""
    data = blob(3000, seed=22)
    oid = oid_of(data)
    with FaultLfsServer(credentials=CREDS) as server:
        _, clone, env = _git_lfs_repos(tmp_path, server, data)
        local = clone / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        for fault, seen in [
            (Fault.expired("expires_at"), [("batch", 200), ("batch", 200), ("download", 200)]),
            (Fault.expired("expires_in", expires_in=-5), [("batch", 200), ("batch", 200), ("download", 200)]),
            (Fault.expired("expires_in"), [("batch", 200), ("download", 401), ("batch", 200), ("download", 200)]),
        ]:
            local.unlink(missing_ok=True)
            server.reset_log()
            server.script(oid, "batch", [fault])
            run_git(["lfs", "fetch"], cwd=clone, env=env)
            assert local.read_bytes() == data
            assert [(r.operation, r.status) for r in server.requests] == seen, fault
