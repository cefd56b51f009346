"""The write side of ``lfsreg serve`` over HTTP: status codes, headers and error codes as distribution-spec v1.1 says."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from conftest import commit_count, concurrently, main_ref
from serveput_images import OCI_INDEX, OCI_MANIFEST, image, index_of, sha

from lfsreg.api import Registry
from lfsreg.digest import Digest
from lfsreg.registry import layout
from lfsreg.serve import RegistryServer, ServeOptions
from lfsreg.serve.uploads import Uploads

AUTH = "Basic " + base64.b64encode(b"pusher:secret").decode()


class Client:
    def __init__(self, url: str) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")

    def __call__(self, method: str, path: str, body: bytes | Iterator[bytes] | None = None, **headers: str) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
        try:
            hdrs = {"Authorization": AUTH, **{k.replace("_", "-"): v for k, v in headers.items()}}
            conn.request(method, path, body=body, headers=hdrs, encode_chunked=body is not None and not isinstance(body, bytes))
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def push_blob(self, name: str, data: bytes) -> None:
        status, _, body = self("POST", f"/v2/{name}/blobs/uploads/?digest={sha(data)}", data)
        assert status == 201, body


def code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def _serve(tmp_path: Path, **opts: object) -> Iterator[tuple[Client, Registry, RegistryServer]]:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("pusher:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    reg = Registry(str(tmp_path / "reg.git"))
    reg.init()
    server = RegistryServer(reg, ServeOptions(listen="127.0.0.1:0", htpasswd=str(htpasswd), refresh=60, **opts))
    server.start()
    try:
        yield Client(server.url), reg, server
    finally:
        server.close()
        reg.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Client, Registry, RegistryServer]]:
    yield from _serve(tmp_path)


def test_chunked_upload_status_and_out_of_order(served) -> None:
    c, _, _ = served
    data = bytes(range(256)) * 40
    status, h, _ = c("POST", "/v2/app/web/blobs/uploads/", b"", Content_Length="0")
    assert status == 202 and h["range"] == "0-0" and h["docker-upload-uuid"] in h["location"]
    loc = h["location"]
    status, h, _ = c("PATCH", loc, data[:1000], Content_Range="0-999", Content_Type="application/octet-stream")
    assert (status, h["range"]) == (202, "0-999")
    status, h, body = c("PATCH", loc, data[2000:3000], Content_Range="2000-2999")
    assert status == 416 and code(body) == "BLOB_UPLOAD_INVALID" and h["range"] == "0-999"
    status, h, _ = c("GET", loc)
    assert (status, h["range"]) == (204, "0-999")
    status, h, _ = c("PATCH", loc, data[1000:2000], Content_Range="1000-1999")
    assert (status, h["range"]) == (202, "0-1999")
    status, h, _ = c("PUT", f"{loc}?digest={sha(data)}", data[2000:], Content_Range=f"2000-{len(data) - 1}")
    assert status == 201 and h["docker-content-digest"] == sha(data) and h["location"] == f"/v2/app/web/blobs/{sha(data)}"
    status, h, body = c("GET", f"/v2/app/web/blobs/{sha(data)}")
    assert (status, body) == (200, data)
    status, _, body = c("GET", loc)
    assert status == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"


def test_streamed_patch_without_range_as_docker_sends_it(served) -> None:
    c, _, _ = served
    pieces = [b"a" * 70000, b"b" * 3, b"c" * 100000]
    data = b"".join(pieces)
    _, h, _ = c("POST", "/v2/app/web/blobs/uploads/")
    status, h, _ = c("PATCH", h["location"], iter(pieces))  # Transfer-Encoding: chunked, no Content-Range
    assert (status, h["range"]) == (202, f"0-{len(data) - 1}")
    status, _, _ = c("PUT", f"{h['location']}?digest={sha(data)}")
    assert status == 201
    assert c("HEAD", f"/v2/app/web/blobs/{sha(data)}")[1]["content-length"] == str(len(data))


def test_wrong_digest_stores_nothing(served) -> None:
    c, reg, _ = served
    status, _, body = c("POST", f"/v2/app/web/blobs/uploads/?digest={sha(b'other')}", b"data")
    assert status == 400 and code(body) == "DIGEST_INVALID"
    _, h, _ = c("POST", "/v2/app/web/blobs/uploads/")
    c("PATCH", h["location"], b"data")
    status, _, body = c("PUT", f"{h['location']}?digest={sha(b'other')}")
    assert status == 400 and code(body) == "DIGEST_INVALID"
    for digest in (sha(b"data"), sha(b"other")):
        assert c("GET", f"/v2/app/web/blobs/{digest}")[0] == 404
    status, _, body = c("POST", "/v2/app/web/blobs/uploads/?digest=sha256:nothex", b"x")
    assert status == 400 and code(body) == "DIGEST_INVALID"
    sha512 = "sha512:" + "ab" * 64  # LFS oids are sha256: refused on upload, unknown on delete
    status, _, body = c("POST", f"/v2/app/web/blobs/uploads/?digest={sha512}", b"x")
    assert status == 400 and code(body) == "DIGEST_INVALID"
    status, _, body = c("DELETE", f"/v2/app/web/blobs/{sha512}")
    assert status == 404 and code(body) == "BLOB_UNKNOWN"
    status, _, body = c("DELETE", f"/v2/app/web/manifests/{sha512}")
    assert status == 404 and code(body) == "MANIFEST_UNKNOWN"
    assert not list((Path(reg.location) / "lfs" / "objects").rglob("*")) or all(
        p.is_dir() for p in (Path(reg.location) / "lfs" / "objects").rglob("*")
    )


def test_cancel_and_unknown_sessions(served) -> None:
    c, _, _ = served
    _, h, _ = c("POST", "/v2/app/web/blobs/uploads/")
    c("PATCH", h["location"], b"abc")
    assert c("DELETE", h["location"])[0] == 204
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        status, _, body = c(method, h["location"] + ("?digest=" + sha(b"abc") if method == "PUT" else ""), b"" if method != "GET" else None)
        assert status == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN", method
    status, _, body = c("GET", "/v2/app/web/blobs/uploads/not-a-session")
    assert status == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"
    _, h, _ = c("POST", "/v2/app/web/blobs/uploads/")
    assert c("GET", h["location"].replace("app/web", "app/other"))[0] == 404  # a session belongs to its name


def test_mount_from_another_repository(served) -> None:
    c, _, _ = served
    c.push_blob("app/one", b"shared bytes")
    status, h, _ = c("POST", f"/v2/app/two/blobs/uploads/?mount={sha(b'shared bytes')}&from=app/one")
    assert status == 201 and h["docker-content-digest"] == sha(b"shared bytes") and h["location"].startswith("/v2/app/two/blobs/")
    status, h, _ = c("POST", f"/v2/app/two/blobs/uploads/?mount={sha(b'absent')}&from=app/one")
    assert status == 202 and "docker-upload-uuid" in h


def test_manifest_put_get_and_errors(served) -> None:
    c, reg, _ = served
    im = image("served")
    for data in im.blobs.values():
        c.push_blob("app/web", data)
    repo = Path(reg.location)
    before = (main_ref(repo), commit_count(repo))
    # the checks come first: nothing is written for any of these
    status, _, body = c("PUT", "/v2/app/web/manifests/-bad", im.manifest, Content_Type=OCI_MANIFEST)
    assert status == 400 and code(body) == "TAG_INVALID"
    status, _, body = c("PUT", "/v2/app/web/manifests/v1", im.manifest, Content_Type=OCI_INDEX)
    assert status == 400 and code(body) == "MANIFEST_INVALID"
    status, _, body = c("PUT", f"/v2/app/web/manifests/{sha(b'x')}", im.manifest, Content_Type=OCI_MANIFEST)
    assert status == 400 and code(body) == "DIGEST_INVALID"
    status, _, body = c("PUT", "/v2/app/web/manifests/v1", b"{not json", Content_Type=OCI_MANIFEST)
    assert status == 400 and code(body) == "MANIFEST_INVALID"
    other = image("not uploaded")
    status, _, body = c("PUT", "/v2/app/web/manifests/v1", other.manifest, Content_Type=OCI_MANIFEST)
    assert status == 400 and code(body) == "MANIFEST_BLOB_UNKNOWN"
    status, _, body = c("PUT", "/v2/App/manifests/v1", im.manifest, Content_Type=OCI_MANIFEST)
    assert status == 400 and code(body) == "NAME_INVALID"
    assert (main_ref(repo), commit_count(repo)) == before
    # then one commit, and the tag is visible at once
    status, h, _ = c("PUT", "/v2/app/web/manifests/v1", im.manifest, Content_Type=OCI_MANIFEST)
    assert status == 201 and h["docker-content-digest"] == im.digest and h["location"] == f"/v2/app/web/manifests/{im.digest}"
    assert "oci-subject" not in h
    assert commit_count(repo) == before[1] + 1
    uploads = served[2].router.write.uploads
    assert all(uploads.staged(Digest.parse(d)) is None for d in im.blobs)  # the tree has them now
    status, h, body = c("GET", "/v2/app/web/manifests/v1", Accept=OCI_MANIFEST)
    assert (status, body, h["docker-content-digest"]) == (200, im.manifest, im.digest)
    assert json.loads(c("GET", "/v2/app/web/tags/list")[2])["tags"] == ["v1"]


def test_index_and_subject_through_referrers(served) -> None:
    c, _, _ = served
    a, b = image("a"), image("b", compression="zstd", arch="arm64")
    for im in (a, b):
        for data in im.blobs.values():
            c.push_blob("app/web", data)
        assert c("PUT", f"/v2/app/web/manifests/{im.digest}", im.manifest, Content_Type=OCI_MANIFEST)[0] == 201
    index = index_of(a, b)
    status, h, _ = c("PUT", "/v2/app/web/manifests/multi", index, Content_Type=OCI_INDEX)
    assert status == 201 and h["docker-content-digest"] == sha(index)
    sig = image("signature", subject={"mediaType": OCI_INDEX, "digest": sha(index), "size": len(index)})
    for data in sig.blobs.values():
        c.push_blob("app/web", data)
    status, h, _ = c("PUT", f"/v2/app/web/manifests/{sig.digest}", sig.manifest, Content_Type=OCI_MANIFEST)
    assert status == 201 and h["oci-subject"] == sha(index)
    listed = json.loads(c("GET", f"/v2/app/web/referrers/{sha(index)}")[2])["manifests"]
    assert [m["digest"] for m in listed] == [sig.digest]
    assert c("DELETE", f"/v2/app/web/manifests/{sig.digest}")[0] == 202
    assert json.loads(c("GET", f"/v2/app/web/referrers/{sha(index)}")[2])["manifests"] == []


def test_deletes(served) -> None:
    c, _, _ = served
    im = image("to delete")
    for data in im.blobs.values():
        c.push_blob("app/web", data)
    for tag in ("a", "b"):
        c("PUT", f"/v2/app/web/manifests/{tag}", im.manifest, Content_Type=OCI_MANIFEST)
    assert c("DELETE", "/v2/app/web/manifests/a")[0] == 202
    assert json.loads(c("GET", "/v2/app/web/tags/list")[2])["tags"] == ["b"]
    status, _, body = c("DELETE", "/v2/app/web/manifests/a")
    assert status == 404 and code(body) == "MANIFEST_UNKNOWN"
    assert c("DELETE", f"/v2/app/web/manifests/{im.digest}")[0] == 202
    assert c("GET", f"/v2/app/web/manifests/{im.digest}")[0] == 404
    config = sha(im.config)
    assert c("DELETE", f"/v2/app/web/blobs/{config}")[0] == 202
    assert c("GET", f"/v2/app/web/blobs/{config}")[0] == 404
    status, _, body = c("DELETE", f"/v2/app/web/blobs/{config}")
    assert status == 404 and code(body) == "BLOB_UNKNOWN"
    c.push_blob("app/web", b"staged only")
    assert c("DELETE", f"/v2/app/web/blobs/{sha(b'staged only')}")[0] == 202
    assert c("GET", f"/v2/app/web/blobs/{sha(b'staged only')}")[0] == 404


def test_read_only_server_denies_writes(tmp_path: Path) -> None:
    for c, _, _ in _serve(tmp_path, read_only=True):
        status, _, body = c("POST", "/v2/app/web/blobs/uploads/")
        assert status == 403 and code(body) == "DENIED"
        status, _, body = c("PUT", "/v2/app/web/manifests/v1", b"{}", Content_Type=OCI_MANIFEST)
        assert status == 403 and code(body) == "DENIED"


def test_two_pushes_of_different_tags_at_once_both_land(served) -> None:
    c, reg, _ = served
    images = [image(f"concurrent {i}") for i in range(4)]

    def push(i: int) -> None:
        for data in images[i].blobs.values():
            c.push_blob("app/web", data)
        status, _, body = c("PUT", f"/v2/app/web/manifests/t{i}", images[i].manifest, Content_Type=OCI_MANIFEST)
        assert status == 201, body

    assert not concurrently(push, len(images))
    assert json.loads(c("GET", "/v2/app/web/tags/list")[2])["tags"] == [f"t{i}" for i in range(len(images))]
    with Registry(reg.location) as fresh:
        assert [t.tag for t in fresh.tags("app/web")] == [f"t{i}" for i in range(len(images))]


def test_idle_sessions_expire_with_their_file(tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg.git"))
    reg.init()
    now = [0.0]
    uploads = Uploads(reg._lfs(), expiry=10, clock=lambda: now[0])
    session = uploads.start("app/web")
    staging = list((tmp_path / "reg.git" / "lfs" / "tmp").iterdir())
    assert len(staging) == 1
    now[0] = 11
    assert uploads.reap() == 1
    assert not list((tmp_path / "reg.git" / "lfs" / "tmp").iterdir())
    with pytest.raises(Exception, match="no upload"):
        uploads.offset("app/web", session)


def test_memory_stays_bounded_whatever_the_blob_size(served) -> None:
    import hashlib
    import tracemalloc

    c, _, _ = served
    piece, count = bytes(range(256)) * 256, 1024  # 64 KiB x 1024 = 64 MiB, streamed
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(piece)
    _, h, _ = c("POST", "/v2/app/web/blobs/uploads/")
    tracemalloc.start()
    try:
        status, h, _ = c("PATCH", h["location"], (piece for _ in range(count)))
        status2, _, _ = c("PUT", f"{h['location']}?digest=sha256:{digest.hexdigest()}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (status, status2) == (202, 201)
    assert peak < 16 << 20, f"{peak} bytes allocated at the peak for a 64 MiB upload"


def test_a_blob_over_limits_object_is_stored_in_chunks(served, tmp_path: Path) -> None:
    import os

    c, reg, server = served
    reg.config({"limits.object": "64KiB"})
    server.context.invalidate()  # served within --refresh; the test does not wait for it
    im = image(os.urandom(150_000).hex())  # a gzip layer of ~170 KB: three chunks
    layer = sha(im.layer)
    assert len(im.layer) > 2 * 65536
    c.push_blob("app/web", im.config)
    _, h, _ = c("POST", "/v2/app/web/blobs/uploads/")
    status, _, _ = c("PUT", f"{h['location']}?digest={layer}", im.layer)
    assert status == 201
    with Registry(reg.location) as fresh:
        view = fresh.view()
        chunks = view.snapshot.listdir(layout.NEW.hex_path("layers", layer[7:]))
        assert [n for n, _, _ in chunks] == ["000000", "000001", "000002"]
        assert json.loads(view.snapshot.read("lfsreg.json"))["version"] == 4  # a new registry: chunks change nothing
    status, _, body = c("GET", f"/v2/app/web/blobs/{layer}")
    assert (status, body) == (200, im.layer)
    assert c("PUT", "/v2/app/web/manifests/big", im.manifest, Content_Type=OCI_MANIFEST)[0] == 201
    reg.pull(["app/web:big"], f"oci:{tmp_path / 'out'}:big")
    assert (tmp_path / "out" / "blobs" / "sha256" / layer[7:]).read_bytes() == im.layer


def test_an_upload_over_limits_storage_is_refused_before_it_is_stored(served) -> None:
    c, reg, server = served
    c.push_blob("app/web", b"small" * 100)  # 500 bytes: billed once a manifest names it; staged is not billed
    reg.config({"limits.storage": "1KB"})
    server.context.invalidate()
    big = b"x" * 1500
    status, _, body = c("POST", f"/v2/app/web/blobs/uploads/?digest={sha(big)}", big)
    assert status == 403 and code(body) == "DENIED" and "limits.storage" in json.loads(body)["errors"][0]["message"]
    assert c("HEAD", f"/v2/app/web/blobs/{sha(big)}")[0] == 404
    objects = Path(reg.location) / "lfs" / "objects" / sha(big)[7:9] / sha(big)[9:11] / sha(big)[7:]
    assert not objects.exists()
    c.push_blob("app/web", b"fits")  # under the limit: stored
