"""Two defects of ``lfsreg serve`` (issue 11): the ``Server`` header, and ``limits.storage`` at a manifest put.

* ``Server: lfsreg`` had a trailing space (``BaseHTTPRequestHandler`` joins ``server_version``
  and ``sys_version`` with one; ours was empty).
* ``limits.storage`` was checked per uploaded blob only: blobs a commit does not name yet are
  not billed, so two blobs that each fit were both accepted, and the manifest naming both was
  committed, over the limit. The put is now refused (403 ``DENIED``), nothing committed.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from conftest import commit_count
from serveput_images import OCI_CONFIG, OCI_MANIFEST, dumps, sha
from test_serve_write_api import code, served  # noqa: F401 -- the fixture

from lfsreg.api import Registry


def test_server_header_has_no_trailing_space(served) -> None:  # noqa: F811
    _, _, server = served
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw and (data := sock.recv(65536)):
            raw += data
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert [line for line in head if line.lower().startswith(b"server:")] == [b"Server: lfsreg"], head


def test_manifest_over_limits_storage_is_refused_nothing_committed(served) -> None:  # noqa: F811
    c, reg, server = served
    reg.config({"limits.storage": "1KB"})
    server.context.invalidate()
    layers = [bytes([i]) * 600 for i in (1, 2)]  # each fits under 1 KB alone; together they do not
    config = dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(b) for b in layers]}})
    for blob in (*layers, config):
        c.push_blob("app/web", blob)
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(b), "size": len(b)} for b in layers],
        }
    )
    commits = commit_count(Path(reg.location))
    status, _, body = c("PUT", "/v2/app/web/manifests/1", manifest, Content_Type=OCI_MANIFEST)
    assert status == 403 and code(body) == "DENIED", body
    message = json.loads(body)["errors"][0]["message"]
    assert "limits.storage" in message and "nothing was committed" in message
    assert commit_count(Path(reg.location)) == commits
    assert c("GET", "/v2/app/web/manifests/1")[0] == 404
    with Registry(reg.location) as fresh:
        assert list(fresh.view().names()) == []
    one = dumps({**json.loads(manifest), "layers": json.loads(manifest)["layers"][:1]})
    assert c("PUT", "/v2/app/web/manifests/2", one, Content_Type=OCI_MANIFEST)[0] == 201  # one layer fits
