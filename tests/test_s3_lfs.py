"""A registry whose LFS objects live in S3: giftless's S3 storage in SeaweedFS, behind the git front.

``git_http_s3_server`` is the GitHub-like setup: nginx + stock ``git http-backend`` with Basic
auth, its ``/info/lfs`` batch API answered by giftless, which hands out presigned URLs of
SeaweedFS's S3 gateway (another host: the client's Basic credentials must never go there). lfsreg
pushes and pulls through it, the objects are really in the bucket (S3 listing, bytes hashed), and
stock git + git-lfs clone the registry from the same place.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from gitenv import isolated_git_env, run_git, use_cli_env
from peers import use_credential_store

import lfsreg
from tests.conftest import FIXTURES

pytestmark = pytest.mark.interop

POINTER = b"version https://git-lfs.github.com/spec/v1\n"


@pytest.fixture
def s3_repo(git_http_s3_server, tmp_path, request):
    return git_http_s3_server.create_repo(f"s3/{request.node.name[:40]}")


def pointers(tree: Path) -> dict[str, int]:
    """oid -> size of every LFS pointer file under ``tree``."""
    found = {}
    for path in tree.rglob("*"):
        if path.is_file() and path.read_bytes().startswith(POINTER):
            fields = dict(line.split(" ", 1) for line in path.read_text().splitlines())
            found[fields["oid"].removeprefix("sha256:")] = int(fields["size"])
    return found


def test_push_pull_and_git_clone_with_lfs_objects_in_seaweedfs(git_http_s3_server, giftless_s3_server, s3_repo, tmp_path, monkeypatch):
    use_cli_env(monkeypatch, tmp_path, git_http_s3_server)
    seaweed = giftless_s3_server.s3
    put_before = seaweed.requests("PUT")
    with lfsreg.Registry(s3_repo.url) as reg:
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])

    # stock git sees pointers; git-lfs fetches their objects (from S3, through the presigned hrefs)
    env = isolated_git_env(tmp_path / "git")
    use_credential_store(env, git_http_s3_server, tmp_path)
    run_git(["clone", "-q", s3_repo.url, "clone"], cwd=tmp_path, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    clone = tmp_path / "clone"
    objects = pointers(clone)
    assert objects, "the registry holds no LFS pointers"

    # every object is in the bucket under giftless's key for this repo, and nowhere else
    stored = seaweed.objects(f"{giftless_s3_server.s3_prefix}/{s3_repo.name}/")
    assert stored == {giftless_s3_server.s3_key(s3_repo.name, oid): size for oid, size in objects.items()}
    for oid in objects:
        assert hashlib.sha256(seaweed.get(giftless_s3_server.s3_key(s3_repo.name, oid))).hexdigest() == oid
    assert seaweed.requests("PUT") - put_before >= len(objects)  # the uploads went to SeaweedFS itself
    assert not any(giftless_s3_server.storage.rglob("*.*")) and not (s3_repo.path / "lfs").exists()
    # the uploads carried giftless's headers, not the client's Basic credentials (the hrefs are presigned)
    assert [line for line in seaweed.access_log() if line.startswith("PUT ") and "auth=yes" in line and s3_repo.name in line] == []

    run_git(["lfs", "pull"], cwd=clone, env=env)
    layers = [p for p in (clone / "layers").rglob("*") if p.is_file()]
    assert layers
    for path in layers:  # a layer's file is its blob: its sha256 is its name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name

    # a fresh lfsreg (empty cache) pulls the image back, byte for byte
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "fresh-cache"))
    with lfsreg.Registry(s3_repo.url) as reg:
        reg.pull(["acme/app:1.0"], f"oci:{tmp_path / 'out'}:x")
    out = tmp_path / "out"
    want = json.loads((FIXTURES / "app.oci" / "index.json").read_text())["manifests"][0]["digest"]
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == want
    for blob in (out / "blobs" / "sha256").iterdir():
        assert blob.read_bytes() == (FIXTURES / "app.oci" / "blobs" / "sha256" / blob.name).read_bytes()

    # verify asks giftless, which asks S3: clean now; an object deleted from the bucket is named
    with lfsreg.Registry(s3_repo.url) as reg:
        report = reg.verify()
        assert report.ok and report.objects == len(objects), report.problems
        gone = min(objects)
        assert seaweed.request("DELETE", f"/{seaweed.bucket}/{giftless_s3_server.s3_key(s3_repo.name, gone)}")[0] == 204
        report = reg.verify()
    assert not report.ok and all(gone in str(p) for p in report.problems), report.problems
