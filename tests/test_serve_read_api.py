"""``lfsreg serve``, read side, at the HTTP level: what the distribution spec says each endpoint answers.

A real server (in this process, a thread) over registries pushed from the fixtures; requests
are plain HTTP (requests), so every status, header and error body is checked as a client sees it.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import requests

import lfsreg
from lfsreg.manifest import dump_json
from lfsreg.registry import layout
from tests.conftest import FIXTURES
from tests.servehelp import serving

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """acme/app:1.0 (OCI manifest), acme/multi:1.0 (OCI index), acme/dmulti:1.0 (Docker list), acme/dapp:1.0 (Docker manifest)."""
    path = tmp_path_factory.mktemp("serve") / "reg.git"
    reg = lfsreg.Registry(str(path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    reg.push([f"oci:{FIXTURES / 'multi.oci'}:1.0"], tags=["acme/multi:1.0"])
    reg.push([f"oci:{FIXTURES / 'multi-docker.oci'}:1.0"], tags=["acme/dmulti:1.0"])
    reg.push([f"oci:{FIXTURES / 'app-docker.oci'}:1.0"], tags=["acme/dapp:1.0"])
    for tag in ("1.1", "2.0", "latest", "a", "b"):
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=[f"acme/app:{tag}"])
    reg.close()
    return path


@pytest.fixture(scope="module")
def server(repo):
    with serving(repo) as srv:
        yield srv


def get(server, path, method="GET", **kw):
    return requests.request(method, server.url + path, timeout=30, **kw)


def error_code(resp) -> str:
    body = resp.json()
    assert isinstance(body["errors"], list) and body["errors"][0]["message"], body
    return body["errors"][0]["code"]


def test_base_endpoint_answers_200_with_the_api_version_header(server):
    for method in ("GET", "HEAD"):
        resp = get(server, "/v2/", method)
        assert resp.status_code == 200
        assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_manifest_by_tag_is_the_stored_bytes_with_type_and_digest(server, repo):
    resp = get(server, "/v2/acme/app/manifests/1.0")
    assert resp.status_code == 200
    digest = "sha256:" + hashlib.sha256(resp.content).hexdigest()
    assert resp.headers["Docker-Content-Digest"] == digest
    assert resp.headers["Content-Type"] == OCI_MANIFEST
    stored = (FIXTURES / "app.oci" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    assert resp.content == stored
    head = get(server, "/v2/acme/app/manifests/1.0", "HEAD")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(stored)) and head.headers["Docker-Content-Digest"] == digest
    by_digest = get(server, f"/v2/acme/app/manifests/{digest}")
    assert by_digest.content == stored and by_digest.headers["Docker-Content-Digest"] == digest


def test_index_by_tag_and_its_children_by_digest(server):
    resp = get(server, "/v2/acme/multi/manifests/1.0", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
    assert resp.status_code == 200 and resp.headers["Content-Type"] == OCI_INDEX
    for child in resp.json()["manifests"]:
        got = get(server, f"/v2/acme/multi/manifests/{child['digest']}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and len(got.content) == child["size"]
        assert hashlib.sha256(got.content).hexdigest() == child["digest"].split(":")[1]


def test_a_docker_schema2_client_that_takes_no_lists_gets_the_amd64_manifest(server):
    whole = get(server, "/v2/acme/dmulti/manifests/1.0", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"})
    assert whole.headers["Content-Type"] == DOCKER_LIST
    amd64 = next(m for m in whole.json()["manifests"] if m["platform"]["architecture"] == "amd64")
    resp = get(server, "/v2/acme/dmulti/manifests/1.0", headers={"Accept": DOCKER_MANIFEST})
    assert resp.status_code == 200 and resp.headers["Content-Type"] == DOCKER_MANIFEST
    assert resp.headers["Docker-Content-Digest"] == amd64["digest"]
    assert hashlib.sha256(resp.content).hexdigest() == amd64["digest"].split(":")[1]


def test_a_manifest_the_client_does_not_accept_is_manifest_unknown(server):
    resp = get(server, "/v2/acme/app/manifests/1.0", headers={"Accept": DOCKER_MANIFEST})
    assert resp.status_code == 404 and error_code(resp) == "MANIFEST_UNKNOWN"
    assert OCI_MANIFEST in resp.json()["errors"][0]["message"]
    # a Docker manifest is served to a client accepting it, and to one that accepts anything
    assert get(server, "/v2/acme/dapp/manifests/1.0", headers={"Accept": DOCKER_MANIFEST}).status_code == 200
    assert get(server, "/v2/acme/dapp/manifests/1.0", headers={"Accept": "*/*"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v2/acme/app/manifests/9.9", 404, "MANIFEST_UNKNOWN"),
        ("/v2/acme/app/manifests/sha256:" + "0" * 64, 404, "MANIFEST_UNKNOWN"),
        ("/v2/acme/app/manifests/sha256:abc", 400, "DIGEST_INVALID"),
        ("/v2/acme/app/manifests/-bad", 400, "TAG_INVALID"),
        ("/v2/Acme/App/manifests/1.0", 400, "NAME_INVALID"),
        ("/v2/acme/app/blobs/sha256:" + "0" * 64, 404, "BLOB_UNKNOWN"),
        ("/v2/acme/app/blobs/md5:abc", 400, "DIGEST_INVALID"),
        ("/v2/acme/nothing/tags/list", 404, "NAME_UNKNOWN"),
    ],
)
def test_errors_come_in_the_spec_json_form(server, path, status, code):
    resp = get(server, path)
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert error_code(resp) == code
    assert get(server, path, "HEAD").status_code == status  # HEAD everywhere GET is, with no body


def test_a_config_is_a_blob_not_a_manifest(server):
    manifest = get(server, "/v2/acme/app/manifests/1.0").json()
    config = manifest["config"]["digest"]
    assert get(server, f"/v2/acme/app/manifests/{config}").status_code == 404
    blob = get(server, f"/v2/acme/app/blobs/{config}")
    assert blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == config.split(":")[1]


def test_layer_blob_get_head_and_ranges(server):
    layer = get(server, "/v2/acme/app/manifests/1.0").json()["layers"][-1]
    path = f"/v2/acme/app/blobs/{layer['digest']}"
    whole = get(server, path)
    assert whole.status_code == 200 and len(whole.content) == layer["size"]
    assert hashlib.sha256(whole.content).hexdigest() == layer["digest"].split(":")[1]
    assert whole.headers["Docker-Content-Digest"] == layer["digest"]
    head = get(server, path, "HEAD")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(layer["size"]) and not head.content
    part = get(server, path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{layer['size']}"
    tail = get(server, path, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    open_ended = get(server, path, headers={"Range": f"bytes={layer['size'] - 3}-"})
    assert open_ended.content == whole.content[-3:]
    beyond = get(server, path, headers={"Range": f"bytes={layer['size']}-"})
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{layer['size']}"


def test_tags_list_paginates_with_link_headers(server):
    everything = get(server, "/v2/acme/app/tags/list").json()
    assert everything == {"name": "acme/app", "tags": sorted(["1.0", "1.1", "2.0", "latest", "a", "b"])}
    seen, path = [], "/v2/acme/app/tags/list?n=2"
    while path:
        resp = get(server, path)
        assert resp.status_code == 200
        page = resp.json()["tags"]
        assert len(page) <= 2
        seen += page
        link = resp.headers.get("Link")
        path = link[1 : link.index(">")] if link else None
        if link:
            assert link.endswith('rel="next"')
    assert seen == everything["tags"]
    assert get(server, "/v2/acme/app/tags/list?n=10&last=b").json()["tags"] == ["latest"]
    assert get(server, "/v2/acme/app/tags/list?n=0").json()["tags"] == []
    assert error_code(get(server, "/v2/acme/app/tags/list?n=x")) == "PAGINATION_NUMBER_INVALID"


def test_catalog_paginates(server):
    names = get(server, "/v2/_catalog").json()["repositories"]
    assert names == ["acme/app", "acme/dapp", "acme/dmulti", "acme/multi"]
    first = get(server, "/v2/_catalog?n=3")
    assert first.json()["repositories"] == names[:3]
    assert first.headers["Link"] == '</v2/_catalog?n=3&last=acme/dmulti>; rel="next"'.replace("/dmulti", "%2Fdmulti")
    assert get(server, "/v2/_catalog?n=3&last=acme%2Fdmulti").json()["repositories"] == names[3:]


def test_referrers_empty_index_when_none(server):
    subject = get(server, "/v2/acme/app/manifests/1.0").headers["Docker-Content-Digest"]
    resp = get(server, f"/v2/acme/app/referrers/{subject}")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == OCI_INDEX
    assert resp.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert error_code(get(server, "/v2/acme/app/referrers/sha256:zz")) == "DIGEST_INVALID"


def test_referrers_listed_from_records_filtered_by_artifact_type(tmp_path):
    reg_path = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(reg_path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    subject = lfsreg.Digest.parse(reg.tags("acme/app")[0].digest.__str__())
    empty = b"{}"
    records = {}
    blobs = {}
    for kind in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": kind,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:" + hashlib.sha256(empty).hexdigest(),
                "size": 2,
            },
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1},
        }
        data = dump_json(doc)
        digest = lfsreg.Digest.of_bytes(data)
        blobs[layout.NEW.blob_path(digest)] = data
        desc = {"mediaType": OCI_MANIFEST, "digest": str(digest), "size": len(data), "artifactType": kind}
        records[layout.NEW.referrer_path("acme/app", subject, digest)] = dump_json(desc)
    # a record whose manifest is not stored is not listed
    ghost = lfsreg.Digest.of_bytes(b"ghost")
    records[layout.NEW.referrer_path("acme/app", subject, ghost)] = dump_json({"mediaType": OCI_MANIFEST, "digest": str(ghost), "size": 5})
    reg.publisher().publish(lambda view: {**blobs, **records}, "referrers")
    reg.close()
    with serving(reg_path) as srv:
        listed = get(srv, f"/v2/acme/app/referrers/{subject}").json()["manifests"]
        assert sorted(d["artifactType"] for d in listed) == ["application/vnd.example.sbom", "application/vnd.example.sig"]
        only = get(srv, f"/v2/acme/app/referrers/{subject}?artifactType=application/vnd.example.sig")
        assert [d["artifactType"] for d in only.json()["manifests"]] == ["application/vnd.example.sig"]
        assert only.headers["OCI-Filters-Applied"] == "artifactType"
        # per repository: another name sees none
        assert get(srv, f"/v2/acme/other/referrers/{subject}").json()["manifests"] == []
        # _referrers is not an image name
        assert get(srv, "/v2/_catalog").json()["repositories"] == ["acme/app"]


def test_blob_head_is_answered_from_the_registry_not_the_storage(tmp_path):
    reg_path = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(reg_path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    reg.close()
    for obj in (reg_path / "lfs" / "objects").rglob("*"):
        if obj.is_file():
            os.unlink(obj)  # the storage lost every layer
    with serving(reg_path) as srv:
        layer = get(srv, "/v2/acme/app/manifests/1.0").json()["layers"][0]
        head = get(srv, f"/v2/acme/app/blobs/{layer['digest']}", "HEAD")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(layer["size"])
        lost = get(srv, f"/v2/acme/app/blobs/{layer['digest']}")
        assert lost.status_code == 500 and error_code(lost) == "UNKNOWN"


def test_a_layer_pointer_naming_another_object_is_a_server_error_not_its_bytes(tmp_path):
    """The tree's pointer for a layer must name that layer's own object: else 500 UNKNOWN, not another layer's bytes."""
    reg_path = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(reg_path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    with serving(reg_path) as srv:
        first, second = (lfsreg.Digest.parse(d["digest"]) for d in get(srv, "/v2/acme/app/manifests/1.0").json()["layers"][:2])
    pointer = reg.view().snapshot.read(layout.NEW.layer_path(second))
    reg.publisher().publish(lambda view: {layout.NEW.layer_path(first): pointer}, "a pointer naming another layer")
    reg.close()
    with serving(reg_path) as srv:
        for method in ("GET", "HEAD"):
            swapped = get(srv, f"/v2/acme/app/blobs/{first}", method)
            assert swapped.status_code == 500, method
        body = get(srv, f"/v2/acme/app/blobs/{first}")
        assert error_code(body) == "UNKNOWN" and f"pointer for layer {first}" in body.json()["errors"][0]["message"]


def test_a_damaged_layer_file_is_never_served_whole_even_after_it_was_served(tmp_path):
    reg_path = tmp_path / "reg.git"
    reg = lfsreg.Registry(str(reg_path))
    reg.init()
    reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    reg.close()
    with serving(reg_path) as srv:
        layer = get(srv, "/v2/acme/app/manifests/1.0").json()["layers"][-1]
        hexdigest = layer["digest"].split(":")[1]
        path = reg_path / "lfs" / "objects" / hexdigest[:2] / hexdigest[2:4] / hexdigest
        for _ in range(2):  # hashed as sent, then sent as a file once it matched: the same bytes
            assert hashlib.sha256(get(srv, f"/v2/acme/app/blobs/{layer['digest']}").content).hexdigest() == hexdigest
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            get(srv, f"/v2/acme/app/blobs/{layer['digest']}").content  # noqa: B018 -- reading is the point


def test_unknown_paths_and_methods(server):
    assert get(server, "/v3/").status_code == 404
    resp = get(server, "/v2/acme/app/tags/list", "POST")
    assert resp.status_code == 405 and error_code(resp) == "UNSUPPORTED"
    # no write side on a listen without users: writes are denied, nothing is written
    resp = get(server, "/v2/acme/app/manifests/1.0", "PUT", data=b"{}", headers={"Content-Type": OCI_MANIFEST})
    assert resp.status_code == 403 and error_code(resp) == "DENIED"
    resp = get(server, "/v2/acme/app/blobs/uploads/", "POST")
    assert resp.status_code == 403 and error_code(resp) == "DENIED"


def test_keep_alive_serves_many_requests_on_one_connection(server):
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(server.url + "/v2/acme/app/manifests/1.0", timeout=30).status_code == 200
            assert session.get(server.url + "/v2/acme/nothing/manifests/1", timeout=30).status_code == 404
    body = json.dumps({}).encode()
    assert body


def test_a_request_whose_body_cannot_be_delimited_is_answered_and_the_connection_closed(server):
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"PUT /v2/acme/app/manifests/x HTTP/1.1\r\nHost: h\r\nContent-Length: ten\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"SIZE_INVALID" in answer
    assert answer.count(b"HTTP/1.1 ") == 1  # what followed was not taken for a request
