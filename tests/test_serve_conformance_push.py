"""The OCI distribution-spec conformance suite against a writable ``lfsreg serve``: all four categories.

Pull, push, content discovery and content management, on an empty registry the suite fills
through the write API (uploads monolithic, chunked and streamed, mounts, manifests by tag and
by digest, ``?tag=``, subjects and referrers, deletes, upload cancel). Off: sha512 digests (LFS
object ids are sha256, so such blobs are refused with ``DIGEST_INVALID``) and sparse indexes
(an index whose children are not stored is refused with ``MANIFEST_BLOB_UNKNOWN``), both
optional in the spec. The printed results are judged as in tests/test_serve_conformance.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import bcrypt
from servehelp import serving
from test_serve_conformance import run_suite

import lfsreg


def test_conformance_all_categories_with_writes(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("conformance:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode() + "\n")
    path = tmp_path / "reg.git"
    with lfsreg.Registry(str(path)) as reg:
        reg.init()
    with serving(path, htpasswd=str(htpasswd)) as srv:
        env = {
            "OCI_REGISTRY": srv.url.removeprefix("http://"),
            "OCI_TLS": "disabled",
            "OCI_REPO1": "conformance/repo1",
            "OCI_REPO2": "conformance/repo2",
            "OCI_USERNAME": "conformance",
            "OCI_PASSWORD": "s3cret",
            "OCI_DATA_SHA512": "false",
            "OCI_API_BLOBS_UPLOAD_CANCEL": "true",
            "OCI_API_MANIFESTS_TAG_PARAM": "true",
            "OCI_DATA_TAG_PARAM": "true",
        }
        proc, results = run_suite(env, tmp_path)
    summary = json.dumps({k: len(v) for k, v in results.items()})
    assert results, f"no results printed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not results.get("fail"), f"{summary}: failed {results.get('fail')}\n{proc.stdout[-4000:]}"
    assert proc.returncode == 0, f"{summary}: the suite exited {proc.returncode}\n{proc.stderr[-3000:]}"
    passed = results.get("pass", [])
    assert "OCI Conformance Test" in passed, summary
    for needed in ("blob-patch-chunked", "blob-patch-stream", "blob-mount", "blob-delete", "manifest-by-tag", "tag-delete", "referrers"):
        assert any(needed in name for name in passed), f"no {needed} test passed: {summary}"
